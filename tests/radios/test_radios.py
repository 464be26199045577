"""Radio backends: registry, lazy imports, ZMQ loopback, discovery without hardware, hardware tests."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from testbed.config.radio import RadioConfig, load_radio_config
from testbed.errors import RadioError
from testbed.radios import backend_for, endpoint, free_tcp_port
from testbed.radios.pluto import channel_enables
from testbed.radios.uhd import device_args
from testbed.registry import create, names

CONFIG_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
TIMEOUT_S = 10.0


def _cfg(name: str, **changes: object) -> RadioConfig:
    return load_radio_config(CONFIG_DIR / f"{name}.yaml").model_copy(update=changes)


def test_backends_registered() -> None:
    assert {"zmq", "uhd", "pluto"} <= set(names("radio"))
    for name in ("zmq", "uhd", "pluto"):
        assert create("radio", name).name == name


def test_import_loads_no_hardware_library() -> None:
    code = ("import sys, testbed.radios, testbed.config.radio; "
            "print(sorted(m for m in ('gnuradio', 'uhd', 'iio', 'adi', 'zmq') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["zmq", "uhd", "pluto"])
def test_available_reports_reason(name: str) -> None:
    ok, reason = create("radio", name).available()
    assert isinstance(ok, bool) and reason


@pytest.mark.parametrize("name", ["uhd", "pluto"])
def test_discover_without_hardware_is_a_list(name: str) -> None:
    found = create("radio", name).discover()
    assert isinstance(found, list)
    assert all(device["backend"] == name for device in found)


def test_zmq_discovers_nothing() -> None:
    assert create("radio", "zmq").discover() == []


def test_endpoint_and_free_port() -> None:
    port = free_tcp_port()
    assert 0 < port < 65536
    assert endpoint(port) == f"tcp://127.0.0.1:{port}"


def _run_until(tb, sinks, count: int) -> None:
    """Start ``tb``, stop it once every vector sink holds ``count`` items (or the timeout)."""
    tb.start()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and min(len(s.data()) for s in sinks) < count:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()


@pytest.mark.parametrize("channels", [[0], [0, 1]])
def test_zmq_push_to_pull_passes_samples(channels: list[int]) -> None:
    from gnuradio import blocks, gr

    cfg = _cfg("zmq", tx_channels=channels, rx_channels=channels)
    radio = backend_for(cfg)
    addresses = [endpoint(free_tcp_port()) for _ in channels]
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal(4096) + 1j * rng.standard_normal(4096)).astype(np.complex64)
            for _ in channels]
    tb = gr.top_block()
    sink = radio.make_sink(cfg, addresses=addresses)
    source = radio.make_source(cfg, addresses=addresses)
    sources = [blocks.vector_source_c(d.tolist(), False) for d in data]
    sinks = [blocks.vector_sink_c() for _ in channels]
    for port, (src, snk) in enumerate(zip(sources, sinks)):
        tb.connect(src, (sink, port))
        tb.connect((source, port), snk)
    _run_until(tb, sinks, len(data[0]))
    for expected, snk in zip(data, sinks):
        np.testing.assert_array_equal(np.asarray(snk.data()[: len(expected)], np.complex64), expected)


def test_zmq_address_count_must_match_channels() -> None:
    cfg = _cfg("zmq", rx_channels=[0, 1])
    with pytest.raises(RadioError, match="2 channel"):
        backend_for(cfg).make_source(cfg, addresses=[endpoint(free_tcp_port())])


def test_backend_refuses_foreign_config() -> None:
    with pytest.raises(RadioError, match="backend 'uhd'"):
        create("radio", "zmq").make_source(_cfg("b200"), addresses=["tcp://127.0.0.1:1"])


def test_uhd_device_args_add_type() -> None:
    assert device_args(_cfg("b210", args="serial=30AD2D4")) == "type=b200,serial=30AD2D4"
    assert device_args(_cfg("x310")) == "type=x300,addr=192.168.40.2"


def test_uhd_open_without_hardware_raises_radio_error() -> None:
    cfg = _cfg("b200", args="type=b200,serial=not-attached")
    with pytest.raises(RadioError, match="UHD cannot open"):
        backend_for(cfg).make_source(cfg)


@pytest.mark.parametrize(("channels", "enables"), [([0], [True, True]),
                                                   ([0, 1], [True] * 4),
                                                   ([1], [False, False, True, True])])
def test_pluto_channel_enables(channels: list[int], enables: list[bool]) -> None:
    assert channel_enables(channels) == enables


@pytest.mark.parametrize("config,device_class", [("pluto-1r1t", "Pluto"), ("pluto-2r2t", "ad9361")])
def test_pluto_channel_enables_follow_analog_devices_own_description(config: str, device_class: str) -> None:
    """pyadi-iio (Analog Devices' description of the IIO devices) names one voltageN converter per
    I or Q of each complex channel, in channel order; gr-iio's ch_en flags are those converters,
    so every config's channels must map onto the converters the device class has."""
    adi = pytest.importorskip("adi")
    device = getattr(adi, device_class)
    cfg = load_radio_config(CONFIG_DIR / f"{config}.yaml")
    for channels, names in ((cfg.rx_channels, device._rx_channel_names), (cfg.tx_channels, device._tx_channel_names)):
        enables = channel_enables(channels)
        assert len(enables) <= len(names)
        enabled = [names[i] for i, on in enumerate(enables) if on]
        assert enabled == [f"voltage{2 * ch + iq}" for ch in channels for iq in (0, 1)]
    assert (device._rx_data_device_name, device._tx_data_device_name) == ("cf-ad9361-lpc", "cf-ad9361-dds-core-lpc")


@pytest.fixture(scope="module")
def attached() -> dict[str, list[dict[str, str]]]:
    return {name: create("radio", name).discover() for name in ("uhd", "pluto")}


@pytest.mark.hardware
@pytest.mark.parametrize(("backend", "config"), [("uhd", "b200"), ("uhd", "b210"), ("uhd", "x310"),
                                                 ("uhd", "n210"), ("pluto", "pluto-1r1t")])
def test_hardware_source_streams(attached, backend: str, config: str) -> None:
    from gnuradio import blocks, gr

    cfg = _cfg(config)
    if not attached[backend]:
        pytest.skip(f"no {backend} radio found")
    products = [d.get("product", "").lower() for d in attached[backend]]
    if backend == "uhd" and not any(product.startswith(config) for product in products):
        pytest.skip(f"no {config} attached")
    if backend == "pluto":
        cfg = cfg.model_copy(update={"args": attached["pluto"][0]["uri"]})
    tb = gr.top_block()
    source = backend_for(cfg).make_source(cfg)
    sinks = [blocks.vector_sink_c() for _ in cfg.rx_channels]
    heads = [blocks.head(gr.sizeof_gr_complex, 100_000) for _ in cfg.rx_channels]
    for port, (head, snk) in enumerate(zip(heads, sinks)):
        tb.connect((source, port), head, snk)
    _run_until(tb, sinks, 100_000)
    assert all(len(s.data()) == 100_000 for s in sinks)
