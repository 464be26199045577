"""Measured codeword error rates of the PHY's modulation and coding schemes, and what they predict.

MCS: every LDPC code of :mod:`testbed.phy.ldpc` (n = 648 and 1296; rates 1/2, 2/3, 3/4, 5/6) with
QPSK, 16-, 64- and 256-QAM: 32 schemes.

Measurement (:func:`measure_table`): frames of ``CODEWORDS_PER_FRAME`` codewords built by the
testbed's Framer, through AWGN at Es/N0 per data subcarrier (noise variance 10**(-snr_db/10) per
time sample, the FFT being unitary; docs/architecture.md "SNR axis"), with a CFO of 5 kHz at
1 MS/s and a random integer timing offset, into the real FrameReceiver: detection,
synchronisation, channel estimate from the preamble and pilots, soft demapping, LDPC decoding.
A codeword is in error when any of its information bits (``ReceivedFrame.bits``) differs from
what was sent; every codeword of a frame that is not found or whose header fails counts as in
error. So the table is the PHY's codeword error rate, sync and header losses included.

Prediction (:class:`BlerTable`): log10 of the codeword error rate is interpolated linearly in
SNR between measured points; below the measured range it is 1; above the last point with an
error, the waterfall is extended by the slope fitted to the points with rates in
[1e-3, 0.3] (a straight line in log BLER, the shape of an LDPC waterfall), so that the small
rates a whole image needs (hundreds of codewords, all correct) are not read as zero. For
Rayleigh block fading with one draw per frame and per-frame equalisation, each frame is an
AWGN channel at the instantaneous SNR: the frame error rate is averaged over the exponential
distribution of |h|^2: the mean over ``FADING_QUANTILES`` equally likely values of |h|^2 (its
quantiles at the midpoints of equal-probability bins). A Gauss-Laguerre rule, exact for smooth
functions, was measured 5 points of frame error rate too optimistic here: the frame error rate
is a step in |h|^2, which few nodes cannot resolve.

Command line (what ``make bler-table`` runs; the table ships at ``models/digital/bler-awgn.json``):

    python -m testbed.systems.digital.bler --frames 40 --seed 0 --out models/digital/bler-awgn.json
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from testbed.errors import ConfigError
from testbed.models_registry import MODELS_DIR
from testbed.phy.frame import Framer
from testbed.phy.ldpc import CODES, get_code
from testbed.phy.payload import PayloadFormat
from testbed.phy.qam import MODULATIONS
from testbed.phy.receiver import FrameReceiver
from testbed.runner.files import read_json, write_json

QAM_ORDERS = ("qpsk", "qam16", "qam64", "qam256")
CODEWORDS_PER_FRAME = 20
CFO_NORMALISED = 5e3 / 1e6
TABLE_PATH = MODELS_DIR / "digital" / "bler-awgn.json"
SNR_STEP_DB = 0.5
FIT_RANGE = (1e-3, 0.3)
FLOOR = 1e-12
FADING_QUANTILES = 4000


def mcs_names() -> list[str]:
    """Every scheme as ``"<code>/<modulation>"``, e.g. ``"ldpc_648_1_2/qpsk"``."""
    return [f"{code}/{mod}" for code in sorted(CODES) for mod in QAM_ORDERS]


def split_mcs(name: str) -> tuple[str, str]:
    """``"ldpc_648_1_2/qpsk"`` -> (code, modulation); ConfigError for an unknown scheme."""
    code, _, mod = name.partition("/")
    if code not in CODES or mod not in QAM_ORDERS:
        raise ConfigError(f"mcs {name!r} is unknown; allowed: <code>/<modulation> with code one of "
                          f"{', '.join(sorted(CODES))} and modulation one of {', '.join(QAM_ORDERS)}")
    return code, mod


def spectral_efficiency(name: str) -> float:
    """Information bits per data symbol of a scheme (code rate times bits per QAM symbol)."""
    code, mod = split_mcs(name)
    c = get_code(code)
    return c.k / c.n * MODULATIONS[mod]


def _frame_stream(code: str, mod: str, n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, list[bytes]]:
    """Back-to-back frames of CODEWORDS_PER_FRAME codewords each (payload = k/8 bytes per codeword,
    less the CRC-32) with random gaps; returns (complex64 stream, payloads)."""
    c = get_code(code)
    length = CODEWORDS_PER_FRAME * c.k // 8 - 4
    framer, fmt = Framer(), PayloadFormat(mod, code)
    parts, payloads = [np.zeros(200, np.complex64)], []
    for seq in range(n_frames):
        payload = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        payloads.append(payload)
        parts += [framer.frame(payload, fmt, seq=seq), np.zeros(int(rng.integers(300, 700)), np.complex64)]
    stream = np.concatenate([*parts, np.zeros(4000, np.complex64)])
    return (stream * np.exp(2j * np.pi * CFO_NORMALISED * np.arange(stream.size))).astype(np.complex64), payloads


def measure_point(name: str, snr_db: float, n_frames: int, seed: int) -> dict:
    """Codeword and bit errors of ``n_frames`` frames of scheme ``name`` at ``snr_db`` (AWGN).

    Returns: {"snr_db", "codewords", "errors", "frames_lost", "bits", "bit_errors", "bits_lost"}:
    ``bits`` information bits sent, ``bit_errors`` wrong hard decisions in the frames found,
    ``bits_lost`` the bits of frames not found (their decisions are unknown).
    """
    from testbed.phy.bits import bytes_to_bits

    code, mod = split_mcs(name)
    c = get_code(code)
    rng = np.random.default_rng([seed, int(round(snr_db * 100)) + 10_000])
    stream, payloads = _frame_stream(code, mod, n_frames, rng)
    noise = np.sqrt(10.0 ** (-snr_db / 10.0) / 2.0)
    stream = stream + noise * (rng.standard_normal(stream.size) + 1j * rng.standard_normal(stream.size))
    receiver, found = FrameReceiver(), {}
    for start in range(0, stream.size, 1 << 16):
        for frame in receiver.push(stream[start:start + (1 << 16)].astype(np.complex64)):
            found[frame.header.seq] = frame
    errors = bit_errors = bits_lost = 0
    for seq, payload in enumerate(payloads):
        frame = found.get(seq)
        sent = bytes_to_bits(payload)  # the CRC bits of the last codeword are not compared
        if frame is None or frame.bits is None:
            errors += CODEWORDS_PER_FRAME
            bits_lost += sent.size
            continue
        wrong = sent != frame.bits[:sent.size]
        bit_errors += int(wrong.sum())
        errors += int(np.unique((np.arange(sent.size) // c.k)[wrong]).size)
    return {"snr_db": float(snr_db), "codewords": n_frames * CODEWORDS_PER_FRAME, "errors": errors,
            "frames_lost": sum(seq not in found for seq in range(n_frames)),
            "bits": sum(8 * len(p) for p in payloads), "bit_errors": bit_errors, "bits_lost": bits_lost}


def measure_curve(name: str, n_frames: int, seed: int) -> list[dict]:
    """The waterfall of one scheme: from 1 dB below its Shannon SNR upwards in SNR_STEP_DB steps
    until two consecutive points have no error (or 20 dB above Shannon)."""
    shannon_db = 10.0 * math.log10(2.0 ** spectral_efficiency(name) - 1.0)
    snr = math.floor((shannon_db - 1.0) / SNR_STEP_DB) * SNR_STEP_DB
    rows, clean = [], 0
    while clean < 2 and snr <= shannon_db + 20.0:
        row = measure_point(name, snr, n_frames, seed)
        rows.append(row)
        clean = clean + 1 if row["errors"] == 0 else 0
        snr += SNR_STEP_DB
    return rows


def measure_table(n_frames: int, seed: int, names: list[str] | None = None, progress=print) -> dict:
    """Measure every scheme (or ``names``); returns the table document (see TABLE_PATH)."""
    from testbed.onnx.card import machine

    start = time.monotonic()
    curves = {}
    for name in names or mcs_names():
        curves[name] = measure_curve(name, n_frames, seed)
        progress(f"{name}: {len(curves[name])} points, waterfall at "
                 f"{BlerTable({name: curves[name]}).threshold_db(name, 1e-2):.2f} dB for 1e-2")
    return {"kind": "bler-table", "channel": "awgn", "cfo_hz_at_1msps": CFO_NORMALISED * 1e6,
            "codewords_per_frame": CODEWORDS_PER_FRAME, "frames_per_point": n_frames, "seed": seed,
            "command": f"python -m testbed.systems.digital.bler --frames {n_frames} --seed {seed} "
                       f"--out models/digital/bler-awgn.json",
            "machine": machine(), "minutes": round((time.monotonic() - start) / 60.0, 1), "curves": curves}


@dataclass
class BlerTable:
    """Codeword error rate of each scheme against Es/N0, from measured curves.

    ``curves``: scheme name -> rows {"snr_db", "codewords", "errors"} sorted by SNR.
    """

    curves: dict[str, list[dict]]

    @classmethod
    def load(cls, path: str | Path = TABLE_PATH) -> "BlerTable":
        return _load(str(path))

    def _points(self, name: str) -> tuple[np.ndarray, np.ndarray, float]:
        if name not in self.curves:
            raise ConfigError(f"mcs {name!r} is not in the BLER table; allowed: {', '.join(self.curves)}")
        rows = self.curves[name]
        snr = np.array([r["snr_db"] for r in rows])
        rate = np.array([max(r["errors"], 0) / r["codewords"] for r in rows])
        fit = [(s, math.log10(p)) for s, p in zip(snr, rate) if FIT_RANGE[0] <= p <= FIT_RANGE[1]]
        if len(fit) >= 2:
            slope = float(np.polyfit(*zip(*fit), 1)[0])
        else:  # too steep to catch two points in range: one decade per step
            slope = -1.0 / SNR_STEP_DB
        return snr, rate, min(slope, -0.5)

    def codeword_error_rate(self, name: str, snr_db: np.ndarray | float) -> np.ndarray:
        """Predicted codeword error rate of ``name`` at ``snr_db`` (any shape), in [FLOOR, 1]."""
        snr, rate, slope = self._points(name)
        x = np.asarray(snr_db, dtype=float)
        hit = rate > 0
        last = int(np.nonzero(hit)[0][-1]) if hit.any() else -1
        if last < 0:
            return np.full(x.shape, FLOOR)
        s_hit, p_hit = snr[: last + 1], np.log10(np.maximum(rate[: last + 1], FLOOR))
        inside = np.interp(x, s_hit, p_hit, left=0.0)
        beyond = p_hit[-1] + slope * (x - s_hit[-1])
        log_p = np.where(x <= s_hit[-1], inside, beyond)
        return np.clip(10.0 ** log_p, FLOOR, 1.0)

    def bit_error_rate(self, name: str, snr_db: np.ndarray | float) -> np.ndarray:
        """Measured information-bit error rate of ``name`` at ``snr_db`` (any shape), in (0, 0.5]:
        log10 BER linear in dB between the measured points, held beyond the ends. Bits of lost
        frames count half wrong (random data against unknown decisions); a point without errors
        counts half an error (the resolution of its bit count). ConfigError for a table measured
        without bit counts."""
        if name not in self.curves:
            raise ConfigError(f"mcs {name!r} is not in the BLER table; allowed: {', '.join(self.curves)}")
        rows = self.curves[name]
        if any("bit_errors" not in r for r in rows):
            raise ConfigError(f"the BLER table's curve {name!r} has no bit counts; allowed: a table written by "
                              "python -m testbed.systems.digital.bler since bit errors are counted")
        snr = np.array([r["snr_db"] for r in rows])
        ber = np.array([max(r["bit_errors"] + 0.5 * r["bits_lost"], 0.5) / r["bits"] for r in rows])
        return np.minimum(10.0 ** np.interp(np.asarray(snr_db, dtype=float), snr, np.log10(ber)), 0.5)

    def frame_error_rate(self, name: str, snr_db: float, codewords: int, channel: str = "awgn") -> float:
        """Probability that a frame of ``codewords`` codewords at mean Es/N0 ``snr_db`` is not
        received whole; ``channel`` "awgn" or "rayleigh" (one |h|^2 ~ Exp(1) per frame)."""
        if channel == "awgn":
            p = np.minimum(self.codeword_error_rate(name, snr_db), 1.0 - 1e-15)
            return float(-np.expm1(codewords * np.log1p(-p)))
        if channel != "rayleigh":
            raise ConfigError(f"channel {channel!r} is unknown; allowed: awgn, rayleigh")
        p = self.codeword_error_rate(name, snr_db + 10.0 * np.log10(rayleigh_power_quantiles()))
        fer = -np.expm1(codewords * np.log1p(-np.minimum(p, 1.0 - 1e-15)))
        return float(np.clip(np.mean(fer), 0.0, 1.0))

    def threshold_db(self, name: str, rate: float) -> float:
        """Lowest SNR (0.01 dB grid) where the predicted codeword error rate is at most ``rate``."""
        grid = np.arange(-5.0, 45.0, 0.01)
        ok = self.codeword_error_rate(name, grid) <= rate
        return float(grid[np.argmax(ok)]) if ok.any() else math.inf


@lru_cache(maxsize=1)
def rayleigh_power_quantiles() -> np.ndarray:
    """FADING_QUANTILES equally likely values of |h|^2 ~ Exp(1): E[f(|h|^2)] = mean(f(these))."""
    u = (np.arange(FADING_QUANTILES) + 0.5) / FADING_QUANTILES
    return -np.log1p(-u)


@lru_cache(maxsize=4)
def _load(path: str) -> BlerTable:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"BLER table {path!r} is missing; allowed: the shipped models/digital/bler-awgn.json "
                          f"or one written by python -m testbed.systems.digital.bler")
    doc = read_json(file)
    if doc.get("kind") != "bler-table" or not isinstance(doc.get("curves"), dict):
        raise ConfigError(f"BLER table {path!r} is not a table written by testbed.systems.digital.bler")
    return BlerTable(doc["curves"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.digital.bler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40, help=f"frames per point ({CODEWORDS_PER_FRAME} codewords each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    parser.add_argument("--mcs", nargs="*", default=None, help="schemes to measure (default: all)")
    args = parser.parse_args(argv)
    doc = measure_table(args.frames, args.seed, args.mcs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
