"""Linear MMSE detection of K spatial streams on M receive antennas, and its closed forms.

Per data carrier y = H x + n with H complex (M, K), x the K unit-power streams and n white of
variance ``no`` per antenna (the project's SNR = Es/N0 per stream per receive antenna). The
LMMSE filter is G = (H^H H + no I)^-1 H^H; with A = (H^H H + no I)^-1 the gain of stream k
through its own row is b_k = [G H]_kk = 1 - no A_kk, so the unbiased output G_k y / b_k has
noise-plus-interference variance (1 - b_k) / b_k = 1 / SINR_k with

    SINR_k = 1 / [(I + H^H H / no)^-1]_kk - 1 = 1 / (no A_kk) - 1.

The receiver (``mimo_receiver``) and the Monte Carlo reference below share ``mmse_rows`` (the
receiver gives it the covariance that includes the other streams' inter-carrier leakage), so
the closed form, the simulation and the PHY all use one detector. The unbiased outputs and
their variances are what the max-log demapper of ``qam`` expects (it treats the residual
interference as Gaussian).
"""
from __future__ import annotations

import numpy as np

from testbed.phy.qam import MODULATIONS, get_modem


def _gram_inverse(h: np.ndarray, no: float) -> np.ndarray:
    """A = (H^H H + no I)^-1, complex128 (..., K, K), for h complex (..., M, K)."""
    h = np.asarray(h, dtype=np.complex128)
    gram = np.conj(np.swapaxes(h, -1, -2)) @ h
    return np.linalg.inv(gram + no * np.eye(h.shape[-1]))


def lmmse_sinr(h: np.ndarray, no: float) -> np.ndarray:
    """Post-LMMSE SINR of every stream (linear), float64 (..., K), for h complex (..., M, K)."""
    a_kk = np.real(np.diagonal(_gram_inverse(h, no), axis1=-2, axis2=-1))
    return 1.0 / (no * a_kk) - 1.0


def mmse_rows(h: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased MMSE rows for the columns of h, given the covariance of the received vector.

    Inputs: h complex (..., M, K) channels of the streams to detect; cov complex (..., M, M)
    covariance of y (these streams, any other interference, noise). With b_k = h_k^H cov^-1 h_k
    = SINR_k / (1 + SINR_k), row k is h_k^H cov^-1 / b_k.
    Outputs: W complex64 (..., K, M) with [W H]_kk = 1, variance float32 (..., K) = 1 / SINR_k.
    """
    h = np.asarray(h, dtype=np.complex128)
    cov_inv_h = np.linalg.solve(np.asarray(cov, dtype=np.complex128), h)
    gain = np.clip(np.real(np.sum(np.conj(h) * cov_inv_h, axis=-2)), 1e-12, 1.0 - 1e-12)
    w = np.conj(np.swapaxes(cov_inv_h, -1, -2)) / gain[..., :, None]
    return w.astype(np.complex64), ((1.0 - gain) / gain).astype(np.float32)


def lmmse_filter(h: np.ndarray, no: float) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased LMMSE rows of K unit-power streams and their output variance.

    Inputs: h complex (..., M, K) channel, no noise variance per antenna.
    Outputs: W complex64 (..., K, M) with [W H]_kk = 1 (x_hat = W y), variance float32 (..., K)
    of each output = 1 / SINR_k (``mmse_rows`` with cov = H H^H + no I).
    """
    h = np.asarray(h, dtype=np.complex128)
    cov = h @ np.conj(np.swapaxes(h, -1, -2)) + no * np.eye(h.shape[-2])
    return mmse_rows(h, cov)


def lmmse_detect(y: np.ndarray, h: np.ndarray, no: float) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased LMMSE estimates of the streams.

    Inputs: y complex (..., n, M) received vectors, h complex (..., M, K) their channel (one per
    leading index, shared by the n vectors), no noise variance per antenna.
    Outputs: x_hat complex64 (..., n, K), variance float32 (..., 1, K) per stream.
    """
    w, var = lmmse_filter(h, no)
    x_hat = np.asarray(y, dtype=np.complex64) @ np.swapaxes(w, -1, -2)
    return x_hat.astype(np.complex64), var[..., None, :]


def data_aided_sinr(x_hat: np.ndarray, x_ref: np.ndarray) -> np.ndarray:
    """Measured SINR (linear, float64 (...,)) of estimates x_hat against known symbols x_ref.

    Inputs: complex (..., n) each. The complex gain g = <x_ref, x_hat> / <x_ref, x_ref> is
    fitted first, so biased (MMSE) and unbiased outputs both give |g|^2 P / mean |x_hat - g x|^2.
    """
    x_hat = np.asarray(x_hat, dtype=np.complex128)
    x_ref = np.asarray(x_ref, dtype=np.complex128)
    power = np.sum(np.abs(x_ref) ** 2, axis=-1)
    g = np.sum(np.conj(x_ref) * x_hat, axis=-1) / power
    err = np.sum(np.abs(x_hat - g[..., None] * x_ref) ** 2, axis=-1)
    return np.abs(g) ** 2 * power / np.maximum(err, 1e-30)


def rayleigh(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """i.i.d. CN(0, 1) entries, complex128 of ``shape``."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def lmmse_ber_monte_carlo(modulation: str, snr_db: float, m: int, k: int, n_channels: int,
                          rng: np.random.Generator, n_symbols: int = 256,
                          channels: np.ndarray | None = None) -> float:
    """Uncoded BER of LMMSE detection with perfect CSI over block Rayleigh fading.

    Each of ``n_channels`` i.i.d. CN(0, 1) channels (M = ``m``, K = ``k``) carries ``n_symbols``
    Gray-mapped symbols per stream at Es/N0 = ``snr_db`` per stream and receive antenna; the
    unbiased LMMSE outputs are sliced to the nearest point. ``channels`` complex (n, m, k)
    replaces the draws (to compare a receiver with the detector on the very channels it saw:
    with one receive diversity order the sample mean over a few hundred draws spreads by tens of
    per cent, far more than the 0.5 dB a test wants to resolve).
    Output: bit error rate (float).
    """
    h = rayleigh((n_channels, m, k), rng) if channels is None else np.asarray(channels, np.complex128)
    no = 10.0 ** (-snr_db / 10.0)
    modem = get_modem(MODULATIONS[modulation])
    bits = rng.integers(0, 2, (h.shape[0], n_symbols, k * modem.bits_per_symbol), dtype=np.uint8)
    x = modem.modulate(bits)
    noise = rayleigh((h.shape[0], n_symbols, m), rng) * np.sqrt(no)
    y = x @ np.swapaxes(h, -1, -2) + noise
    x_hat, _ = lmmse_detect(y, h, no)
    return float(np.mean(modem.hard(x_hat) != bits))
