"""A synthetic capture with the impairments of two real radios that the channel emulator does not
make: a sample-clock offset (two TCXOs some ppm apart), IQ gain and phase imbalance, a DC offset
and phase noise, on 64/256-QAM LDPC frames, written as SigMF with one annotation per frame. It is
the receiver's regression capture for those estimators (generated from a seed, not committed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sigmf
from sigmf import SigMFFile

from testbed.phy.frame import Framer
from testbed.phy.payload import PayloadFormat


@dataclass(frozen=True)
class Impairments:
    """sco_ppm: RX sample clock fast by this much; iq_gain_db / iq_phase_deg: the Q branch's gain
    and phase error; dc: complex DC offset (amplitude relative to unit signal power); phase noise:
    a Wiener process with this standard deviation (rad) per sample; snr_db: AWGN per sample."""

    sco_ppm: float = 40.0
    iq_gain_db: float = 1.0
    iq_phase_deg: float = 5.0
    dc: complex = 0.05 + 0.03j
    phase_noise_rad: float = 2e-4
    cfo: float = 3e-3
    snr_db: float = 30.0


def resample(x: np.ndarray, ratio: float, taps: int = 32) -> np.ndarray:
    """x at sample times n * ratio (windowed-sinc interpolation, ``taps`` taps): a sample clock
    off by (ratio - 1). Written here because scipy's resamplers want rational ratios near 1e6/1e6."""
    n = np.arange(int((x.size - 2 * taps) / ratio))
    t = n * ratio + taps
    i = np.floor(t).astype(np.int64)
    offsets = np.arange(-taps // 2 + 1, taps // 2 + 1)
    arg = (t - i)[:, None] - offsets[None, :]
    kernel = np.sinc(arg) * (0.54 + 0.46 * np.cos(np.pi * arg / (taps // 2 + 1)))
    return np.sum(x[i[:, None] + offsets[None, :]] * kernel, axis=1).astype(np.complex64)


def impair(x: np.ndarray, imp: Impairments, rng: np.random.Generator) -> np.ndarray:
    """The RX front end's view of transmitted samples x (complex64 (n,))."""
    y = resample(x * np.exp(2j * np.pi * imp.cfo * np.arange(x.size)), 1.0 + imp.sco_ppm * 1e-6)
    g, phi = 10 ** (imp.iq_gain_db / 20), np.deg2rad(imp.iq_phase_deg)
    mu, nu = (1 + g * np.exp(-1j * phi)) / 2, (1 - g * np.exp(1j * phi)) / 2
    y = mu * y + nu * np.conj(y) + imp.dc
    y = y * np.exp(1j * np.cumsum(rng.normal(0.0, imp.phase_noise_rad, y.size)))
    noise = np.sqrt(10 ** (-imp.snr_db / 10) / 2) * (rng.standard_normal(y.size) + 1j * rng.standard_normal(y.size))
    return (y + noise).astype(np.complex64)


def impaired_capture(prefix: str | Path, imp: Impairments = Impairments(), modulation: str = "qam64",
                     code: str = "ldpc_648_3_4", n_frames: int = 8, payload_bytes: int = 4000,
                     seed: int = 0) -> tuple[Path, list[bytes]]:
    """Write ``<prefix>.sigmf-data`` / ``.sigmf-meta``; returns (meta path, the payloads sent)."""
    rng = np.random.default_rng(seed)
    framer, fmt = Framer(), PayloadFormat(modulation, code)
    parts, payloads, starts = [np.zeros(500, np.complex64)], [], []
    for seq in range(n_frames):
        payloads.append(rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes())
        starts.append(sum(p.size for p in parts))
        parts += [framer.frame(payloads[-1], fmt, seq=seq), np.zeros(600, np.complex64)]
    x = np.concatenate([*parts, np.zeros(5000, np.complex64)])
    y = impair(x, imp, rng)
    data = Path(f"{prefix}.sigmf-data")
    data.parent.mkdir(parents=True, exist_ok=True)
    y.tofile(data)
    meta = SigMFFile(data_file=str(data), global_info={
        sigmf.DATATYPE_KEY: "cf32_le", sigmf.SAMPLE_RATE_KEY: 1e6,
        sigmf.DESCRIPTION_KEY: f"synthetic impaired capture: {imp}, {modulation} {code}",
        sigmf.RECORDER_KEY: "testbed.recordings.synthetic",
        sigmf.EXTENSIONS_KEY: [{"name": "testbed", "version": "1.0.0", "optional": True}], "testbed:impairments": {
            k: (str(v) if isinstance(v, complex) else v) for k, v in imp.__dict__.items()}})
    meta.add_capture(0)
    ratio = 1.0 + imp.sco_ppm * 1e-6
    for seq, start in enumerate(starts):  # where each frame lands on the RX's sample clock
        meta.add_annotation(int(round((start - 32) / ratio)), metadata={sigmf.LABEL_KEY: f"seq {seq}",
                                                                         "testbed:seq": seq})
    path = Path(f"{prefix}.sigmf-meta")
    meta.tofile(str(path), overwrite=True)
    return path, payloads
