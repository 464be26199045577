"""The adaptive-rate user end to end: what is sent matches the decisions, unit power over the
sent symbols, a lossless round trip at high SNR, and gradients reaching both policies."""
import pytest
import torch

from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate import transceiver as t


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return t.AdaptiveRateUser(antennas=2)


def test_what_is_sent_follows_the_selection_and_the_pruning_ratio(model):
    torch.manual_seed(1)
    csi = torch.complex(torch.randn(6, 2), torch.randn(6, 2))
    with torch.no_grad():
        rows, d = model.transmit(torch.rand(6, 3, 32, 32), csi, torch.linspace(0, 25, 6), tau=1.0)
    for b in range(6):
        maps = int(d.selected[b])
        assert torch.all(d.kept[b, :8 - maps] == 0)                       # thermometer: the first maps are off
        kept_per_map = d.kept[b, 8 - maps:].sum(-1)
        assert torch.all(kept_per_map == 128 - int(float(d.ratio[b]) * 128 + 1e-6))
        assert float(d.ratio[b]) in [pytest.approx(r) for r in rc.PRUNING_RATIOS]
    assert torch.all(rows[d.kept == 0] == 0)


def test_symbols_have_unit_power_over_what_is_sent_and_round_trip():
    rows = torch.randn(3, 8, 128)
    kept = torch.ones(3, 8, 128)
    kept[0, :4] = 0
    rows = rows * kept
    symbols, power = t.to_symbols(rows, kept)
    sent = torch.maximum(kept[..., :64], kept[..., 64:]).flatten(1)
    torch.testing.assert_close((symbols.abs() ** 2).sum(-1) / sent.sum(-1), torch.ones(3))
    torch.testing.assert_close(t.from_symbols(symbols, power, 8), rows)


def test_a_clean_uplink_gives_what_the_decoder_sees_without_a_channel(model):
    images = torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    snr = torch.full((3,), 90.0)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(5)  # the Gumbel draws
    with torch.no_grad():
        recon, decisions = t.run_users(model, images, snr, antennas=2, imperfect=False, tau=1.0, generator=g)
        g = torch.Generator().manual_seed(0)
        h = t.uplink_channel.draw(3, 2, 2, snr, False, g).h
        torch.manual_seed(5)
        for k in range(2):
            rows, d = model.transmit(images[k], h[:, :, k], snr, tau=1.0)
            assert torch.equal(d.selected, decisions[k].selected)
            torch.testing.assert_close(recon[k], model.receive(rows, d, h[:, :, k], snr), atol=1e-3, rtol=0)


def test_the_loss_reaches_the_encoder_decoder_and_both_policies(model):
    torch.manual_seed(3)
    model.zero_grad()
    images = torch.rand(2, 4, 3, 32, 32)
    recon, decisions = t.run_users(model, images, torch.full((4,), 10.0), antennas=2, imperfect=True, tau=5.0)
    total, parts = t.loss(images, recon, decisions, alpha=2e-4, beta=1e-5)
    total.backward()
    for part in (model.encoder, model.decoder, model.select, model.prune):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert set(parts) == {"mse", "usage", "exp_entropy"}


def test_usage_and_cpp_count_the_index_rows_when_pruning():
    mask = torch.tensor([[0.0] * 4 + [1.0] * 4, [1.0] * 8])
    kept = mask[..., None].expand(2, 8, 128).clone()
    kept[0, 4:, :64] = 0  # user 0: 4 maps, half pruned
    d = t.UserDecision(mask, torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]), kept, torch.zeros(2, 16))
    torch.testing.assert_close(d.usage(), torch.tensor([4 * (64 + 29) / 128, 8.0]))
    torch.testing.assert_close(d.cpp(), torch.tensor([4 * (64 + 29) / 2048, 0.5]), check_dtype=False)
