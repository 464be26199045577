"""MU-ASCC: joint source rate, power and beamforming (JRPB) for semantic and data users over MU-MISO.

Implements ../shared/seeds/001_ef80d34948c98c54.txt:

- eqs. (12)-(13): per codec rate, E2E distortion = d_s + d_c / (1 + exp(-a_1 (log10 BER - a_0)));
  `LogisticParams`, `fit_logistic` (least squares, as the paper's data regression);
- eqs. (26)-(30): linear interpolation of the logistic parameters between codec rates
  (`RateDistortionModel`); eq. (27)'s d_s^n is read as d_{k,s}^n;
- problem (P1), eq. (15): weighted-sum distortion (`evaluate`);
- Algorithm 1, eqs. (21)-(25), (31): per-user projected subgradient descent on the source rate with
  R_c = R_s / T_i (eq. (19) tight) and backtracking (Armijo) line search; the update is
  R - alpha d (the algorithm prints +);
- Algorithm 3, eqs. (32)-(44): alternating MMSE beams (43) and Algorithm 2's SCA powers (P6.2) on
  the dual uplink, mapped back to the downlink by UDD (34);
- Sec. IV-A / Fig. 6: the outer alternation of Algorithm 1 and Algorithm 3, then round-down of the
  source rates (Sec. IV-D) and a final Algorithm 3 from the converged powers and beams;
- Sec. V-A: the ZF-WF baseline and the paper's two-user example (`paper_instance`).

Beyond the paper (`optimise`): the AO runs from several initial power splits (the paper leaves the
initial point open) and may try each user's codec rate above the relaxed rate as well as below it
('neighbours'); both only add candidates, each solved by the paper's algorithms, so the result is
never worse than the paper's pipeline from the same start.

Remark 3.2 (practical codes): a user's `BerModel` may be `MeasuredBer` (any callable BER(sinr_db)
at a fixed code rate) instead of `FiniteBlocklengthBer`. Problem (P6.2) is built on eq. (14), so
with a measured curve the uplink power step (P6) is solved by multi-start SLSQP on the same
objective (44) instead.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from functools import cached_property, lru_cache
from typing import Sequence

import numpy as np
from scipy.optimize import curve_fit, minimize
from scipy.special import expit

from testbed.optim.beamforming import (ScaPowerAllocation, UserCurve, beam_gains, check_channels,
                                       downlink_powers_for_sinr, downlink_sinr, floor_powers, mmse_beams,
                                       uplink_powers_for_sinr, uplink_sinr, water_filling, zf_beams)
from testbed.optim.fbl import BerModel, FiniteBlocklengthBer


def logistic_distortion(log10_ber: np.ndarray | float, source_distortion: float, channel_distortion: float,
                        slope_per_decade: float, threshold_log10_ber: float) -> np.ndarray:
    """Eqs. (12)/(13): d_s + d_c / (1 + exp(-a_1 (log10 BER - a_0))), float64 of log10_ber's shape."""
    x = np.asarray(log10_ber, dtype=np.float64)
    return source_distortion + channel_distortion * expit(slope_per_decade * (x - threshold_log10_ber))


@dataclass(frozen=True)
class LogisticParams:
    """One codec rate's logistic distortion model, eqs. (12)/(13) (floats).

    source_distortion d_s (error-free distortion), channel_distortion d_c >= 0 (rise at high BER),
    slope_per_decade a_1 > 0 (per decade of BER), threshold_log10_ber a_0 (log10 BER of the midpoint).
    """

    source_distortion: float
    channel_distortion: float
    slope_per_decade: float
    threshold_log10_ber: float

    def __post_init__(self) -> None:
        for f in fields(self):
            if not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{f.name}={getattr(self, f.name)!r}: must be finite")
        if self.channel_distortion < 0:
            raise ValueError(f"channel_distortion={self.channel_distortion!r}: must be >= 0")
        if self.slope_per_decade <= 0:
            raise ValueError(f"slope_per_decade={self.slope_per_decade!r}: must be > 0 (distortion rises with BER)")

    def distortion(self, log10_ber: np.ndarray | float) -> np.ndarray:
        """Eq. (12)/(13) at log10 BER, float64 of its shape."""
        return logistic_distortion(log10_ber, self.source_distortion, self.channel_distortion,
                                   self.slope_per_decade, self.threshold_log10_ber)


def fit_logistic(ber: np.ndarray, distortion: np.ndarray) -> tuple[LogisticParams, float]:
    """Least-squares fit of eq. (12)/(13) to measured (BER, distortion) points (scipy curve_fit).

    ber float64 (M,) in (0, 1], distortion float64 (M,), M >= 5 with distortion not constant.
    Returns the parameters and the coefficient of determination R^2 = 1 - SS_res / SS_tot.
    """
    b = np.asarray(ber, dtype=np.float64)
    y = np.asarray(distortion, dtype=np.float64)
    if b.ndim != 1 or b.size < 5 or not np.all((b > 0) & (b <= 1)):
        raise ValueError(f"ber={b!r}: must be a 1-D array of >= 5 bit error rates in (0, 1]")
    if y.shape != b.shape or not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        raise ValueError(f"distortion={y!r}: must be {b.size} finite values, not all equal")
    x = np.log10(b)
    order = np.argsort(x)
    x, y = x[order], y[order]
    span = float(np.ptp(y))
    mid = float(x[np.argmin(np.abs(y - (y.min() + y.max()) / 2))])
    start = [float(y.min()), span, 2.0, mid]
    bounds = ([float(y.min()) - span, 0.0, 1e-2, float(x[0]) - 3.0],
              [float(y.max()), 2.0 * span, 50.0, float(x[-1]) + 3.0])
    popt, _ = curve_fit(logistic_distortion, x, y, p0=start, bounds=bounds, maxfev=20000)
    residual = y - logistic_distortion(x, *popt)
    r_squared = 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())
    return LogisticParams(*map(float, popt)), r_squared


_PARAM_FIELDS = ("source_distortion", "channel_distortion", "slope_per_decade", "threshold_log10_ber")


@dataclass(frozen=True)
class RateDistortionModel:
    """A user's codec table M_d or M_s: logistic parameters per codec rate, interpolated between rates.

    rates_bpp float64 (N,), N >= 2, strictly increasing source rates R^n (bits per pixel); the other
    fields float64 (N,): d_s^n, d_c^n >= 0, a_1^n > 0, a_0^n of eqs. (12)/(13) at each rate.
    """

    rates_bpp: np.ndarray
    source_distortion: np.ndarray
    channel_distortion: np.ndarray
    slope_per_decade: np.ndarray
    threshold_log10_ber: np.ndarray

    def __post_init__(self) -> None:
        rates = np.asarray(self.rates_bpp, dtype=np.float64)
        if rates.ndim != 1 or rates.size < 2 or not np.all(np.isfinite(rates)) or rates[0] <= 0 \
                or np.any(np.diff(rates) <= 0):
            raise ValueError(f"rates_bpp={rates!r}: must be >= 2 finite, positive, strictly increasing rates")
        object.__setattr__(self, "rates_bpp", rates)
        for name in _PARAM_FIELDS:
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != rates.shape:
                raise ValueError(f"{name} of shape {values.shape}: must match rates_bpp's {rates.shape}")
            object.__setattr__(self, name, values)
        for n in range(rates.size):
            self.knot(n)  # validates each rate's parameters

    @classmethod
    def from_fits(cls, rates_bpp: Sequence[float], params: Sequence[LogisticParams]) -> RateDistortionModel:
        """Table from per-rate fits (e.g. `fit_logistic` of bit-flip experiments), one per rate."""
        if len(params) != len(rates_bpp):
            raise ValueError(f"params has {len(params)} entries: must have one per rate ({len(rates_bpp)})")
        return cls(np.asarray(rates_bpp, dtype=np.float64),
                   *(np.array([getattr(p, name) for p in params]) for name in _PARAM_FIELDS))

    def knot(self, n: int) -> LogisticParams:
        """The n-th codec's parameters (0-based)."""
        return LogisticParams(*(float(getattr(self, name)[n]) for name in _PARAM_FIELDS))

    def segment(self, rate_bpp: float, side: str = "right") -> int:
        """Index n of the segment [R^n, R^{n+1}] holding rate_bpp; at a knot R^n, side='left' gives n-1."""
        return int(np.clip(np.searchsorted(self.rates_bpp, rate_bpp, side=side) - 1, 0, self.rates_bpp.size - 2))

    def params_at(self, rate_bpp: float, segment: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Eqs. (27)-(30) on a segment: (d~_s, d~_c, a~_1, a~_0) and their derivatives d/dR_s, float64 (4,)."""
        self.check_rate(rate_bpp)
        n = self.segment(rate_bpp) if segment is None else segment
        table = self._table
        slope = (table[:, n + 1] - table[:, n]) / (self.rates_bpp[n + 1] - self.rates_bpp[n])
        return table[:, n] + slope * (rate_bpp - self.rates_bpp[n]), slope

    @cached_property
    def _table(self) -> np.ndarray:
        """float64 (4, N): d_s, d_c, a_1, a_0 per codec rate."""
        return np.array([getattr(self, name) for name in _PARAM_FIELDS])

    def distortion(self, rate_bpp: float, log10_ber: np.ndarray | float) -> np.ndarray:
        """Eq. (26): interpolated E2E distortion, float64 of log10_ber's shape (eqs. (12)/(13) at knots)."""
        values, _ = self.params_at(rate_bpp)
        return logistic_distortion(log10_ber, *values)

    def check_rate(self, rate_bpp: float) -> None:
        """ValueError unless R^1 <= rate_bpp <= R^N (eq. (23))."""
        lo, hi = float(self.rates_bpp[0]), float(self.rates_bpp[-1])
        if not math.isfinite(rate_bpp) or not lo - 1e-12 * hi <= rate_bpp <= hi * (1 + 1e-12):
            raise ValueError(f"rate_bpp={rate_bpp!r}: must be within the codec rates [{lo}, {hi}] bpp (eq. (23))")

    def round_down(self, rate_bpp: float) -> float:
        """Sec. IV-D: the largest codec rate <= rate_bpp."""
        self.check_rate(rate_bpp)
        return float(self.rates_bpp[max(np.searchsorted(self.rates_bpp, rate_bpp * (1 + 1e-12), "right") - 1, 0)])


def _as_vector(values: Sequence[float] | np.ndarray, users: int, name: str, allowed: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (users,) or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name}={v!r}: must be {users} {allowed}")
    return v


@dataclass(frozen=True)
class MuAsccProblem:
    """Problem (P1) for K users and Nt antennas.

    channels complex128 (K, Nt): normalised h_bar_i = h_i / sqrt(noise_w_i) (`normalised_channels`);
    power_w: budget P_max in W; weights float64 (K,) > 0: beta_i; channel_uses_per_pixel float64
    (K,) > 0: the budget T_i of eq. (19) (only R_s / T matters, so bits and channel uses per image
    work too); distortion_models: one `RateDistortionModel` per user; ber_models: one `BerModel` per
    user (`FiniteBlocklengthBer(L)` or remark 3.2's `MeasuredBer`).
    """

    channels: np.ndarray
    power_w: float
    weights: np.ndarray
    channel_uses_per_pixel: np.ndarray
    distortion_models: tuple[RateDistortionModel, ...]
    ber_models: tuple[BerModel, ...]

    def __post_init__(self) -> None:
        h = check_channels(self.channels)
        k = h.shape[0]
        object.__setattr__(self, "channels", h)
        if isinstance(self.power_w, bool) or not isinstance(self.power_w, (int, float)) \
                or not math.isfinite(self.power_w) or self.power_w <= 0:
            raise ValueError(f"power_w={self.power_w!r}: must be finite and > 0 W")
        object.__setattr__(self, "weights", _as_vector(self.weights, k, "weights", "finite weights > 0"))
        object.__setattr__(self, "channel_uses_per_pixel", _as_vector(
            self.channel_uses_per_pixel, k, "channel_uses_per_pixel", "finite budgets > 0 channel uses per pixel"))
        for name, kind in (("distortion_models", RateDistortionModel), ("ber_models", BerModel)):
            items = tuple(getattr(self, name))
            if len(items) != k or not all(isinstance(m, kind) for m in items):
                raise ValueError(f"{name}: must hold {k} {kind.__name__} entries, one per user, got {items!r}")
            object.__setattr__(self, name, items)
        for i in range(k):
            self.rate_bounds(i)

    @property
    def users(self) -> int:
        return self.channels.shape[0]

    def rate_bounds(self, user: int) -> tuple[float, float]:
        """[R^1, min(R^N, T max R_c)] of eqs. (19), (23) in bpp; ValueError when eq. (19) excludes R^1."""
        rates = self.distortion_models[user].rates_bpp
        cap = self.ber_models[user].max_source_rate_bpp(float(self.channel_uses_per_pixel[user]))
        if cap < rates[0]:
            raise ValueError(f"channel_uses_per_pixel[{user}]={self.channel_uses_per_pixel[user]!r}: its code "
                             f"carries {cap} bpp, below the lowest codec rate {rates[0]} bpp (eq. (19))")
        return float(rates[0]), float(min(rates[-1], cap))

    def log10_ber(self, user: int, sinr_linear: np.ndarray | float, source_rate_bpp: float) -> np.ndarray:
        """Eq. (14) (or the measured curve) for user at source rate R_s, float64 of sinr_linear's shape."""
        ber = self.ber_models[user]
        code_rate = ber.code_rate_bpcu(source_rate_bpp, float(self.channel_uses_per_pixel[user]))
        return ber.log10_ber(sinr_linear, code_rate)

    def user_distortion(self, user: int, sinr_linear: np.ndarray | float, source_rate_bpp: float) -> np.ndarray:
        """Eq. (26) at the user's SINR (linear), float64 of sinr_linear's shape."""
        log10_ber = self.log10_ber(user, sinr_linear, source_rate_bpp)
        return self.distortion_models[user].distortion(source_rate_bpp, log10_ber)

    def weighted_distortion(self, sinr_linear: np.ndarray, source_rates_bpp: np.ndarray) -> float:
        """Objective (15) at SINRs float64 (K,) and source rates float64 (K,) bpp."""
        return float(sum(self.weights[i] * self.user_distortion(i, sinr_linear[i], source_rates_bpp[i])
                         for i in range(self.users)))


@dataclass(frozen=True)
class Solution:
    """A point of (P1): float64 (K,) arrays, beams complex128 (Nt, K), objective (15) and AO iterations."""

    source_rates_bpp: np.ndarray
    code_rates_bpcu: np.ndarray
    beams: np.ndarray
    powers_w: np.ndarray
    sinr_linear: np.ndarray
    log10_ber: np.ndarray
    distortion: np.ndarray
    weighted_distortion: float
    iterations: int


def _check_rates(problem: MuAsccProblem, source_rates_bpp: np.ndarray) -> np.ndarray:
    """float64 (K,) source rates, each within its user's bounds (eqs. (19), (23))."""
    rates = np.asarray(source_rates_bpp, dtype=np.float64)
    if rates.shape != (problem.users,) or not all(
            problem.rate_bounds(i)[0] * (1 - 1e-12) <= r <= problem.rate_bounds(i)[1] * (1 + 1e-12)
            for i, r in enumerate(rates)):
        raise ValueError(f"source_rates_bpp={rates!r}: must hold {problem.users} rates in bpp, each within "
                         f"its user's bounds {[problem.rate_bounds(i) for i in range(problem.users)]}")
    return rates


def evaluate(problem: MuAsccProblem, source_rates_bpp: np.ndarray, beams: np.ndarray, powers_w: np.ndarray,
             iterations: int = 0) -> Solution:
    """Downlink SINRs (7), BERs (14) and distortions (26) of a rate, beam (Nt, K), power (K,) choice."""
    rates = _check_rates(problem, source_rates_bpp)
    gains = beam_gains(problem.channels, beams)
    if float(np.sum(powers_w)) > problem.power_w * (1 + 1e-9):
        raise ValueError(f"powers_w={powers_w!r}: total {np.sum(powers_w)} W exceeds "
                         f"power_w={problem.power_w} W (eq. (18))")
    sinr = downlink_sinr(gains, powers_w)
    users = range(problem.users)
    ber = np.array([float(problem.log10_ber(i, sinr[i], rates[i])) for i in users])
    distortion = np.array([float(problem.user_distortion(i, sinr[i], rates[i])) for i in users])
    codes = np.array([problem.ber_models[i].code_rate_bpcu(rates[i], float(problem.channel_uses_per_pixel[i]))
                      for i in users])
    return Solution(rates, codes, np.asarray(beams, dtype=np.complex128), np.asarray(powers_w, dtype=np.float64),
                    sinr, ber, distortion, float(problem.weights @ distortion), iterations)


def _rate_value_and_slope(problem: MuAsccProblem, user: int, sinr_linear: float, rate_bpp: float,
                          segment: int) -> tuple[float, float]:
    """Eq. (26) on one segment at R_s and its derivative d/dR_s (chain rule through (27)-(30), (14))."""
    values, slopes = problem.distortion_models[user].params_at(rate_bpp, segment)
    d_s, d_c, a_1, a_0 = values
    x, dx = problem.ber_models[user].source_rate_response(
        sinr_linear, rate_bpp, float(problem.channel_uses_per_pixel[user]))
    s = float(expit(a_1 * (x - a_0)))
    slope = slopes[0] + slopes[1] * s + d_c * s * (1 - s) * (slopes[2] * (x - a_0) + a_1 * (dx - slopes[3]))
    return float(d_s + d_c * s), float(slope)


def _rate_subgradient(problem: MuAsccProblem, user: int, sinr_linear: float, rate_bpp: float) -> tuple[float, float]:
    """Value and the subgradient of eq. (31): the mean of the left and right derivatives (one-sided at R^1, R^N)."""
    model = problem.distortion_models[user]
    value, right = _rate_value_and_slope(problem, user, sinr_linear, rate_bpp, model.segment(rate_bpp, "right"))
    _, left = _rate_value_and_slope(problem, user, sinr_linear, rate_bpp, model.segment(rate_bpp, "left"))
    return value, (left + right) / 2


def _backtrack(problem: MuAsccProblem, user: int, sinr_linear: float, rate_bpp: float, value: float,
               direction: float, reach_bpp: float, bounds: tuple[float, float]) -> float | None:
    """Armijo backtracking (c = 1e-4, halving) of the projected step R - alpha d, the first trial
    moving reach_bpp; returns the accepted rate, or None when no step of > 1e-12 of the interval decreases."""
    lo, hi = bounds
    model = problem.distortion_models[user]
    step = reach_bpp / abs(direction)
    while step * abs(direction) > 1e-12 * (hi - lo):
        trial = float(np.clip(rate_bpp - step * direction, lo, hi))
        trial_value, _ = _rate_value_and_slope(problem, user, sinr_linear, trial, model.segment(trial))
        if trial != rate_bpp and trial_value <= value - 1e-4 * abs(direction) * abs(trial - rate_bpp):
            return trial
        step /= 2
    return None


def optimise_source_rate(problem: MuAsccProblem, user: int, sinr_linear: float, start_bpp: float | None = None,
                         tolerance: float = 1e-6, max_iterations: int = 200) -> tuple[float, float]:
    """Algorithm 1 for one user: min over R_s of eq. (26) at fixed SINR, from R^1 unless start_bpp is given.

    Projected subgradient steps R - alpha d on [R^1, min(R^N, T R_c max)], alpha by backtracking line
    search (the first trial spans the interval, later ones twice the last move); stops when the
    fractional decrease falls below `tolerance` or no step decreases. Returns (R_s* in bpp, distortion).
    """
    if not math.isfinite(sinr_linear) or sinr_linear < 0:
        raise ValueError(f"sinr_linear={sinr_linear!r}: must be finite and >= 0 (linear, not dB)")
    lo, hi = problem.rate_bounds(user)
    rate = lo if start_bpp is None else float(np.clip(start_bpp, lo, hi))
    value, direction = _rate_subgradient(problem, user, sinr_linear, rate)
    reach = hi - lo
    for _ in range(max_iterations):
        if direction == 0 or hi == lo:
            break
        trial = _backtrack(problem, user, sinr_linear, rate, value, direction, reach, (lo, hi))
        if trial is None:
            break
        new_value, direction = _rate_subgradient(problem, user, sinr_linear, trial)
        decrease = (value - new_value) / max(abs(value), 1e-300)
        reach, rate, value = 2 * abs(trial - rate), trial, new_value
        if decrease < tolerance:
            break
    return rate, value


def _rate_curve(problem: MuAsccProblem, source_rates_bpp: np.ndarray) -> UserCurve:
    """P6.2's per-user terms at fixed source rates: beta d~_s, beta d~_c, a~_1, a~_0 (eqs. (27)-(30)), R_c, L."""
    values = np.array([problem.distortion_models[i].params_at(float(source_rates_bpp[i]))[0]
                       for i in range(problem.users)])
    codes = np.array([problem.ber_models[i].code_rate_bpcu(float(source_rates_bpp[i]),
                                                          float(problem.channel_uses_per_pixel[i]))
                      for i in range(problem.users)])
    blocklengths = np.array([m.blocklength for m in problem.ber_models], dtype=np.int64)
    return UserCurve(problem.weights * values[:, 0], problem.weights * values[:, 1], values[:, 2], values[:, 3],
                     codes, blocklengths)


@lru_cache(maxsize=8)
def _sca(blocklengths: tuple[int, ...]) -> ScaPowerAllocation:
    return ScaPowerAllocation(blocklengths)


def _uplink_objective(problem: MuAsccProblem, source_rates_bpp: np.ndarray, gains: np.ndarray,
                      uplink_powers_w: np.ndarray) -> float:
    """Objective (38) of the dual uplink (P4)."""
    return problem.weighted_distortion(uplink_sinr(gains, uplink_powers_w), source_rates_bpp)


def _slsqp_uplink_powers(problem: MuAsccProblem, source_rates_bpp: np.ndarray, gains: np.ndarray,
                         uplink_powers_w: np.ndarray) -> np.ndarray:
    """(P6) for measured BER curves (no (P6.2) form): SLSQP on objective (44) under (39), from the
    current powers and from each of `default_starts` (a measured curve is flat off its waterfall)."""
    budget = problem.power_w

    def objective(q: np.ndarray) -> float:
        return _uplink_objective(problem, source_rates_bpp, gains, floor_powers(q, budget))

    best = floor_powers(uplink_powers_w, budget)
    for start in [best, *default_starts(problem.users, budget)]:
        result = minimize(objective, start, method="SLSQP", bounds=[(0.0, budget)] * problem.users,
                          constraints=[{"type": "ineq", "fun": lambda q: budget - q.sum()}])
        candidate = floor_powers(result.x, budget)
        if objective(candidate) < objective(best):
            best = candidate
    return best


def _uplink_power_step(problem: MuAsccProblem, source_rates_bpp: np.ndarray, gains: np.ndarray,
                       uplink_powers_w: np.ndarray, tolerance: float) -> np.ndarray:
    """(P6): Algorithm 2 (SCA on (P6.2)) with eq. (14), SLSQP with measured curves (remark 3.2)."""
    if all(isinstance(m, FiniteBlocklengthBer) for m in problem.ber_models):
        curve = _rate_curve(problem, source_rates_bpp)
        sca = _sca(tuple(int(b) for b in curve.blocklength))
        return sca.solve(curve, gains, problem.power_w, uplink_powers_w, tolerance)[0]
    return _slsqp_uplink_powers(problem, source_rates_bpp, gains, uplink_powers_w)


def optimise_power_and_beams(problem: MuAsccProblem, source_rates_bpp: np.ndarray, powers_w: np.ndarray,
                             beams: np.ndarray, tolerance: float = 1e-4,
                             max_iterations: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
    """Algorithm 3 for (P3) at fixed rates, from downlink powers (K,) W and beams (Nt, K).

    Downlink -> uplink by UDD (35), then alternately MMSE beams (43) and SCA powers (Algorithm 2)
    until the fractional decrease of (38) is below `tolerance` (Algorithm 2 stops at the same
    fractional decrease of its own objective); uplink -> downlink by UDD (34).
    Returns (downlink powers float64 (K,) W, beams complex128 (Nt, K), iterations).
    """
    rates = _check_rates(problem, source_rates_bpp)
    start = floor_powers(powers_w, problem.power_w)
    gains = beam_gains(problem.channels, beams)
    q = uplink_powers_for_sinr(gains, downlink_sinr(gains, start))
    w = np.asarray(beams, dtype=np.complex128)
    value = _uplink_objective(problem, rates, gains, q)
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        w_new = mmse_beams(problem.channels, q)
        gains_new = beam_gains(problem.channels, w_new)
        q_new = _uplink_power_step(problem, rates, gains_new, q, tolerance)
        new_value = _uplink_objective(problem, rates, gains_new, q_new)
        if new_value > value:
            break
        decrease = (value - new_value) / max(value, 1e-300)
        q, w, gains, value = q_new, w_new, gains_new, new_value
        if decrease < tolerance:
            break
    return downlink_powers_for_sinr(gains, uplink_sinr(gains, q)), w, iteration


def _best_rates(problem: MuAsccProblem, sinr_linear: np.ndarray, previous_bpp: np.ndarray) -> np.ndarray:
    """Algorithm 1 per user from R^1 and from the previous rate, keeping the lower (so the AO never rises)."""
    rates = []
    for i in range(problem.users):
        runs = [optimise_source_rate(problem, i, float(sinr_linear[i]), start) for start in (None, previous_bpp[i])]
        rates.append(min(runs, key=lambda run: run[1])[0])
    return np.array(rates)


def default_starts(users: int, power_w: float) -> list[np.ndarray]:
    """Initial uplink powers for `optimise`, float64 (K,) W each: the equal split, then for each user
    u and fraction f in (0.1, 0.3, 0.7, 0.9) the split giving u f power_w and the others equal shares
    (duplicates dropped; K = 2 gives the five splits 0.5, 0.1, 0.3, 0.7, 0.9).

    The paper leaves Algorithm 3's initial point open. The AO stops at local optima (which user is
    served first, whether a weak user is served at all), so `optimise` runs from several starts."""
    starts = [np.full(users, power_w / users)]
    for user in range(users if users > 1 else 0):
        for fraction in (0.1, 0.3, 0.7, 0.9):
            split = np.full(users, (1 - fraction) * power_w / (users - 1))
            split[user] = fraction * power_w
            if not any(np.allclose(split, seen) for seen in starts):
                starts.append(split)
    return starts


def _relaxed_ao(problem: MuAsccProblem, uplink_powers_w: np.ndarray, tolerance: float,
                max_iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fig. 6's loop on the relaxed (P1): Algorithm 1, then Algorithm 3, until the fractional decrease
    of (15) is below `tolerance`. Returns (continuous rates (K,) bpp, powers (K,) W, beams, iterations)."""
    q = floor_powers(uplink_powers_w, problem.power_w)
    beams = mmse_beams(problem.channels, q)
    gains = beam_gains(problem.channels, beams)
    powers = downlink_powers_for_sinr(gains, uplink_sinr(gains, q))
    rates = np.array([problem.rate_bounds(i)[0] for i in range(problem.users)])
    value, iteration = math.inf, 0
    for iteration in range(1, max_iterations + 1):
        rates = _best_rates(problem, downlink_sinr(beam_gains(problem.channels, beams), powers), rates)
        powers, beams, _ = optimise_power_and_beams(problem, rates, powers, beams, tolerance / 10)
        new_value = evaluate(problem, rates, beams, powers).weighted_distortion
        decrease, value = (value - new_value) / max(new_value, 1e-300), new_value
        if decrease < tolerance:
            break
    return rates, powers, beams, iteration


def _discrete_candidates(problem: MuAsccProblem, rates_bpp: np.ndarray, discretisation: str) -> list[np.ndarray]:
    """Sec. IV-D round-down, or ('neighbours') every mix of each user's codec rates below and above."""
    models = problem.distortion_models
    below = [models[i].round_down(float(rates_bpp[i])) for i in range(problem.users)]
    if discretisation == "round_down":
        return [np.array(below)]
    options = []
    for i, low in enumerate(below):
        above = models[i].rates_bpp[models[i].rates_bpp > low]
        options.append([low] + ([float(above[0])] if above.size and above[0] <= problem.rate_bounds(i)[1] else []))
    return [np.array(mix) for mix in itertools.product(*options)]


def _check_start(start: np.ndarray, users: int) -> np.ndarray:
    q = np.asarray(start, dtype=np.float64)
    if q.shape != (users,) or not np.all(np.isfinite(q)) or np.any(q < 0) or q.sum() <= 0:
        raise ValueError(f"starts entry {q!r}: must be {users} finite uplink powers >= 0 W, not all 0")
    return q


def optimise(problem: MuAsccProblem, discretisation: str = "neighbours", tolerance: float = 1e-3,
             max_iterations: int = 10, starts: Sequence[np.ndarray] | None = None) -> Solution:
    """JRPB (Fig. 6) from several starts; returns the best point of (P1) found.

    From each start (uplink powers (K,) W, scaled into the budget, with their MMSE beams (43);
    default `default_starts`): alternate Algorithm 1 (rates) and Algorithm 3 (powers, beams) on the
    relaxed (P1) until the fractional decrease of (15) is below `tolerance` (Algorithms 2-3 stop at
    tolerance / 10), make the source rates codec rates, and rerun Algorithm 3 from the converged
    powers and beams. `discretisation`: 'round_down' is Sec. IV-D; 'neighbours' (default) tries
    every mix of each user's codec rate below and above the relaxed rate (2^K runs of Algorithm 3),
    which contains round-down. The paper's own pipeline is
    `optimise(problem, "round_down", starts=[np.full(K, power_w / K)])`.
    """
    if discretisation not in ("round_down", "neighbours"):
        raise ValueError(f"discretisation={discretisation!r}: must be 'round_down' (the paper) or 'neighbours'")
    best: Solution | None = None
    for start in (default_starts(problem.users, problem.power_w) if starts is None else starts):
        rates, powers, beams, iterations = _relaxed_ao(problem, _check_start(start, problem.users), tolerance,
                                                       max_iterations)
        for discrete in _discrete_candidates(problem, rates, discretisation):
            p, w, _ = optimise_power_and_beams(problem, discrete, powers, beams, tolerance / 10)
            candidate = evaluate(problem, discrete, w, p, iterations)
            if best is None or candidate.weighted_distortion < best.weighted_distortion:
                best = candidate
    if best is None:
        raise ValueError("starts: must hold at least one start")
    return best


def zf_wf_baseline(problem: MuAsccProblem, source_rates_bpp: np.ndarray | None = None) -> Solution:
    """ZF-WF benchmark (Sec. V-A): zero-forcing beams, water-filling powers [44], given codec rates
    (K,) bpp or, by default, each user's best codec rate at its ZF-WF SINR."""
    beams = zf_beams(problem.channels)
    powers, _ = water_filling(np.diag(beam_gains(problem.channels, beams)), problem.power_w)
    if source_rates_bpp is None:
        sinr = downlink_sinr(beam_gains(problem.channels, beams), powers)
        source_rates_bpp = np.array([_best_codec_rate(problem, i, float(sinr[i])) for i in range(problem.users)])
    return evaluate(problem, source_rates_bpp, beams, powers)


def _best_codec_rate(problem: MuAsccProblem, user: int, sinr_linear: float) -> float:
    """The codec rate (within eq. (19)) of lowest distortion (12)/(13) at this SINR."""
    _, hi = problem.rate_bounds(user)
    rates = [float(r) for r in problem.distortion_models[user].rates_bpp if r <= hi]
    return min(rates, key=lambda r: float(problem.user_distortion(user, sinr_linear, r)))


# Sec. V-A: the example's normalised channel H_bar = [h_bar_1, h_bar_2] (columns = users).
PAPER_CHANNEL = np.array([[-0.4199 - 1.2885j, -0.4546 + 1.0362j],
                          [0.2092 + 1.0851j, -0.5603 + 0.7316j]])
_PAPER_RATES_BITS = np.array([2.4e3, 5e3, 1e4, 2e4, 4e4, 9.3e4])  # span of the paper's 23 codecs, bits/image
_PIXELS = 256 * 256  # assumed image size: turns bits per image into bpp, bandwidth ratio into channel uses


def paper_instance(power_w: float = 3.0, blocklength: int = 256, weights: tuple[float, float] = (0.8, 0.2),
                   bandwidth_ratio: float = 0.0356) -> MuAsccProblem:
    """Sec. V-A's two-user example (a DU, then an SU; Nt = 2): the paper's H_bar, P_max = 3 W,
    weights (0.8, 0.2), L = 256, bandwidth ratio 0.0356 channel uses per real source dimension.

    The paper gives its fitted logistic parameters only as curves (Figs. 4-5); the tables here are
    illustrative values shaped like them (1 - MS-SSIM for the DU, classification error for the SU,
    thresholds 1e-6 .. 1e-4.5 BER rising as the rate falls) at 6 rates spanning its 2.4e3 .. 9.3e4 bits.
    """
    rates = _PAPER_RATES_BITS / _PIXELS
    data_user = RateDistortionModel(rates, np.array([0.16, 0.11, 0.075, 0.05, 0.033, 0.02]),
                                    np.array([0.49, 0.54, 0.575, 0.6, 0.617, 0.63]),
                                    np.array([2.5, 2.6, 2.8, 3.0, 3.2, 3.5]),
                                    np.array([-4.8, -5.0, -5.2, -5.5, -5.8, -6.0]))
    semantic_user = RateDistortionModel(rates, np.array([0.62, 0.45, 0.33, 0.25, 0.2, 0.17]),
                                        np.array([0.375, 0.545, 0.665, 0.745, 0.795, 0.825]),
                                        np.array([2.0, 2.2, 2.4, 2.6, 2.8, 3.0]),
                                        np.array([-4.5, -4.7, -5.0, -5.2, -5.5, -5.8]))
    budget = 3 * bandwidth_ratio  # channel uses per pixel of an RGB image
    return MuAsccProblem(PAPER_CHANNEL.T.copy(), power_w, np.asarray(weights), np.array([budget, budget]),
                         (data_user, semantic_user), (FiniteBlocklengthBer(blocklength),) * 2)
