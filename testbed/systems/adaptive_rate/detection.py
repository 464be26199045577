"""Base-station receiver maths of the adaptive-rate MU-MIMO uplink (numpy only).

Paper: ../shared/seeds/004_04072a72b64c0519.txt, Sec. II (eqs. (5)-(8)) and Sec. IV-A (imperfect
CSI). K single-antenna users, M base-station antennas, one flat channel per block:

    Y = H X + N                                                          eq. (5)

with H complex (M, K), column h_k ~ CN(0, I_M); X complex (K, T), row k user k's symbols (the
paper's Z^T: its Z is (L_z, K), ours is Z.T); N complex (M, T) with i.i.d. CN(0, sigma_n^2)
entries (``noise_var``). ``symbol_power`` is the users' average symbol energy P (eq. (20)); with
h_k ~ CN(0, I_M) the mean SNR P / sigma_n^2 is the project's ``snr_db`` (Es/N0 per stream and
receive antenna, docs/architecture.md "SNR axis").

- Pilots: user k sends row k of P complex (K, L_p). ``orthogonal_pilots`` gives rows with
  P P^H = E_p I_K: DFT rows (every user on every symbol, E_p = p L_p), Walsh-Hadamard rows
  (+-sqrt(p); for L_p = 4 the rows of ``phy.mimo_frame.PILOT_CODES``) or time-orthogonal slots
  (user k alone in slot k, E_p = p L_p / K: the training layout of ``phy.mimo_frame``).
- LS estimate (Sec. II, text before eq. (7)): H_hat = Y_p P^H (P P^H)^-1, unbiased, with error
  dH = N_p P^H (P P^H)^-1 whose column k has i.i.d. CN(0, sigma_n^2 [(P P^H)^-1]_kk) entries,
  sigma_n^2 / E_p for orthogonal pilots (``ls_error_var``).
- SNR (eqs. (6), (7)): (1/K) sum_k ||h_k s_k^T||_F^2 / (||h_k s_k^T||_0 sigma_n^2), with s_k the
  data (eq. (6), true H) or the pilots (eq. (7), LS estimate). ||.||_0 counts the non-zero
  entries, so a silent slot of time-orthogonal pilots does not dilute the power. With the LS
  estimate E[eq. (7)] = SNR_pilot + (1/K) sum_k ||p_k||^2 [(P P^H)^-1]_kk / n_k, i.e. 1/n_k for
  orthogonal pilots (n_k non-zero pilot symbols of user k): a bias below 0.07 dB at 0 dB once
  n_k >= 64 (``estimated_snr_bias``).
- LMMSE (eq. (8)): X_hat = H^H (H H^H + s I_M)^-1 Y with s = sigma_n^2 / P (the paper's
  sigma_n^2 for unit power), with the true or the estimated H. Computed through the push-through
  identity as (H^H H + s I_K)^-1 H^H (a K x K positive definite solve, well conditioned as
  s -> 0 where H H^H is singular for M > K); s = 0 is its limit, zero forcing pinv(H).
- Per-stream figures of any linear detector W (K, M) on the true H: output MSE and SINR
  (``detection_mse``, ``post_detection_sinr``); with W the LMMSE of the true H they reduce to the
  closed forms MSE_k = s P A_kk and SINR_k = 1 / (s A_kk) - 1, A = (H^H H + s I)^-1
  (``lmmse_sinr``, the same as ``phy.mimo.lmmse_sinr``).
- Imperfect CSI (Sec. IV-A): H_hat = H + dH, dH ~ CN(0, sigma_e^2), sigma_e^2 = sigma_n^2 by
  default (``imperfect_csi``).

Why this module does not call ``testbed.phy.mimo``: eq. (8) is the biased Wiener output the
paper's channel decoders are trained on, while ``phy.mimo.lmmse_filter`` returns unit-gain rows
([W H]_kk = 1) in complex64 with the row-vector layout y (..., n, M); and importing ``phy.mimo``
pulls in numba through ``phy.qam``. The tests hold this module to ``phy.mimo`` (unbiased rows,
detection, SINR, Rayleigh draws), ``phy.mimo_estimate.mrc`` (K = 1) and ``phy.estimate.ltf_channel``
(LS and noise variance of one stream) on the same inputs.

All arrays are converted to complex128 (float64 for real outputs); shapes are strict 2-D
(M, K), (M, T), (K, T), (K, L_p); bad input raises ``DetectionError`` (a ``ValueError`` and a
``TestbedError``) naming the field, the value and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.errors import TestbedError

PILOT_KINDS = ("dft", "walsh", "time")
MAX_PILOT_GRAM_COND = 1e10
"""Largest condition number of P P^H that ``ls_channel_estimate`` accepts (rows independent)."""


class DetectionError(TestbedError, ValueError):
    """An input of the detection maths is invalid (the message names field, value and allowed)."""


# ----------------------------------------------------------------------------------- checks


def _describe(value: object) -> str:
    """Short description of a bad value for an error message."""
    a = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if a is not None and a.ndim > 0:
        return f"an array of shape {a.shape} and dtype {a.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _matrix(name: str, value: object, rows: int | None = None, cols: int | None = None,
            rows_name: str = "", cols_name: str = "") -> np.ndarray:
    """``value`` as complex128 2-D, finite, with the given dimensions (None: any >= 1)."""
    try:
        a = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise DetectionError(f"{name}: {_describe(value)} is not an array ({exc}); allowed: a 2-D numeric array") from exc
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.number)):
        raise DetectionError(f"{name}: dtype {a.dtype} is not numeric; allowed: a 2-D real or complex array")
    if a.ndim != 2:
        raise DetectionError(f"{name}: shape {a.shape} has {a.ndim} dimension(s); allowed: exactly 2")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise DetectionError(f"{name}: shape {a.shape} is empty; allowed: at least 1 x 1")
    if rows is not None and a.shape[0] != rows:
        raise DetectionError(f"{name}: shape {a.shape} has {a.shape[0]} rows; allowed: {rows} ({rows_name})")
    if cols is not None and a.shape[1] != cols:
        raise DetectionError(f"{name}: shape {a.shape} has {a.shape[1]} columns; allowed: {cols} ({cols_name})")
    a = a.astype(np.complex128)
    if not np.all(np.isfinite(a)):
        raise DetectionError(f"{name}: {int(np.sum(~np.isfinite(a)))} entries are NaN or infinite; allowed: finite values")
    return a


def _real(name: str, value: object, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` as a finite float >= minimum (> minimum when ``strict``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DetectionError(f"{name}: {_describe(value)} is not a real number; allowed: a finite float "
                             f"{'>' if strict else '>='} {minimum:g}")
    v = float(value)
    if not np.isfinite(v) or v < minimum or (strict and v == minimum):
        raise DetectionError(f"{name}: {v!r} is out of range; allowed: a finite float {'>' if strict else '>='} {minimum:g}")
    return v


def _count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DetectionError(f"{name}: {_describe(value)} is not an integer; allowed: an int >= {minimum}")
    if value < minimum:
        raise DetectionError(f"{name}: {int(value)} is too small; allowed: an int >= {minimum}")
    return int(value)


def _generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise DetectionError(f"rng: {_describe(rng)} is not a numpy Generator; allowed: np.random.default_rng(seed)")
    return rng


def _hermitian(a: np.ndarray) -> np.ndarray:
    return np.conj(a.T)


# ------------------------------------------------------------------------- units and draws


def noise_var_from_snr_db(snr_db: float, symbol_power: float = 1.0) -> float:
    """sigma_n^2 (float) for a mean SNR P / sigma_n^2 of ``snr_db`` with P = ``symbol_power``."""
    snr_db = _real("snr_db", snr_db, minimum=-np.inf)
    power = _real("symbol_power", symbol_power, strict=True)
    return power * 10.0 ** (-snr_db / 10.0)


def to_db(ratio: np.ndarray | float) -> np.ndarray | float:
    """10 log10 of a linear power ratio (float64, same shape; -inf for 0)."""
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(np.asarray(ratio, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


def complex_gaussian(shape: tuple[int, ...], var: float, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. CN(0, ``var``) entries, complex128 of ``shape`` (real and imaginary var / 2 each).

    Draws exactly as ``phy.mimo.rayleigh`` (real part first), scaled by sqrt(var).
    """
    var = _real("var", var)
    rng = _generator(rng)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.sqrt(var / 2.0)


def rayleigh_channel(n_antennas: int, n_users: int, rng: np.random.Generator) -> np.ndarray:
    """H complex128 (M, K) with columns h_k ~ CN(0, I_M) (eq. (5), Rayleigh fading)."""
    m = _count("n_antennas", n_antennas, 1)
    k = _count("n_users", n_users, 1)
    return complex_gaussian((m, k), 1.0, rng)


def uplink(h: np.ndarray, x: np.ndarray, noise_var: float, rng: np.random.Generator) -> np.ndarray:
    """Received block Y = H X + N, complex128 (M, T) (eq. (5)).

    Inputs: h complex (M, K), x complex (K, T) the users' symbols (the paper's Z^T),
    noise_var sigma_n^2 >= 0 per receive antenna, rng a seeded numpy Generator.
    """
    h = _matrix("h", h)
    x = _matrix("x", x, rows=h.shape[1], rows_name="users, h.shape[1]")
    noise_var = _real("noise_var", noise_var)
    return h @ x + complex_gaussian((h.shape[0], x.shape[1]), noise_var, rng)


# ------------------------------------------------------------------- pilots and LS estimate


def orthogonal_pilots(n_users: int, n_pilot_symbols: int | None = None, pilot_power: float = 1.0,
                      kind: str = "dft") -> np.ndarray:
    """Pilot rows P complex128 (K, L_p) with P P^H = E_p I_K (mutually orthogonal rows).

    Inputs: n_users K >= 1; n_pilot_symbols L_p (default: the fewest the kind allows, K for
    "dft", the next power of two for "walsh", K for "time"); pilot_power p, the energy of every
    non-zero pilot symbol; kind:
      "dft"   P[k, t] = sqrt(p) exp(-2j pi k t / L_p), L_p >= K, E_p = p L_p;
      "walsh" rows 0..K-1 of the Sylvester Hadamard matrix times sqrt(p), L_p a power of two
              >= K, E_p = p L_p (L_p = 4: ``phy.mimo_frame.PILOT_CODES``);
      "time"  user k sends sqrt(p) on slot k of K equal slots (the others silent), L_p a
              multiple of K, E_p = p L_p / K (``phy.mimo_frame``'s time-orthogonal training).
    """
    k = _count("n_users", n_users, 1)
    if kind not in PILOT_KINDS:
        raise DetectionError(f"kind: {kind!r} is unknown; allowed: one of {', '.join(PILOT_KINDS)}")
    default = 1 << (k - 1).bit_length() if kind == "walsh" else k
    length = default if n_pilot_symbols is None else _count("n_pilot_symbols", n_pilot_symbols, 1)
    power = _real("pilot_power", pilot_power, strict=True)
    if length < k:
        raise DetectionError(f"n_pilot_symbols: {length} is fewer than n_users = {k}; allowed: >= {k} "
                             "(K orthogonal rows need K symbols)")
    if kind == "dft":
        t = np.arange(length)
        rows = np.exp(-2j * np.pi * np.outer(np.arange(k), t) / length)
    elif kind == "walsh":
        if length & (length - 1):
            raise DetectionError(f"n_pilot_symbols: {length} is not a power of two; allowed for kind 'walsh': "
                                 f"a power of two >= {k}")
        had = np.ones((1, 1))
        while had.shape[0] < length:
            had = np.block([[had, had], [had, -had]])
        rows = had[:k].astype(np.complex128)
    else:
        if length % k:
            raise DetectionError(f"n_pilot_symbols: {length} is not a multiple of n_users = {k}; allowed for kind "
                                 f"'time': a multiple of {k}")
        rows = np.kron(np.eye(k), np.ones((1, length // k))).astype(np.complex128)
    return np.sqrt(power) * rows


def _pilot_gram_inverse(pilots: np.ndarray) -> np.ndarray:
    """(P P^H)^-1 complex128 (K, K) for checked pilots (K, L_p); rejects dependent rows."""
    k, length = pilots.shape
    if length < k:
        raise DetectionError(f"pilots: shape {pilots.shape} has {length} symbols for {k} users; allowed: "
                             f"at least {k} symbols (L_p >= K)")
    gram = pilots @ _hermitian(pilots)
    cond = float(np.linalg.cond(gram))
    if not np.isfinite(cond) or cond > MAX_PILOT_GRAM_COND:
        raise DetectionError(f"pilots: P P^H has condition number {cond:.3g}; allowed: linearly independent rows "
                             f"(condition <= {MAX_PILOT_GRAM_COND:.0e}, e.g. orthogonal_pilots)")
    return np.linalg.inv(gram)


def ls_channel_estimate(y_pilot: np.ndarray, pilots: np.ndarray) -> np.ndarray:
    """LS channel estimate H_hat = Y_p P^H (P P^H)^-1, complex128 (M, K).

    Inputs: y_pilot complex (M, L_p) received during the pilots (Y_p = H P + N_p, eq. (5) with
    X = P); pilots complex (K, L_p), linearly independent rows (L_p >= K). Exact when N_p = 0;
    otherwise unbiased with the error variance of ``ls_error_var``.
    """
    pilots = _matrix("pilots", pilots)
    y_pilot = _matrix("y_pilot", y_pilot, cols=pilots.shape[1], cols_name="pilot symbols, pilots.shape[1]")
    return y_pilot @ _hermitian(pilots) @ _pilot_gram_inverse(pilots)


def ls_error_var(pilots: np.ndarray, noise_var: float) -> np.ndarray:
    """Variance of every LS error entry of user k's column, float64 (K,).

    sigma_n^2 [(P P^H)^-1]_kk, which is sigma_n^2 / E_p for orthogonal pilots of energy E_p
    (pilots complex (K, L_p), noise_var sigma_n^2 >= 0).
    """
    pilots = _matrix("pilots", pilots)
    noise_var = _real("noise_var", noise_var)
    return noise_var * np.real(np.diagonal(_pilot_gram_inverse(pilots))).copy()


def estimate_noise_var(y_pilot: np.ndarray, pilots: np.ndarray, h_hat: np.ndarray | None = None) -> float:
    """Unbiased sigma_n^2 from the LS residual: ||Y_p - H_hat P||_F^2 / (M (L_p - K)) (float).

    Inputs: y_pilot complex (M, L_p), pilots complex (K, L_p) with L_p > K, h_hat complex (M, K)
    (default: ``ls_channel_estimate(y_pilot, pilots)``). The residual lies in the L_p - K
    dimensions orthogonal to the pilot rows, hence the divisor. (The paper takes sigma_n^2 as
    known to the receiver; this is what a receiver without that knowledge uses, as the PHY's
    LTF estimate does for one stream.)
    """
    pilots = _matrix("pilots", pilots)
    y_pilot = _matrix("y_pilot", y_pilot, cols=pilots.shape[1], cols_name="pilot symbols, pilots.shape[1]")
    k, length = pilots.shape
    if length <= k:
        raise DetectionError(f"pilots: shape {pilots.shape} has {length} symbols for {k} users; allowed: more than "
                             f"{k} symbols to estimate the noise (L_p > K)")
    if h_hat is None:
        h_hat = ls_channel_estimate(y_pilot, pilots)
    h_hat = _matrix("h_hat", h_hat, rows=y_pilot.shape[0], cols=k, rows_name="antennas, y_pilot.shape[0]",
                    cols_name="users, pilots.shape[0]")
    resid = y_pilot - h_hat @ pilots
    return float(np.sum(np.abs(resid) ** 2) / (y_pilot.shape[0] * (length - k)))


# --------------------------------------------------------------------------------- SNR


def _snr_eq67(h: np.ndarray, s: np.ndarray, noise_var: float, h_name: str, s_name: str) -> float:
    """(1/K) sum_k ||h_k s_k^T||_F^2 / (||h_k s_k^T||_0 sigma_n^2) for checked h (M, K), s (K, L)."""
    if noise_var <= 0.0:
        raise DetectionError(f"noise_var: {noise_var!r} is out of range; allowed: a finite float > 0 (the SNR divides by it)")
    ratios = []
    for k in range(h.shape[1]):
        nnz = np.count_nonzero(h[:, k]) * np.count_nonzero(s[k])
        if nnz == 0:
            which = f"{s_name} row {k}" if not np.count_nonzero(s[k]) else f"{h_name} column {k}"
            raise DetectionError(f"{which}: all zero, ||h_k s_k^T||_0 = 0; allowed: at least one non-zero entry")
        energy = np.sum(np.abs(h[:, k]) ** 2) * np.sum(np.abs(s[k]) ** 2)  # ||h_k s_k^T||_F^2
        ratios.append(energy / (nnz * noise_var))
    return float(np.mean(ratios))


def channel_snr(h: np.ndarray, x: np.ndarray, noise_var: float) -> float:
    """The channel SNR of eq. (6) (linear, not dB) of a block sent through the true channel.

    SNR = (1/K) sum_k ||h_k x_k^T||_F^2 / (||h_k x_k^T||_0 sigma_n^2): the mean received signal
    energy per non-zero entry over the noise variance, averaged over the users.
    Inputs: h complex (M, K) true channel, x complex (K, T) the users' symbols (the paper's Z^T),
    noise_var sigma_n^2 > 0.
    """
    h = _matrix("h", h)
    x = _matrix("x", x, rows=h.shape[1], rows_name="users, h.shape[1]")
    return _snr_eq67(h, x, _real("noise_var", noise_var), "h", "x")


def estimated_snr(h_hat: np.ndarray, pilots: np.ndarray, noise_var: float) -> float:
    """The pilot-based SNR estimate of eq. (7) (linear, not dB).

    SNR_hat = (1/K) sum_k ||h_hat_k p_k^T||_F^2 / (||h_hat_k p_k^T||_0 sigma_n^2), sigma_n^2 known
    to the receiver (or from ``estimate_noise_var``). Inputs: h_hat complex (M, K) the LS
    estimate, pilots complex (K, L_p), noise_var sigma_n^2 > 0. Its mean exceeds the pilots' SNR
    by ``estimated_snr_bias`` (the LS error's energy).
    """
    h_hat = _matrix("h_hat", h_hat)
    pilots = _matrix("pilots", pilots, rows=h_hat.shape[1], rows_name="users, h_hat.shape[1]")
    return _snr_eq67(h_hat, pilots, _real("noise_var", noise_var), "h_hat", "pilots")


def estimated_snr_bias(pilots: np.ndarray) -> float:
    """E[eq. (7)] - eq. (6) on the pilots, for the LS estimate (linear, float).

    (1/K) sum_k ||p_k||^2 [(P P^H)^-1]_kk / n_k with n_k the non-zero pilot symbols of user k:
    1/n_k averaged over users for orthogonal pilots. Independent of H and sigma_n^2.
    Input: pilots complex (K, L_p).
    """
    pilots = _matrix("pilots", pilots)
    inv_diag = np.real(np.diagonal(_pilot_gram_inverse(pilots)))
    energy = np.sum(np.abs(pilots) ** 2, axis=1)
    nnz = np.count_nonzero(pilots, axis=1)
    return float(np.mean(energy * inv_diag / nnz))


# --------------------------------------------------------------------------- detection


def lmmse_matrix(h: np.ndarray, noise_var: float, symbol_power: float = 1.0) -> np.ndarray:
    """The LMMSE detector of eq. (8), W = H^H (H H^H + s I_M)^-1, complex128 (K, M).

    s = noise_var / symbol_power (the paper's sigma_n^2 for unit-power symbols). Computed as
    (H^H H + s I_K)^-1 H^H (same matrix, K x K solve); s = 0 gives the limit pinv(H) (zero
    forcing). Inputs: h complex (M, K) true or estimated channel, noise_var sigma_n^2 >= 0,
    symbol_power P > 0.
    """
    h = _matrix("h", h)
    s = _real("noise_var", noise_var) / _real("symbol_power", symbol_power, strict=True)
    if s == 0.0:
        return np.linalg.pinv(h)
    gram = _hermitian(h) @ h + s * np.eye(h.shape[1])
    return np.linalg.solve(gram, _hermitian(h))


def lmmse_detect(y: np.ndarray, h: np.ndarray, noise_var: float, symbol_power: float = 1.0,
                 unbiased: bool = False) -> np.ndarray:
    """Detected streams X_hat = W Y, complex128 (K, T) (eq. (8)).

    Inputs: y complex (M, T) received block, h complex (M, K) the channel the detector uses (the
    LS estimate, ``imperfect_csi``, or the true H), noise_var sigma_n^2 >= 0, symbol_power P > 0.
    ``unbiased``: divide row k by [W H]_kk, so each stream passes with unit gain through the
    channel the detector assumes (``phy.mimo.lmmse_filter``'s rows); the default is the paper's
    biased Wiener output.
    """
    h = _matrix("h", h)
    y = _matrix("y", y, rows=h.shape[0], rows_name="antennas, h.shape[0]")
    w = lmmse_matrix(h, noise_var, symbol_power)
    if unbiased:
        gain = np.real(np.sum(w * h.T, axis=1))  # [W H]_kk
        if np.any(gain <= 0.0):
            raise DetectionError(f"h: a stream has LMMSE gain {float(np.min(gain)):.3g}; allowed: a non-zero column "
                                 "for every user (unbiased output needs [W H]_kk > 0)")
        w = w / gain[:, None]
    return w @ y


def lmmse_sinr(h: np.ndarray, noise_var: float, symbol_power: float = 1.0) -> np.ndarray:
    """Post-LMMSE SINR of every stream with perfect CSI (linear), float64 (K,).

    SINR_k = 1 / (s [(H^H H + s I)^-1]_kk) - 1, s = noise_var / symbol_power > 0; what the
    receiver believes when it gives its own (estimated) H. Inputs: h complex (M, K).
    """
    h = _matrix("h", h)
    s = _real("noise_var", noise_var) / _real("symbol_power", symbol_power, strict=True)
    if s <= 0.0:
        raise DetectionError(f"noise_var: {noise_var!r} is out of range; allowed: a finite float > 0 (SINR is "
                             "unbounded without noise)")
    a = np.linalg.inv(_hermitian(h) @ h + s * np.eye(h.shape[1]))
    return 1.0 / (s * np.real(np.diagonal(a))) - 1.0


def _check_detector(w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = _matrix("h", h)
    w = _matrix("w", w, rows=h.shape[1], cols=h.shape[0], rows_name="users, h.shape[1]",
                cols_name="antennas, h.shape[0]")
    return w, h


def detection_mse(w: np.ndarray, h: np.ndarray, noise_var: float, symbol_power: float = 1.0) -> np.ndarray:
    """Per-stream MSE E|[W y]_k - x_k|^2 of a linear detector on the true channel, float64 (K,).

    MSE_k = P ||[W H - I]_k||^2 + sigma_n^2 ||w_k||^2 for i.i.d. symbols of power P. Inputs: w
    complex (K, M) (e.g. ``lmmse_matrix`` of an estimate), h complex (M, K) the TRUE channel,
    noise_var sigma_n^2 >= 0, symbol_power P > 0.
    """
    w, h = _check_detector(w, h)
    noise_var = _real("noise_var", noise_var)
    power = _real("symbol_power", symbol_power, strict=True)
    err = w @ h - np.eye(h.shape[1])
    return power * np.sum(np.abs(err) ** 2, axis=1) + noise_var * np.sum(np.abs(w) ** 2, axis=1)


def post_detection_sinr(w: np.ndarray, h: np.ndarray, noise_var: float, symbol_power: float = 1.0) -> np.ndarray:
    """Per-stream SINR (linear) of a linear detector on the true channel, float64 (K,).

    g = W H; SINR_k = P |g_kk|^2 / (P sum_{j != k} |g_kj|^2 + sigma_n^2 ||w_k||^2). With W the
    LMMSE of the true H this is ``lmmse_sinr``; with W from H_hat it is the SINR of imperfect
    CSI. A fitted-gain measurement (``phy.mimo.data_aided_sinr``) estimates the same quantity.
    Inputs: w complex (K, M), h complex (M, K) the TRUE channel, noise_var >= 0, symbol_power > 0.
    """
    w, h = _check_detector(w, h)
    noise_var = _real("noise_var", noise_var)
    power = _real("symbol_power", symbol_power, strict=True)
    g = np.abs(w @ h) ** 2
    signal = power * np.diagonal(g)
    disturbance = power * (np.sum(g, axis=1) - np.diagonal(g)) + noise_var * np.sum(np.abs(w) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(disturbance > 0, signal / np.maximum(disturbance, 1e-300), np.inf)


# ------------------------------------------------------------------------ imperfect CSI


def imperfect_csi(h: np.ndarray, noise_var: float, rng: np.random.Generator,
                  error_var: float | None = None) -> np.ndarray:
    """H_hat = H + dH, complex128 (M, K), dH i.i.d. CN(0, sigma_e^2) (Sec. IV-A).

    Inputs: h complex (M, K) true channel, noise_var sigma_n^2 >= 0, rng a seeded numpy
    Generator, error_var sigma_e^2 >= 0 (default sigma_n^2, the paper's choice; the LS error of
    orthogonal pilots of energy E_p is sigma_n^2 / E_p, so the default is one unit-energy pilot).
    """
    h = _matrix("h", h)
    noise_var = _real("noise_var", noise_var)
    var = noise_var if error_var is None else _real("error_var", error_var)
    return h + complex_gaussian(h.shape, var, _generator(rng))


# ----------------------------------------------------------------------- the whole receiver


@dataclass(frozen=True)
class UplinkDetection:
    """What the base station computes for one block.

    h_hat complex128 (M, K) LS estimate; noise_var the sigma_n^2 used (given or estimated);
    snr eq. (7) (linear) and snr_db; x_hat complex128 (K, T) eq. (8) with h_hat; sinr float64
    (K,) post-LMMSE SINR the receiver predicts from h_hat (``lmmse_sinr``).
    """

    h_hat: np.ndarray
    noise_var: float
    snr: float
    snr_db: float
    x_hat: np.ndarray
    sinr: np.ndarray


def receive_block(y_pilot: np.ndarray, y_data: np.ndarray, pilots: np.ndarray, noise_var: float | None = None,
                  symbol_power: float = 1.0, unbiased: bool = False) -> UplinkDetection:
    """Pilots then data of one block: LS estimate, eq. (7), eq. (8).

    Inputs: y_pilot complex (M, L_p), y_data complex (M, T), pilots complex (K, L_p); noise_var
    sigma_n^2 > 0 known to the receiver as in the paper (None: ``estimate_noise_var``, which
    needs L_p > K); symbol_power and unbiased as in ``lmmse_detect``.
    """
    h_hat = ls_channel_estimate(y_pilot, pilots)
    if noise_var is None:
        noise_var = estimate_noise_var(y_pilot, pilots, h_hat)
    noise_var = _real("noise_var", noise_var, strict=True)
    y_data = _matrix("y_data", y_data, rows=h_hat.shape[0], rows_name="antennas, y_pilot.shape[0]")
    snr = estimated_snr(h_hat, pilots, noise_var)
    return UplinkDetection(h_hat=h_hat, noise_var=noise_var, snr=snr, snr_db=float(to_db(snr)),
                           x_hat=lmmse_detect(y_data, h_hat, noise_var, symbol_power, unbiased),
                           sinr=lmmse_sinr(h_hat, noise_var, symbol_power))
