"""MU-ASCC optimiser (testbed/optim, ../shared/seeds/001_ef80d34948c98c54.txt): brute-force gap,
uplink-downlink duality, MMSE beams, logistic fits, ZF and water-filling, finite-blocklength BER,
practical-code BER curves and input checks."""
import functools
import itertools
import time

import numpy as np
import pytest
from scipy.optimize import minimize

from testbed.optim import beamforming as bf
from testbed.optim import fbl
from testbed.optim import mu_ascc as ma

RATES_BPP = np.array([0.05, 0.1, 0.15, 0.2, 0.3])
BUDGET_CUPP = 0.1  # channel uses per pixel: code rates 0.5 .. 3 bits per channel use


def data_user() -> ma.RateDistortionModel:
    """1 - MS-SSIM per codec: shaped like the paper's Fig. 4(a) (robust at low rate)."""
    return ma.RateDistortionModel(RATES_BPP, [0.14, 0.09, 0.065, 0.05, 0.035], [0.5, 0.55, 0.575, 0.59, 0.605],
                                  [2.5, 2.7, 2.9, 3.1, 3.4], [-4.6, -4.9, -5.2, -5.5, -5.9])


def semantic_user() -> ma.RateDistortionModel:
    """Classification error per codec: shaped like the paper's Fig. 4(c)."""
    return ma.RateDistortionModel(RATES_BPP, [0.55, 0.38, 0.29, 0.24, 0.2], [0.44, 0.61, 0.70, 0.75, 0.79],
                                  [2.0, 2.2, 2.4, 2.6, 2.9], [-4.4, -4.7, -5.0, -5.3, -5.6])


def random_channels(seed: int, users: int = 2, antennas: int = 2, gain: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sqrt(gain / 2) * (rng.normal(size=(users, antennas)) + 1j * rng.normal(size=(users, antennas)))


def two_user_problem(seed: int, power_w: float, ber_models=None) -> ma.MuAsccProblem:
    bers = ber_models or (fbl.FiniteBlocklengthBer(256),) * 2
    return ma.MuAsccProblem(random_channels(seed), power_w, np.array([0.7, 0.3]), np.full(2, BUDGET_CUPP),
                            (data_user(), semantic_user()), bers)


def brute_force(problem: ma.MuAsccProblem, splits: int = 201) -> float:
    """Min of (15) over every mix of codec rates (within eq. (19)) and uplink splits q = (s, 1-s) P_max,
    s = 0, 1/(splits-1), .., 1, each with its MMSE receive beams (43) and SINRs (33) (= the downlink's by
    UDD, every downlink SINR pair on the total-power Pareto boundary is one of these)."""
    sinr = []
    for s in np.linspace(0.0, 1.0, splits):
        q = np.array([s, 1 - s]) * problem.power_w
        sinr.append(bf.uplink_sinr(bf.beam_gains(problem.channels, bf.mmse_beams(problem.channels, q)), q))
    sinr = np.array(sinr)
    per_user = [{r: problem.weights[i] * problem.user_distortion(i, sinr[:, i], r)
                 for r in problem.distortion_models[i].rates_bpp if r <= problem.rate_bounds(i)[1]}
                for i in range(problem.users)]
    return min(float(np.min(per_user[0][r0] + per_user[1][r1])) for r0, r1 in itertools.product(*per_user))


def assert_feasible(problem: ma.MuAsccProblem, solution: ma.Solution) -> None:
    assert solution.powers_w.sum() <= problem.power_w * (1 + 1e-9) and np.all(solution.powers_w >= 0)
    np.testing.assert_allclose(np.linalg.norm(solution.beams, axis=0), 1.0, rtol=1e-12)
    for i, rate in enumerate(solution.source_rates_bpp):
        assert rate in problem.distortion_models[i].rates_bpp and rate <= problem.rate_bounds(i)[1]
    again = ma.evaluate(problem, solution.source_rates_bpp, solution.beams, solution.powers_w)
    assert again.weighted_distortion == pytest.approx(solution.weighted_distortion, rel=1e-12)


# --- 1. optimiser vs brute force -------------------------------------------------------------------

CASES = {"paper-1W": lambda: ma.paper_instance(power_w=1.0), "paper-3W": lambda: ma.paper_instance(power_w=3.0),
         "seed0-1W": lambda: two_user_problem(0, 1.0), "seed1-10W": lambda: two_user_problem(1, 10.0)}


@functools.lru_cache(maxsize=None)
def solved(case: str) -> tuple[ma.MuAsccProblem, ma.Solution]:
    problem = CASES[case]()
    return problem, ma.optimise(problem)


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimiser_within_one_percent_of_brute_force(case):
    problem, solution = solved(case)
    best = brute_force(problem)
    assert_feasible(problem, solution)
    assert solution.weighted_distortion <= best * 1.01, (case, solution.weighted_distortion, best)
    assert solution.weighted_distortion <= ma.zf_wf_baseline(problem).weighted_distortion * (1 + 1e-9)


def test_optimiser_beats_zf_wf_on_the_paper_example_at_1w():
    problem, solution = solved("paper-1W")
    assert solution.weighted_distortion < 0.9 * ma.zf_wf_baseline(problem).weighted_distortion


def test_paper_pipeline_on_the_paper_example_at_3w_matches_brute_force():
    """One equal start and round-down (Sec. IV-D), as printed, on Sec. V-A's example at 3 W."""
    problem = ma.paper_instance()
    solution = ma.optimise(problem, "round_down", starts=[np.full(2, problem.power_w / 2)])
    assert_feasible(problem, solution)
    assert solution.weighted_distortion <= brute_force(problem) * 1.01
    again = ma.optimise(problem, "round_down", starts=[np.full(2, problem.power_w / 2)])
    assert again.weighted_distortion == solution.weighted_distortion  # deterministic


def test_practical_code_curves_replace_the_finite_blocklength_ber():
    """Remark 3.2: measured BER(SINR dB) curves at fixed code rates (QPSK-1/2-like, 16QAM-1/2-like)."""
    waterfall = np.array([0.2, 0.1, 0.04, 5e-3, 5e-4, 2e-5, 5e-7, 1e-8, 1e-12])
    qpsk = fbl.MeasuredBer(fbl.interpolated_ber(np.array([-2, 0, 1, 2, 2.5, 3, 3.5, 4, 6.0]), waterfall), 1.0)
    qam16 = fbl.MeasuredBer(fbl.interpolated_ber(np.array([2, 4, 5, 6, 6.5, 7, 7.5, 8, 10.0]), waterfall), 2.0)
    problem = ma.MuAsccProblem(random_channels(0), 10.0, np.array([0.7, 0.3]), np.array([0.15, 0.15]),
                               (data_user(), semantic_user()), (qam16, qpsk))
    solution = ma.optimise(problem)
    assert_feasible(problem, solution)
    np.testing.assert_array_equal(solution.code_rates_bpcu, [2.0, 1.0])
    assert solution.source_rates_bpp[1] <= 0.15  # eq. (19): T R_c = 0.15 bpp for the QPSK user
    assert solution.weighted_distortion <= brute_force(problem) * 1.01


def test_algorithm_1_finds_the_grid_minimum_of_eq_26():
    problem = two_user_problem(0, 1.0)
    for user, sinr in ((0, 3.0), (1, 1.5), (0, 12.0)):
        rate, value = ma.optimise_source_rate(problem, user, sinr)
        grid = np.linspace(RATES_BPP[0], RATES_BPP[-1], 2001)
        dense = np.array([float(problem.user_distortion(user, sinr, r)) for r in grid])
        assert value == pytest.approx(float(problem.user_distortion(user, sinr, rate)), rel=1e-12)
        assert value <= dense.min() * (1 + 1e-6), (user, sinr, rate, grid[dense.argmin()])


@pytest.mark.parametrize("codecs", [(0, 1), (1, 1)])
def test_sca_power_allocation_reaches_the_best_split_for_fixed_beams(codecs):
    """Algorithm 2 at fixed MMSE beams and codec rates (paper example, 1 W) vs a 2001-point grid of
    uplink splits, from the equal split where the SU's BER is on its waterfall (1e-6.7). From a start
    where a user's BER is saturated (Q = 1) the linearised log Q of (53)-(54) is flat and Algorithm 2
    stays put; `optimise`'s several starts are for that."""
    problem = ma.paper_instance(power_w=1.0)
    rates = np.array([problem.distortion_models[i].rates_bpp[c] for i, c in enumerate(codecs)])
    start = np.array([0.5, 0.5])
    gains = bf.beam_gains(problem.channels, bf.mmse_beams(problem.channels, start))
    q, _ = ma._sca((256, 256)).solve(ma._rate_curve(problem, rates), gains, problem.power_w, start)
    value = problem.weighted_distortion(bf.uplink_sinr(gains, q), rates)
    grid = [problem.weighted_distortion(bf.uplink_sinr(gains, np.array([s, 1 - s])), rates)
            for s in np.linspace(0, 1, 2001)]
    assert q.sum() <= problem.power_w * (1 + 1e-9)
    assert value < problem.weighted_distortion(bf.uplink_sinr(gains, start), rates)
    assert value <= min(grid) * 1.001, (value, min(grid))


# --- 2. uplink-downlink duality --------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_duality_reproduces_the_sinrs_in_both_directions(seed):
    rng = np.random.default_rng(100 + seed)
    users, antennas = 3, 4
    h = random_channels(seed, users, antennas)
    beams = rng.normal(size=(antennas, users)) + 1j * rng.normal(size=(antennas, users))
    gains = bf.beam_gains(h, beams / np.linalg.norm(beams, axis=0))
    q = rng.uniform(0.1, 2.0, users)
    uplink = bf.uplink_sinr(gains, q)
    p = bf.downlink_powers_for_sinr(gains, uplink)  # eq. (34)
    np.testing.assert_allclose(bf.downlink_sinr(gains, p), uplink, rtol=1e-9, atol=0)
    assert p.sum() == pytest.approx(q.sum(), rel=1e-9)  # same total power
    downlink = bf.downlink_sinr(gains, q)
    q_back = bf.uplink_powers_for_sinr(gains, downlink)  # eq. (35)
    np.testing.assert_allclose(bf.uplink_sinr(gains, q_back), downlink, rtol=1e-9, atol=0)
    assert q_back.sum() == pytest.approx(q.sum(), rel=1e-9)


def test_duality_refuses_sinrs_no_power_reaches():
    gains = np.array([[1.0, 1.0], [1.0, 1.0]])  # Perron root of diag(gamma) offdiag = 4 >= 1
    with pytest.raises(ValueError, match="sinr_linear.*not achievable"):
        bf.downlink_powers_for_sinr(gains, np.array([2.0, 2.0]))


# --- 3. MMSE beams ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_mmse_beams_reach_the_generalised_rayleigh_bound(seed):
    """Eq. (43) gives max_w q_i |h_i^H w|^2 / (w^H (I + sum_{j!=i} q_j h_j h_j^H) w) = q_i h_i^H R_i^{-1} h_i."""
    rng = np.random.default_rng(200 + seed)
    users, antennas = 3, 3
    h = random_channels(seed, users, antennas)
    q = rng.uniform(0.2, 3.0, users)
    w = bf.mmse_beams(h, q)
    achieved = bf.uplink_sinr(bf.beam_gains(h, w), q)
    for i in range(users):
        others = np.eye(antennas) + sum(q[j] * np.outer(h[j], h[j].conj()) for j in range(users) if j != i)
        bound = float(np.real(q[i] * h[i].conj() @ np.linalg.solve(others, h[i])))
        assert achieved[i] == pytest.approx(bound, rel=1e-9)
        reduced = np.linalg.solve(others, h[i])  # matrix inversion lemma: same direction as (43)
        assert abs(np.vdot(reduced, w[:, i])) / np.linalg.norm(reduced) == pytest.approx(1.0, rel=1e-12)

        def negative_sinr(x, i=i, others=others):
            v = x[:antennas] + 1j * x[antennas:]
            return -q[i] * abs(np.vdot(h[i], v)) ** 2 / float(np.real(np.vdot(v, others @ v)))

        numeric = min(minimize(negative_sinr, rng.normal(size=2 * antennas), method="BFGS").fun for _ in range(3))
        assert -numeric <= bound * (1 + 1e-9) and -numeric == pytest.approx(bound, rel=1e-6)


# --- 4. logistic fits ------------------------------------------------------------------------------

TRUE_FITS = [ma.LogisticParams(0.05, 0.6, 3.0, -5.5), ma.LogisticParams(0.3, 0.65, 2.0, -4.5),
             ma.LogisticParams(0.12, 0.45, 4.5, -6.0)]


@pytest.mark.parametrize("index", range(len(TRUE_FITS)))
def test_logistic_fit_recovers_noisy_synthetic_curves(index):
    true = TRUE_FITS[index]
    rng = np.random.default_rng(300 + index)
    ber = np.logspace(-9, -2, 29)
    noisy = true.distortion(np.log10(ber)) + rng.normal(0, 0.01, ber.size)
    fit, r_squared = ma.fit_logistic(ber, noisy)
    assert r_squared >= 0.98
    assert fit.source_distortion == pytest.approx(true.source_distortion, abs=0.015)
    assert fit.channel_distortion == pytest.approx(true.channel_distortion, rel=0.05)
    assert fit.slope_per_decade == pytest.approx(true.slope_per_decade, rel=0.2)
    assert fit.threshold_log10_ber == pytest.approx(true.threshold_log10_ber, abs=0.1)


def test_logistic_fit_reports_a_low_r_squared_on_data_that_is_not_logistic():
    ber = np.logspace(-9, -2, 29)
    bump = 0.3 + 0.2 * np.sin(np.linspace(0, 2 * np.pi, ber.size))  # rises, falls, rises
    _, r_squared = ma.fit_logistic(ber, bump)
    assert r_squared < 0.9


def test_rate_distortion_model_interpolates_eqs_27_to_30():
    fits = TRUE_FITS[:2]
    model = ma.RateDistortionModel.from_fits([0.1, 0.3], fits)
    x = np.linspace(-9, -2, 8)
    np.testing.assert_allclose(model.distortion(0.1, x), fits[0].distortion(x), rtol=1e-12)
    np.testing.assert_allclose(model.distortion(0.3, x), fits[1].distortion(x), rtol=1e-12)
    names = ("source_distortion", "channel_distortion", "slope_per_decade", "threshold_log10_ber")
    middle = ma.LogisticParams(*[(getattr(fits[0], f) + getattr(fits[1], f)) / 2 for f in names])
    np.testing.assert_allclose(model.distortion(0.2, x), middle.distortion(x), rtol=1e-12)
    assert model.round_down(0.29) == 0.1 and model.round_down(0.3) == 0.3


# --- 5. ZF and water-filling -----------------------------------------------------------------------

@pytest.mark.parametrize("users,antennas", [(2, 2), (3, 4), (4, 4)])
def test_zf_nulls_interference(users, antennas):
    h = random_channels(users * 10 + antennas, users, antennas)
    w = bf.zf_beams(h)
    cross = np.abs(h.conj() @ w)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-12)
    assert np.all(cross[~np.eye(users, dtype=bool)] < 1e-9)
    assert np.all(np.diag(cross) > 1e-3)


@pytest.mark.parametrize("power_w", [0.05, 1.0, 30.0])
def test_water_filling_meets_the_budget_and_kkt(power_w):
    gains = np.array([4.0, 1.0, 0.25, 0.05])
    p, level = bf.water_filling(gains, power_w)
    assert p.sum() == pytest.approx(power_w, rel=1e-12) and np.all(p >= 0)
    on = p > 0
    np.testing.assert_allclose(p[on] + 1 / gains[on], level, rtol=1e-12)  # equal water level
    assert np.all(1 / gains[~on] >= level - 1e-12)  # floors above the water stay dry
    rng = np.random.default_rng(4)
    rate = np.sum(np.log2(1 + gains * p))
    for other in rng.dirichlet(np.ones(gains.size), 200) * power_w:
        assert np.sum(np.log2(1 + gains * other)) <= rate + 1e-12


# --- finite-blocklength BER ------------------------------------------------------------------------

def test_fbl_ber_is_half_at_capacity_and_falls_with_sinr():
    sinr = 2.0 ** 1.5 - 1  # capacity 1.5 bpcu
    assert fbl.block_error_probability(sinr, 1.5, 256) == pytest.approx(0.5, abs=1e-12)
    curve = fbl.fbl_log10_ber(np.linspace(0.1, 30, 300), 1.0, 256)
    assert np.all(np.diff(curve) <= 0) and curve[-1] < curve[0] - 100  # Lemma A.1 (flat where Q = 1)
    model = fbl.FiniteBlocklengthBer(256)
    for sinr, rate in ((3.0, 0.15), (1.2, 0.08), (8.0, 0.25)):
        value, slope = model.source_rate_response(sinr, rate, BUDGET_CUPP)
        step = 1e-7
        numeric = (fbl.fbl_log10_ber(sinr, (rate + step) / BUDGET_CUPP, 256)
                   - fbl.fbl_log10_ber(sinr, (rate - step) / BUDGET_CUPP, 256)) / (2 * step)
        assert value == pytest.approx(float(fbl.fbl_log10_ber(sinr, rate / BUDGET_CUPP, 256)), rel=1e-12)
        assert slope == pytest.approx(float(numeric), rel=1e-5)


def test_interpolated_ber_passes_through_its_points_and_holds_the_ends():
    curve = fbl.interpolated_ber(np.array([0.0, 2.0, 4.0]), np.array([1e-1, 1e-3, 1e-7]))
    np.testing.assert_allclose(curve(np.array([-5.0, 0.0, 1.0, 2.0, 4.0, 9.0])),
                               [1e-1, 1e-1, 1e-2, 1e-3, 1e-7, 1e-7], rtol=1e-12)


# --- 6. input checks -------------------------------------------------------------------------------

def _problem(**changes):
    fields = dict(channels=random_channels(0), power_w=1.0, weights=np.array([0.5, 0.5]),
                  channel_uses_per_pixel=np.full(2, BUDGET_CUPP), distortion_models=(data_user(), semantic_user()),
                  ber_models=(fbl.FiniteBlocklengthBer(256),) * 2)
    fields.update(changes)
    return ma.MuAsccProblem(**fields)


@pytest.mark.parametrize("make,match", [
    (lambda: _problem(channels=np.ones(3)), r"channels of shape \(3,\)"),
    (lambda: _problem(channels=np.array([[1, 0], [0, 0]])), "channels.*nonzero"),
    (lambda: _problem(power_w=-1.0), "power_w=-1.0"),
    (lambda: _problem(weights=np.array([1.0, 0.0])), r"weights=array\(\[1., 0.\]\)"),
    (lambda: _problem(channel_uses_per_pixel=np.array([0.1])), "channel_uses_per_pixel"),
    (lambda: _problem(distortion_models=(data_user(),)), "distortion_models: must hold 2"),
    (lambda: _problem(ber_models=(fbl.FiniteBlocklengthBer(256), "ldpc")), "ber_models.*'ldpc'"),
    (lambda: _problem(ber_models=(fbl.MeasuredBer(lambda s: s * 0, 0.2),) * 2), r"channel_uses_per_pixel\[0\]"),
    (lambda: fbl.FiniteBlocklengthBer(0), "blocklength=0"),
    (lambda: fbl.MeasuredBer(0.1, 1.0), "ber_of_sinr_db=0.1"),
    (lambda: fbl.MeasuredBer(lambda s: s, 0.0), "rate_bpcu=0.0"),
    (lambda: fbl.MeasuredBer(lambda s: s * 0, 1.0).log10_ber(1.0, 2.0), "code_rate_bpcu=2.0.*rate_bpcu=1.0"),
    (lambda: fbl.MeasuredBer(lambda s: np.ones(3), 1.0).log10_ber(np.ones(2), 1.0), "ber_of_sinr_db returned"),
    (lambda: fbl.fbl_log10_ber(-1.0, 1.0, 256), "sinr_linear=.*-1.*linear, not dB"),
    (lambda: fbl.interpolated_ber(np.array([1.0, 0.0]), np.array([0.1, 0.01])), "sinr_db=.*increasing"),
    (lambda: fbl.interpolated_ber(np.array([0.0, 1.0]), np.array([0.1, 0.0])), r"ber=.*\(0, 1\]"),
    (lambda: ma.RateDistortionModel(np.array([0.2, 0.1]), [0, 0], [1, 1], [1, 1], [-5, -5]), "rates_bpp="),
    (lambda: ma.RateDistortionModel(RATES_BPP[:2], [0, 0], [1, 1], [1, -1], [-5, -5]), "slope_per_decade=-1.0"),
    (lambda: ma.RateDistortionModel(RATES_BPP[:2], [0, 0], [1], [1, 1], [-5, -5]), r"channel_distortion of shape"),
    (lambda: ma.LogisticParams(0.1, -0.2, 1.0, -5.0), "channel_distortion=-0.2"),
    (lambda: ma.fit_logistic(np.array([0.1, 0.01]), np.array([0.5, 0.1])), "ber=.*>= 5"),
    (lambda: ma.fit_logistic(np.logspace(-6, -1, 6), np.full(6, 0.2)), "distortion=.*not all equal"),
    (lambda: data_user().distortion(0.5, -5.0), r"rate_bpp=0.5.*\[0.05, 0.3\]"),
    (lambda: ma.optimise(_problem(), discretisation="nearest"), "discretisation='nearest'"),
    (lambda: ma.optimise(_problem(), starts=[np.array([1.0, -1.0])]), "starts entry"),
    (lambda: ma.optimise(_problem(), starts=[]), "starts: must hold at least one"),
    (lambda: ma.optimise_source_rate(_problem(), 0, float("nan")), "sinr_linear=nan"),
    (lambda: ma.evaluate(_problem(), RATES_BPP[:2], np.eye(2), np.array([1.0, 1.0])), "powers_w=.*exceeds"),
    (lambda: ma.evaluate(_problem(), np.array([0.05, 0.5]), np.eye(2), np.array([0.5, 0.5])),
     r"source_rates_bpp=array\(\[0.05, 0.5 \]\).*bounds"),
    (lambda: bf.beam_gains(random_channels(0), 2 * np.eye(2)), "beams: every column.*unit norm"),
    (lambda: bf.zf_beams(random_channels(0, 3, 2)), r"channels of shape \(3, 2\): zero forcing"),
    (lambda: bf.water_filling(np.array([1.0, -1.0]), 1.0), "channel_gains="),
    (lambda: bf.water_filling(np.array([1.0]), 0.0), "power_w=0.0"),
    (lambda: bf.normalised_channels(random_channels(0), np.array([1.0, 0.0])), "noise_w="),
    (lambda: bf.downlink_sinr(np.ones((2, 2)), np.array([1.0, -1.0])), "powers_w="),
])
def test_bad_inputs_raise_value_errors_naming_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_the_module_does_not_import_gnuradio_torch_or_the_runner():
    import subprocess
    import sys
    code = ("import sys, testbed.optim.mu_ascc\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gnuradio', 'torch')"
            " or m.startswith(('testbed.gr', 'testbed.runner'))))")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert time.monotonic() - started < 30
