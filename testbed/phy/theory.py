"""Closed-form error rates on AWGN, the references the PHY is held to.

``ber_awgn`` is the exact bit error rate of the Gray-mapped constellations of ``phy.qam`` with
coherent detection and perfect CSI, at Es/N0 = ``snr_db``: square QAM separates into two PAMs,
and for each PAM level and bit the probability that the noise carries the sample into a
decision region whose label differs in that bit is a sum of Q-function differences. For QPSK
this is Q(sqrt(Es/N0)); for 16-QAM 1/4 [3 Q(a) + 2 Q(3a) - Q(5a)], a = sqrt(Es/(5 N0)).
"""
from __future__ import annotations

import numpy as np
from scipy.special import erfc

from testbed.phy.qam import MODULATIONS, _gray_bits


def q_function(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * erfc(np.asarray(x, dtype=np.float64) / np.sqrt(2.0))


def _pam_ber(bits_per_axis: int, d_over_sigma: np.ndarray) -> np.ndarray:
    """Mean bit error rate of a Gray PAM with levels (2i - M + 1) * d and noise std sigma."""
    labels = _gray_bits(bits_per_axis)
    n_levels = labels.shape[0]
    levels = 2.0 * np.arange(n_levels) - n_levels + 1
    edges = np.concatenate([[-np.inf], levels[:-1] + 1.0, [np.inf]])  # decision boundaries
    total = np.zeros_like(d_over_sigma)
    for i in range(n_levels):
        for j in range(n_levels):
            wrong = np.count_nonzero(labels[i] != labels[j])
            if wrong:
                p = q_function((edges[j] - levels[i]) * d_over_sigma) - q_function((edges[j + 1] - levels[i]) * d_over_sigma)
                total = total + wrong * p
    return total / (n_levels * bits_per_axis)


def ber_awgn(snr_db: np.ndarray | float, modulation: str) -> np.ndarray:
    """Exact BER (float64, shape of snr_db) of ``modulation`` (a name of qam.MODULATIONS)."""
    k = MODULATIONS[modulation]
    es_n0 = 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    if k == 1:
        return q_function(np.sqrt(2.0 * es_n0))
    m = k // 2
    n_levels = 1 << m
    energy_per_axis = (n_levels**2 - 1) / 3.0  # mean of (2i - M + 1)^2
    d_over_sigma = np.sqrt(es_n0 / (2.0 * energy_per_axis) * 2.0)  # d^2 = Es / (2 E_axis), sigma^2 = N0 / 2
    return _pam_ber(m, d_over_sigma)


def snr_for_ber(ber: float, modulation: str) -> float:
    """The Es/N0 (dB) at which the closed form reaches ``ber`` (bisection)."""
    lo, hi = -20.0, 40.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ber_awgn(mid, modulation) > ber else (lo, mid)
    return 0.5 * (lo + hi)
