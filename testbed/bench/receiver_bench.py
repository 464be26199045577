"""Sustained rate of the streaming receiver on one core, against the 10 MS/s target (above what
a Pluto streams over USB 2). Two streams: noise only (the detector scanning), and frames back to
back (every frame synchronised, equalised, demapped and deframed)."""
from __future__ import annotations

import time

import numpy as np

from testbed.channels.numpy_face import awgn
from testbed.phy.frame import Framer
from testbed.phy.payload import PayloadFormat
from testbed.phy.receiver import FrameReceiver

CHUNK = 1 << 16


def _rate(stream: np.ndarray) -> tuple[float, int]:
    """Samples/s through a fresh receiver fed in CHUNK-sized pieces, and the frames it found."""
    FrameReceiver().push(stream[: 4 * CHUNK])  # warm the numba kernels
    rx, frames = FrameReceiver(), 0
    start = time.perf_counter()
    for i in range(0, stream.size, CHUNK):
        frames += len(rx.push(stream[i : i + CHUNK]))
    return stream.size / (time.perf_counter() - start), frames


def frame_stream(n_frames: int, fmt: PayloadFormat, snr_db: float, gap: int = 400, seed: int = 0,
                 payload_bytes: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    framer = Framer()
    parts = []
    for i in range(n_frames):
        parts += [framer.frame(rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes(), fmt, seq=i),
                  np.zeros(gap, np.complex64)]
    return awgn(np.concatenate(parts)[None, :], snr_db, rng)[0]


def bench_receiver(quick: bool = False) -> dict[str, float]:
    """Rates in samples/s: noise only, QPSK uncoded frames, 16-QAM LDPC-coded frames."""
    n = 40 if quick else 200
    rng = np.random.default_rng(1)
    noise = (0.1 * (rng.standard_normal(n * 20000) + 1j * rng.standard_normal(n * 20000))).astype(np.complex64)
    out = {"noise_sps": _rate(noise)[0]}
    for key, fmt, snr in (("qpsk_sps", PayloadFormat("qpsk"), 15.0),
                          ("qam16_ldpc_sps", PayloadFormat("qam16", "ldpc_648_1_2"), 15.0)):
        stream = frame_stream(n, fmt, snr)
        out[key], found = _rate(stream)
        out[key.replace("_sps", "_frames")] = found
    out["frames_sent"] = n
    return out
