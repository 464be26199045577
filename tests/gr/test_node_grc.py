"""The node flowgraphs of a network run as GNU Radio Companion files: flowgraphs/tx_node.grc,
rx_node.grc and channel_node.grc compile headless with grcc, and the top block each generates is
the same graph as the one ``testbed.runner.nodes`` builds for the same parameters (block types,
stream and message edges, output buffers, ZMQ socket arguments); a node spec of another shape is
told apart. The compiled TX -> channel -> RX node graphs then carry a frame end to end."""
from __future__ import annotations

import collections
import inspect
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gnuradio.gr")
pytest.importorskip("gnuradio.zeromq")

from gnuradio import gr  # noqa: E402  (after the importorskip)
from grc_helpers import free_tcp_address, load_script, wait_for  # noqa: E402

from testbed.channels.spec import ChannelSpec  # noqa: E402
from testbed.phy.frame import Framer  # noqa: E402
from testbed.phy.payload import PayloadFormat  # noqa: E402
from testbed.runner import nodes  # noqa: E402
from testbed.runner.chain import GAP_SAMPLES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FLOWGRAPHS = ROOT / "flowgraphs"
BLOCKS = FLOWGRAPHS / "blocks"
NODE_GRC = {"tx": "tx_node.grc", "rx": "rx_node.grc", "channel": "channel_node.grc"}
GRCC = shutil.which("grcc") or ("/usr/bin/grcc" if os.path.exists("/usr/bin/grcc") else None)
EDGE = re.compile(r"^(?P<src>[^\s:]+):(?P<sp>\w+)->(?P<dst>[^\s:]+):(?P<dp>\w+)$")

Structure = dict[str, collections.Counter]


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, Path]:
    """grcc the three node flowgraphs: {role: generated script}; fails on any grcc error."""
    if GRCC is None:
        pytest.skip("grcc (GNU Radio Companion compiler) is not installed")
    target = tmp_path_factory.mktemp("node_grc")
    paths = [FLOWGRAPHS / name for name in NODE_GRC.values()]
    env = {**os.environ, "GRC_BLOCKS_PATH": str(BLOCKS), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([GRCC, "-o", str(target), *map(str, paths)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"grcc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out = {}
    for role, name in NODE_GRC.items():
        fg_id = yaml.safe_load((FLOWGRAPHS / name).read_text())["options"]["parameters"]["id"]
        out[role] = target / f"{fg_id}.py"
        assert out[role].is_file(), f"grcc {name} wrote no {out[role].name}"
    return out


def _generated(scripts: dict[str, Path], role: str, **kwargs) -> gr.top_block:
    module = load_script(scripts[role])
    return getattr(module, f"testbed_{role}_node")(**kwargs)


# -- the node specs the runner would give (only the fields the flowgraph builders read) ---------

def _tx_spec(n_antennas: int) -> dict:
    return {"name": "tx0", "antennas": n_antennas, "outputs": [free_tcp_address() for _ in range(n_antennas)]}


def _rx_spec(n_antennas: int) -> dict:
    return {"name": "rx0", "sample_rate_sps": 1e6, "antennas": n_antennas,
            "inputs": [free_tcp_address() for _ in range(n_antennas)]}


def _channel_spec(n_tx: int, n_rx: int) -> dict:
    link = ChannelSpec("awgn", 20.0).to_dict()
    return {"links": [[link] * n_tx for _ in range(n_rx)], "seed": 0, "noise_var": None,
            "inputs": [free_tcp_address() for _ in range(n_tx)],
            "outputs": [free_tcp_address() for _ in range(n_rx)]}


def _built(role: str, spec: dict) -> tuple[gr.top_block, tuple]:
    """The runner's node flowgraph and the blocks it returns besides the top block."""
    if role == "tx":
        tb, source = nodes.tx_flowgraph(spec)
        return tb, (source,)
    if role == "rx":
        tb, sink = nodes.rx_flowgraph(spec, lambda frame: None)
        return tb, (sink,)
    tb, chan = nodes.channel_flowgraph(spec)
    return tb, (chan,)


# -- a top block's structure ------------------------------------------------------------------

def _blocks_of(tb: gr.top_block) -> list:
    """Every GNU Radio block the top block holds a Python reference to (the generated class keeps
    each block as an attribute; the node builders keep theirs in ``tb.sinks``/``tb.sources``)."""
    found, seen = [], set()

    def visit(value) -> None:
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, gr.top_block) or not callable(getattr(value, "alias", None)):
            return
        elif hasattr(value, "unique_id") and id(value) not in seen and value is not tb._impl:
            seen.add(id(value))
            found.append(value)

    for value in vars(tb).values():
        visit(value)
    return found


def _kind(block, labels: dict[str, str]) -> str:
    """A block's type: its GNU Radio name and Python class (``testbed_channel/ChannelBlock``); a
    ZMQ block also names which of the node's addresses it uses (``push_sink/push_sink@out1``)."""
    kind = f"{block.name()}/{type(block).__name__}"
    endpoint = getattr(block, "last_endpoint", None)
    return f"{kind}@{labels.get(endpoint(), '?')}" if callable(endpoint) else kind


def _spec_labels(spec: dict) -> dict[str, str]:
    """The node spec's addresses: inputs[i] -> ``in<i>``, outputs[j] -> ``out<j>``."""
    return {a: f"{prefix}{i}" for side, prefix in (("inputs", "in"), ("outputs", "out"))
            for i, a in enumerate(spec.get(side, []))}


def _grc_labels(kwargs: dict[str, str]) -> dict[str, str]:
    """The .grc parameters' addresses: in_address -> in0, out_address -> out0, out_address_<j> -> out<j>."""
    labels = {}
    for name, address in kwargs.items():
        m = re.fullmatch(r"(in|out)_address(?:_(\d+))?", name)
        if m:
            labels[address] = f"{m[1]}{m[2] or 0}"
    return labels


def _parse_edges(text: str, kinds: dict[str, str]) -> collections.Counter:
    edges = collections.Counter()
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        m = EDGE.match(line)
        assert m, f"unparsed edge {line!r}"
        unknown = {m["src"], m["dst"]} - set(kinds)
        assert not unknown, f"edge {line!r} names blocks the top block holds no reference to ({sorted(kinds)})"
        edges[(kinds[m["src"]], m["sp"], kinds[m["dst"]], m["dp"])] += 1
    return edges


def structure(tb: gr.top_block, extra: tuple = (), labels: dict[str, str] | None = None) -> Structure:
    """Block types, stream edges and message edges of ``tb`` as multisets.

    The edges are GNU Radio's own: ``edge_list()``/``msg_edge_list()`` of the flattened graph,
    which exists once the top block has started (``dot_graph()`` is not exposed to Python in
    3.10), so ``tb`` is started on its (free) addresses and stopped again. Edge endpoints are
    block aliases, mapped to block types through the blocks the top block references; ``labels``
    names the node's ZMQ addresses (see ``_kind``)."""
    labels = labels or {}
    held = _blocks_of(tb)
    held += [b for b in extra if all(b is not h for h in held)]
    kinds = {b.alias(): _kind(b, labels) for b in held}
    tb.start()
    try:
        stream_text, msg_text = tb.edge_list(), tb.msg_edge_list()
    finally:
        tb.stop()
        tb.wait()
    return {"blocks": collections.Counter(kinds.values()),
            "edges": _parse_edges(stream_text, kinds), "msg_edges": _parse_edges(msg_text, kinds),
            "min_output_buffer": collections.Counter(
                (kinds[b.alias()], int(b.min_output_buffer(0))) for b in held
                if b.output_signature().max_streams() not in (0, -1) and hasattr(b, "min_output_buffer"))}


def _differences(a: Structure, b: Structure) -> dict:
    return {key: (dict(a[key] - b[key]), dict(b[key] - a[key])) for key in a if a[key] != b[key]}


# -- the GRC files and the node builders make the same graph --------------------------------------

CASES = {
    "tx": (lambda: _tx_spec(1), lambda spec: {"out_address": spec["outputs"][0]}),
    "rx": (lambda: _rx_spec(1), lambda spec: {"in_address": spec["inputs"][0],
                                              "sample_rate_sps": spec["sample_rate_sps"]}),
    "channel": (lambda: _channel_spec(1, 2), lambda spec: {"in_address": spec["inputs"][0],
                                                           "out_address_0": spec["outputs"][0],
                                                           "out_address_1": spec["outputs"][1]}),
}
OTHER_SHAPES = {"tx": lambda: _tx_spec(2), "rx": lambda: _rx_spec(2), "channel": lambda: _channel_spec(1, 3)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", list(CASES))
def test_node_grc_is_the_runner_graph(role, scripts):
    make_spec, grc_args = CASES[role]
    spec = make_spec()
    built = structure(*_built(role, spec), labels=_spec_labels(spec))
    kwargs = grc_args(make_spec())  # the same graph on its own free addresses
    generated = structure(_generated(scripts, role, **kwargs), labels=_grc_labels(kwargs))
    assert generated == built, f"{NODE_GRC[role]} differs from nodes.{role}_flowgraph: {_differences(generated, built)}"
    assert sum(built["edges"].values()) >= 1 and built["blocks"]
    if role != "rx":  # the runner sets a 2**16-item output buffer on BatchSource / ChannelBlock
        assert {n for (_, n) in built["min_output_buffer"].elements()} >= {nodes.BUFFER_ITEMS}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", list(CASES))
def test_another_shape_is_told_apart(role, scripts):
    """The comparison can fail: the runner's 2-antenna (1 x 3 channel) graph is not the file's."""
    kwargs = CASES[role][1](CASES[role][0]())
    generated = structure(_generated(scripts, role, **kwargs), labels=_grc_labels(kwargs))
    spec = OTHER_SHAPES[role]()
    other = structure(*_built(role, spec), labels=_spec_labels(spec))
    assert generated != other
    assert generated["edges"] != other["edges"]


def _zmq_args(source: str, call: str) -> list[tuple[str, ...]]:
    """The arguments of every ``zeromq.<call>(...)`` in ``source`` but the address (third),
    normalised (``(-1)`` -> ``-1``)."""
    out = []
    for args in re.findall(rf"zeromq\.{call}\(([^)]*(?:\([^)]*\)[^)]*)*)\)", source):
        parts = [a.strip().strip("()").strip() for a in args.split(",")]
        out.append(tuple(parts[:2] + parts[3:]))
    return out


def test_zmq_socket_arguments_match(scripts):
    """Item size, vector length, timeout, tags and high-water mark as ``nodes`` passes them (the
    receiving side is testbed.gr.zmq_source, compared as a block type by the structure tests)."""
    runner = inspect.getsource(nodes)
    for call in ("push_sink",):
        wanted = set(_zmq_args(runner, call))
        assert len(wanted) == 1, f"nodes.py makes {call} with {wanted}"
        for role in CASES:
            have = set(_zmq_args(scripts[role].read_text(), call))
            assert have <= wanted, f"{NODE_GRC[role]}: {call}{have} differs from nodes.py {wanted}"


# -- the compiled node graphs carry a frame --------------------------------------------------------

@pytest.mark.timeout(60)
def test_compiled_node_graphs_carry_a_frame(scripts):
    """tx_node -> channel_node (AWGN 30 dB, 1 -> 2) -> two rx_node graphs, all from the .grc files;
    the waveform pushed into the TX node's BatchSource arrives as a frame with a good CRC at both
    receivers, and every sample is counted out."""
    tx_out, rx_in = free_tcp_address(), [free_tcp_address(), free_tcp_address()]
    tx = _generated(scripts, "tx", out_address=tx_out)
    chan = _generated(scripts, "channel", in_address=tx_out, out_address_0=rx_in[0], out_address_1=rx_in[1],
                      snr_db=30.0, seed=2)
    rxs = [_generated(scripts, "rx", in_address=a) for a in rx_in]
    frames: list[list] = [[], []]
    for rx, got in zip(rxs, frames):
        rx.rx.on_frame = got.append
    payload = bytes(range(60))
    wave = Framer().frame(payload, PayloadFormat("qpsk"), user=3, seq=7)
    batch = np.concatenate([np.zeros(GAP_SAMPLES), wave, np.zeros(4 * GAP_SAMPLES)]).astype(np.complex64)[None]
    graphs = [*rxs, chan, tx]
    for tb in graphs:
        tb.start()
    try:
        tx.source.push(batch)
        arrived = wait_for(lambda: all(frames) and all(rx.rx.samples_processed >= batch.shape[1] for rx in rxs), 20.0)
    finally:
        for tb in reversed(graphs):
            tb.stop()
            tb.wait()
    assert tx.source.samples_sent == tx.source.samples_queued == batch.shape[1]
    assert arrived, (f"frames {[len(f) for f in frames]}, processed {[rx.rx.samples_processed for rx in rxs]}, "
                     f"channel in {chan.channel.nitems_read(0)}")
    for got in frames:
        assert len(got) == 1 and got[0].payload_ok and bytes(got[0].payload) == payload
        assert (got[0].header.user, got[0].header.seq) == (3, 7)
