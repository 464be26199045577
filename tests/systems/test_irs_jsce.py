"""IRS-JSCE's networks, training and scheduling (testbed/systems/irs_jsce): the torch cascaded
channel is the numpy one, the attention is a softmax scaled to c, a slot gives every link an
image, the curriculum grows the broadcast, the IRS phases learn only when trained, a run resumes bit for bit, bad settings name the
field, the exhaustive schedule is the brute-force optimum, the MDP's reward is eq. (18), and every
shipped model matches torch and carries 1-bit phases."""
import itertools
import math

import numpy as np
import pytest
import torch

from testbed import registry
from testbed.errors import ConfigError
from testbed.systems.irs_jsce import channel, scheduling
from testbed.systems.irs_jsce.models import IrsJsceEntry
from testbed.systems.irs_jsce.model import ChannelAttention, Decoder, Encoder, cascaded, transmit_slot
from testbed.systems.irs_jsce.train import TrainConfig, Trainer, channel_bank, train, transmitter_sets, user_positions

SHIPPED = [n for n in registry.names("system-model") if isinstance(registry.get("system-model", n), IrsJsceEntry)]


def _tiny(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 4, "batch_slots": 1, "crop": 16, "width": 8, "bank_blocks": 4, "warmup_steps": 2,
                          **kw})


def test_torch_cascaded_channel_is_the_numpy_one():
    geometry = channel.load_geometry()
    g, h_direct = channel_bank(geometry, seed=3, blocks=2)
    phases = np.random.default_rng(0).uniform(0, 2 * math.pi, geometry.array.n_elements)
    got = cascaded(g, h_direct, torch.from_numpy(phases.astype(np.float32))).numpy()
    for b in range(2):
        want = channel.cascaded(channel.draw_channels(geometry, 3, b), phases)
        assert np.allclose(got[b], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert torch.equal(cascaded(g, h_direct, None), h_direct)


def test_attention_weights_are_positive_and_sum_to_the_channels():
    cab = ChannelAttention(16)
    weights = cab.weights(torch.randn(5, 16, 4, 4), torch.randn(5, 4), torch.ones(5, 5))
    assert weights.shape == (5, 16) and bool((weights > 0).all())
    assert torch.allclose(weights.sum(dim=1), torch.full((5,), 16.0))


def test_a_slot_gives_every_link_an_image_from_its_own_source():
    torch.manual_seed(0)
    encoder, decoder = Encoder(8), Decoder(8)
    geometry = channel.load_geometry()
    g, h_direct = channel_bank(geometry, 0, 2)
    h, positions = cascaded(g, h_direct, torch.zeros(64)), user_positions(geometry)
    links = channel.slot_links((0, 2), 5)
    images = torch.rand(2, len(links), 3, 16, 24)

    def run(batch):
        with torch.no_grad():
            return transmit_slot(encoder, decoder, batch, links, h, 1e-9, positions, torch.Generator().manual_seed(1))

    out = run(images)
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    changed = images.clone()
    changed[:, 0] = 1 - changed[:, 0]        # the image of link (0, 1) reaches every receiver of TX 0
    assert float((run(changed) - out)[:, 0].abs().max()) > 0


@pytest.mark.parametrize("irs", ["trained", "fixed", "off"])
def test_the_phases_learn_only_when_trained(irs, tmp_path):
    trainer = Trainer(_tiny(irs=irs, steps=2))
    before = trainer.irs.phases.detach().clone()
    path = train(_tiny(irs=irs, steps=2), tmp_path, progress=False)
    after = torch.load(path, weights_only=False)["irs"]["phases"]
    assert torch.equal(before, after) == (irs != "trained")


def test_a_run_resumes_bit_for_bit(tmp_path):
    straight = torch.load(train(_tiny(), tmp_path / "a", progress=False), weights_only=False)
    half = train(_tiny(), tmp_path / "b", progress=False, stop_after=2)
    assert torch.load(half, weights_only=False)["step"] == 2
    resumed = torch.load(train(_tiny(), tmp_path / "b", progress=False), weights_only=False)
    for key, value in straight["encoder"].items():
        assert torch.equal(value, resumed["encoder"][key]), key
    assert torch.equal(straight["irs"]["phases"], resumed["irs"]["phases"])


@pytest.mark.parametrize("field, kwargs", [("irs", {"irs": "mirror"}), ("crop", {"crop": 30}),
                                           ("noise_var", {"noise_var": 0.0})])
def test_bad_settings_name_the_field(field, kwargs):
    with pytest.raises(ConfigError, match=f"{field} = .* allowed"):
        _tiny(**kwargs)


def test_the_warm_up_grows_a_broadcast_then_draws_whole_slots():
    trainer = Trainer(_tiny(warmup_steps=8, steps=20))
    sizes = []
    for step in range(12):
        trainer.step = step
        links = trainer.draw_links()
        sizes.append(len(links))
        if step < 8:
            assert len({r for r, _ in links}) == 1
        else:
            txs = sorted({r for r, _ in links})
            assert links == channel.slot_links(txs, 5)
    assert sizes[:8] == [1, 1, 2, 2, 3, 3, 4, 4]


def test_transmitter_sets_are_every_half_duplex_set():
    sets = transmitter_sets(5)
    assert len(sets) == 30 and len(set(sets)) == 30 and all(0 < len(s) < 5 for s in sets)


def _random_table(n_users: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {s: {link: float(rng.random()) for link in channel.slot_links(s, n_users)} for s in transmitter_sets(n_users)}


def test_the_exhaustive_schedule_is_the_brute_force_optimum():
    table = _random_table(3, 0)
    best, value = scheduling.best_schedule(table, 3, 3)
    brute = max(scheduling.objective(seq, table, 3) for seq in itertools.product(transmitter_sets(3), repeat=3))
    assert value == pytest.approx(brute) and scheduling.objective(best, table, 3) == pytest.approx(value)


def test_the_objective_is_eq_14_written_out():
    table = _random_table(3, 1)
    schedule = [(0,), (1, 2), (0,)]
    total = {(r, k): 0.0 for r in range(3) for k in range(3) if r != k}
    for txs in schedule:
        for r in txs:
            for k in range(3):
                if k not in txs:
                    total[(r, k)] += table[txs][(r, k)]
    assert scheduling.objective(schedule, table, 3) == pytest.approx(min(total.values()) / 3)
    assert scheduling.objective(scheduling.round_robin(3, 3), table, 3) > 0


@pytest.mark.parametrize("action, chosen", [([0.9, 0.1, 0.7], (0, 2)), ([0.1, 0.3, 0.2], (1,)),
                                            ([0.9, 0.6, 0.8], (0, 2))])
def test_an_action_is_a_half_duplex_set(action, chosen):
    assert scheduling.action_to_set(np.array(action)) == chosen


def test_the_reward_is_the_accumulated_minimum_of_eq_18():
    table = _random_table(3, 2)
    env = scheduling.ScheduleEnv(table, 3, 3)
    obs, _ = env.reset()
    assert obs.tolist() == [0, 0, 0]
    _, r1, done1, _, _ = env.step(np.array([0.9, 0.0, 0.0]))      # user 0 to users 1 and 2
    assert r1 == 0.0 and not done1                                   # pairs (1, *), (2, *) not yet served
    obs, _, _, _, _ = env.step(np.array([0.0, 0.9, 0.9]))          # users 1, 2 to user 0
    assert obs.tolist() == pytest.approx([4 / 3, 2 / 3, 2 / 3])     # history counts / T
    _, r3, done3, _, _ = env.step(np.array([0.0, 0.9, 0.0]))       # user 1 to users 0 and 2
    served = {(0, 1): table[(0,)][(0, 1)], (0, 2): table[(0,)][(0, 2)], (1, 0): table[(1, 2)][(1, 0)]
              + table[(1,)][(1, 0)], (2, 0): table[(1, 2)][(2, 0)], (1, 2): table[(1,)][(1, 2)], (2, 1): 0.0}
    assert done3 and r3 == pytest.approx(min(served.values()))


def test_ddpg_returns_a_half_duplex_schedule_of_t_slots():
    schedule = scheduling.train_ddpg(_random_table(3, 3), 3, 2, timesteps=64, seed=0)[1]
    assert len(schedule) == 2 and all(s in transmitter_sets(3) for s in schedule)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_matches_torch_and_carries_one_bit_phases(name):
    entry = registry.get("system-model", name)
    assert entry.verify() == []
    assert entry.parity(n=2, seed=1) < 1e-4
    card = entry.card()
    phases = entry.phases()
    if entry.irs == "off":
        assert phases is None
    else:
        assert len(phases) == card["irs"]["rows"] * card["irs"]["cols"]
        assert set(phases.tolist()) <= {0.0, math.pi}


def test_a_model_with_trained_irs_phases_is_shipped():
    assert "trained" in {registry.get("system-model", n).irs for n in SHIPPED}


def test_an_exported_model_matches_torch_and_registers(tmp_path):
    from testbed.systems.irs_jsce.export import export_checkpoint
    from testbed.systems.irs_jsce.models import read_folder

    checkpoint = train(_tiny(steps=2), tmp_path / "ckpt", progress=False)
    export_checkpoint(checkpoint, tmp_path / "models", "test", metrics={"none": True})
    (entry,) = read_folder(tmp_path / "models")
    assert entry.verify() == [] and entry.parity(n=3, seed=2) < 1e-4
    assert set(entry.phases().tolist()) <= {0.0, math.pi} and len(entry.phases()) == 64


def test_the_shipped_model_sends_held_out_tiles_on_fig3_slot_and_the_irs_helps():
    from testbed.systems.irs_jsce.evaluate import FIG3_LINKS, eval_phases, evaluate_slot, held_out_images
    from testbed.systems.irs_jsce.results import load, shipped

    entry, encoder, decoder, geometry, card = load(shipped("trained"))
    images = held_out_images(64)
    with_irs = evaluate_slot(encoder, decoder, geometry, eval_phases("trained", entry.phases()), FIG3_LINKS, images, 2)
    without = evaluate_slot(encoder, decoder, geometry, None, FIG3_LINKS, images, 2)
    assert min(with_irs["psnr_db"]) > 15 and np.mean(with_irs["psnr_db"]) > np.mean(without["psnr_db"])
    assert with_irs["throughput"] == pytest.approx([12 * v for v in with_irs["ssim"]], abs=1e-3)


def test_bit_tdma_loses_whole_codewords_and_co_phases_the_irs():
    from testbed.systems.irs_jsce import bit_tdma

    img = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    rng = np.random.default_rng(1)
    assert np.allclose(bit_tdma.received_image(img, 0.0, rng), np.rint(img * 255) / 255)
    assert np.all(bit_tdma.received_image(img, 1.0, rng) == np.float32(128 / 255))
    geometry = channel.load_geometry()
    draw = channel.draw_channels(geometry, bit_tdma.EVAL_CHANNEL_SEED, 0)
    random_gain = abs(channel.cascaded(draw, channel.one_bit(np.zeros(64)))[0, 1]) ** 2
    assert bit_tdma.link_snr_db(geometry, 0, 1, 0, 0.1) > 10 * math.log10(random_gain / 0.1)


def test_the_coverage_bonus_adds_the_share_of_pairs_served_and_is_off_by_default():
    table = _random_table(3, 4)
    plain, shaped = scheduling.ScheduleEnv(table, 3, 2), scheduling.ScheduleEnv(table, 3, 2, coverage_bonus=0.5)
    for env in (plain, shaped):
        env.reset()
    r_plain = plain.step(np.array([0.9, 0.0, 0.0]))[1]
    r_shaped = shaped.step(np.array([0.9, 0.0, 0.0]))[1]
    assert r_plain == 0.0 and r_shaped == pytest.approx(0.5 * 2 / 6)
    with pytest.raises(ConfigError, match="coverage_bonus"):
        scheduling.ScheduleEnv(table, 3, 2, coverage_bonus=-1.0)
