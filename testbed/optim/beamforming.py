"""MU-MISO beamforming and power allocation: SINRs, uplink-downlink duality, MMSE, ZF, water-filling,
and the SCA power allocation of the virtual uplink.

Implements ../shared/seeds/001_ef80d34948c98c54.txt (MU-ASCC):

- eq. (7): downlink SINR; eq. (33): SINR of the dual (virtual) uplink;
- eqs. (34)-(37): uplink-downlink duality (UDD), the powers of one link direction that give the
  other's SINRs with the same total power. The off-diagonal entries of Psi and Phi enter with a
  minus sign (Psi p = 1 is the SINR equations p_k G_kk / gamma_k - sum_l p_l G_kl = 1 [41]);
- eq. (43): MMSE receive beams, the SINR-maximising beams of the uplink for given powers;
- problem (P6.2), eqs. (45)-(62): one SCA step of the uplink power allocation (Algorithm 2's inner
  convex problem), solved with cvxpy;
- the ZF-WF baseline of Sec. V-A: zero-forcing beams and water-filling powers [44].

How the printed (P6.1)-(P6.2) are read: t_i = exp(-a~_1 rho~_b) and c = exp(a~_1 a~_0) (eq. (45)
prints e^{a~_1} a~_0), so c t = exp(-a~_1 (rho~_b - a~_0)) as in eq. (26); in (46) the Q argument is
rho^ and log10(1/(R_c L)) stands apart, as in Lemma 4.1; (49) is zeta_i sum_j q_j G_ji (printed
zeta_j); (54) linearises at rho^(n) (printed Q^(rho^_i)); (55) subtracts l_2, not l_2^2 (l_2 already
linearises a square). log Q is concave on all of R (Q is log-concave), so (53)-(54) bound it for
negative arguments as well.

Channels are normalised, h_bar_i = h_i / sqrt(noise_w_i) (unit noise; the paper writes sigma_i^2 for
the divisor, the duality needs the standard deviation), stored as H complex128 (K, Nt) with row i
the vector h_bar_i. Beams are W complex128 (Nt, K), column j the unit beam w_j. Gains are
G float64 (K, K) with G[i, j] = |h_bar_i^H w_j|^2.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from scipy.special import expit

from testbed.optim.fbl import LOG2_E, LOG10_E, log_q, log_q_derivative


def _q_min(power_w: float, users: int) -> float:
    """Smallest power of a user in Algorithms 2-3 (keeps every SINR > 0, so UDD (34)-(35) exist)."""
    return 1e-6 * power_w / users


def floor_powers(powers_w: np.ndarray, power_w: float) -> np.ndarray:
    """Powers float64 (K,) floored at 1e-6 power_w / K each and scaled back into the budget power_w."""
    p = np.maximum(np.asarray(powers_w, dtype=np.float64), _q_min(power_w, len(powers_w)))
    return p * min(1.0, power_w / p.sum())


def check_channels(channels: np.ndarray) -> np.ndarray:
    """H as complex128 (K, Nt), finite, every row nonzero."""
    h = np.asarray(channels)
    if h.ndim != 2 or h.shape[0] < 1 or h.shape[1] < 1:
        raise ValueError(f"channels of shape {h.shape}: must be 2-D (users K, antennas Nt)")
    h = h.astype(np.complex128)
    if not np.all(np.isfinite(h)) or np.any(np.linalg.norm(h, axis=1) == 0):
        raise ValueError("channels: every entry must be finite and every user's row nonzero")
    return h


def _check_powers(powers_w: np.ndarray, users: int, name: str) -> np.ndarray:
    p = np.asarray(powers_w, dtype=np.float64)
    if p.shape != (users,) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name}={p!r}: must be {users} finite powers >= 0 W")
    return p


def _check_gains(gains: np.ndarray) -> np.ndarray:
    g = np.asarray(gains, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1] or not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"gains of shape {g.shape}: must be a square (K, K) array of finite values >= 0")
    return g


def normalised_channels(channels: np.ndarray, noise_w: np.ndarray) -> np.ndarray:
    """h_bar_i = h_i / sqrt(noise_w_i): channels complex128 (K, Nt), noise_w float64 (K,) > 0 W."""
    h = check_channels(channels)
    noise = np.asarray(noise_w, dtype=np.float64)
    if noise.shape != (h.shape[0],) or not np.all(np.isfinite(noise)) or np.any(noise <= 0):
        raise ValueError(f"noise_w={noise!r}: must be {h.shape[0]} finite noise powers > 0 W")
    return h / np.sqrt(noise)[:, None]


def unit_beams(beams: np.ndarray, antennas: int, users: int) -> np.ndarray:
    """W as complex128 (Nt, K), checked finite with unit-norm columns (eq. (20))."""
    w = np.asarray(beams)
    if w.shape != (antennas, users):
        raise ValueError(f"beams of shape {w.shape}: must be (Nt, K) = {(antennas, users)}")
    w = w.astype(np.complex128)
    if not np.all(np.isfinite(w)) or not np.allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-9, atol=0):
        raise ValueError("beams: every column must be finite with unit norm (eq. (20))")
    return w


def beam_gains(channels: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """G float64 (K, K), G[i, j] = |h_bar_i^H w_j|^2, for H (K, Nt) and W (Nt, K)."""
    h = check_channels(channels)
    w = unit_beams(beams, h.shape[1], h.shape[0])
    return np.abs(h.conj() @ w) ** 2


def downlink_sinr(gains: np.ndarray, powers_w: np.ndarray) -> np.ndarray:
    """Eq. (7) with unit noise: gamma_i = p_i G_ii / (sum_{j != i} p_j G_ij + 1), float64 (K,)."""
    g = _check_gains(gains)
    p = _check_powers(powers_w, g.shape[0], "powers_w")
    signal = p * np.diag(g)
    return signal / (g @ p - signal + 1.0)


def uplink_sinr(gains: np.ndarray, uplink_powers_w: np.ndarray) -> np.ndarray:
    """Eq. (33): gamma^u_i = q_i G_ii / (sum_{j != i} q_j G_ji + 1), float64 (K,)."""
    g = _check_gains(gains)
    q = _check_powers(uplink_powers_w, g.shape[0], "uplink_powers_w")
    signal = q * np.diag(g)
    return signal / (g.T @ q - signal + 1.0)


def _duality_powers(coupling: np.ndarray, sinr_linear: np.ndarray, name: str) -> np.ndarray:
    """Solves (diag(G_kk / gamma_k) - offdiag(coupling)) x = 1, eqs. (34)-(37)."""
    gamma = np.asarray(sinr_linear, dtype=np.float64)
    if gamma.shape != (coupling.shape[0],) or not np.all(np.isfinite(gamma)) or np.any(gamma <= 0):
        raise ValueError(f"{name}={gamma!r}: must be {coupling.shape[0]} finite SINRs > 0 (linear)")
    diag = np.diag(coupling)
    matrix = -coupling + np.diag(diag / gamma + diag)
    powers = np.linalg.solve(matrix, np.ones_like(gamma))
    if np.any(powers <= 0):
        raise ValueError(f"{name}={gamma!r}: not achievable with these beams at any power (Perron root >= 1)")
    return powers


def downlink_powers_for_sinr(gains: np.ndarray, sinr_linear: np.ndarray) -> np.ndarray:
    """Eqs. (34), (36): downlink powers p = Psi^{-1} 1 (W) that reach SINRs gamma, float64 (K,)."""
    return _duality_powers(_check_gains(gains), sinr_linear, "sinr_linear")


def uplink_powers_for_sinr(gains: np.ndarray, sinr_linear: np.ndarray) -> np.ndarray:
    """Eqs. (35), (37): uplink powers q = Phi^{-1} 1 (W) that reach SINRs gamma, float64 (K,)."""
    return _duality_powers(_check_gains(gains).T, sinr_linear, "sinr_linear")


def mmse_beams(channels: np.ndarray, uplink_powers_w: np.ndarray) -> np.ndarray:
    """Eq. (43): w_i ∝ (I + sum_j q_j h_bar_j h_bar_j^H)^{-1} h_bar_i, complex128 (Nt, K) unit columns."""
    h = check_channels(channels)
    q = _check_powers(uplink_powers_w, h.shape[0], "uplink_powers_w")
    covariance = np.eye(h.shape[1]) + (h.T * q) @ h.conj()
    w = np.linalg.solve(covariance, h.T)
    return w / np.linalg.norm(w, axis=0)


def zf_beams(channels: np.ndarray) -> np.ndarray:
    """Zero-forcing beams, complex128 (Nt, K) unit columns with h_bar_i^H w_j = 0 for i != j."""
    h = check_channels(channels)
    users, antennas = h.shape
    if users > antennas or np.linalg.matrix_rank(h) < users:
        raise ValueError(f"channels of shape {h.shape}: zero forcing needs K <= Nt linearly independent users")
    w = np.linalg.pinv(h.conj())
    return w / np.linalg.norm(w, axis=0)


def water_filling(channel_gains: np.ndarray, power_w: float) -> tuple[np.ndarray, float]:
    """Powers p_i = max(0, mu - 1/g_i) with sum p = power_w over parallel unit-noise channels [44].

    channel_gains float64 (K,) > 0 (linear); returns (powers float64 (K,) in W, water level mu).
    """
    g = np.asarray(channel_gains, dtype=np.float64)
    if g.ndim != 1 or g.size < 1 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"channel_gains={g!r}: must be a 1-D array of finite gains > 0")
    if not math.isfinite(power_w) or power_w <= 0:
        raise ValueError(f"power_w={power_w!r}: must be finite and > 0 W")
    floors = np.sort(1.0 / g)
    for active in range(g.size, 0, -1):
        level = (power_w + floors[:active].sum()) / active
        if level > floors[active - 1]:
            break
    return np.maximum(level - 1.0 / g, 0.0), float(level)


@dataclass(frozen=True)
class UserCurve:
    """The users' objective terms in P6.2 at fixed rates, float64 (K,) each.

    weighted_source_distortion beta_i * d~_s and weighted_channel_distortion beta_i * d~_c (eq. (45)),
    slope_per_decade a~_1 > 0, threshold_log10_ber a~_0, code_rate_bpcu R_c; blocklength L (int64 (K,),
    channel uses).
    """

    weighted_source_distortion: np.ndarray
    weighted_channel_distortion: np.ndarray
    slope_per_decade: np.ndarray
    threshold_log10_ber: np.ndarray
    code_rate_bpcu: np.ndarray
    blocklength: np.ndarray


@dataclass(frozen=True)
class _LocalPoint:
    """Theta^(n) of Algorithm 2, float64 (K,) each; t is kept as log t (it spans e^{+-100})."""

    q: np.ndarray
    log_t: np.ndarray
    rho: np.ndarray
    g: np.ndarray
    zeta: np.ndarray
    xi: np.ndarray


class ScaPowerAllocation:
    """Algorithm 2: SCA for the uplink power allocation (P6) at fixed beams and rates.

    Builds problem (P6.2) once for K users with blocklengths L_i (cvxpy parameters, DPP) and re-solves
    it at each local point. Exact changes of variables keep the solver's numbers near 1 (c t spans
    e^{+-100}): tau = t / t^(n), and r_i >= (1 + c t^(n)) / (1 + c t^(n) tau), the epigraph of the
    objective term relative to its local value; the objective is divided by its local value.
    """

    _FREE = ("u_const", "u_slope", "m55", "c55", "a60", "b60", "c60", "b56", "b57")
    _NONNEG = ("weight", "a_r", "b_r", "sinr_max", "q_min", "budget")

    def __init__(self, blocklengths: tuple[int, ...]) -> None:
        k, self._k = len(blocklengths), np.sqrt(np.asarray(blocklengths, dtype=np.float64)) / LOG2_E
        self.q, self.tau, self.rho = cp.Variable(k), cp.Variable(k), cp.Variable(k)
        self.g, self.zeta, self.xi = cp.Variable(k), cp.Variable(k), cp.Variable(k)
        self.ratio = cp.Variable(k)  # r_i, the epigraph above
        # few grouped parameters: cvxpy checks each assignment, the groups keep that cheap
        self.free = cp.Parameter((len(self._FREE), k))
        self.nonneg = cp.Parameter((len(self._NONNEG), k), nonneg=True)
        self.gain = cp.Parameter((k, k), nonneg=True)  # gain[i, j] = |h_bar_j^H w_i|^2
        self.cross = cp.Parameter((k, 2 * k))  # the linearised bilinear terms of (56) | (57)
        self.problem = cp.Problem(cp.Minimize(self._p("weight") @ self.ratio), self._constraints(k))  # (61)

    def _p(self, name: str) -> cp.Expression:
        if name in self._FREE:
            return self.free[self._FREE.index(name)]
        return self.nonneg[self._NONNEG.index(name)]

    def _constraints(self, users: int) -> list[cp.Constraint]:
        p, q, rho, g, zeta, xi = self._p, self.q, self.rho, self.g, self.zeta, self.xi
        cons = [cp.inv_pos(p("a_r") + cp.multiply(p("b_r"), self.tau)) <= self.ratio,
                self.tau + p("u_const") + cp.multiply(p("u_slope"), rho) <= 0,  # (62), U of (53)
                cp.square(rho + g) / 4 - cp.multiply(p("m55"), rho - g) + p("c55")
                - cp.multiply(self._k / math.log(2), cp.log(1 + zeta)) <= 0,  # (55)
                cp.multiply(p("a60"), xi) - cp.multiply(p("b60"), g) + p("c60") <= 0,  # (60)
                cp.sum(q) <= p("budget")[0], q >= p("q_min"), self.tau >= 0,  # (39), (51)
                g >= 0, g <= 1, zeta >= 0, xi >= 0, zeta <= p("sinr_max"), xi <= p("sinr_max")]
        for i in range(users):
            others = [j for j in range(users) if j != i]
            own = self.gain[i, i] * q[i]
            cross56 = sum(self.gain[i, j] / 4 * cp.square(zeta[i] + q[j]) - self.cross[i, j] * (zeta[i] - q[j])
                          for j in others)
            cross57 = sum(self.gain[i, j] / 4 * cp.square(xi[i] - q[j]) - self.cross[i, users + j] * (xi[i] + q[j])
                          for j in others)
            cons += [cross56 + p("b56")[i] + zeta[i] - own <= 0,  # (56): zeta_i <= gamma^u_i
                     cross57 + p("b57")[i] - xi[i] + own <= 0]  # (57): xi_i >= gamma^u_i
        return cons

    def tight_point(self, curve: UserCurve, gains: np.ndarray, power_w: float,
                    uplink_powers_w: np.ndarray) -> _LocalPoint:
        """A feasible Theta with every slack tight at q (xi floored at min(0.1, gamma_bar) so g > 0).

        q is first floored at q_min and scaled into the budget. log t = -a~_1 rho~_b (eq. (46) tight).
        """
        q = floor_powers(uplink_powers_w, power_w)
        gamma = uplink_sinr(gains, q)
        xi = np.maximum(gamma, np.minimum(0.1, power_w * np.diag(gains)))
        g = np.sqrt(xi * (2 + xi)) / (1 + xi)
        rho = self._k * (np.log2(1 + gamma) - curve.code_rate_bpcu) / g
        log10_ber = -np.log10(curve.code_rate_bpcu * curve.blocklength) + LOG10_E * log_q(rho)
        return _LocalPoint(q, -curve.slope_per_decade * log10_ber, rho, g, gamma, xi)

    @staticmethod
    def model_value(curve: UserCurve, point: _LocalPoint) -> float:
        """P6.2's objective (61) at a tight point, = (P6)'s when xi = gamma."""
        log_ct = curve.slope_per_decade * curve.threshold_log10_ber + point.log_t  # -a1 (rho_b - a0)
        return float(np.sum(curve.weighted_source_distortion + curve.weighted_channel_distortion * expit(-log_ct)))

    def _set_parameters(self, curve: UserCurve, gains: np.ndarray, power_w: float, point: _LocalPoint) -> None:
        gain_ij = gains.T  # gain_ij[i, j] = |h_bar_j^H w_i|^2, user j into receiver i
        a1, rate, users = curve.slope_per_decade, curve.code_rate_bpcu, len(curve.code_rate_bpcu)
        dq = log_q_derivative(point.rho)
        # log(c t^(n)) with c = e^{a1 a0} (eq. (45) prints e^{a1} a0); (1 + c t^(n) tau) / (1 + c t^(n))
        log_ct = a1 * curve.threshold_log10_ber + point.log_t
        terms = curve.weighted_channel_distortion * expit(-log_ct)
        d55 = point.rho - point.g  # (59) at (rho^(n), g^(n))
        slope60 = 2 / (1 + point.xi) ** 3  # l3 of (60) and the tangent of -g^2
        off = 1 - np.eye(users)
        d56 = off * gain_ij * (point.zeta[:, None] - point.q[None, :])  # G (zeta_i^(n) - q_j^(n)), (59)
        e57 = off * gain_ij * (point.xi[:, None] + point.q[None, :])  # G (xi_i^(n) + q_j^(n)), (58)
        free = {"u_slope": a1 * LOG10_E * dq,  # (53)-(54): log Q linearised at rho^(n)
                "u_const": point.log_t - 1 + a1 * (-np.log10(rate * curve.blocklength)
                                                   + LOG10_E * (log_q(point.rho) - dq * point.rho)),
                "m55": d55 / 2, "c55": d55 ** 2 / 4 + self._k * rate,
                "a60": slope60, "b60": 2 * point.g,
                "c60": 1 - slope60 * point.xi - 1 / (1 + point.xi) ** 2 + point.g ** 2,
                "b56": (d56 * (point.zeta[:, None] - point.q[None, :]) / 4).sum(axis=1),
                "b57": (e57 * (point.xi[:, None] + point.q[None, :]) / 4).sum(axis=1)}
        nonneg = {"weight": terms / terms.sum(), "a_r": expit(-log_ct), "b_r": expit(log_ct),
                  "sinr_max": power_w * np.diag(gains), "q_min": np.full(users, _q_min(power_w, users)),
                  "budget": np.full(users, power_w)}
        self.free.value = np.array([free[name] for name in self._FREE])
        self.nonneg.value = np.array([nonneg[name] for name in self._NONNEG])
        self.gain.value = gain_ij
        self.cross.value = np.hstack([d56 / 2, e57 / 2])

    def solve(self, curve: UserCurve, gains: np.ndarray, power_w: float, uplink_powers_w: np.ndarray,
              tolerance: float = 1e-4, max_iterations: int = 30) -> tuple[np.ndarray, int]:
        """Algorithm 2 from q^(1): returns (uplink powers q float64 (K,) in W, SCA iterations).

        Each step solves (P6.2) at the local point, then re-tightens the point at the new q (at least
        as good as the solver's own slacks); a step that does not lower the true objective of (P6)
        ends the loop, as does a fractional decrease of (P6)'s objective (44), source terms included,
        below `tolerance`.
        """
        point = self.tight_point(curve, gains, power_w, uplink_powers_w)
        value = self.model_value(curve, point)
        for iteration in range(1, max_iterations + 1):
            if value - curve.weighted_source_distortion.sum() <= 1e-12 * curve.weighted_channel_distortion.sum():
                return point.q, iteration  # every user is error-free: no power moves the objective
            self._set_parameters(curve, gains, power_w, point)
            try:
                with warnings.catch_warnings():  # an inaccurate solve is judged below by its true objective
                    warnings.simplefilter("ignore", UserWarning)
                    self.problem.solve(solver=cp.CLARABEL)
            except cp.error.SolverError:
                return point.q, iteration
            if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                return point.q, iteration
            candidate = self.tight_point(curve, gains, power_w, self.q.value)
            new_value = self.model_value(curve, candidate)
            if new_value > value:
                return point.q, iteration
            decrease = (value - new_value) / max(value, 1e-300)
            point, value = candidate, new_value
            if decrease < tolerance:
                return point.q, iteration
        return point.q, max_iterations
