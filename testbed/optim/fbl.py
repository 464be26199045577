"""Bit error rate of one user's link: finite-blocklength random coding, or a measured practical code.

Implements ../shared/seeds/001_ef80d34948c98c54.txt (MU-ASCC):

- eq. (8): normal-approximation block error probability of an (N, L) code at SINR gamma [32],
  rho = Q(sqrt(L) (log2(1 + gamma) - R_c) / (log2(e) sqrt(1 - 1/(1 + gamma)^2))). The dispersion
  is V = (1 - 1/(1+gamma)^2) log2(e)^2 as in [32] and in constraints (47)-(48); eq. (8)'s
  typesetting puts log2(e) inside the square root.
- eq. (14): log10 BER ~ log10(1 / (R_c L)) + log10 rho.
- Lemma 4.1 / eqs. (53)-(54): log Q and its derivative, used to linearise log Q in the SCA.
- remark 3.2: a practical code (e.g. LDPC + QAM) enters through its measured BER(SINR) curve in
  place of eq. (14) (`MeasuredBer`, `interpolated_ber`).

Rates: source rates in bits per pixel (bpp), channel budgets in channel uses per pixel, code rates in
information bits per channel use (bpcu). SINRs are linear (not dB) unless the name says `_db`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
from scipy.special import log_ndtr

LOG2_E = math.log2(math.e)
LOG10_E = math.log10(math.e)
_SINR_FLOOR = 1e-12  # keeps the dispersion positive at zero SINR (the Q argument is then ~ -1e7)


def _as_sinr(sinr_linear: np.ndarray | float) -> np.ndarray:
    """float64 array of linear SINRs, checked finite and >= 0, floored at 1e-12."""
    sinr = np.asarray(sinr_linear, dtype=np.float64)
    if not np.all(np.isfinite(sinr)) or np.any(sinr < 0):
        raise ValueError(f"sinr_linear={sinr.tolist()!r}: must be finite and >= 0 (linear, not dB)")
    return np.maximum(sinr, _SINR_FLOOR)


def _check_code_rate(code_rate_bpcu: np.ndarray | float, name: str = "code_rate_bpcu") -> np.ndarray:
    rate = np.asarray(code_rate_bpcu, dtype=np.float64)
    if not np.all(np.isfinite(rate)) or np.any(rate <= 0):
        raise ValueError(f"{name}={rate.tolist()!r}: must be finite and > 0 bits per channel use")
    return rate


def _check_blocklength(blocklength: int) -> None:
    if isinstance(blocklength, bool) or not isinstance(blocklength, (int, np.integer)) or blocklength < 1:
        raise ValueError(f"blocklength={blocklength!r}: must be an integer >= 1 channel uses")


def log_q(x: np.ndarray | float) -> np.ndarray:
    """Natural log of the Gaussian tail Q(x), float64 of x's shape; exact far into the tail."""
    return log_ndtr(-np.asarray(x, dtype=np.float64))


def log_q_derivative(x: np.ndarray | float) -> np.ndarray:
    """d log Q(x) / dx = -phi(x) / Q(x) (eq. (64)), float64 of x's shape; ~ -x for large x."""
    x = np.asarray(x, dtype=np.float64)
    return -np.exp(-0.5 * x * x - 0.5 * math.log(2.0 * math.pi) - log_ndtr(-x))


def _q_argument(sinr: np.ndarray | float, rate: np.ndarray | float, blocklength: int) -> np.ndarray | float:
    """Eq. (8)'s Q argument without checks (sinr already floored)."""
    dispersion_root = np.sqrt(sinr * (2.0 + sinr)) / (1.0 + sinr)  # sqrt(1 - 1/(1+g)^2), exact near 0
    return math.sqrt(blocklength) * (np.log2(1.0 + sinr) - rate) / (LOG2_E * dispersion_root)


def q_argument(sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float,
               blocklength: int) -> np.ndarray:
    """Argument of Q in eq. (8), float64 of the broadcast shape of sinr_linear and code_rate_bpcu."""
    _check_blocklength(blocklength)
    return np.asarray(_q_argument(_as_sinr(sinr_linear), _check_code_rate(code_rate_bpcu), blocklength))


def block_error_probability(sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float,
                            blocklength: int) -> np.ndarray:
    """Eq. (8): packet error probability of an (R_c L, L) random code, float64 in [0, 1]."""
    return np.exp(log_q(q_argument(sinr_linear, code_rate_bpcu, blocklength)))


def fbl_log10_ber(sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float,
                  blocklength: int) -> np.ndarray:
    """Eq. (14): log10 BER = log10(1/(R_c L)) + log10 Q(.), float64 of the broadcast shape."""
    x = q_argument(sinr_linear, code_rate_bpcu, blocklength)
    return -np.log10(np.asarray(code_rate_bpcu, dtype=np.float64) * blocklength) + LOG10_E * log_q(x)


def _fbl_log10_ber_and_rate_slope(sinr: float, rate: float, blocklength: int) -> tuple[float, float]:
    """Eq. (14) and its derivative d/dR_c (decades per bit per channel use), scalars without checks."""
    sinr = max(sinr, _SINR_FLOOR)
    x = float(_q_argument(sinr, rate, blocklength))
    dx_drate = -math.sqrt(blocklength) * (1.0 + sinr) / (LOG2_E * math.sqrt(sinr * (2.0 + sinr)))
    value = -math.log10(rate * blocklength) + LOG10_E * float(log_q(x))
    return value, -LOG10_E / rate + LOG10_E * float(log_q_derivative(x)) * dx_drate


@runtime_checkable
class BerModel(Protocol):
    """How a user's code turns (SINR, source rate, channel-use budget) into log10 BER."""

    def code_rate_bpcu(self, source_rate_bpp: float, channel_uses_per_pixel: float) -> float:
        """Channel code rate R_c used at this source rate and budget (eq. (19) met)."""

    def max_source_rate_bpp(self, channel_uses_per_pixel: float) -> float:
        """Largest source rate whose code fits the channel-use budget (eq. (19))."""

    def log10_ber(self, sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float) -> np.ndarray:
        """log10 BER, float64 of the broadcast shape."""

    def source_rate_response(self, sinr_linear: float, source_rate_bpp: float,
                             channel_uses_per_pixel: float) -> tuple[float, float]:
        """(log10 BER, d log10 BER / d R_s in decades per bpp) at one SINR >= 0 (unchecked, fast)."""


@dataclass(frozen=True)
class FiniteBlocklengthBer:
    """Random coding at blocklength L (eqs. (8), (14)); R_c = R_s / T, the optimum of (P2) [13]."""

    blocklength: int

    def __post_init__(self) -> None:
        _check_blocklength(self.blocklength)

    def code_rate_bpcu(self, source_rate_bpp: float, channel_uses_per_pixel: float) -> float:
        return source_rate_bpp / channel_uses_per_pixel

    def max_source_rate_bpp(self, channel_uses_per_pixel: float) -> float:
        return math.inf

    def log10_ber(self, sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float) -> np.ndarray:
        return fbl_log10_ber(sinr_linear, code_rate_bpcu, self.blocklength)

    def source_rate_response(self, sinr_linear: float, source_rate_bpp: float,
                             channel_uses_per_pixel: float) -> tuple[float, float]:
        value, slope = _fbl_log10_ber_and_rate_slope(
            sinr_linear, self.code_rate_bpcu(source_rate_bpp, channel_uses_per_pixel), self.blocklength)
        return value, slope / channel_uses_per_pixel


@dataclass(frozen=True)
class MeasuredBer:
    """Remark 3.2: a practical code of fixed rate with a measured curve BER(sinr_db).

    `ber_of_sinr_db` maps a float64 array of SINRs in dB to BERs in [0, 1] of the same shape (e.g.
    `interpolated_ber` of an LDPC + QAM table). The code rate is fixed, so eq. (19) caps the source
    rate at T * rate_bpcu and the BER does not depend on the source rate.
    """

    ber_of_sinr_db: Callable[[np.ndarray], np.ndarray]
    rate_bpcu: float

    def __post_init__(self) -> None:
        if not callable(self.ber_of_sinr_db):
            raise ValueError(f"ber_of_sinr_db={self.ber_of_sinr_db!r}: must be a callable BER(sinr_db)")
        _check_code_rate(self.rate_bpcu, "rate_bpcu")

    def code_rate_bpcu(self, source_rate_bpp: float, channel_uses_per_pixel: float) -> float:
        return float(self.rate_bpcu)

    def max_source_rate_bpp(self, channel_uses_per_pixel: float) -> float:
        return float(self.rate_bpcu) * channel_uses_per_pixel

    def log10_ber(self, sinr_linear: np.ndarray | float, code_rate_bpcu: np.ndarray | float) -> np.ndarray:
        """log10 of the measured curve at sinr_linear; code_rate_bpcu must be this code's rate_bpcu."""
        if not np.all(np.asarray(code_rate_bpcu) == self.rate_bpcu):
            raise ValueError(f"code_rate_bpcu={code_rate_bpcu!r}: this measured curve is for "
                             f"rate_bpcu={self.rate_bpcu}")
        sinr = _as_sinr(sinr_linear)
        ber = np.asarray(self.ber_of_sinr_db(10.0 * np.log10(sinr)), dtype=np.float64)
        if ber.shape != sinr.shape or not np.all((ber >= 0) & (ber <= 1)):
            raise ValueError(f"ber_of_sinr_db returned {ber!r} for SINRs of shape {sinr.shape}: "
                             "must return BERs in [0, 1] of the input's shape")
        return np.log10(np.maximum(ber, 1e-300))

    def source_rate_response(self, sinr_linear: float, source_rate_bpp: float,
                             channel_uses_per_pixel: float) -> tuple[float, float]:
        return float(self.log10_ber(sinr_linear, self.rate_bpcu)), 0.0


def interpolated_ber(sinr_db: np.ndarray, ber: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A measured BER curve as a callable: log10 BER linear in dB between points, held at the ends.

    sinr_db float64 (M,) strictly increasing, ber float64 (M,) in (0, 1] (floor measured zeros at,
    e.g., 1 / bits counted). Returns f(sinr_db array) -> BER array of the same shape.
    """
    x = np.asarray(sinr_db, dtype=np.float64)
    y = np.asarray(ber, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
        raise ValueError(f"sinr_db={x!r}: must be a finite, strictly increasing 1-D array of >= 2 points")
    if y.shape != x.shape or not np.all((y > 0) & (y <= 1)):
        raise ValueError(f"ber={y!r}: must have sinr_db's shape {x.shape} with values in (0, 1]")
    log_y = np.log10(y)
    return lambda s: 10.0 ** np.interp(np.asarray(s, dtype=np.float64), x, log_y)
