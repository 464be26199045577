"""Remark 3.2: JRPB with the measured BER curves of LDPC + QAM schemes in place of
finite-blocklength coding (synthetic measured tables, so the expected choices are known)."""
import math

import numpy as np
import pytest

from testbed.optim.mu_ascc import optimise, paper_instance
from testbed.systems.digital.bler import BlerTable, spectral_efficiency
from testbed.systems.mu_ascc import practical
from testbed.systems.mu_ascc.system import DEFAULT_MCS


def _rows(mcs: str) -> list[dict]:
    """A waterfall 2 dB above the scheme's Shannon SNR, falling a decade per 0.5 dB."""
    shannon_db = 10 * math.log10(2 ** spectral_efficiency(mcs) - 1)
    rows = []
    for snr in np.arange(shannon_db - 2, shannon_db + 6, 0.5):
        ber = min(0.3, 10 ** (-1 - 2 * (snr - shannon_db - 2))) if snr > shannon_db + 2 else 0.3
        rows.append({"snr_db": float(snr), "codewords": 100, "errors": 0, "bits": 10 ** 7,
                     "bit_errors": int(ber * 10 ** 7), "bits_lost": 0})
    return rows


TABLE = BlerTable({m: _rows(m) for m in DEFAULT_MCS})


def test_candidates_are_the_schemes_of_lowest_predicted_distortion():
    problem = paper_instance(power_w=3.0)
    names = list(DEFAULT_MCS)
    for sinr_db in (3.0, 9.0, 20.0):
        sinr = 10 ** (sinr_db / 10)
        picked = practical.candidates(problem, 0, sinr, TABLE, names, 3)
        scores = {m: practical.predicted_distortion(problem, 0, sinr, TABLE, m) for m in names}
        assert len(picked) == 3 and max(scores[m] for m in picked) <= min(
            scores[m] for m in names if m not in picked)
    # at high SINR the fastest scheme wins (more bits, same tiny BER); at low SINR a slow one
    fast = practical.candidates(problem, 0, 10 ** 3, TABLE, names, 1)[0]
    slow = practical.candidates(problem, 0, 10 ** 0.3, TABLE, names, 1)[0]
    assert spectral_efficiency(fast) > spectral_efficiency(slow)


def test_measured_ber_is_the_table_curve_at_the_scheme_rate():
    model = practical.measured_ber(TABLE, "ldpc_648_1_2/qam16")
    assert model.rate_bpcu == pytest.approx(2.0)
    sinr_db = np.array([5.0, 9.0, 12.0])
    np.testing.assert_allclose(10 ** model.log10_ber(10 ** (sinr_db / 10), 2.0),
                               TABLE.bit_error_rate("ldpc_648_1_2/qam16", sinr_db))


def test_practical_plan_sends_codec_rates_within_each_scheme_and_beats_every_single_candidate_pair():
    problem = paper_instance(power_w=10 ** 0.8)
    fbl = optimise(problem)
    plan = practical.practical_plan(problem, fbl, TABLE, list(DEFAULT_MCS))
    sol = plan.solution
    for i, mcs in enumerate(plan.mcs):
        assert mcs in practical.candidates(problem, i, float(fbl.sinr_linear[i]), TABLE, list(DEFAULT_MCS))
        assert sol.source_rates_bpp[i] <= spectral_efficiency(mcs) * problem.channel_uses_per_pixel[i] * (1 + 1e-9)
        assert sol.source_rates_bpp[i] in problem.distortion_models[i].rates_bpp
        expected = np.log10(TABLE.bit_error_rate(mcs, 10 * np.log10(sol.sinr_linear[i])))
        assert sol.log10_ber[i] == pytest.approx(float(expected))
    assert np.sum(sol.powers_w) <= problem.power_w * (1 + 1e-9)
    # real codes need more SINR than random coding at the same rate: the plan cannot beat it
    assert sol.weighted_distortion >= fbl.weighted_distortion - 1e-9


def test_no_plan_when_no_scheme_carries_a_users_lowest_codec():
    problem = paper_instance(power_w=3.0, bandwidth_ratio=0.001)
    fbl = optimise(problem, "round_down", starts=[np.array([1.5, 1.5])])
    assert practical.practical_plan(problem, fbl, TABLE, ["ldpc_648_1_2/qpsk"]) is None
