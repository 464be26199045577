"""Burst detection, timing and CFO on M receive antennas (the M = 1 case is ``sync``).

One stream seen on M antennas has the same CFO on each, so the lag-16 autocorrelations of the
antennas add in phase: the detection metric is M(d) = |sum_m P_m(d)|^2 / (sum_m R_m(d))^2, the
coarse CFO is the angle of sum_m P_m, the LTF timing maximises sum_m sum_rep |xcorr|^2 and the
fine CFO is the angle of sum_m of the lag-64 correlations. With M = 1 every function equals its
``sync`` counterpart.
"""
from __future__ import annotations

import numba
import numpy as np

from testbed.phy import sync


@numba.njit(cache=True, nogil=True)
def first_crossing(x: np.ndarray, lag: int, window: int, threshold: float, start: int, min_power: float) -> int:
    """First d >= start with M(d) > threshold and mean power per antenna > min_power, or -1.

    Inputs: x complex64 (M, n), C-contiguous. Scans d up to n - window - lag.
    """
    n_ant, n = x.shape
    n_last = n - window - lag
    if start > n_last:
        return -1
    p_re = 0.0
    p_im = 0.0
    r = 0.0
    for a_i in range(n_ant):
        for m in range(start, start + window):
            a, b = x[a_i, m], x[a_i, m + lag]
            p_re += a.real * b.real + a.imag * b.imag
            p_im += a.real * b.imag - a.imag * b.real
            r += b.real * b.real + b.imag * b.imag
    r_min = min_power * window * n_ant
    for d in range(start, n_last + 1):
        if r > r_min and p_re * p_re + p_im * p_im > threshold * r * r:
            return d
        if d == n_last:
            break
        for a_i in range(n_ant):
            a, b = x[a_i, d], x[a_i, d + lag]
            p_re -= a.real * b.real + a.imag * b.imag
            p_im -= a.real * b.imag - a.imag * b.real
            r -= b.real * b.real + b.imag * b.imag
            a, b = x[a_i, d + window], x[a_i, d + window + lag]
            p_re += a.real * b.real + a.imag * b.imag
            p_im += a.real * b.imag - a.imag * b.real
            r += b.real * b.real + b.imag * b.imag
    return -1


def autocorrelation(x: np.ndarray, lag: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Antenna-summed Schmidl-Cox P complex128 (n - lag - window + 1,) and metric M (float64)."""
    prod = np.sum(np.conj(x[:, :-lag]).astype(np.complex128) * x[:, lag:], axis=0)
    power = np.sum(np.abs(x[:, lag:]).astype(np.float64) ** 2, axis=0)
    cp = np.concatenate([[0.0], np.cumsum(prod)])
    cr = np.concatenate([[0.0], np.cumsum(power)])
    p = cp[window:] - cp[:-window]
    r = cr[window:] - cr[:-window]
    return p, np.abs(p) ** 2 / np.maximum(r, 1e-30) ** 2


def plateau(x: np.ndarray, lag: int, window: int, stf_len: int) -> tuple[int, float]:
    """STF start offset in x (M, n) and coarse CFO (cycles/sample), as ``sync.plateau``."""
    return sync.best_plateau(*autocorrelation(x, lag, window), lag, window, stf_len)


def rotate(x: np.ndarray, cfo: float, phase0: float = 0.0) -> np.ndarray:
    """x (M, n) * exp(-j (2 pi cfo n + phase0)) on every antenna (complex64 (M, n))."""
    phasor = sync.rotate(np.ones(x.shape[-1], dtype=np.complex64), cfo, phase0)
    return (x * phasor[None, :]).astype(np.complex64, copy=False)


def ltf_timing(x: np.ndarray, ltf: np.ndarray, n_rep: int) -> int:
    """Start of the first LTF repetition in x (M, n): argmax of sum over antennas and repetitions."""
    c = sum(np.abs(np.correlate(row, ltf, mode="valid")) ** 2 for row in x)
    period = ltf.size
    n = c.size - (n_rep - 1) * period
    return int(np.argmax(sum(c[r * period : r * period + n] for r in range(n_rep))))


def fine_cfo(x: np.ndarray, period: int) -> float:
    """CFO (cycles/sample, within +-1/(2 period)) from periodic segments x complex64 (M, n)."""
    return float(np.angle(np.vdot(x[:, :-period], x[:, period:]))) / (2 * np.pi * period)
