"""The torch MU-MIMO uplink the models train through agrees with the numpy receiver maths."""
import numpy as np
import torch

from testbed.systems.adaptive_rate import channel, detection


def test_torch_lmmse_matches_the_numpy_receiver_to_1e5():
    g = torch.Generator().manual_seed(0)
    snr = torch.tensor([0.0, 10.0, 25.0])
    draw = channel.draw(3, antennas=4, users=3, snr_db=snr, imperfect=True, generator=g)
    y = torch.complex(torch.randn(3, 4, 50, generator=g), torch.randn(3, 4, 50, generator=g))
    got = channel.lmmse(y, draw.h_hat, draw.noise_var).numpy()
    for b in range(3):
        want = detection.lmmse_detect(y[b].numpy(), draw.h_hat[b].numpy(), float(draw.noise_var[b]))
        np.testing.assert_allclose(got[b], want, atol=1e-5)


def test_imperfect_csi_has_the_noise_variance_as_its_error():
    g = torch.Generator().manual_seed(1)
    snr = torch.full((4000,), 5.0)
    draw = channel.draw(4000, antennas=2, users=2, snr_db=snr, imperfect=True, generator=g)
    err = (draw.h_hat - draw.h).abs().pow(2).mean().item()
    assert abs(err - 10 ** -0.5) < 0.01
    perfect = channel.draw(2, 2, 2, torch.zeros(2), imperfect=False, generator=g)
    assert torch.equal(perfect.h, perfect.h_hat)


def test_the_uplink_is_differentiable_and_clean_at_high_snr():
    g = torch.Generator().manual_seed(2)
    x = torch.complex(torch.randn(2, 3, 64), torch.randn(2, 3, 64)) / np.sqrt(2)
    x.requires_grad_(True)
    draw = channel.draw(2, antennas=4, users=3, snr_db=torch.tensor([60.0, 60.0]), generator=g)
    x_hat = channel.uplink(x, draw, generator=g)
    assert (x_hat - x).abs().max().item() < 1e-2
    x_hat.real.sum().backward()
    assert x.grad is not None
