"""Adaptive-rate training: the codec first on random decisions, then the policies, then the
paper's phases in proportion, freezing what they freeze, seeded and resumable."""
import pytest
import torch

from testbed.errors import ConfigError
from testbed.systems.adaptive_rate import train as tr

TINY = dict(users=2, antennas=2, batch=2)


def test_phases_keep_their_proportions_and_temperature_decays():
    cfg = tr.TrainConfig(steps=100, **TINY)
    names = [tr.phase_at(cfg, s)[1].name for s in range(100)]
    assert [names.count(p.name) for p in tr.PHASES] == [40, 15, 25, 10, 10]
    assert tr.temperature_at(cfg, 0) == 5.0 and tr.temperature_at(cfg, 100) == pytest.approx(5.0 * 2.718281828 ** -5)


def test_the_codec_phase_freezes_the_policies_and_the_policy_phase_the_codec():
    model = tr.build(tr.TrainConfig(**TINY))
    tr._optimiser(model, tr.PHASES[0])
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"encoder", "decoder"} and tr.PHASES[0].explore
    tr._optimiser(model, tr.PHASES[1])
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"select", "prune"}


def test_exploring_draws_every_map_count_and_ratio_and_never_no_map():
    torch.manual_seed(0)
    model = tr.build(tr.TrainConfig(**TINY))
    images, csi = torch.rand(400, 3, 32, 32), torch.ones(400, 2, dtype=torch.complex64)
    _, decision = model.transmit(images, csi, torch.full((400,), 10.0), 1.0, explore=True)
    assert set(decision.selected.tolist()) == set(range(1, 9))
    assert set(round(r, 1) for r in decision.ratio.tolist()) == {0.0, 0.2, 0.3, 0.4, 0.5}


def test_fine_tuning_freezes_cem_and_p2_then_caem_and_p1():
    model = tr.build(tr.TrainConfig(**TINY))
    tr._optimiser(model, tr.PHASES[3])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("encoder.cem.", "prune.")) for n in frozen)
    tr._optimiser(model, tr.PHASES[4])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("select.") for n in frozen) and not any(n.startswith("encoder.cem.") for n in frozen)


class _Stop(Exception):
    pass


def test_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(tr, "CHECKPOINT_STEPS", 4)
    cfg = tr.TrainConfig(steps=8, **TINY)
    whole = tr.train(cfg, tmp_path / "a", log=lambda _: None)

    def stop(line):
        if "step 4/" in line:
            raise _Stop

    with pytest.raises(_Stop):
        tr.train(cfg, tmp_path / "b", log=stop)
    resumed = tr.train(cfg, tmp_path / "b", log=lambda _: None)
    for (name, a), (_, b) in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert [e["step"] for e in resumed["log"]] == [3, 4, 6, 7, 8]  # every 4 steps and each phase end and resumed["log"][0]["cpp"] > 0


def test_a_run_with_another_alpha_starts_from_the_shared_codec(tmp_path):
    first = tr.TrainConfig(steps=10, alpha=1e-4, **TINY)
    tr.train(first, tmp_path, log=lambda _: None)
    assert tr.codec_path(first, tmp_path).is_file()
    lines = []
    tr.train(tr.TrainConfig(steps=10, alpha=5e-5, **TINY), tmp_path, log=lines.append)
    assert lines and " policy step 6/10" in lines[0]  # steps 4-5 are the policy phase; no codec step ran again


def test_more_users_than_antennas_is_refused():
    with pytest.raises(ConfigError, match="users=3 with antennas=2"):
        tr.TrainConfig(users=3, antennas=2)


def test_the_reference_evaluation_is_repeatable_per_point():
    from testbed.systems.adaptive_rate import evaluate as ev

    torch.manual_seed(0)
    model = tr.build(tr.TrainConfig(**TINY))
    images = ev.held_out_tiles(limit=8)
    assert images.shape == (8, 3, 32, 32)
    first = ev.evaluate(model, images, 10.0, users=2, antennas=2)
    again = ev.evaluate(model, images, 10.0, users=2, antennas=2)
    assert first == again and [r["user"] for r in first] == [0, 1]
    assert all(0 <= r["cpp"] <= 0.5 and 0 <= r["selected_maps"] <= 8 for r in first)
    other = ev.evaluate(model, images, 0.0, users=2, antennas=2)
    assert other[0]["psnr_db"] != first[0]["psnr_db"]


def test_the_self_critical_gradient_reaches_the_policies_and_not_through_the_decisions():
    torch.manual_seed(0)
    cfg = tr.TrainConfig(estimator="scst", **TINY)
    model = tr.build(cfg)
    images = torch.rand(2, 4, 3, 32, 32)
    total, parts, decisions = tr.self_critical_loss(model, images, torch.full((4,), 10.0), cfg, 1.0, cfg.beta)
    assert all(d.log_prob.requires_grad and not d.mask.requires_grad for d in decisions)
    total.backward()
    grads = {n.split(".")[0]: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters()}
    assert grads["select"] and grads["prune"] and grads["encoder"] and grads["decoder"]
    assert "advantage" in parts and tr.TrainConfig(estimator="scst", **TINY).name().endswith("-scst-seed0-3000steps")
    with pytest.raises(ConfigError, match="estimator='adam'"):
        tr.TrainConfig(estimator="adam")


def test_the_fitted_schedule_trains_only_the_codec_on_random_decisions():
    cfg = tr.TrainConfig(steps=100, estimator="fitted", **TINY)
    names = [tr.phase_at(cfg, s)[1].name for s in range(100)]
    assert names.count("codec") == 75 and names.count("codec-low-lr") == 25
    assert all(p.explore and p.frozen == ("select.", "prune.") for p in tr.FITTED_PHASES)


def test_fitted_policies_learn_the_least_loss_decision(tmp_path):
    """With a rate penalty that dwarfs any MSE the least-loss decision is one map pruned by half
    (usage (64 + 29) / 128), at every SNR; the fit must find it and the greedy policies send it."""
    from testbed.systems.adaptive_rate import fit_policy

    cfg = tr.TrainConfig(steps=4, estimator="fitted", alpha=1e3, **TINY)
    result = tr.train(cfg, tmp_path, log=lambda _: None)
    assert result["fit"]["held_back_accuracy"] == 1.0 and result["fit"]["regret"] == 0.0
    assert all(b["policy_maps"] == 1.0 and b["policy_ratio"] == 0.5 for b in result["fit"]["bands"])
    model = result["model"]
    images, csi = torch.rand(6, 3, 32, 32), torch.randn(6, 2, dtype=torch.complex64)
    _, decision = model.transmit(images, csi, torch.linspace(0, 25, 6), 0.0)
    assert decision.selected.tolist() == [1.0] * 6 and decision.ratio.tolist() == pytest.approx([0.5] * 6)
    assert len(fit_policy.decisions(model)) == 8 * 5
    # another alpha refits on the same codec: no codec step runs again
    lines = []
    again = tr.train(tr.TrainConfig(steps=4, estimator="fitted", alpha=0.0, **TINY), tmp_path, log=lines.append)
    assert len(lines) == 1 and "fitted policies" in lines[0] and again["fit"]["bands"]


def test_the_costs_are_one_draw_per_image_and_the_ablations_refit_on_them():
    from testbed.systems.adaptive_rate import fit_policy

    torch.manual_seed(0)
    model = tr.build(tr.TrainConfig(**TINY))
    images, snr = torch.rand(2, 3, 3, 32, 32), torch.tensor([0.0, 10.0, 20.0])
    data = fit_policy.label_batches(model, [(images, snr)], 2, False, seed=5)
    mse, usage, _ = fit_policy.decision_costs(model, images, snr, 2, False, seed=5)
    assert data["mse"].shape == (6, 40) and torch.equal(data["mse"], mse.permute(1, 2, 0).reshape(6, 40))
    recon, chosen = tr.run_users(model, images, snr, 2, False, 0.0, torch.Generator().manual_seed(6),
                                 channel=fit_policy.uplink_channel.draw(3, 2, 2, snr, False,
                                                                        torch.Generator().manual_seed(5)), fixed=(3, 2))
    column = fit_policy.decisions(model).index((3, 2))
    torch.testing.assert_close(data["mse"][:, column], ((images - recon) ** 2).flatten(2).mean(-1).reshape(-1))
    torch.testing.assert_close(data["usage"][:, column], torch.stack([d.usage() for d in chosen]).reshape(-1))
    # without the pruning module the refit may only choose ratio 0: a huge alpha gives one unpruned map
    plain = tr.build(tr.TrainConfig(pruning=False, entropy=False, **TINY))
    plain.load_state_dict(model.state_dict())
    summary = fit_policy.fit_to(plain, data, alpha=1e3, log=lambda _: None)
    assert all(b["policy_maps"] == 1.0 and b["policy_ratio"] == 0.0 for b in summary["bands"])
    assert fit_policy.decisions(plain) == [(m, 0) for m in range(1, 9)]
