"""Burst detection, timing and carrier-frequency-offset estimation.

Detection is the Schmidl-Cox metric M(d) = |P(d)|^2 / R(d)^2 on the periodic STF, with
P(d) = sum_m conj(r[d+m]) r[d+m+L] and R(d) = sum_m |r[d+m+L]|^2 over a window of W samples.
The streaming scan is a numba kernel with running sums (one pass, no temporaries): numpy's
cumsum version needs about ten passes over the samples and does not reach the 10 MS/s target.
Fine timing is the cross-correlation with the known LTF period summed over its repetitions.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def first_crossing(x: np.ndarray, lag: int, window: int, threshold: float, start: int, min_power: float) -> int:
    """First d >= start with M(d) > threshold and mean power > min_power, or -1.

    Inputs: x complex64 (n,). Needs x[d : d + window + lag]; scans d up to n - window - lag.
    """
    n_last = x.size - window - lag
    if start > n_last:
        return -1
    p_re = 0.0
    p_im = 0.0
    r = 0.0
    for m in range(start, start + window):
        a, b = x[m], x[m + lag]
        p_re += a.real * b.real + a.imag * b.imag
        p_im += a.real * b.imag - a.imag * b.real
        r += b.real * b.real + b.imag * b.imag
    thr = threshold
    r_min = min_power * window
    for d in range(start, n_last + 1):
        if r > r_min and p_re * p_re + p_im * p_im > thr * r * r:
            return d
        if d == n_last:
            break
        a, b = x[d], x[d + lag]
        p_re -= a.real * b.real + a.imag * b.imag
        p_im -= a.real * b.imag - a.imag * b.real
        r -= b.real * b.real + b.imag * b.imag
        a, b = x[d + window], x[d + window + lag]
        p_re += a.real * b.real + a.imag * b.imag
        p_im += a.real * b.imag - a.imag * b.real
        r += b.real * b.real + b.imag * b.imag
    return -1


def autocorrelation(x: np.ndarray, lag: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Schmidl-Cox P and metric M over a short segment.

    Inputs: x complex64 (n,). Outputs: P complex128 (n - lag - window + 1,), M float64 (same).
    """
    prod = np.conj(x[:-lag]).astype(np.complex128) * x[lag:]
    cp = np.concatenate([[0.0], np.cumsum(prod)])
    power = np.concatenate([[0.0], np.cumsum(np.abs(x[lag:]).astype(np.float64) ** 2)])
    p = cp[window:] - cp[:-window]
    r = power[window:] - power[:-window]
    return p, np.abs(p) ** 2 / np.maximum(r, 1e-30) ** 2


def plateau(x: np.ndarray, lag: int, window: int, stf_len: int) -> tuple[int, float]:
    """Coarse STF start and coarse CFO from a segment starting at a threshold crossing.

    The metric is flat for d in [stf_start, stf_start + stf_len - window - lag]; the centre of
    the best flat stretch is taken. Outputs: (stf start offset in x, CFO in cycles/sample).
    """
    return best_plateau(*autocorrelation(x, lag, window), lag, window, stf_len)


def best_plateau(p: np.ndarray, m: np.ndarray, lag: int, window: int, stf_len: int) -> tuple[int, float]:
    """(start, CFO in cycles/sample) of the best flat stretch of the Schmidl-Cox metric ``m``
    (float64) given its correlation ``p`` (complex128), as ``plateau`` describes."""
    flat = stf_len - window - lag + 1
    score = np.convolve(m, np.ones(flat), mode="valid")
    d = int(np.argmax(score))
    cfo = float(np.angle(p[d : d + flat].sum())) / (2 * np.pi * lag)
    return d, cfo


def rotate(x: np.ndarray, cfo: float, phase0: float = 0.0) -> np.ndarray:
    """x * exp(-j (2 pi cfo n + phase0)): removes a CFO of ``cfo`` cycles/sample (complex64).

    The phasor is an outer product of a 256-sample ramp and a coarse ramp, computed in float64:
    about 20x faster than one complex exponential per sample, and as exact.
    """
    block = 256
    n_blocks = -(-x.size // block)
    fine = np.exp(-2j * np.pi * cfo * np.arange(block))
    coarse = np.exp(-1j * (2 * np.pi * cfo * block * np.arange(n_blocks) + phase0))
    phasor = (coarse[:, None] * fine[None, :]).reshape(-1)[: x.size]
    return (x * phasor.astype(np.complex64)).astype(np.complex64, copy=False)


def ltf_timing(x: np.ndarray, ltf: np.ndarray, n_rep: int) -> int:
    """Start of the first LTF repetition in x (int): argmax of sum_rep |xcorr|^2.

    Inputs: x complex64 segment covering the search range plus n_rep * len(ltf) samples.
    """
    c = np.abs(np.correlate(x, ltf, mode="valid")) ** 2
    period = ltf.size
    n = c.size - (n_rep - 1) * period
    score = sum(c[r * period : r * period + n] for r in range(n_rep))
    return int(np.argmax(score))


def fine_cfo(x: np.ndarray, period: int) -> float:
    """CFO (cycles/sample, within +-1/(2 period)) from a periodic segment x complex64."""
    return float(np.angle(np.vdot(x[:-period], x[period:]))) / (2 * np.pi * period)
