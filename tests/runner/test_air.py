"""Over-the-air runs without radios: which networks the air takes, the process graph without an
emulator, the TX's bursts and idle zeros, the radio event and overflow counts, and the TX and RX
node programs over a clocked stand-in for the air (a throttled ZMQ hop with receiver noise)."""
from __future__ import annotations

import numpy as np
import pmt
import pytest
import yaml
from gnuradio import analog, blocks, gr, zeromq

from testbed.config.radio import RadioConfig
from testbed.config.scenario import load_scenario
from testbed.errors import ConfigError, RadioError
from testbed.gr.batch_source import BatchSource
from testbed.gr.radio_events import RadioEventCounter
from testbed.gr.receiver import ReceiverSink
from testbed.gr.zmq_source import ZmqPullSource
from testbed.runner import nodes, session
from testbed.runner.air import air_mode, latency_samples
from testbed.runner.graph import build_graph
from tests.gr.grc_helpers import free_tcp_address, wait_for

PLUTO = {"name": "pluto-a", "backend": "pluto", "device": "pluto", "args": "usb:1.2.5", "center_freq_hz": 915e6,
         "sample_rate_sps": 2e6, "tx_gain_db": -10.0, "rx_gain_db": 40.0}


def _scenario(tmp_path, radios: dict[str, dict], extra: dict | None = None):
    """A two-user broadcast whose nodes use the radio files ``radios`` (node -> radio fields)."""
    files = {}
    for node, fields in radios.items():
        files[node] = tmp_path / f"{node}.yaml"
        files[node].write_text(yaml.safe_dump(fields))
    topo = {"nodes": [{"name": n, "role": "tx" if n == "bs" else "rx", "radio": str(files[n])} for n in radios],
            "users": [{"name": f"u{i}", "tx": "bs", "rx": n} for i, n in enumerate(r for r in radios if r != "bs")],
            "links": [{"tx": "bs", "rx": n, "snr_db": 10.0} for n in radios if n != "bs"], **(extra or {})}
    doc = {"name": "air-test", "system": "digital", "radio": "zmq", "topology": topo, "images": "default",
           "system_params": {"codec": "hevc", "modulation": "qpsk", "code": "ldpc_648_1_2", "bandwidth_ratio": 0.5}}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_scenario(str(path))


def test_an_all_hardware_network_runs_over_the_air_and_a_virtual_one_does_not(tmp_path):
    air = _scenario(tmp_path, {"bs": PLUTO, "ue0": {**PLUTO, "args": "usb:1.3.5"}})
    assert air_mode(air)
    assert not air_mode(load_scenario("broadcast-4users"))


@pytest.mark.parametrize("radios,extra,needles", [
    ({"bs": PLUTO, "ue0": {**PLUTO, "backend": "zmq", "device": "zmq"}}, None, ["['bs']", "['ue0']", "virtual"]),
    ({"bs": PLUTO, "ue0": {**PLUTO, "sample_rate_sps": 1e6}}, None, ["sample rates", "one rate"]),
    ({"bs": PLUTO, "ue0": PLUTO}, {"sweep": [{"axis": "snr_offset_db", "values": [0, 5]}]},
     ["topology.sweep", "2 points", "one"]),
])
def test_what_the_air_cannot_run_is_refused_naming_the_field(tmp_path, radios, extra, needles):
    with pytest.raises(ConfigError) as err:
        air_mode(_scenario(tmp_path, radios, extra))
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_the_graph_over_the_air_has_no_emulator_and_no_sample_addresses(tmp_path):
    scenario = _scenario(tmp_path, {"bs": PLUTO, "ue0": PLUTO, "ue1": PLUTO})
    graph = build_graph(scenario, "token", 0, 2e6, air=True)
    assert set(graph.processes) == {"bs", "ue0", "ue1"}
    for proc in graph.processes.values():
        assert proc.spec["radio"]["args"] == "usb:1.2.5" and proc.spec["antennas"] == 1
        assert not proc.spec.get("inputs") and not proc.spec.get("outputs")
    virtual = build_graph(load_scenario("broadcast-4users"), "token", 0, 1e6)
    assert "channel" in virtual.processes and virtual.processes["ue0"].spec["radio"] is None


class _Found:
    """A radio backend whose discovery finds the given devices."""

    def __init__(self, devices):
        self.devices = devices

    def discover(self):
        return self.devices


def test_a_pinned_device_that_is_not_found_is_named_with_what_was_found(tmp_path, monkeypatch):
    scenario = _scenario(tmp_path, {"bs": PLUTO, "ue0": {**PLUTO, "args": "usb:1.9.5"}})
    found = [{"backend": "pluto", "uri": "usb:1.2.5", "description": "PlutoSDR (ADALM-PLUTO)"}]
    monkeypatch.setattr(session.registry, "create", lambda kind, name, **kw: _Found(found))
    with pytest.raises(RadioError) as err:
        session.check_radios(scenario)
    assert "node ue0" in str(err.value) and "usb:1.9.5" in str(err.value) and "uri=usb:1.2.5" in str(err.value)
    session.check_radios(_scenario(tmp_path, {"bs": PLUTO, "ue0": PLUTO}))  # found: no error


def _run(tb: gr.top_block, seconds: float) -> None:
    tb.start()
    wait_for(lambda: False, seconds)
    for block in getattr(tb, "halting", []):
        block.halt()
    tb.stop()
    tb.wait()


def test_burst_mode_tags_every_batch_start_and_end():
    tb = gr.top_block()
    source, sink = BatchSource(1, "burst"), blocks.vector_sink_c()
    tb.connect(source, sink)
    tb.halting = [source]
    source.push(np.ones((1, 300), np.complex64))
    source.push(2 * np.ones((1, 500), np.complex64))
    _run(tb, 0.5)
    tags = sorted((t.offset, pmt.symbol_to_string(t.key)) for t in sink.tags())
    assert tags == [(0, "tx_sob"), (299, "tx_eob"), (300, "tx_sob"), (799, "tx_eob")]
    assert len(sink.data()) == 800


def test_zeros_mode_streams_zeros_until_a_batch_comes():
    tb = gr.top_block()
    source, head, sink = BatchSource(1, "zeros"), blocks.head(gr.sizeof_gr_complex, 400_000), blocks.vector_sink_c()
    tb.connect(source, blocks.throttle(gr.sizeof_gr_complex, 1e6), head, sink)  # the device's clock
    tb.start()
    assert wait_for(lambda: source.idle_samples > 0, 5.0)
    source.push(np.full((1, 100), 3 + 0j, np.complex64))
    tb.wait()
    data = np.asarray(sink.data())
    hits = np.flatnonzero(data == 3)
    assert hits.size == 100 and np.all(np.diff(hits) == 1) and hits[0] > 0 and not data[: hits[0]].any()
    with pytest.raises(ValueError, match="allowed: pause, burst, zeros"):
        BatchSource(1, "cyclic")


def test_uhd_async_events_are_counted_by_code():
    counter = RadioEventCounter()
    for code in ("underflow", "underflow", "time_error", "burst_ack"):
        info = pmt.dict_add(pmt.make_dict(), pmt.intern("event_code"), pmt.intern(code))
        counter.handle(pmt.cons(pmt.intern("uhd_async_msg"), info))
    counter.handle(pmt.intern("garbage"))
    assert counter.counts == {"underflow": 2, "time_error": 1, "burst_ack": 1, "unknown": 1}


def test_every_rx_time_tag_after_the_first_counts_as_an_overflow():
    tags = [gr.tag_utils.python_to_tag((offset, pmt.intern("rx_time"), pmt.PMT_T, pmt.PMT_F))
            for offset in (0, 5000, 9000)]
    tb = gr.top_block()
    source = blocks.vector_source_c(np.zeros(20000, np.complex64).tolist(), False, 1, tags)
    sink = ReceiverSink()
    tb.connect(source, sink)
    tb.run()
    assert sink.radio_overflows == 2 and sink.samples_processed == 20000


class _ClockedAir:
    """Stands in for a radio pair: the TX sink is a throttle at the radio's rate into a ZMQ
    push_sink (the device's clock paces the TX stream), the RX source pulls it and adds receiver
    noise (std 0.005, about 30 dB below the TX's -15 dBFS RMS)."""

    tx_idle = "zeros"

    def __init__(self, address: str, rate_sps: float) -> None:
        self.address, self.rate_sps = address, rate_sps

    def make_sink(self, cfg: RadioConfig) -> gr.hier_block2:
        hier = gr.hier_block2("air_tx", gr.io_signature(1, 1, gr.sizeof_gr_complex), gr.io_signature(0, 0, 0))
        hier.parts = [blocks.throttle(gr.sizeof_gr_complex, self.rate_sps),
                      zeromq.push_sink(gr.sizeof_gr_complex, 1, self.address, 100, False, -1)]
        hier.connect(hier, *hier.parts)
        return hier

    def make_source(self, cfg: RadioConfig) -> gr.hier_block2:
        hier = gr.hier_block2("air_rx", gr.io_signature(0, 0, 0), gr.io_signature(1, 1, gr.sizeof_gr_complex))
        hier.parts = [ZmqPullSource(self.address), analog.noise_source_c(analog.GR_GAUSSIAN, 0.005, 3), blocks.add_cc()]
        hier.connect(hier.parts[0], (hier.parts[2], 0))
        hier.connect(hier.parts[1], (hier.parts[2], 1))
        hier.connect(hier.parts[2], hier)
        return hier

    def watch_sink(self, tb, sink):
        return None


@pytest.mark.timeout(120)
def test_tx_and_rx_nodes_over_a_clocked_air_deliver_the_batch(tmp_path, monkeypatch):
    """The RX counts its own samples from its start (zeros before the batch), collects from its
    mark, and decodes every frame; the TX scales below full scale and clips nothing."""
    rate = 1e6  # a Pluto-like rate: the stand-in air, the TX and the RX share one process and its GIL
    air = _ClockedAir(free_tcp_address(), rate)
    cfg = RadioConfig.model_validate(PLUTO)
    monkeypatch.setattr(nodes, "_radio_backend", lambda spec: (air, cfg) if spec.get("radio") else (None, None))
    scenario = _scenario(tmp_path, {"bs": PLUTO, "ue0": PLUTO})
    graph = build_graph(scenario, "token", 0, rate, air=True)
    tx_spec, rx_spec = graph.processes["bs"].spec, graph.processes["ue0"].spec
    tb_tx, source = nodes.tx_flowgraph(tx_spec)
    tx = nodes.TxProgram({**tx_spec, "feedback": None}, source)
    holder = {}
    tb_rx, sink = nodes.rx_flowgraph(rx_spec, lambda f: holder["rx"].on_frame(f))
    rx = holder["rx"] = nodes.RxProgram({**rx_spec, "feedback": []}, sink)
    image = _photo()
    tb_rx.start()
    tb_tx.start()
    try:
        assert wait_for(lambda: sink.samples_processed > rate * 0.1, 10.0)  # zeros stream before any batch
        enc, _ = tx.encode({"items": ["p"], "snr_db": 20.0, "batch": 0}, {"image/p": image})
        samples = tx.frame({})[0]["samples"]
        mark = rx.mark()[0]["marked"]
        tx.send({"total_samples": samples})
        reply, _ = rx.collect({"batch": 0, "span_samples": samples + latency_samples(rate),
                               "manifests": enc["manifests"], "timeout_s": 60.0, "idle_s": 10.0})
    finally:
        for tb in (tb_tx, tb_rx):
            tb.stop()
            tb.wait()
    stats = reply["users"]["u0"]
    assert mark > 0 and reply["waited"] == "done", (reply, sink.receiver.counters, sink.errors)
    assert stats["frames_sent"] > 0 and stats["frames_received"] == stats["frames_sent"] and stats["bler"] == 0, stats
    assert stats["snr_est_db"] > 20.0
    assert -50.0 < stats["noise_floor_dbfs"] < -42.0  # noise power 2.5e-5 = -46 dBFS
    status = tx.status()
    assert status["tx_clipped_samples"] == 0 and status["tx_idle_samples"] > 0
    assert rx.status()["radio_overflows"] == 0 and rx.status()["stray_frames"] == 0


def _photo() -> np.ndarray:
    from testbed.runner.scenario import scenario_images

    return scenario_images(load_scenario("digital-awgn"))[0][1][:64, :64]


def test_rows_over_the_air_carry_the_noise_floor_and_the_gains(tmp_path):
    from testbed.runner.results import Results, UserBatch

    scenario = _scenario(tmp_path, {"bs": PLUTO, "ue0": PLUTO})
    results = Results(scenario.network(), {"u0": "hevc"})
    for floor in (-60.0, -62.0):
        results.add(0, {"bs->ue0": 10.0}, UserBatch("u0", metrics={"frames_sent": 3, "csi_snr_db": 10.0,
                                                                   "noise_floor_dbfs": floor, "tx_gain_db": -10.0,
                                                                   "rx_gain_db": 40.0}))
    row = results.rows()[0]
    assert row["noise_floor_dbfs"] == -61.0 and row["tx_gain_db"] == -10.0 and row["rx_gain_db"] == 40.0


class _Calls:
    """Records every method call made on it (a stand-in radio block)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_a_live_radio_change_is_checked_against_the_device_and_applied(tmp_path):
    from testbed.errors import ConfigError
    from testbed.radios.pluto import PlutoRadio
    from testbed.radios.uhd import UhdRadio

    graph = build_graph(_scenario(tmp_path, {"bs": PLUTO, "ue0": PLUTO}), "token", 0, 2e6, air=True)
    spec = {**graph.processes["bs"].spec, "feedback": None}
    tx = nodes.TxProgram(spec, BatchSource(1, "zeros"))
    block = _Calls()
    tx.radio = (PlutoRadio(), block)
    reply, _ = tx.handle({"cmd": "radio", "changes": {"tx_gain_db": -20.0, "center_freq_hz": 868e6}}, {})
    assert reply["sample"] == 0 and reply["radio"]["tx_gain_db"] == -20.0
    assert block.calls == [("set_frequency", 868_000_000), ("set_attenuation", 0, 20.0)]
    with pytest.raises(ConfigError, match=r"tx_gain_db.*5.*-89.75"):
        tx.handle({"cmd": "radio", "changes": {"tx_gain_db": 5.0}}, {})
    with pytest.raises(ValueError, match="allowed: center_freq_hz, rx_gain_db, tx_gain_db"):
        tx.handle({"cmd": "radio", "changes": {"antenna": "RX2"}}, {})
    usrp = _Calls()
    b210 = RadioConfig.model_validate({"name": "b", "backend": "uhd", "device": "b210", "center_freq_hz": 2.4e9,
                                       "sample_rate_sps": 1e6, "tx_gain_db": 50.0, "rx_gain_db": 30.0,
                                       "rx_channels": [0, 1]})
    UhdRadio().retune(usrp, b210, "rx")
    assert usrp.calls == [("set_center_freq", 2.4e9, 0), ("set_gain", 30.0, 0),
                          ("set_center_freq", 2.4e9, 1), ("set_gain", 30.0, 1)]
