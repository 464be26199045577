"""Node programs of a persistent network run: each is one OS process running a GNU Radio
flowgraph and a control server, started once per scenario and stepped over the control plane
(docs/architecture.md "Nodes"). Started by the runner as
``python -m testbed.runner.proc ROLE SPEC.json STATUS.json``.

- ``tx_node``: loads its system's encoder; ``encode`` (images in the request, SNR as CSI or the
  RX's feedback) frames a batch, ``send`` pads it to the batch length and streams it out of
  ``BatchSource`` -> one gr-zeromq push_sink per antenna.
- ``rx_node``: pull_source -> ``ReceiverSink``; ``collect`` waits until the batch's last sample
  has arrived, runs every user's decoder on that user's frames and replies per-user results;
  it feeds the measured SNR back to its TXs.
- ``channel_node``: pull_source per TX antenna -> ``ChannelBlock`` -> push_sink per RX antenna;
  ``control`` changes links, noise and IRS phases at a logged sample.

Every node answers ``hello`` (ready), ``status`` and ``stop``.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
from gnuradio import gr, zeromq

from testbed import registry
from testbed.channels.spec import ChannelSpec
from testbed.gr.batch_source import BatchSource
from testbed.gr.channel import ChannelBlock
from testbed.gr.receiver import ReceiverSink
from testbed.phy.frame import Framer, slot_padding
from testbed.phy.receiver import ReceivedFrame
from testbed.runner.graph import GAP_SAMPLES, spec_dict
from testbed.runner.control import Arrays, ControlServer, FeedbackReceiver, FeedbackSender
from testbed.systems.base import Decoded, frame_stats

BUFFER_ITEMS = 1 << 16
FEEDBACK_WAIT_S = 2.0
Reply = tuple[dict[str, Any], Arrays]


def _serve(spec: dict[str, Any], tb: gr.top_block, handler: Callable[[dict, Arrays], Reply],
           status: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``tb`` and answer control requests until ``stop``; the final status."""
    server = ControlServer(spec["control"], spec["token"])

    def handle(msg: dict, arrays: Arrays) -> Reply:
        cmd = msg["cmd"]
        if cmd == "hello":
            return {"ok": True, "node": spec["name"]}, {}
        if cmd == "status":
            return status(), {}
        if cmd == "stop":
            server.stop.set()
            return {"ok": True}, {}
        return handler(msg, arrays)

    tb.start()
    try:
        server.serve(handle)
    finally:
        tb.stop()
        tb.wait()
    return {"role": spec["role"], "node": spec["name"], "stopped": "done", "refused": server.refused, **status()}


def _zmq_sinks(addresses: list[str]) -> list:
    return [zeromq.push_sink(gr.sizeof_gr_complex, 1, a, 100, False, -1) for a in addresses]


def _zmq_sources(addresses: list[str]) -> list:
    return [zeromq.pull_source(gr.sizeof_gr_complex, 1, a, 100, False, -1) for a in addresses]


class TxProgram:
    """What a TX node does per batch: encode in the node, frame, pad, stream."""

    def __init__(self, spec: dict[str, Any], source: BatchSource) -> None:
        self.spec, self.source = spec, source
        self.system = registry.create("system", spec["system"], params=spec["params"], seed=spec["seed"])
        self.framer = Framer()
        self.pending: np.ndarray | None = None
        self.feedback = FeedbackReceiver(spec["feedback"], spec["token"]) if spec.get("feedback") else None
        self.frames_sent = self.batches = 0

    def csi_snr_db(self, msg: dict) -> tuple[float, str]:
        """The SNR the encoder is told: when adapting, the lowest SNR its RXs fed back (waiting up
        to ``FEEDBACK_WAIT_S`` for the feedback on the previous batch); else the nominal SNR."""
        fb = self.feedback
        if self.spec.get("adapt") != "feedback" or fb is None:
            return float(msg["snr_db"]), "nominal"
        deadline = time.monotonic() + FEEDBACK_WAIT_S
        while time.monotonic() < deadline and not _has_batch(fb.latest, int(msg["batch"]) - 1):
            time.sleep(0.002)
        if not fb.latest:
            return float(msg["snr_db"]), "nominal"
        return min(float(m["snr_db"]) for m in fb.latest.values()), "feedback"

    def encode(self, msg: dict, arrays: Arrays) -> Reply:
        items = [(name, arrays[f"image/{name}"]) for name in msg["items"]]
        snr_db, origin = self.csi_snr_db(msg)
        encoded = self.system.encode(items, snr_db, int(msg["batch"]))
        slot = int(self.spec.get("slot_samples", 0))
        parts = []
        for job in encoded.jobs:
            frame = self.framer.frame(job.payload, job.fmt, system=job.system, user=self.spec["flow"], seq=job.seq)
            parts += [frame, np.zeros(slot_padding(frame.size, GAP_SAMPLES, slot), np.complex64)]
        wave = np.concatenate(parts) if parts else np.zeros(0, np.complex64)
        self.pending = np.zeros((self.source.n_outputs, wave.size), np.complex64)
        self.pending[0] = wave  # one stream from antenna 0 (precoded streams: issue of MU-MISO)
        self.frames_sent += len(encoded.jobs)
        return {"samples": int(wave.size), "manifest": encoded.manifest, "csi_snr_db": snr_db,
                "csi_from": origin}, {}

    def send(self, msg: dict) -> Reply:
        total = int(msg["total_samples"])
        if self.pending is None or self.pending.shape[1] > total:
            raise ValueError(f"send total_samples = {total}: no encoded batch of at most that length")
        wave = np.zeros((self.source.n_outputs, total), np.complex64)
        wave[:, : self.pending.shape[1]] = self.pending
        self.source.push(wave)
        self.pending = None
        self.batches += 1
        return {"queued": total}, {}

    def handle(self, msg: dict, arrays: Arrays) -> Reply:
        if msg["cmd"] == "encode":
            return self.encode(msg, arrays)
        if msg["cmd"] == "send":
            return self.send(msg)
        raise ValueError(f"tx node: unknown command {msg['cmd']!r}; allowed: encode, send, status, stop")

    def status(self) -> dict[str, Any]:
        fb = self.feedback
        return {"frames_sent": self.frames_sent, "batches": self.batches, "samples_queued": self.source.samples_queued,
                "samples_sent": self.source.samples_sent,
                "feedback_received": fb.received if fb else 0, "feedback": fb.latest if fb else {}}


def _has_batch(latest: dict[str, dict], batch: int) -> bool:
    return batch < 0 or any(int(m.get("batch", -1)) >= batch for m in latest.values())


def run_tx_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, system, params, seed, flow, antennas, outputs
    (one address per antenna), slot_samples, feedback (address or absent), adapt."""
    tb = gr.top_block(f"testbed_tx_{spec['name']}")
    source = BatchSource(spec["antennas"])
    source.set_min_output_buffer(BUFFER_ITEMS)
    sinks = _zmq_sinks(spec["outputs"])
    for a, sink in enumerate(sinks):
        tb.connect((source, a), sink)
    program = TxProgram(spec, source)
    return _serve(spec, tb, program.handle, program.status)


class RxProgram:
    """What an RX node does per batch: wait for its samples, decode every user, report."""

    def __init__(self, spec: dict[str, Any], sink: ReceiverSink) -> None:
        self.spec, self.sink = spec, sink
        self.users = spec["users"]
        self.systems = {u["name"]: registry.create("system", spec["system"], params=u["params"], seed=spec["seed"])
                        for u in self.users}
        self.frames: list[ReceivedFrame] = []
        self._lock = threading.Lock()
        self.feedback = FeedbackSender(spec.get("feedback", []), spec["token"])
        self.batch_start = 0

    def on_frame(self, frame: ReceivedFrame) -> None:
        with self._lock:
            self.frames.append(frame)

    def _wait_samples(self, end_sample: int, timeout_s: float, idle_s: float) -> str:
        """Wait until every sample up to ``end_sample`` has been processed (its frames delivered)."""
        sink = self.sink
        start = last_change = time.monotonic()
        last = sink.samples_processed
        while sink.samples_processed < end_sample:
            now = time.monotonic()
            if sink.samples_processed != last:
                last, last_change = sink.samples_processed, now
            if now - last_change > idle_s:
                return "idle"
            if now - start > timeout_s:
                return "timeout"
            time.sleep(0.005)
        return "done"

    def collect(self, msg: dict) -> Reply:
        end = int(msg["end_sample"])
        how = self._wait_samples(end, float(msg.get("timeout_s", 120.0)), float(msg.get("idle_s", 20.0)))
        with self._lock:
            frames, self.frames = self.frames, []
        received = self.sink.samples_processed - self.batch_start
        self.batch_start = self.sink.samples_processed
        reply: dict[str, Any] = {"waited": how, "samples_received": received, "users": {}}
        arrays: Arrays = {}
        for user in self.users:
            manifest = msg["manifests"][str(user["flow"])]
            mine = [f for f in frames if f.header.user == user["flow"]]
            decoded = self.systems[user["name"]].decode(mine, manifest)
            reply["users"][user["name"]] = frame_stats(mine, int(manifest["frames"]))
            arrays.update(_arrays_of(user["name"], decoded))
        snrs = [f.snr_est_db for f in frames]
        if snrs:
            self.feedback.send({"from": self.spec["name"], "batch": msg["batch"], "snr_db": float(np.mean(snrs))})
        return reply, arrays

    def handle(self, msg: dict, arrays: Arrays) -> Reply:
        if msg["cmd"] == "collect":
            return self.collect(msg)
        raise ValueError(f"rx node: unknown command {msg['cmd']!r}; allowed: collect, status, stop")

    def status(self) -> dict[str, Any]:
        return {"samples_received": self.sink.receiver.counters.samples, "errors": self.sink.errors,
                "feedback_dropped": self.feedback.dropped,
                **{f"rx_{k}": v for k, v in self.sink.receiver.counters.as_dict().items()}}


def _arrays_of(user: str, decoded: Decoded) -> Arrays:
    out = {f"{user}/image/{name}": img for name, img in decoded.images.items()}
    out.update({f"{user}/array/{name}": a for name, a in decoded.arrays.items()})
    return out


def run_rx_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, system, seed, sample_rate_sps, inputs (one per antenna),
    users ([{name, flow, params}]), feedback (TX feedback addresses)."""
    if len(spec["inputs"]) != 1:
        raise ValueError(f"rx node {spec['name']}: {len(spec['inputs'])} antennas; this receiver takes 1 "
                         "(the multi-antenna receiver is testbed.phy.mimo_receiver)")
    tb = gr.top_block(f"testbed_rx_{spec['name']}")
    sources = _zmq_sources(spec["inputs"])
    holder: dict[str, RxProgram] = {}
    sink = ReceiverSink(spec["sample_rate_sps"], on_frame=lambda f: holder["p"].on_frame(f))
    program = holder["p"] = RxProgram(spec, sink)
    tb.connect(sources[0], sink)
    return _serve(spec, tb, program.handle, program.status)


def run_channel_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, inputs, outputs, links (n_rx x n_tx ChannelSpec dicts),
    noise_var, seed."""
    tb = gr.top_block("testbed_channel_node")
    links = [[ChannelSpec(**_spec_fields(d)) for d in row] for row in spec["links"]]
    chan = ChannelBlock(links, seed=spec["seed"], noise_var=spec["noise_var"])
    chan.set_min_output_buffer(BUFFER_ITEMS)
    sources, sinks = _zmq_sources(spec["inputs"]), _zmq_sinks(spec["outputs"])
    for i, src in enumerate(sources):
        tb.connect(src, (chan, i))
    for j, sink in enumerate(sinks):
        tb.connect((chan, j), sink)

    def handle(msg: dict, arrays: Arrays) -> Reply:
        if msg["cmd"] != "control":
            raise ValueError(f"channel node: unknown command {msg['cmd']!r}; allowed: control, status, stop")
        for change in msg["changes"]:
            chan.control(change)
        return {"queued": len(msg["changes"])}, {}

    def status() -> dict[str, Any]:
        emu = chan.emulator
        return {"samples_in": [int(chan.nitems_read(i)) for i in range(len(sources))],
                "samples_out": [int(s.nitems_read(0)) for s in sinks], "changes": [_change(c) for c in emu.changes[-200:]],
                "realised_h": [[[float(h.real), float(h.imag)] for h in row] for row in emu.realised_h()],
                "bad_controls": chan.bad_controls}

    return _serve(spec, tb, handle, status)


def _change(change: dict[str, Any]) -> dict[str, Any]:
    """A logged emulator change as JSON-able fields."""
    return {k: (spec_dict(v) if isinstance(v, ChannelSpec) else v) for k, v in change.items()}


def _spec_fields(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    d["taps"] = tuple(complex(t) for t in d["taps"])
    return d


ROLES = {"tx_node": run_tx_node, "rx_node": run_rx_node, "channel_node": run_channel_node}
