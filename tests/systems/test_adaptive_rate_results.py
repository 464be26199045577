"""The adaptive-rate baselines of docs/results: matched decisions, the LMMSE de-biasing, the
deep JSCC and digital baselines react to the SNR as they must (small inputs, shipped models)."""
import numpy as np
import pytest

from testbed.data.images import held_out_crops, tile
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate import results as res
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.digital.bler import BlerTable


def test_the_nearest_decision_has_the_nearest_cpp():
    for target in (0.05, 0.2, 0.363, 0.5):
        maps, r = res.nearest_decision(target)
        kept = int(round((1 - rc.PRUNING_RATIOS[r]) * 128))
        got = rc.cpp(maps, kept, 128, 32, 32)
        assert all(abs(got - target) <= abs(rc.cpp(m, int(round((1 - q) * 128)), 128, 32, 32) - target) + 1e-12
                   for m in range(1, 9) for q in rc.PRUNING_RATIOS)
    assert res.nearest_decision(0.5) == (8, 0)


def test_debiased_lmmse_passes_each_stream_with_unit_gain():
    rng = np.random.default_rng(0)
    h, h_hat, noise = res._channels(5, 3, 10.0, False, rng)
    w, sinr = res._lmmse(h, h_hat, noise)
    gains = np.einsum("nkm,nmj->nkj", w, h)
    np.testing.assert_allclose(np.diagonal(gains, axis1=1, axis2=2), 1.0, atol=1e-9)
    assert sinr.shape == (5, 3) and np.all(sinr > 0)


@pytest.fixture(scope="module")
def crop():
    return held_out_crops()[0][1][:, :64, :64]


def test_deep_jscc_baseline_improves_with_snr(crop):
    codec = NeuralImageCodec("adjscc-r12")
    tiles = tile(crop, 32)[None].repeat(2, 0)  # (K = 2, 4 tiles)
    low, high = (res.deepjscc_point(codec, tiles, 2, snr, False, 0) for snr in (-5.0, 20.0))
    assert high > low + 3.0 and high > 22.0


def test_digital_baseline_arrives_at_high_snr_and_collapses_at_low():
    table = BlerTable.load()
    crop = held_out_crops()[0][1][:, :128, :128]  # 1 kB at 0.5 bit per pixel: more than the codec's headers
    high = res.digital_point([crop], 0.5, 2, 25.0, False, 0, table)
    low = res.digital_point([crop], 0.5, 4, -10.0, False, 0, table)
    assert high["arrived"] == 1.0 and high["psnr_db"] > 25.0
    assert low["arrived"] < 0.2 and low["psnr_db"] < high["psnr_db"] - 10.0


def test_the_policy_ablations_refit_copies_and_match_the_cpp_by_alpha(monkeypatch):
    import torch

    from testbed.systems.adaptive_rate import fit_policy
    from testbed.systems.adaptive_rate import train as tr

    monkeypatch.setattr(fit_policy, "FIT_BATCHES", 1)
    monkeypatch.setattr(fit_policy, "FIT_STEPS", 50)
    monkeypatch.setattr(res, "ABLATION_BATCH", 4)
    monkeypatch.setattr(res, "ABLATION_PROBE", 4)
    monkeypatch.setattr(res, "ABLATION_ALPHAS", (0.0, 1e3))
    torch.manual_seed(0)
    model = tr.build(tr.TrainConfig(users=2, antennas=4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    variants = res.refit_variants(model, 1e-4, seed=0, log=lambda _: None)
    assert set(variants) == {"no-entropy (refit)", "no-pruning (refit)", "adaptive, refit at alpha 0.0002",
                             "adaptive, refit at alpha 0.0003"}
    no_entropy, no_pruning = variants["no-entropy (refit)"][0], variants["no-pruning (refit)"][0]
    assert not no_entropy.entropy and no_entropy.pruning and not no_pruning.pruning and no_pruning.entropy
    assert variants["no-pruning (refit)"][1] in (0.0, 1e3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the shipped model is untouched
    rows = res.evaluate(no_pruning, held_out_crops()[0][1][None, :, :32, :32].repeat(2, 0), 10.0, 2, 4)
    assert all(r["pruning_ratio"] == 0.0 for r in rows)


def test_the_claims_table_reads_the_rows():
    rows = []
    for users in res.USERS:
        for csi in ("perfect", "imperfect"):
            for snr in res.SNRS_DB:
                base = {"images": "held-out", "users": users, "csi": csi, "snr_db": snr}
                rows += [{**base, "scheme": "adaptive", "psnr_db": 25.0},
                         {**base, "scheme": "adjscc@cpp", "psnr_db": 24.5},
                         {**base, "scheme": "hevc+ldpc1/2+qpsk", "psnr_db": 10.0, "arrived": 0.0 if snr == 0 else 1.0}]
    lines = res.claims(rows)
    assert "| 2 | perfect | +0.50 / +0.50 / +0.50 / +0.50 / +0.50 / +0.50 | +15.00 at 0 dB |" in lines
