"""Node programs of a persistent network run: each is one OS process running a GNU Radio
flowgraph and a control server, started once per scenario and stepped over the control plane
(docs/architecture.md "Nodes"). Started by the runner as
``python -m testbed.runner.proc ROLE SPEC.json STATUS.json``.

- ``tx_node``: loads its system's encoder; ``encode`` (images in the request, SNR as CSI or the
  RX's feedback; with ``adapt: closed_loop`` the channel column and SNR fed back on this batch's
  probe) frames a batch, ``probe`` frames the batch's probe (closed loop), ``send`` pads either
  to the batch length and streams it out of ``BatchSource`` -> one gr-zeromq push_sink per antenna.
- ``rx_node``: pull_source -> ``ReceiverSink``; ``collect`` waits until the batch's last sample
  has arrived, runs every user's decoder on that user's frames and replies per-user results;
  it feeds the measured SNR back to its TXs (closed loop: ``collect {probe: true}`` feeds back
  the channel column and SNR of each flow's probe, and runs no decoder).
- ``channel_node``: pull_source per TX antenna -> ``ChannelBlock`` -> push_sink per RX antenna;
  ``control`` changes links, noise and IRS phases at a logged sample.

Every node answers ``hello`` (ready), ``status`` and ``stop``.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gnuradio import blocks, gr, zeromq

from testbed import registry
from testbed.channels.spec import ChannelSpec
from testbed.gr.batch_source import BatchSource
from testbed.gr.channel import ChannelBlock
from testbed.gr.mimo_receiver import MimoReceiverSink
from testbed.gr.receiver import ReceiverSink
from testbed.gr.zmq_source import ZmqPullSource
from testbed.errors import FrameError, RadioError
from testbed.onnx.card import sha256_file
from testbed.phy.frame import FrameJob, FrameLayout, Framer, slot_padding
from testbed.phy.mimo_frame import MultiStreamFramer, beamformed_frame, frame_stream, payload_symbols
from testbed.phy.payload import PayloadFormat
from testbed.phy.precoding import grid_precoder, zero_forcing
from testbed.phy.receiver import ReceivedFrame
from testbed.recordings.sigmf_meta import data_path, write_meta
from testbed.runner.chain import GAP_SAMPLES
from testbed.runner.decoding import decode_users
from testbed.runner.control import Arrays, ControlServer, FeedbackReceiver, FeedbackSender
from testbed.systems.base import Precoded, uses_csi

BUFFER_ITEMS = 1 << 16
FEEDBACK_WAIT_S = 2.0
PROBE_FORMAT = PayloadFormat("qpsk", "ldpc_648_1_2")
PROBE_BYTES = 8  # the batch number, big-endian: a probe of another batch is not this one's
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
        _halt(tb)
        tb.stop()
        tb.wait()
    return {"role": spec["role"], "node": spec["name"], "stopped": "done", "refused": server.refused, **status()}


def _zmq_sinks(addresses: list[str]) -> list:
    return [zeromq.push_sink(gr.sizeof_gr_complex, 1, a, 100, False, -1) for a in addresses]


def _zmq_sources(addresses: list[str]) -> list[ZmqPullSource]:
    """PULL sources for gr-zeromq push_sinks (testbed.gr.zmq_source says why not pull_source)."""
    return [ZmqPullSource(a) for a in addresses]


def _halt(tb: gr.top_block) -> None:
    """Release every block that waits inside work (sources), so ``tb.stop()`` returns."""
    for block in getattr(tb, "halting", []):
        block.halt()


class TxProgram:
    """What a TX node does per batch: encode in the node, frame, pad, stream."""

    def __init__(self, spec: dict[str, Any], source: BatchSource) -> None:
        self.spec, self.source = spec, source
        self.system = registry.create("system", spec["system"], params=spec["params"], seed=spec["seed"])
        self.framer = Framer()
        self.pending: np.ndarray | None = None
        self.jobs: dict[int, list] = {}
        self.weights: np.ndarray | None = None  # beamformed: complex (Nt, K) from encode_precoded
        self.feedback = FeedbackReceiver(spec["feedback"], spec["token"]) if spec.get("feedback") else None
        self.frames_sent = self.batches = self.probes = self.clipped = 0
        self.probing = False  # the pending waveform is a probe (closed loop)
        self.events = None  # the radio's event counter (testbed.gr.radio_events), set by run_tx_node
        self.radio = None  # over the air: (backend, sink block), set by run_tx_node

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

    def probe_csi(self, msg: dict) -> tuple[np.ndarray | None, float, float | None, str]:
        """closed_loop: (this TX's channel column complex128 (M,) as the RX estimated it from
        this batch's probe, the common ``noise_snr_db`` fed back (unit-power symbols over the
        estimated noise; the column carries the channel gain), the post-detection SINR of this
        TX's probe stream in dB, "probe"), waiting up to ``FEEDBACK_WAIT_S`` for that feedback;
        (None, the nominal SNR, None, "nominal") when this TX's probe did not come through (lost
        or failed its CRC) or no feedback came."""
        batch, flow = int(msg["batch"]), str(self.spec["flows"][0])
        deadline = time.monotonic() + FEEDBACK_WAIT_S
        while (fb := self._probe_feedback(batch)) is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if fb is None or flow not in fb["flows"]:
            return None, float(msg["snr_db"]), None, "nominal"
        mine = fb["flows"][flow]
        csi = np.asarray(mine["csi"], np.float64)
        return csi[:, 0] + 1j * csi[:, 1], float(fb["noise_snr_db"]), float(mine["sinr_db"]), "probe"

    def _probe_feedback(self, batch: int) -> dict | None:
        """The feedback on the probe of ``batch`` (a message with ``flows``), or None yet."""
        latest = list(self.feedback.latest.values()) if self.feedback else []
        return next((m for m in latest if "flows" in m and int(m["batch"]) == batch), None)

    def encode(self, msg: dict, arrays: Arrays) -> Reply:
        """Encode the batch once; every flow of this TX carries it (header ``user`` = flow). A
        beamformed TX encodes each user's own batch instead (:meth:`encode_beams`). In the closed
        loop a system with ``encode_with_csi`` gets the fed-back channel column too; the reply's
        ``csi`` is that column as [re, im] pairs (M,), or None."""
        if self.spec["mode"] == "beamformed":
            return self.encode_beams(msg, arrays)
        items = [(name, arrays[f"image/{name}"]) for name in msg["items"]]
        batch, csi, sinr_db = int(msg["batch"]), None, None
        if self.spec.get("adapt") == "closed_loop":
            csi, snr_db, sinr_db, origin = self.probe_csi(msg)
        else:
            snr_db, origin = self.csi_snr_db(msg)
        if self.spec.get("adapt") == "closed_loop" and uses_csi(self.system):
            encoded = self.system.encode_with_csi(items, csi, snr_db, batch, sinr_db=sinr_db)
        else:
            encoded = self.system.encode(items, snr_db, batch)
        self.jobs = {flow: [dataclasses.replace(job, user=flow) for job in encoded.jobs] for flow in self.spec["flows"]}
        self.frames_sent += len(encoded.jobs) * len(self.jobs)
        return {"manifests": {str(flow): encoded.manifest for flow in self.spec["flows"]},
                "payload_symbols": [payload_symbols(job) for job in encoded.jobs],
                "csi_snr_db": snr_db, "csi_from": origin,
                "csi": None if csi is None else np.stack([csi.real, csi.imag], axis=-1).tolist()}, {}

    def probe(self, msg: dict) -> Reply:
        """closed_loop: frame this TX's stream of the batch's K-stream probe frame (``probe_job``:
        every TX of the frame sends as many payload symbols) and a gap; its sample count. ``send``
        streams it like a batch."""
        job = probe_job(self.spec["flows"][0], int(msg["batch"]))
        wave = frame_stream(job, self.spec["stream"], self.spec["n_streams"], payload_symbols(job))
        self.pending = np.zeros((self.source.n_outputs, wave.size + slot_padding(wave.size, GAP_SAMPLES)), np.complex64)
        self.pending[0, : wave.size] = wave
        self.probing = True
        return {"samples": int(self.pending.shape[1])}, {}

    def encode_beams(self, msg: dict, arrays: Arrays) -> Reply:
        """The system's ``encode_precoded`` for the users' items (``items_by_user``) and the
        genie channel in force now (``csi``: complex (K, Nt) as [re, im] pairs, rows in user
        order): each user's jobs on its own flow, and the beams :meth:`frame` sends them on."""
        users, flows = self.spec["users"], self.spec["flows"]
        items = {user: [(name, arrays[f"image/{name}"]) for name in msg["items_by_user"][user]] for user in users}
        snr_db, origin = self.csi_snr_db(msg)
        h = np.asarray(msg["csi"], np.float64)
        precoded = self.system.encode_precoded(items, h[..., 0] + 1j * h[..., 1], snr_db, int(msg["batch"]))
        self.weights = checked_weights(precoded, users, self.source.n_outputs)
        self.jobs = {flow: [dataclasses.replace(job, user=flow) for job in precoded.encoded[user].jobs]
                     for user, flow in zip(users, flows)}
        self.frames_sent += sum(len(jobs) for jobs in self.jobs.values())
        return {"manifests": {str(flow): precoded.encoded[user].manifest for user, flow in zip(users, flows)},
                "payload_symbols": [], "csi_snr_db": snr_db, "csi_from": origin}, {}

    def frame(self, msg: dict) -> Reply:
        """Frame the encoded batch; ``payload_symbols`` (uplink streams) is the common OFDM
        symbol count per frame of every TX of the frame, ``csi`` (precoded) the users' channels
        to this TX's antennas, complex (K, Nt) as [re, im] pairs (a beamformed TX has its beams
        from ``encode``)."""
        mode, slot = self.spec["mode"], int(self.spec.get("slot_samples", 0))
        framer = None
        if mode == "precoded":
            h = np.asarray(msg["csi"], np.float64)
            framer = MultiStreamFramer(precoder=grid_precoder(zero_forcing(h[..., 0] + 1j * h[..., 1],
                                                                           power=float(self.source.n_outputs))))
        parts = []
        if mode != "single" and any(job.side_info for jobs in self.jobs.values() for job in jobs):
            raise FrameError(f"tx node {self.spec['name']}: side information is carried by single-stream "
                             f"frames only; this node sends {mode} frames")
        for i in range(max((len(jobs) for jobs in self.jobs.values()), default=0)):
            wave = self._wave(i, msg, framer)
            part = np.zeros((self.source.n_outputs, wave.shape[1] + slot_padding(wave.shape[1], GAP_SAMPLES, slot)),
                            np.complex64)
            part[: wave.shape[0], : wave.shape[1]] = wave  # antennas a stream does not use stay silent
            parts.append(part)
        self.pending = np.concatenate(parts, axis=1) if parts else np.zeros((self.source.n_outputs, 0), np.complex64)
        return {"samples": int(self.pending.shape[1])}, {}

    def _wave(self, i: int, msg: dict, framer: MultiStreamFramer | None) -> np.ndarray:
        """Waveforms complex64 (streams used, n) of frame ``i`` of the batch."""
        mode, flows = self.spec["mode"], self.spec["flows"]
        if mode == "beamformed":  # frame i carries every user's i-th job; a user with none left is silent
            return beamformed_frame([jobs[i] if i < len(jobs) else None for jobs in self.jobs.values()], self.weights)
        if mode == "precoded":
            return framer.frame([self.jobs[f][i] for f in flows])
        job = self.jobs[flows[0]][i]
        if mode == "stream":
            return frame_stream(job, self.spec["stream"], self.spec["n_streams"], msg["payload_symbols"][i])[None]
        return self.framer.frame(job.payload, job.fmt, system=job.system, user=job.user, seq=job.seq,
                                 side_info=job.side_info)[None]

    def send(self, msg: dict) -> Reply:
        total = int(msg["total_samples"])
        if self.pending is None or self.pending.shape[1] > total:
            raise ValueError(f"send total_samples = {total}: no encoded batch of at most that length")
        if self.spec.get("radio"):  # one burst per batch, scaled below the DAC's full scale
            wave = self.pending * np.float32(10 ** (-self.spec["radio"]["tx_backoff_db"] / 20))
            self.clipped += int(np.count_nonzero(np.maximum(np.abs(wave.real), np.abs(wave.imag)) > 1.0))
            self.source.push(wave)
        else:  # the emulator consumes every TX stream in lockstep: pad to the common length
            self.source.push(self.pending)
            self.source.push(np.zeros((self.source.n_outputs, total - self.pending.shape[1]), np.complex64))
        self.pending = None
        self.jobs = {}
        self.probes += self.probing
        self.batches += not self.probing
        self.probing = False
        return {"queued": total}, {}

    def handle(self, msg: dict, arrays: Arrays) -> Reply:
        if msg["cmd"] == "encode":
            return self.encode(msg, arrays)
        if msg["cmd"] == "frame":
            return self.frame(msg)
        if msg["cmd"] == "probe":
            return self.probe(msg)
        if msg["cmd"] == "send":
            return self.send(msg)
        if msg["cmd"] == "radio":
            return retune_radio(self, msg["changes"], "tx", self.source.samples_sent + self.source.idle_samples)
        if msg["cmd"] == "params":  # live: the encoder of the next batch on
            self.spec["params"] = {**self.spec["params"], **msg["params"]}
            self.system = registry.create("system", self.spec["system"], params=self.spec["params"], seed=self.spec["seed"])
            return {"params": self.spec["params"], "from_batch": self.batches}, {}
        raise ValueError(f"tx node: unknown command {msg['cmd']!r}; allowed: encode, frame, probe, send, params, "
                         "status, stop")

    def status(self) -> dict[str, Any]:
        fb = self.feedback
        radio = {"tx_clipped_samples": self.clipped, "tx_idle_samples": self.source.idle_samples,
                 "tx_events": dict(self.events.counts) if self.events is not None else None} if self.spec.get("radio") else {}
        return {"frames_sent": self.frames_sent, "batches": self.batches, "probes_sent": self.probes,
                "samples_queued": self.source.samples_queued,
                "samples_sent": self.source.samples_sent, **radio,
                "feedback_received": fb.received if fb else 0, "feedback": fb.latest if fb else {}}


def checked_weights(precoded: Precoded, users: list[str], n_antennas: int) -> np.ndarray:
    """The beams of ``encode_precoded``'s answer as complex64 (Nt, K); FrameError naming what is
    wrong unless every user has an entry and the weights are finite of shape (n_antennas, K)."""
    if not isinstance(precoded, Precoded) or sorted(precoded.encoded) != sorted(users):
        got = sorted(precoded.encoded) if isinstance(precoded, Precoded) else type(precoded).__name__
        raise FrameError(f"encode_precoded returned {got}; allowed: a Precoded with one Encoded per user {users}")
    weights = np.asarray(precoded.weights)
    if weights.shape != (n_antennas, len(users)) or not np.all(np.isfinite(weights)):
        raise FrameError(f"encode_precoded weights of shape {weights.shape} (finite: {bool(np.all(np.isfinite(weights)))}); "
                         f"allowed: finite complex ({n_antennas}, {len(users)}), (TX antennas, users)")
    return weights.astype(np.complex64)


def _has_batch(latest: dict[str, dict], batch: int) -> bool:
    return batch < 0 or any(int(m.get("batch", -1)) >= batch for m in latest.values())


def probe_job(flow: int, batch: int) -> FrameJob:
    """The closed loop's probe of ``batch`` on ``flow``: the batch number in ``PROBE_BYTES``
    bytes, QPSK, LDPC 648 rate 1/2 (seq 0)."""
    return FrameJob(probe_payload(batch), PROBE_FORMAT, user=flow)


def probe_payload(batch: int) -> bytes:
    """What the probe of ``batch`` carries: the batch number, ``PROBE_BYTES`` bytes big-endian."""
    return batch.to_bytes(PROBE_BYTES, "big")


def probe_feedback(rx: str, batch: int, flows: set[int], frames: list[ReceivedFrame]) -> dict[str, Any]:
    """The closed loop's feedback on the probe of ``batch`` from RX process ``rx``: per flow of
    ``flows`` whose probe passed its CRC, ``csi`` (its ``h_est``, M [re, im] pairs), ``snr_db`` =
    10 log10(||h_est||^2 / (M noise_var_est)), ``noise_snr_db`` = 10 log10(1 / noise_var_est) and
    ``sinr_db``, the probe stream's post-LMMSE SINR (its ``snr_est_db``: what a frame on this
    stream would meet, e.g. for choosing a code).
    The common ``snr_db`` is the mean of the flows' linear SNRs in dB (eq. (7) of the adaptive-rate
    paper), the common ``noise_snr_db`` that of their noise estimates: the SNR of unit-power
    symbols at unit channel gain (docs/architecture.md "SNR axis"), the gain being in ``csi``.
    Both are None without any flow. A lost or failed probe leaves its flow out."""
    out: dict[str, dict[str, Any]] = {}
    for f in frames:
        h = getattr(f, "h_est", None)
        if f.header.user in flows and f.payload_ok and h is not None and f.payload == probe_payload(batch):
            snr = float(np.sum(np.abs(h) ** 2) / (h.size * f.noise_var_est))
            out[str(f.header.user)] = {"csi": [[float(c.real), float(c.imag)] for c in h], "snr_db": _db(snr),
                                       "noise_snr_db": _db(1.0 / max(float(f.noise_var_est), 1e-30)),
                                       "sinr_db": float(f.snr_est_db)}
    linear = [10 ** (v["snr_db"] / 10) for v in out.values()]
    noise = [10 ** (-v["noise_snr_db"] / 10) for v in out.values()]
    return {"from": rx, "batch": batch, "snr_db": _db(np.mean(linear)) if out else None,
            "noise_snr_db": _db(1.0 / np.mean(noise)) if out else None, "flows": out}


def _db(ratio: float) -> float:
    return float(10 * np.log10(max(float(ratio), 1e-30)))


def run_tx_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, system, params, seed, flow, antennas, outputs
    (one address per antenna), slot_samples, feedback (address or absent), adapt."""
    tb, source = tx_flowgraph(spec)
    program = TxProgram(spec, source)
    program.events, program.radio = tb.events, tb.radio
    return _serve(spec, tb, program.handle, program.status)


def retune_radio(program, changes: dict[str, Any], side: str, sample: int) -> Reply:
    """Live: new gains or centre frequency for a node's radio (validated against the device's
    limits, ConfigError otherwise); the node's sample count when they were applied."""
    from testbed.config.radio import RadioConfig
    from testbed.config.yaml_io import validate

    if program.radio is None:
        raise RadioError(f"node {program.spec['name']}: a virtual radio has no RF to retune")
    allowed = {"center_freq_hz", "tx_gain_db", "rx_gain_db"}
    if set(changes) - allowed:
        raise ValueError(f"radio change {sorted(set(changes) - allowed)}: allowed: {', '.join(sorted(allowed))}")
    cfg = validate(RadioConfig, {**program.spec["radio"], **changes}, f"node {program.spec['name']}")
    backend, block = program.radio
    backend.retune(block, cfg, side)
    program.spec["radio"] = cfg.model_dump(mode="json")
    return {"sample": int(sample), "radio": program.spec["radio"]}, {}


def _radio_backend(spec: dict[str, Any]):
    """The hardware backend and validated config of an over-the-air node; (None, None) when virtual."""
    if not spec.get("radio"):
        return None, None
    from testbed.config.radio import RadioConfig

    cfg = RadioConfig.model_validate(spec["radio"])
    return registry.create("radio", cfg.backend), cfg


def tx_flowgraph(spec: dict[str, Any]) -> tuple[gr.top_block, BatchSource]:
    """BatchSource -> one gr-zeromq push_sink per antenna (flowgraphs/tx_node.grc), or over the
    air -> the radio's sink, bursts or zeros between batches as the backend wants (tx_idle)."""
    tb = gr.top_block(f"testbed_tx_{spec['name']}")
    backend, cfg = _radio_backend(spec)
    source = BatchSource(spec["antennas"], backend.tx_idle if backend else "pause")
    source.set_min_output_buffer(BUFFER_ITEMS)
    tb.halting, tb.events, tb.radio = [source], None, None
    if backend is None:
        tb.sinks = _zmq_sinks(spec["outputs"])  # keep Python references to every block
        for a, sink in enumerate(tb.sinks):
            tb.connect((source, a), sink)
        return tb, source
    sink = backend.make_sink(cfg)
    tb.sinks = [sink]
    for a in range(spec["antennas"]):
        tb.connect((source, a), (sink, a))
    tb.events, tb.radio = backend.watch_sink(tb, sink), (backend, sink)
    return tb, source


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
        self.annotations: list[dict[str, Any]] = []  # every frame so far, when recording
        self.marked = self.stray_frames = 0
        self.radio = None  # over the air: (backend, source block), set by run_rx_node
        if spec.get("radio"):  # over the air the RX reports its noise floor per batch
            sink.power_log = []

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
            if sink.samples_processed != last or sink.busy:
                last, last_change = sink.samples_processed, now
            if now - last_change > idle_s:
                return "idle"
            if now - start > timeout_s:
                return "timeout"
            time.sleep(0.005)
        return "done"

    def mark(self) -> Reply:
        """Over the air: a batch is about to go out; it is collected from this sample on (frames
        before it are dropped and counted in ``stray_frames``)."""
        with self._lock:
            self.stray_frames += len(self.frames)
            self.frames = []
        self.marked = self.batch_start = self.sink.samples_processed
        if self.sink.power_log is not None:
            self.sink.power_log = []
        return {"marked": self.marked}, {}

    def _take(self, msg: dict) -> tuple[str, list[ReceivedFrame], int]:
        """Wait for the batch (virtual: up to ``end_sample`` of the emulator's count; over the
        air: ``span_samples`` after the mark); how the wait ended, its frames, its sample count."""
        end = int(msg["end_sample"]) if "span_samples" not in msg else self.marked + int(msg["span_samples"])
        how = self._wait_samples(end, float(msg.get("timeout_s", 120.0)), float(msg.get("idle_s", 20.0)))
        with self._lock:
            frames, self.frames = self.frames, []
        received = self.sink.samples_processed - self.batch_start
        self.batch_start = self.sink.samples_processed
        return how, frames, received

    def collect(self, msg: dict) -> Reply:
        """Wait for the batch (:meth:`_take`), decode every user, reply per user; with ``probe``
        (closed loop) feed back the probe's CSI instead (:meth:`probe`)."""
        if msg.get("probe"):
            return self.probe(msg)
        how, frames, received = self._take(msg)
        users, arrays = decode_users(self.systems, self.users, frames, msg["manifests"])
        if self.sink.power_log is not None:
            floor = self._noise_floor_dbfs()
            for stats in users.values():
                stats["noise_floor_dbfs"] = floor
        reply: dict[str, Any] = {"waited": how, "samples_received": received, "users": users}
        if self.spec.get("record"):
            self._record(frames, int(msg["batch"]))
        snrs = [f.snr_est_db for f in frames]
        if snrs and self.spec.get("adapt") != "closed_loop":  # the closed loop feeds back the probe's CSI
            self.feedback.send({"from": self.spec["name"], "batch": msg["batch"], "snr_db": float(np.mean(snrs))})
        return reply, arrays

    def probe(self, msg: dict) -> Reply:
        """closed_loop: wait for the batch's probe, push each flow's channel column and SNR to the
        TXs (``probe_feedback``, no decoder runs) and reply the same (with ``waited`` and
        ``samples_received``)."""
        how, frames, received = self._take(msg)
        feedback = probe_feedback(self.spec["name"], int(msg["batch"]), {u["flow"] for u in self.users}, frames)
        self.feedback.send(feedback)
        return {"waited": how, "samples_received": received, **feedback}, {}

    def _noise_floor_dbfs(self) -> float | None:
        """The quietest chunk's mean power since the last collect, in dB below full scale (1.0);
        every batch window holds idle samples (the latency margin), so this is the noise."""
        log, self.sink.power_log = self.sink.power_log, []
        powers = [p for _, p in log if p > 0]
        return float(10 * np.log10(min(powers))) if powers else None

    def _record(self, frames: list[ReceivedFrame], batch: int) -> None:
        """Annotate this batch's frames and rewrite every antenna's SigMF metadata."""
        layout = FrameLayout()
        for f in frames:
            self.annotations.append({"start": f.start, "user": f.header.user, "seq": f.header.seq,
                                     "system": f.header.system, "payload_ok": f.payload_ok,
                                     "snr_est_db": f.snr_est_db, "batch": batch,
                                     "samples": layout.frame_len(f.fmt, f.header.length, f.side_info is not None)})
        record = self.spec["record"]
        models = {str(p): sha256_file(p) for s in self.systems.values() for p in s.model_files() if Path(p).is_file()}
        info = {"sample_rate_sps": self.spec["sample_rate_sps"], "radio": record["radio"], "node": self.spec["node"],
                "scenario": record["scenario"], "system": self.spec["system"], "models": models}
        for a in range(self.spec["antennas"]):
            write_meta(record["prefix"], a, info, self.annotations)

    def handle(self, msg: dict, arrays: Arrays) -> Reply:
        if msg["cmd"] == "collect":
            return self.collect(msg)
        if msg["cmd"] == "mark":
            return self.mark()
        if msg["cmd"] == "radio":
            return retune_radio(self, msg["changes"], "rx", self.sink.samples_processed)
        if msg["cmd"] == "params":  # live: this user's decoder from the next batch on
            user = next(u for u in self.users if u["name"] == msg["user"])
            user["params"] = {**user["params"], **msg["params"]}
            self.systems[user["name"]] = registry.create("system", self.spec["system"], params=user["params"],
                                                         seed=self.spec["seed"])
            return {"user": user["name"], "params": user["params"]}, {}
        raise ValueError(f"rx node: unknown command {msg['cmd']!r}; allowed: mark, collect, params, status, stop")

    def status(self) -> dict[str, Any]:
        radio = {"radio_overflows": self.sink.radio_overflows, "stray_frames": self.stray_frames} \
            if self.spec.get("radio") else {}
        return {"samples_received": self.sink.samples_processed, "errors": self.sink.errors,
                "feedback_dropped": self.feedback.dropped, **radio,
                **{f"rx_{k}": v for k, v in self.sink.receiver.counters.as_dict().items()}}


def run_rx_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, system, seed, sample_rate_sps, inputs (one per antenna),
    users ([{name, flow, params}]), feedback (TX feedback addresses), adapt."""
    warm_up(spec["antennas"], bool(spec.get("own_flows") or spec.get("streams")))
    holder: dict[str, RxProgram] = {}
    tb, sink = rx_flowgraph(spec, lambda frame: holder["p"].on_frame(frame))
    program = holder["p"] = RxProgram(spec, sink)
    program.radio = tb.radio
    return _serve(spec, tb, program.handle, program.status)


def warm_up(n_antennas: int, streams: bool = False) -> None:
    """Receive one LDPC-coded frame before the node says it is ready, so numba compiles the
    receiver's kernels now (seconds on a fresh cache) and not in the middle of a batch
    (``streams``: the node runs the multi-stream receiver also on one antenna)."""
    from testbed.phy.mimo_receiver import MimoFrameReceiver
    from testbed.phy.payload import PayloadFormat
    from testbed.phy.receiver import FrameReceiver

    wave = Framer().frame(bytes(200), PayloadFormat("qpsk", "ldpc_648_1_2"))
    x = np.concatenate([np.zeros(200, np.complex64), wave, np.zeros(2000, np.complex64)])
    x += (np.random.default_rng(0).standard_normal((x.size, 2)) @ [0.01, 0.01j]).astype(np.complex64)
    if n_antennas == 1 and not streams:
        FrameReceiver().push(x)
    else:
        MimoFrameReceiver(n_antennas=n_antennas).push([x] * n_antennas)


def rx_flowgraph(spec: dict[str, Any], deliver: Callable[[ReceivedFrame], None]) -> tuple[gr.top_block, Any]:
    """One gr-zeromq pull_source per antenna, or over the air the radio's source (one port per
    antenna) -> ReceiverSink (one antenna) or MimoReceiverSink (flowgraphs/rx_node.grc)."""
    tb = gr.top_block(f"testbed_rx_{spec['name']}")
    backend, cfg = _radio_backend(spec)
    n = spec["antennas"]
    if backend is None:
        tb.sources = tb.halting = _zmq_sources(spec["inputs"])
        ports, tb.radio = [(source, 0) for source in tb.sources], None
    else:
        tb.sources, tb.halting = [backend.make_source(cfg)], []
        tb.radio = (backend, tb.sources[0])
        ports = [(tb.sources[0], a) for a in range(n)]
    if spec.get("own_flows"):  # a user of a beamformed TX: the stream receiver, its own flows only
        sink = MimoReceiverSink(n, on_frame=deliver, flows=frozenset(u["flow"] for u in spec["users"]))
    elif n == 1 and not spec.get("streams"):
        sink = ReceiverSink(spec["sample_rate_sps"], on_frame=deliver)
    else:
        sink = MimoReceiverSink(n, on_frame=deliver)
    for a, port in enumerate(ports):
        tb.connect(port, (sink, a))
    record = spec.get("record")
    tb.recorders = []
    if record:  # GNU Radio's file_sink beside the receiver: raw cf32_le, the SigMF data files
        Path(record["prefix"]).parent.mkdir(parents=True, exist_ok=True)
        for a, port in enumerate(ports):
            tb.recorders.append(blocks.file_sink(gr.sizeof_gr_complex, str(data_path(record["prefix"], a)), False))
            tb.connect(port, tb.recorders[-1])
    return tb, sink


def run_channel_node(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: name, role, control, token, inputs, outputs, links (n_rx x n_tx ChannelSpec dicts),
    noise_var, seed."""
    tb, chan = channel_flowgraph(spec)
    sources, sinks = tb.sources, tb.sinks

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


def channel_flowgraph(spec: dict[str, Any]) -> tuple[gr.top_block, ChannelBlock]:
    """pull_source per TX antenna -> ChannelBlock -> push_sink per RX antenna
    (flowgraphs/channel_node.grc)."""
    tb = gr.top_block("testbed_channel_node")
    links = [[ChannelSpec(**d) for d in row] for row in spec["links"]]
    chan = ChannelBlock(links, seed=spec["seed"], noise_var=spec["noise_var"], **irs_arguments(spec))
    chan.set_min_output_buffer(BUFFER_ITEMS)
    tb.sources, tb.sinks = _zmq_sources(spec["inputs"]), _zmq_sinks(spec["outputs"])
    tb.halting = tb.sources
    for i, src in enumerate(tb.sources):
        tb.connect(src, (chan, i))
    for j, sink in enumerate(tb.sinks):
        tb.connect((chan, j), sink)
    return tb, chan


def irs_arguments(spec: dict[str, Any]) -> dict[str, Any]:
    """``irs`` and ``irs_links`` of the ChannelBlock when the scenario has a software IRS."""
    if not spec.get("irs"):
        return {}
    from testbed.config.irs import IrsConfig

    config = spec["irs"]["config"]
    if spec["irs"].get("channel"):  # a system's own IRS channel model (registry kind irs-channel)
        irs = registry.create("irs-channel", spec["irs"]["channel"], surface={
            k: v for k, v in config.items() if k not in ("tx_positions_m", "rx_positions_m")},
            tx_positions_m=config["tx_positions_m"], rx_positions_m=config["rx_positions_m"], seed=spec["seed"])
    else:
        irs = IrsConfig.model_validate(config).channel(spec["seed"])
    links = {(int(j), int(i)): (int(r), int(t)) for j, i, r, t in spec["irs"]["links"]}
    return {"irs": irs, "irs_links": links, "log_h": True}


def _change(change: dict[str, Any]) -> dict[str, Any]:
    """A logged emulator change as JSON-able fields."""
    return {k: (v.to_dict() if isinstance(v, ChannelSpec) else v) for k, v in change.items()}


ROLES = {"tx_node": run_tx_node, "rx_node": run_rx_node, "channel_node": run_channel_node}
