"""GNU Radio Companion face: flowgraphs/*.grc compile headless with grcc against
flowgraphs/blocks, the generated loopback (and ZMQ tx -> channel -> rx) flowgraphs deliver
frames, and every block YAML builds its block through an existing testbed.gr.grc factory."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("gnuradio.gr")
pytest.importorskip("gnuradio.zeromq")
pmt = pytest.importorskip("pmt")

from grc_helpers import free_tcp_address as _free_tcp_address  # noqa: E402
from grc_helpers import load_script as _load  # noqa: E402
from grc_helpers import wait_for as _wait_for  # noqa: E402
from testbed.gr import grc  # noqa: E402  (after the importorskip)

ROOT = Path(__file__).resolve().parents[2]
FLOWGRAPHS = ROOT / "flowgraphs"
BLOCKS = FLOWGRAPHS / "blocks"
GRC_FILES = sorted(FLOWGRAPHS.glob("*.grc"))
BLOCK_FILES = sorted(BLOCKS.glob("*.block.yml"))
GRCC = shutil.which("grcc") or ("/usr/bin/grcc" if os.path.exists("/usr/bin/grcc") else None)
needs_grcc = pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) is not installed")

FACTORY = re.compile(r"testbed_grc\.(\w+)\(")
PLACEHOLDER = re.compile(r"\$\{\s*(\w+)\s*\}")


def _env() -> dict[str, str]:
    return {**os.environ, "GRC_BLOCKS_PATH": str(BLOCKS), "QT_QPA_PLATFORM": "offscreen"}


def _flowgraph_id(path: Path) -> str:
    return yaml.safe_load(path.read_text())["options"]["parameters"]["id"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    """grcc each flowgraph into its own folder: {file name: generated script}; fails on any error."""
    if GRCC is None:
        pytest.skip("grcc is not installed")
    out: dict[str, Path] = {}
    for path in GRC_FILES:
        target = tmp_path_factory.mktemp(path.stem)
        proc = subprocess.run([GRCC, "-o", str(target), str(path)], env=_env(), capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, f"grcc {path.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        script = target / f"{_flowgraph_id(path)}.py"
        assert script.is_file(), f"grcc {path.name} wrote no {script.name}: {sorted(p.name for p in target.iterdir())}"
        out[path.name] = script
    return out


def _stored_meta(debug) -> list[dict]:
    return [pmt.to_python(pmt.car(debug.get_message(i))) for i in range(debug.num_messages())]


def test_expected_flowgraphs_and_blocks_exist():
    assert {"loopback.grc", "zmq_tx.grc", "zmq_channel.grc", "zmq_rx.grc", "pluto_tx.grc", "pluto_rx.grc",
            "uhd_tx.grc", "uhd_rx.grc"} <= {p.name for p in GRC_FILES}
    assert {"testbed_framer_source.block.yml", "testbed_receiver_sink.block.yml",
            "testbed_channel.block.yml"} <= {p.name for p in BLOCK_FILES}


@needs_grcc
@pytest.mark.parametrize("path", GRC_FILES, ids=lambda p: p.name)
def test_grcc_compiles(path, compiled):
    script = compiled[path.name]
    text = script.read_text()
    compile(text, str(script), "exec")
    options = yaml.safe_load(path.read_text())["options"]["parameters"]
    assert options["generate_options"] == "no_gui"
    assert "qtgui" not in text and "from PyQt5" not in text


@pytest.mark.parametrize("name,sink", [("pluto_tx.grc", "pluto"), ("uhd_tx.grc", "usrp")])
def test_hardware_tx_flowgraphs_back_off_from_full_scale(name, sink):
    """Frames have unit RMS and peaks near 8: a DAC at full scale 1 would clip them, so the
    framer reaches the radio through a multiply by 10**(-backoff_db/20), 15 dB by default."""
    doc = yaml.safe_load((FLOWGRAPHS / name).read_text())
    edges = {(c[0], c[2]) for c in doc["connections"]}
    assert ("framer", "backoff") in edges and ("backoff", sink) in edges and ("framer", sink) not in edges
    blocks = {b["name"]: b for b in doc["blocks"]}
    assert blocks["backoff"]["parameters"]["const"] == "10 ** (-backoff_db / 20)"
    assert blocks["backoff_db"]["parameters"]["value"] == "15"


@needs_grcc
@pytest.mark.timeout(60)
def test_loopback_flowgraph_delivers_frames(compiled):
    module = _load(compiled["loopback.grc"])
    tb = module.testbed_loopback(snr_db=25.0, period_ms=20)
    tb.start()
    try:
        arrived = _wait_for(lambda: tb.debug.num_messages() >= 3, 20.0)
    finally:
        tb.stop()
        tb.wait()
    counters = tb.rx.receiver.counters
    assert arrived, f"frames_sent={tb.framer.frames_sent} rx={counters.as_dict()} errors={tb.rx.errors}"
    assert counters.frames >= 3 and tb.rx.errors == 0
    framer = tb.framer  # a free-running strobe may outpace the flowgraph: every drop is counted
    assert framer.pdus_received == framer.frames_sent + framer.pdus_dropped + framer.pdus_bad + len(framer._queue)
    metas = _stored_meta(tb.debug)
    assert all(m["payload_ok"] and m["modulation"] == "qpsk" and 20 <= m["length"] <= 200 for m in metas), metas
    assert min(m["snr_est_db"] for m in metas) > 15.0


@needs_grcc
@pytest.mark.timeout(60)
def test_zmq_flowgraphs_chain_delivers_frames(compiled):
    """The three virtual-radio flowgraphs joined on free ports, in one process."""
    tx_addr, rx_addr = _free_tcp_address(), _free_tcp_address()
    tx = _load(compiled["zmq_tx.grc"]).testbed_zmq_tx(out_address=tx_addr, modulation="qam16", period_ms=20)
    chan = _load(compiled["zmq_channel.grc"]).testbed_zmq_channel(in_address=tx_addr, out_address=rx_addr,
                                                                  snr_db=30.0, seed=1)
    rx = _load(compiled["zmq_rx.grc"]).testbed_zmq_rx(in_address=rx_addr)
    blocks = [rx, chan, tx]
    for tb in blocks:
        tb.start()
    try:
        arrived = _wait_for(lambda: rx.debug.num_messages() >= 3, 20.0)
    finally:
        for tb in reversed(blocks):
            tb.stop()
            tb.wait()
    assert arrived, f"frames_sent={tx.framer.frames_sent} rx={rx.rx.receiver.counters.as_dict()}"
    metas = _stored_meta(rx.debug)
    assert all(m["payload_ok"] and m["modulation"] == "qam16" for m in metas), metas


def _render_make(block: dict) -> str:
    """The block's make template with every parameter at its default, as GRC would write it."""
    params = {p["id"]: p for p in block["parameters"]}

    def value(match: re.Match) -> str:
        p = params[match.group(1)]
        default = str(p.get("default", ""))
        if p["dtype"] == "string":
            return repr(default)
        if p["dtype"].endswith("_vector"):
            return f"[{default}]"
        return default

    return PLACEHOLDER.sub(value, block["templates"]["make"])


@pytest.mark.parametrize("path", BLOCK_FILES, ids=lambda p: p.name)
def test_block_yaml_uses_existing_factory(path):
    block = yaml.safe_load(path.read_text())
    assert block["id"] == path.name.removesuffix(".block.yml")
    assert block["category"] == "[Testbed]" and block["file_format"] == 1
    assert "from testbed.gr import grc as testbed_grc" in block["templates"]["imports"]
    make = block["templates"]["make"]
    names = FACTORY.findall(make)
    assert names, f"{path.name}: make {make!r} calls no testbed_grc factory"
    for name in names:
        assert callable(getattr(grc, name, None)), f"{path.name}: testbed.gr.grc.{name} does not exist"
    param_ids = {p["id"] for p in block["parameters"]}
    assert set(PLACEHOLDER.findall(make)) <= param_ids, f"{path.name}: make uses undeclared parameters"
    # the factory accepts the defaults and builds a block whose message ports match the YAML
    made = eval(_render_make(block), {"testbed_grc": grc})  # noqa: S307  (our own template)
    for side, declared in (("in", block.get("inputs", [])), ("out", block.get("outputs", []))):
        wanted = {p["id"] for p in declared if p["domain"] == "message"}
        ports = getattr(made, f"message_ports_{side}")()
        have = {pmt.symbol_to_string(pmt.vector_ref(ports, i)) for i in range(pmt.length(ports))}
        assert wanted <= have, f"{path.name}: message ports {wanted} not among the block's {have}"
        streams = [p for p in declared if p["domain"] == "stream"]
        signature = made.input_signature() if side == "in" else made.output_signature()
        assert signature.max_streams() == (1 if streams else 0), f"{path.name}: {side} streams at the defaults"


def test_channel_factories_build_topologies():
    """Scalars or one value per RX; mismatched lists are refused with the field name."""
    from testbed.errors import ConfigError

    single = grc.channel_single_link("rician", 15.0, cfo_hz=100.0, delay_samples=2.5, seed=3)
    assert (single.input_signature().max_streams(), single.output_signature().max_streams()) == (1, 1)
    broadcast = grc.channel_broadcast(3, "rayleigh", [5.0, 10.0, 20.0])
    assert broadcast.output_signature().max_streams() == 3
    assert [row[0].spec.snr_db for row in broadcast.emulator.links] == [5.0, 10.0, 20.0]
    uplink = grc.channel_matrix(2, 4, "awgn", 20.0)
    assert (uplink.input_signature().max_streams(), uplink.output_signature().max_streams()) == (2, 4)
    with pytest.raises(ConfigError, match="snr_db"):
        grc.channel_broadcast(2, "awgn", [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="model"):
        grc.channel_single_link("nakagami", 10.0)


def test_the_framer_block_offers_every_payload_format_of_the_phy():
    from testbed.phy.payload import CODE_IDS, MODULATION_IDS

    params = {p["id"]: p for p in yaml.safe_load((BLOCKS / "testbed_framer_source.block.yml").read_text())["parameters"]}
    for field, ids in (("modulation", MODULATION_IDS), ("code", CODE_IDS)):
        assert sorted(params[field]["options"]) == sorted(ids), field
    assert all(len(p["options"]) == len(p["option_labels"]) for p in (params["modulation"], params["code"]))
