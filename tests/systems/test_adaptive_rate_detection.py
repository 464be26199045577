"""The adaptive-rate MU-MIMO uplink's base-station maths (testbed/systems/adaptive_rate/detection.py)
against the paper's system model (../shared/seeds/004_04072a72b64c0519.txt, eqs. (5)-(8) and the
imperfect CSI of Sec. IV-A), against independent implementations written here in other forms
(eq. (8) literally with an M x M inverse, ridge least squares, MRC and zero-forcing closed forms),
against the LS theory, and against testbed/phy (mimo.lmmse_filter / lmmse_detect / lmmse_sinr /
data_aided_sinr / rayleigh, mimo_estimate.mrc, estimate.ltf_channel, mimo_frame.PILOT_CODES)."""
import numpy as np
import pytest

from testbed import errors
from testbed.phy import mimo as phy_mimo
from testbed.phy.estimate import ltf_channel
from testbed.phy.mimo_estimate import mrc
from testbed.phy.mimo_frame import PILOT_CODES
from testbed.phy.ofdm import OfdmParams
from testbed.phy.preamble import Preamble
from testbed.systems.adaptive_rate import detection as det

# (M antennas, K users, seed); M >= K, K = 2..4
SHAPES = [(2, 2, 1), (3, 2, 2), (4, 3, 3), (4, 4, 4), (6, 4, 5), (8, 3, 6)]
TOL = 1e-5


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def qpsk(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-power QPSK symbols, complex128 of ``shape``."""
    return ((2 * rng.integers(0, 2, shape) - 1) + 1j * (2 * rng.integers(0, 2, shape) - 1)) / np.sqrt(2.0)


# ---------------------------------------------------------------- independent LMMSE forms


def lmmse_eq8_literal(h: np.ndarray, s: float) -> np.ndarray:
    """Eq. (8) as printed: H^H (H H^H + s I_M)^-1 with an explicit M x M inverse."""
    m = h.shape[0]
    return h.conj().T @ np.linalg.inv(h @ h.conj().T + s * np.eye(m))


def lmmse_ridge(y: np.ndarray, h: np.ndarray, s: float) -> np.ndarray:
    """argmin_x ||y - H x||^2 + s ||x||^2 per column, by lstsq on the stacked [H; sqrt(s) I]."""
    k = h.shape[1]
    a = np.vstack([h, np.sqrt(s) * np.eye(k)])
    b = np.vstack([y, np.zeros((k, y.shape[1]))])
    return np.linalg.lstsq(a, b, rcond=None)[0]


@pytest.mark.parametrize("m,k,seed", SHAPES)
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_lmmse_matches_eq8_literal_and_ridge_least_squares(m, k, seed, snr_db):
    rng = np.random.default_rng([seed, int(snr_db)])
    h = det.rayleigh_channel(m, k, rng)
    s = det.noise_var_from_snr_db(snr_db)
    x = qpsk((k, 64), rng)
    y = det.uplink(h, x, s, rng)
    w = det.lmmse_matrix(h, s)
    assert w.shape == (k, m) and w.dtype == np.complex128
    assert rel_err(w, lmmse_eq8_literal(h, s)) < TOL
    x_hat = det.lmmse_detect(y, h, s)
    assert x_hat.shape == (k, 64) and x_hat.dtype == np.complex128
    assert rel_err(x_hat, lmmse_ridge(y, h, s)) < TOL
    # symbol power P: the regulariser is sigma_n^2 / P
    assert rel_err(det.lmmse_matrix(h, s, symbol_power=4.0), lmmse_eq8_literal(h, s / 4.0)) < TOL


@pytest.mark.parametrize("m,seed", [(1, 11), (2, 12), (4, 13), (8, 14)])
def test_lmmse_single_user_is_scaled_mrc(m, seed):
    rng = np.random.default_rng(seed)
    h = det.rayleigh_channel(m, 1, rng)
    s = 0.3
    y = det.uplink(h, qpsk((1, 32), rng), s, rng)
    g = float(np.sum(np.abs(h) ** 2))
    assert rel_err(det.lmmse_matrix(h, s), h.conj().T / (g + s)) < TOL
    # testbed/phy's MRC (unbiased, h^H y / ||h||^2) scaled by ||h||^2 / (||h||^2 + s)
    x_mrc, var_mrc = mrc(y[:, :, None], h, s)
    assert rel_err(det.lmmse_detect(y, h, s), x_mrc[:, 0][None] * g / (g + s)) < TOL
    assert rel_err(det.lmmse_detect(y, h, s, unbiased=True), x_mrc[:, 0][None]) < TOL
    assert rel_err(1.0 / det.lmmse_sinr(h, s), var_mrc) < TOL  # SINR = ||h||^2 / s


@pytest.mark.parametrize("m,k,seed", SHAPES)
def test_lmmse_tends_to_zero_forcing(m, k, seed):
    h = det.rayleigh_channel(m, k, np.random.default_rng(seed))
    zf = np.linalg.pinv(h)
    assert rel_err(det.lmmse_matrix(h, 0.0), zf) < 1e-12
    errs = [rel_err(det.lmmse_matrix(h, s), zf) for s in (1e-2, 1e-4, 1e-6, 1e-9)]
    assert errs[-1] < TOL
    assert all(a > b for a, b in zip(errs, errs[1:]))  # converges monotonically
    assert np.allclose(zf @ h, np.eye(k), atol=1e-10)


# ------------------------------------------------------------------------ LS estimation


def random_pilots(k: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Non-orthogonal (but independent) pilot rows."""
    return det.complex_gaussian((k, length), 1.0, rng)


@pytest.mark.parametrize("kind,length", [("dft", None), ("dft", 7), ("walsh", None), ("walsh", 8), ("time", None),
                                         ("time", 12), ("random", 9)])
@pytest.mark.parametrize("m,k,seed", SHAPES)
def test_ls_estimate_is_exact_without_noise(kind, length, m, k, seed):
    rng = np.random.default_rng(seed)
    h = det.rayleigh_channel(m, k, rng)
    p = random_pilots(k, length, rng) if kind == "random" else det.orthogonal_pilots(k, length, 2.0, kind)
    if kind != "random":
        e_p = 2.0 * p.shape[1] / (k if kind == "time" else 1)
        assert np.allclose(p @ p.conj().T, e_p * np.eye(k), atol=1e-12)  # orthogonal rows of energy E_p
    y = det.uplink(h, p, 0.0, rng)
    assert rel_err(det.ls_channel_estimate(y, p), h) < 1e-12


def test_walsh_pilots_are_phy_pilot_codes():
    assert np.array_equal(det.orthogonal_pilots(4, 4, kind="walsh").real, PILOT_CODES.astype(np.float64))


@pytest.mark.parametrize("kind,length", [("dft", 6), ("time", 6), ("walsh", 4)])
def test_ls_estimate_is_unbiased_with_the_theoretical_error_variance(kind, length):
    """1500 seeded trials, M = 4, K = 3: 18000 error samples. The mean error of every entry stays
    within 4.5 standard errors of 0; the pooled error variance within 5 % (4.5 standard errors)
    of sigma_n^2 / E_p = sigma_n^2 [(P P^H)^-1]_kk; real and imaginary parts share it equally."""
    m, k, trials, noise_var, power = 4, 3, 1500, 0.5, 1.0
    rng = np.random.default_rng(2024)
    h = det.rayleigh_channel(m, k, rng)
    p = det.orthogonal_pilots(k, length, power, kind)
    e_p = power * length / (k if kind == "time" else 1)
    theory = det.ls_error_var(p, noise_var)
    assert np.allclose(theory, noise_var / e_p, rtol=1e-12)
    err = np.stack([det.ls_channel_estimate(det.uplink(h, p, noise_var, rng), p) - h for _ in range(trials)])
    se = np.sqrt(theory / trials)
    assert np.all(np.abs(err.mean(axis=0)) < 4.5 * se[None, :])
    measured = np.mean(np.abs(err) ** 2, axis=(0, 1))  # per user column
    assert np.all(np.abs(measured / theory - 1.0) < 0.10)
    pooled = float(np.mean(np.abs(err) ** 2 / theory[None, None, :]))
    assert abs(pooled - 1.0) < 0.05
    assert abs(float(np.mean(err.real ** 2 / theory)) - 0.5) < 0.03
    assert abs(float(np.mean(err.imag ** 2 / theory)) - 0.5) < 0.03


def test_noise_variance_from_the_ls_residual_is_unbiased():
    m, k, length, noise_var = 4, 3, 8, 0.2
    rng = np.random.default_rng(7)
    h = det.rayleigh_channel(m, k, rng)
    p = det.orthogonal_pilots(k, length)
    est = [det.estimate_noise_var(det.uplink(h, p, noise_var, rng), p) for _ in range(800)]
    # each estimate has 2 M (L_p - K) = 40 real degrees of freedom: relative std 0.22 / sqrt(800)
    assert abs(np.mean(est) / noise_var - 1.0) < 0.03


def test_ls_and_noise_estimate_agree_with_phy_ltf_channel():
    """One stream, one antenna per carrier: ``phy.estimate.ltf_channel`` with a delay window of all
    64 taps (its projection is then the identity) is the LS estimate of the +-1 LTF pilots
    repeated n_rep times, and its noise variance the residual estimate averaged over carriers."""
    params = OfdmParams()
    ltf = Preamble().ltf_freq.astype(np.float64)
    rng = np.random.default_rng(99)
    n_rep, no = 4, 0.3
    h = det.complex_gaussian((52,), 1.0, rng)
    grid = det.complex_gaussian((n_rep, params.fft_len), no, rng)
    grid[:, params.bins(params.used)] += (h * ltf)[None, :]
    h_phy, no_phy = ltf_channel(grid.astype(np.complex64), ltf.astype(np.float32), params, tuple(range(64)))
    ours, noise = [], []
    for f in range(52):
        y = grid[:, params.bins(params.used)[f]][None, :]  # (M = 1, L_p = n_rep)
        p = np.full((1, n_rep), ltf[f], dtype=np.complex128)
        ours.append(det.ls_channel_estimate(y, p)[0, 0])
        noise.append(det.estimate_noise_var(y, p))
    assert rel_err(h_phy, np.array(ours)) < TOL
    assert abs(no_phy / np.mean(noise) - 1.0) < TOL


# ------------------------------------------------------------------------------ SNR eq. (7)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_snr_estimate_eq7_is_within_0p2_db_of_the_true_snr(snr_db):
    """M = 4, K = 3, 4096 DFT pilot symbols per user, 10 channel draws: eq. (7) on the LS estimate
    against eq. (6) on the true H and 4096 unit-power QPSK data symbols per user."""
    m, k, n = 4, 3, 4096
    noise_var = det.noise_var_from_snr_db(snr_db)
    p = det.orthogonal_pilots(k, n)
    errors = []
    for draw in range(10):
        rng = np.random.default_rng([31, draw, int(snr_db)])
        h = det.rayleigh_channel(m, k, rng)
        h_hat = det.ls_channel_estimate(det.uplink(h, p, noise_var, rng), p)
        true = det.channel_snr(h, qpsk((k, n), rng), noise_var)
        errors.append(det.to_db(det.estimated_snr(h_hat, p, noise_var)) - det.to_db(true))
    assert max(abs(e) for e in errors) < 0.2
    assert abs(np.mean(errors)) < 0.05


def test_snr_estimate_bias_is_the_ls_error_energy():
    """E[eq. (7)] - eq. (6)-on-the-pilots = 1 / n_k for orthogonal pilots: 0.125 for L_p = 8,
    measured over 2000 seeded trials (standard error about 0.006) within 0.02."""
    m, k, length, noise_var = 2, 2, 8, 1.0
    rng = np.random.default_rng(5)
    h = det.rayleigh_channel(m, k, rng)
    p = det.orthogonal_pilots(k, length)
    assert det.estimated_snr_bias(p) == pytest.approx(1.0 / length)
    assert det.estimated_snr_bias(det.orthogonal_pilots(k, length, kind="time")) == pytest.approx(k / length)
    true = det.channel_snr(h, p, noise_var)
    est = [det.estimated_snr(det.ls_channel_estimate(det.uplink(h, p, noise_var, rng), p), p, noise_var)
           for _ in range(2000)]
    assert abs(np.mean(est) - true - 1.0 / length) < 0.02


def test_snr_l0_norm_ignores_silent_pilot_slots():
    """||.||_0 counts non-zero entries: time-orthogonal pilots of the same per-symbol power give
    the SNR of DFT pilots (dividing by all M L_p entries would read K times too low)."""
    rng = np.random.default_rng(3)
    h = det.rayleigh_channel(4, 3, rng)
    snr = [det.channel_snr(h, det.orthogonal_pilots(3, n, 2.0, kind), 0.5) for kind, n in (("dft", 12), ("time", 12),
                                                                                             ("walsh", 16))]
    assert snr[1] == pytest.approx(snr[0], rel=1e-12) and snr[2] == pytest.approx(snr[0], rel=1e-12)
    # and it is the mean received power per antenna and symbol over sigma_n^2
    assert snr[0] == pytest.approx(2.0 * np.mean(np.abs(h) ** 2) / 0.5, rel=1e-12)
    x = det.orthogonal_pilots(3, 12, 2.0, "time")
    assert det.estimated_snr(h, x, 0.5) == pytest.approx(snr[0], rel=1e-12)


# --------------------------------------------------------------------- testbed/phy agreement


@pytest.mark.parametrize("m,k,seed", SHAPES)
def test_lmmse_agrees_with_phy_mimo(m, k, seed):
    rng = np.random.default_rng(100 + seed)
    h = det.rayleigh_channel(m, k, rng)
    s = 0.1
    y = det.uplink(h, qpsk((k, 50), rng), s, rng)
    w_phy, var_phy = phy_mimo.lmmse_filter(h, s)
    w_ours = det.lmmse_matrix(h, s)
    w_unb = w_ours / np.real(np.diagonal(w_ours @ h))[:, None]
    assert rel_err(w_unb, w_phy) < TOL
    assert rel_err(det.lmmse_detect(y, h, s, unbiased=True), phy_mimo.lmmse_detect(y.T, h, s)[0].T) < TOL
    sinr_phy = phy_mimo.lmmse_sinr(h, s)
    assert rel_err(det.lmmse_sinr(h, s), sinr_phy) < 1e-10
    assert rel_err(1.0 / det.lmmse_sinr(h, s), var_phy) < TOL
    assert rel_err(det.post_detection_sinr(w_ours, h, s), sinr_phy) < 1e-10
    assert rel_err(det.post_detection_sinr(w_unb, h, s), sinr_phy) < 1e-10  # SINR ignores row scaling


def test_rayleigh_draws_match_phy():
    a = det.rayleigh_channel(4, 3, np.random.default_rng(8))
    b = phy_mimo.rayleigh((4, 3), np.random.default_rng(8))
    assert rel_err(a, b) < 1e-15


def test_post_detection_sinr_matches_measured_sinr_with_imperfect_csi():
    """W from H_hat = H + dH on the true H: the formula against ``phy.mimo.data_aided_sinr`` over
    40000 QPSK symbols per stream (relative spread about 1 %) within 5 %."""
    rng = np.random.default_rng(77)
    m, k, n, s = 4, 3, 40000, 0.05
    h = det.rayleigh_channel(m, k, rng)
    w = det.lmmse_matrix(det.imperfect_csi(h, s, rng), s)
    x = qpsk((k, n), rng)
    x_hat = w @ det.uplink(h, x, s, rng)
    measured = phy_mimo.data_aided_sinr(x_hat, x)
    assert np.all(np.abs(measured / det.post_detection_sinr(w, h, s) - 1.0) < 0.05)
    mse = np.mean(np.abs(x_hat - x) ** 2, axis=1)
    assert np.all(np.abs(mse / det.detection_mse(w, h, s) - 1.0) < 0.05)


# ---------------------------------------------------------------------------- imperfect CSI


def test_imperfect_csi_error_has_variance_sigma_e2():
    """2000 seeded draws of an 8 x 4 H_hat: 64000 error samples, relative standard error 0.4 %."""
    m, k, noise_var = 8, 4, 0.25
    h = det.rayleigh_channel(m, k, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    for error_var, expected in ((None, noise_var), (0.04, 0.04), (1.0, 1.0)):
        d = np.stack([det.imperfect_csi(h, noise_var, rng, error_var) - h for _ in range(2000)])
        assert abs(np.mean(np.abs(d) ** 2) / expected - 1.0) < 0.02
        assert abs(np.mean(d.real ** 2) / expected - 0.5) < 0.015
        assert abs(np.mean(d.imag ** 2) / expected - 0.5) < 0.015
        assert abs(np.mean(d)) / np.sqrt(expected) < 0.02  # zero mean
        assert abs(np.mean(d ** 2)) / expected < 0.02  # circular: E[dH^2] = 0
    assert np.array_equal(det.imperfect_csi(h, 0.1, np.random.default_rng(5)),
                          det.imperfect_csi(h, 0.1, np.random.default_rng(5)))
    assert np.array_equal(det.imperfect_csi(h, 0.1, np.random.default_rng(5), error_var=0.0), h)


def test_imperfect_csi_raises_the_mse_monotonically():
    """M = 4, K = 3, sigma_n^2 = 0.1, 300 channel draws, common random numbers (the same seed per
    draw scales one dH): detection with H_hat has a larger MSE than with H on every draw, and the
    mean MSE grows with sigma_e^2."""
    m, k, noise_var, draws = 4, 3, 0.1, 300
    error_vars = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
    mse = np.zeros((len(error_vars), draws))
    for d in range(draws):
        h = det.rayleigh_channel(m, k, np.random.default_rng([55, d]))
        for i, ev in enumerate(error_vars):
            h_hat = det.imperfect_csi(h, noise_var, np.random.default_rng([56, d]), error_var=ev)
            mse[i, d] = np.mean(det.detection_mse(det.lmmse_matrix(h_hat, noise_var), h, noise_var))
        # perfect CSI: the closed form MSE_k = s A_kk = 1 / (1 + SINR_k)
        assert np.allclose(det.detection_mse(det.lmmse_matrix(h, noise_var), h, noise_var),
                           1.0 / (1.0 + det.lmmse_sinr(h, noise_var)), rtol=1e-10)
    assert np.all(mse[1:] > mse[0][None, :])
    means = mse.mean(axis=1)
    assert np.all(np.diff(means) > 0), means
    # and the paper's default sigma_e^2 = sigma_n^2 costs SINR on average
    sinr_perfect, sinr_imperfect = [], []
    for d in range(draws):
        rng = np.random.default_rng([57, d])
        h = det.rayleigh_channel(m, k, rng)
        sinr_perfect.append(det.lmmse_sinr(h, noise_var))
        sinr_imperfect.append(det.post_detection_sinr(det.lmmse_matrix(det.imperfect_csi(h, noise_var, rng), noise_var),
                                                      h, noise_var))
    assert np.mean(det.to_db(np.array(sinr_imperfect))) < np.mean(det.to_db(np.array(sinr_perfect))) - 0.3


def test_receive_block_chains_ls_eq7_and_eq8():
    rng = np.random.default_rng(12)
    m, k, noise_var = 4, 3, 0.01
    h = det.rayleigh_channel(m, k, rng)
    p = det.orthogonal_pilots(k, 64)
    x = qpsk((k, 200), rng)
    y_p, y_d = det.uplink(h, p, noise_var, rng), det.uplink(h, x, noise_var, rng)
    known = det.receive_block(y_p, y_d, p, noise_var)
    h_hat = det.ls_channel_estimate(y_p, p)
    assert np.array_equal(known.h_hat, h_hat)
    assert np.array_equal(known.x_hat, det.lmmse_detect(y_d, h_hat, noise_var))
    assert known.snr == det.estimated_snr(h_hat, p, noise_var)
    assert known.snr_db == pytest.approx(10 * np.log10(known.snr))
    blind = det.receive_block(y_p, y_d, p, unbiased=True)
    assert abs(blind.noise_var / noise_var - 1.0) < 0.15  # 488 real degrees of freedom: 3.3 standard errors
    # 20 dB, M = 4, K = 3: every QPSK symbol decided right
    assert np.array_equal(np.sign(blind.x_hat.real), np.sign(x.real))
    assert np.array_equal(np.sign(blind.x_hat.imag), np.sign(x.imag))


# ------------------------------------------------------------------------------ bad inputs

H = np.ones((4, 2)) + 1j * np.eye(4, 2)
P2 = np.eye(2, 4)
GEN = np.random.default_rng(0)

BAD = [
    ("h 1-D", lambda: det.lmmse_matrix(np.ones(4), 0.1), r"h: shape \(4,\) has 1 dimension\(s\); allowed: exactly 2"),
    ("h 3-D", lambda: det.lmmse_detect(np.ones((4, 3)), np.ones((2, 4, 2)), 0.1), r"h: shape \(2, 4, 2\).*exactly 2"),
    ("h NaN", lambda: det.lmmse_matrix(np.full((4, 2), np.nan), 0.1), r"h: 8 entries are NaN or infinite"),
    ("h strings", lambda: det.lmmse_matrix([["a", "b"]], 0.1), r"h: dtype <U1 is not numeric"),
    ("h bool", lambda: det.lmmse_matrix(np.ones((2, 2), bool), 0.1), r"h: dtype bool is not numeric"),
    ("h empty", lambda: det.lmmse_matrix(np.ones((0, 2)), 0.1), r"h: shape \(0, 2\) is empty"),
    ("noise < 0", lambda: det.lmmse_matrix(H, -0.1), r"noise_var: -0.1 is out of range; allowed: a finite float >= 0"),
    ("noise NaN", lambda: det.lmmse_detect(np.ones((4, 3)), H, float("nan")), r"noise_var: nan is out of range"),
    ("noise str", lambda: det.lmmse_matrix(H, "0.1"), r"noise_var: '0.1' is not a real number"),
    ("power 0", lambda: det.lmmse_matrix(H, 0.1, symbol_power=0.0), r"symbol_power: 0.0 is out of range; allowed: a finite float > 0"),
    ("y rows", lambda: det.lmmse_detect(np.ones((3, 5)), H, 0.1), r"y: shape \(3, 5\) has 3 rows; allowed: 4 \(antennas, h.shape\[0\]\)"),
    ("sinr no noise", lambda: det.lmmse_sinr(H, 0.0), r"noise_var: 0.0 is out of range; allowed: a finite float > 0"),
    ("w shape", lambda: det.post_detection_sinr(np.ones((4, 2)), H, 0.1), r"w: shape \(4, 2\) has 4 rows; allowed: 2 \(users"),
    ("mse w cols", lambda: det.detection_mse(np.ones((2, 3)), H, 0.1), r"w: shape \(2, 3\) has 3 columns; allowed: 4"),
    ("n_users 0", lambda: det.orthogonal_pilots(0), r"n_users: 0 is too small; allowed: an int >= 1"),
    ("n_users float", lambda: det.orthogonal_pilots(2.0), r"n_users: 2.0 is not an integer"),
    ("too few pilots", lambda: det.orthogonal_pilots(3, 2), r"n_pilot_symbols: 2 is fewer than n_users = 3; allowed: >= 3"),
    ("kind", lambda: det.orthogonal_pilots(2, kind="zadoff"), r"kind: 'zadoff' is unknown; allowed: one of dft, walsh, time"),
    ("walsh length", lambda: det.orthogonal_pilots(2, 6, kind="walsh"), r"n_pilot_symbols: 6 is not a power of two"),
    ("time length", lambda: det.orthogonal_pilots(3, 7, kind="time"), r"n_pilot_symbols: 7 is not a multiple of n_users = 3"),
    ("pilot power", lambda: det.orthogonal_pilots(2, pilot_power=-1.0), r"pilot_power: -1.0 is out of range; allowed: a finite float > 0"),
    ("pilots short", lambda: det.ls_channel_estimate(np.ones((4, 1)), np.ones((2, 1))), r"pilots: shape \(2, 1\) has 1 symbols for 2 users; allowed: at least 2"),
    ("pilots dependent", lambda: det.ls_channel_estimate(np.ones((4, 4)), np.ones((2, 4))), r"pilots: P P\^H has condition number .*linearly independent rows"),
    ("y_pilot length", lambda: det.ls_channel_estimate(np.ones((4, 3)), P2), r"y_pilot: shape \(4, 3\) has 3 columns; allowed: 4 \(pilot symbols"),
    ("noise est L_p = K", lambda: det.estimate_noise_var(np.ones((4, 2)), np.eye(2)), r"pilots: shape \(2, 2\) has 2 symbols for 2 users; allowed: more than 2"),
    ("snr noise 0", lambda: det.estimated_snr(H, P2, 0.0), r"noise_var: 0.0 is out of range; allowed: a finite float > 0"),
    ("snr pilots rows", lambda: det.estimated_snr(H, np.ones((3, 4)), 0.1), r"pilots: shape \(3, 4\) has 3 rows; allowed: 2 \(users"),
    ("snr zero pilot", lambda: det.estimated_snr(H, np.array([[1, 0], [0, 0]]), 0.1), r"pilots row 1: all zero"),
    ("snr zero channel", lambda: det.channel_snr(np.zeros((4, 2)), P2, 0.1), r"h column 0: all zero"),
    ("x rows", lambda: det.uplink(H, np.ones((3, 5)), 0.1, GEN), r"x: shape \(3, 5\) has 3 rows; allowed: 2 \(users"),
    ("rng", lambda: det.imperfect_csi(H, 0.1, 42), r"rng: 42 is not a numpy Generator"),
    ("legacy rng", lambda: det.uplink(H, P2, 0.1, np.random.RandomState(0)), r"rng: RandomState.* is not a numpy Generator"),
    ("error var", lambda: det.imperfect_csi(H, 0.1, GEN, error_var=-1.0), r"error_var: -1.0 is out of range; allowed: a finite float >= 0"),
    ("snr_db inf", lambda: det.noise_var_from_snr_db(float("inf")), r"snr_db: inf is out of range"),
    ("antennas", lambda: det.rayleigh_channel(0, 2, GEN), r"n_antennas: 0 is too small"),
    ("y_data rows", lambda: det.receive_block(np.ones((4, 4)) + P2[[0, 1, 0, 1]], np.ones((3, 2)), P2, 0.1),
     r"y_data: shape \(3, 2\) has 3 rows; allowed: 4"),
]


@pytest.mark.parametrize("name,call,match", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_raise_value_errors_naming_field_value_and_allowed(name, call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert isinstance(info.value, errors.TestbedError)  # the project's error hierarchy too
