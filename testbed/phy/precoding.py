"""Linear precoding of K streams onto Nt TX antennas, per carrier on the OFDM resource grid.

A precoder maps the stream spectra complex64 (K, n_rows, fft_len) of a frame to antenna spectra
complex64 (Nt, n_rows, fft_len) before the IFFT (``mimo_frame.MultiStreamFramer``). The rows
include the STF (one spectrum of its 64-periodic waveform) and the LTF, so a user's LTF channel
estimate is the precoded effective channel h_k^T W[f] of the payload, on every carrier.

Weights W (Nt, K) are flat (one matrix for the band, also exact if applied in time) or
(fft_len, Nt, K) per FFT bin. ``zero_forcing`` and ``mrt`` take the downlink channel h (K, Nt)
(row k: user k's gains from the Nt antennas) or (fft_len, K, Nt), and scale W so that the node
sends ``power`` times the power of one unit-power stream in total (mean ||W||_F^2 over bins =
``power``); one scale for the whole band keeps each user's effective channel flat under ZF.
Per-bin weights need h on all fft_len bins, and the empty ones (DC, guards) count in that mean:
give them well-conditioned values (e.g. a neighbouring carrier's).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Precoder = Callable[[np.ndarray], np.ndarray]


def _normalise(w: np.ndarray, power: float) -> np.ndarray:
    """w (..., Nt, K) scaled to mean squared Frobenius norm ``power`` (complex64)."""
    norm2 = np.mean(np.sum(np.abs(w) ** 2, axis=(-2, -1)))
    return (w * np.sqrt(power / max(norm2, 1e-30))).astype(np.complex64)


def _hermitian(h: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(np.asarray(h, dtype=np.complex128), -1, -2))


def zero_forcing(h: np.ndarray, power: float = 1.0) -> np.ndarray:
    """ZF weights W = h^H (h h^H)^-1, power-normalised: complex64 (..., Nt, K) for h (..., K, Nt).

    User k then receives only stream k, with amplitude sqrt(power / tr((h h^H)^-1)) (flat h).
    """
    hh = _hermitian(h)
    return _normalise(hh @ np.linalg.inv(np.asarray(h, np.complex128) @ hh), power)


def mrt(h: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Maximum-ratio weights W = h^H, power-normalised: complex64 (..., Nt, K) for h (..., K, Nt)."""
    return _normalise(_hermitian(h), power)


def grid_precoder(w: np.ndarray) -> Precoder:
    """Precoder applying weights w complex (Nt, K) (flat) or (fft_len, Nt, K) (per FFT bin).

    The returned function maps spectra complex (K, n_rows, fft_len) to complex64 (Nt, n_rows, fft_len).
    """
    w = np.asarray(w, dtype=np.complex64)
    path = "nk,krf->nrf" if w.ndim == 2 else "fnk,krf->nrf"

    def precode(grid: np.ndarray) -> np.ndarray:
        return np.einsum(path, w, np.asarray(grid, np.complex64)).astype(np.complex64)

    return precode
