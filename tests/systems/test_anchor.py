"""The anchor-aided broadcast's networks, schedules and shipped sets: every decoder family maps
the encoder's grid back to the image size for any multiple of 4 px, the three schemes give each
user decoder the same number of steps, the two-stage scheme freezes the encoder in its second
stage and the others do not, a finished run resumes to nothing, bad settings name the field, and
every shipped set has the four families and matches torch."""
from pathlib import Path

import numpy as np
import pytest
import torch

from testbed import registry
from testbed.errors import ConfigError
from testbed.systems.anchor.model import DECODERS, Encoder, shape_symbols
from testbed.systems.anchor.results import claim
from testbed.systems.anchor.train import SCHEMES, TrainConfig, Trainer, module_steps, schedule, train

PAPER_FAMILIES = ["attention", "conv", "resnet", "vgg"]
SETS = [n for n in registry.names("system-model") if n.startswith("anchor-")]


def test_the_paper_families_are_registered_in_its_training_order():
    assert list(DECODERS)[:4] == PAPER_FAMILIES


@pytest.mark.parametrize("family", PAPER_FAMILIES)
def test_every_decoder_maps_the_grid_back_to_the_image_size(family):
    encoder, decoder = Encoder(width=8), DECODERS[family](width=8)
    image = torch.rand(2, 3, 20, 28)
    symbols = encoder(image, torch.tensor([[1.0], [13.0]]))
    assert symbols.shape == (2, 20 * 28 // 2, 2)  # k/n = 1/6
    assert torch.allclose(symbols.pow(2).sum(dim=(1, 2)) / symbols.shape[1], torch.ones(2), atol=1e-4)
    out = decoder(shape_symbols(symbols, 20, 28), torch.tensor([[1.0], [13.0]]))
    out = out.detach()
    assert out.shape == image.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_each_scheme_gives_every_user_decoder_the_same_steps():
    for scheme in SCHEMES:
        steps = module_steps(TrainConfig(scheme, steps=60, rounds=3))
        assert all(steps[f] == 60 for f in PAPER_FAMILIES), (scheme, steps)
    assert module_steps(TrainConfig("two_stage", steps=60))["encoder"] == 60
    longer = TrainConfig("two_stage", steps=60, anchor_steps=240)
    assert module_steps(longer)["encoder"] == 240 and module_steps(longer)["conv"] == 60
    assert longer.name() == "anchor-awgn-two-stage-anchor240"
    assert module_steps(TrainConfig("iterative", steps=60, rounds=3))["encoder"] == 240
    extra = [p for p in schedule(TrainConfig("iterative", steps=60, rounds=3)) if p.extra]
    assert [p.decoders[0] for p in extra] == PAPER_FAMILIES[:3] and all(p.snapshot for p in extra)


def _encoder_after(cfg: TrainConfig, phases: int) -> dict:
    trainer = Trainer(cfg)
    images = torch.rand(2, 3, 16, 16)
    for phase in schedule(cfg)[:phases]:
        for _ in range(phase.steps):
            trainer.train_step(phase, images)
    return {k: v.clone() for k, v in trainer.encoder.state_dict().items()}


def test_the_second_stage_freezes_the_encoder_and_the_benchmarks_do_not():
    cfg = TrainConfig("two_stage", steps=2, batch_size=2, crop=16)
    after_anchor, after_users = _encoder_after(cfg, 1), _encoder_after(cfg, 2)
    assert all(torch.equal(after_anchor[k], after_users[k]) for k in after_anchor)
    start = Trainer(cfg).encoder.state_dict()
    assert not all(torch.equal(start[k], after_anchor[k]) for k in start)
    # the benchmarks move the encoder with every user decoder: simultaneous in its one phase,
    # iterative in each decoder's turn
    cfg = TrainConfig("simultaneous", steps=2, batch_size=2, crop=16)
    start, end = _encoder_after(cfg, 0), _encoder_after(cfg, 1)
    assert not all(torch.equal(start[k], end[k]) for k in start)
    cfg = TrainConfig("iterative", steps=2, rounds=2, batch_size=2, crop=16)
    first, second = _encoder_after(cfg, 1), _encoder_after(cfg, 2)
    assert not all(torch.equal(first[k], second[k]) for k in first)


def test_a_finished_run_resumes_to_nothing_and_keeps_the_forgetting_encoders(tmp_path):
    cfg = TrainConfig("iterative", steps=2, rounds=1, batch_size=2, crop=16)
    path = train(cfg, tmp_path, progress=False)
    state = torch.load(path, weights_only=False)
    assert sorted(state["snapshots"]) == [f"turn{i}" for i in range(7)]
    # the shipped encoder is the one after the last round, before the extra turns
    assert all(torch.equal(state["kept"]["encoder"][k], state["snapshots"]["turn3"][k]) for k in state["snapshots"]["turn3"])
    mtime = path.stat().st_mtime_ns
    assert train(cfg, tmp_path, progress=False) == path and path.stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="another run"):
        other = tmp_path / "other"
        other.mkdir()
        path.rename(other / path.name)
        train(TrainConfig("iterative", steps=4, rounds=1, batch_size=2, crop=16), other, progress=False)


@pytest.mark.parametrize("field, kwargs", [("scheme", {"scheme": "greedy"}), ("channel", {"channel": "rician"}),
                                           ("crop", {"crop": 30}), ("rounds", {"scheme": "iterative", "steps": 10, "rounds": 3}),
                                           ("families", {"families": ("mlp",)}),
                                           ("anchor_steps", {"scheme": "iterative", "anchor_steps": 100})])
def test_bad_settings_name_the_field(field, kwargs):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{"scheme": "two_stage", **kwargs})


def test_the_claim_counts_cells_where_the_order_holds():
    row = lambda p: {"snr_db": [1.0, 4.0], "psnr_db": p, "ms_ssim": [0.5, 0.6]}  # noqa: E731
    tab = {"two_stage": {"a": row([20.0, 22.0])}, "iterative": {"a": row([19.0, 23.0])},
           "simultaneous": {"a": row([18.0, 21.0])}}
    counts = claim(tab)
    assert counts["cells"] == 4 and counts["two_stage>=iterative"] == 3
    assert counts["two_stage>=iterative>=simultaneous"] == 3 and counts["holds_in_most_cells"]


def test_every_scheme_and_channel_is_shipped_with_the_paper_families():
    assert set(SETS) >= {f"anchor-{c}-{s.replace('_', '-')}" for c in ("awgn", "rayleigh") for s in SCHEMES}
    for name in SETS:
        entry = registry.get("system-model", name)
        users = [d for d in entry.decoders if d != "anchor"]
        assert users == PAPER_FAMILIES and ("anchor" in entry.decoders) == (entry.scheme == "two_stage"), name
        if entry.scheme == "iterative":
            assert sorted(entry.encoders) == ["transmitter"] + [f"transmitter-turn{i}" for i in (0, 1, 2, 4, 5, 6)]


@pytest.mark.parametrize("name", SETS)
def test_a_shipped_set_matches_torch_and_its_cards(name):
    entry = registry.get("system-model", name)
    assert entry.verify() == []
    assert entry.parity(n=2, seed=1) < 1e-4
    card = entry.card()
    assert card["metrics"][f"photos_{entry.channel}"]["attention"]["snr_db"] == [1.0, 4.0, 7.0, 10.0, 13.0]
    assert Path(card["file"]).name == Path(entry.files["transmitter"]).name


def test_an_unknown_decoder_is_refused_with_the_set_s_decoders():
    with pytest.raises(ConfigError, match="decoder .* allowed: .*attention"):
        registry.create("system", "anchor", params={"decoder": "mlp"})
