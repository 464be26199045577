"""The numpy and torch faces of the channel and the shared Realization (Generate/Apply split)."""
import math

import numpy as np
import pytest
import torch

from testbed.channels import ChannelSpec, draw, numpy_face, torch_face
from testbed.channels.realization import fractional_delay_fir, response

IMPAIRMENTS = {
    "flat": {},
    "cfo": {"cfo_hz": 12e3},
    "delay": {"delay_samples": 3.0},
    "fractional_delay": {"delay_samples": 2.37},
    "taps": {"taps": (1.0, 0.5j, -0.25 + 0.1j)},
    "all": {"cfo_hz": -7e3, "delay_samples": 9.6, "taps": (0.9, 0.3 - 0.2j)},
}


def _symbols(rng, batch, n):
    return ((rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))) / math.sqrt(2)).astype(
        np.complex64
    )


def _to_torch(x):
    return torch.from_numpy(np.stack([x.real, x.imag], axis=-1).astype(np.float32))


def _to_numpy(t):
    t = t.detach().numpy()
    return t[..., 0] + 1j * t[..., 1]


@pytest.mark.parametrize("impairment", sorted(IMPAIRMENTS))
@pytest.mark.parametrize("model", ["awgn", "rayleigh", "rician"])
def test_numpy_and_torch_faces_agree_on_one_realization(model, impairment):
    spec = ChannelSpec(model, snr_db=12, **IMPAIRMENTS[impairment])
    rng = np.random.default_rng(1)
    x = _symbols(rng, 4, 64)
    realization = draw(spec, 4, 64, rng)
    y_np, h_np = numpy_face.apply(x, spec, realization=realization)
    y_t, h_t = torch_face.apply(_to_torch(x), spec, realization=realization)
    assert y_np.dtype == np.complex64 and y_np.shape == (4, 64) and h_np.shape == (4,)
    assert y_t.dtype == torch.float32 and y_t.shape == (4, 64, 2) and h_t.shape == (4, 2)
    assert np.max(np.abs(_to_numpy(y_t) - y_np)) < 1e-5
    assert np.max(np.abs(_to_numpy(h_t) - h_np)) < 1e-6


def test_gradients_flow_to_x():
    spec = ChannelSpec("rician", 5, cfo_hz=1e3, delay_samples=1.5, taps=(1, 0.2))
    x = torch.randn(3, 32, 2, requires_grad=True)
    y, _ = torch_face.Channel(spec)(x, snr_db=torch.tensor([0.0, 5.0, 10.0]))
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_noise_variance_matches_snr_in_both_faces():
    spec = ChannelSpec("awgn", snr_db=6)
    zeros = np.zeros((16, 4096), np.complex64)
    y_np, _ = numpy_face.apply(zeros, spec, rng=np.random.default_rng(2))
    y_t, _ = torch_face.apply(torch.zeros(16, 4096, 2), spec, torch.Generator().manual_seed(2))
    for y in (y_np, _to_numpy(y_t)):
        assert np.mean(np.abs(y) ** 2) == pytest.approx(10 ** -0.6, rel=0.03)
        assert np.mean(y.real**2) == pytest.approx(np.mean(y.imag**2), rel=0.05)


def test_per_sample_snr_override():
    channel = torch_face.Channel(ChannelSpec("awgn", snr_db=30), torch.Generator().manual_seed(3))
    snr_db = torch.tensor([0.0, 10.0, 20.0])
    y, _ = channel(torch.zeros(3, 20000, 2), snr_db=snr_db)
    measured = y.square().sum(-1).mean(-1)
    assert torch.allclose(measured, 10 ** (-snr_db / 10), rtol=0.05)


@pytest.mark.parametrize("face", ["numpy", "torch"])
def test_fading_statistics(face):
    batch = 40000
    rayleigh = ChannelSpec("rayleigh", 20)
    rician = ChannelSpec("rician", 20, k_factor_db=6)
    if face == "numpy":
        h_ray = draw(rayleigh, batch, 1, np.random.default_rng(4)).h
        h_ric = draw(rician, batch, 1, np.random.default_rng(5)).h
    else:
        x = torch.zeros(batch, 1, 2)
        h_ray = _to_numpy(torch_face.apply(x, rayleigh, torch.Generator().manual_seed(4))[1])
        h_ric = _to_numpy(torch_face.apply(x, rician, torch.Generator().manual_seed(5))[1])
    assert np.mean(np.abs(h_ray) ** 2) == pytest.approx(1.0, rel=0.03)
    assert abs(np.mean(h_ray)) < 0.02
    assert np.mean(np.abs(h_ric) ** 2) == pytest.approx(1.0, rel=0.03)
    k_measured = abs(np.mean(h_ric)) ** 2 / np.var(h_ric)
    assert 10 * np.log10(k_measured) == pytest.approx(6.0, abs=0.2)


def test_awgn_is_unit_fading_and_flat_fading_scales_x():
    spec = ChannelSpec("rayleigh", snr_db=200)
    x = _symbols(np.random.default_rng(6), 2, 16)
    y, h = numpy_face.apply(x, spec, rng=np.random.default_rng(7))
    np.testing.assert_allclose(y, h[:, None] * x, atol=1e-6)
    assert np.all(draw(ChannelSpec("awgn", 0), 3, 2, np.random.default_rng(0)).h == 1)


def test_fractional_delay_delays_a_band_limited_signal():
    t = np.arange(256)
    tone = np.exp(2j * np.pi * 0.05 * t).astype(np.complex64)[None]
    spec = ChannelSpec("awgn", snr_db=200, delay_samples=4.3)
    y, _ = numpy_face.apply(tone, spec, rng=np.random.default_rng(0))
    expected = np.exp(2j * np.pi * 0.05 * (t - 4.3))
    assert np.max(np.abs(y[0, 32:-32] - expected[32:-32])) < 1e-3


def test_interpolator_has_unit_dc_gain_and_integer_delay_is_a_shift():
    assert fractional_delay_fir(0.4).sum() == pytest.approx(1.0)
    assert response(ChannelSpec("awgn", 0, delay_samples=5)).fir.tolist() == [1]
    x = _symbols(np.random.default_rng(8), 1, 10)
    y = numpy_face.propagate(x, ChannelSpec("awgn", 0, delay_samples=3), np.ones(1, np.complex64))
    np.testing.assert_array_equal(y[0], np.concatenate([np.zeros(3), x[0, :7]]))


def test_cfo_rotates_by_the_stated_frequency():
    spec = ChannelSpec("awgn", 200, cfo_hz=25e3, sample_rate_sps=1e6)
    y = numpy_face.propagate(np.ones((1, 100), np.complex64), spec, np.ones(1, np.complex64))
    np.testing.assert_allclose(np.angle(y[0, 1:] / y[0, :-1]), 2 * np.pi * 0.025, atol=1e-5)


def test_awgn_convenience_and_shape_errors():
    y = numpy_face.awgn(np.zeros((2, 3, 5000), np.complex64), snr_db=3, rng=np.random.default_rng(9))
    assert y.dtype == np.complex64 and y.shape == (2, 3, 5000)
    assert np.mean(np.abs(y) ** 2) == pytest.approx(10 ** -0.3, rel=0.05)
    spec = ChannelSpec("awgn", 0)
    with pytest.raises(ValueError, match="batch, n"):
        numpy_face.apply(np.zeros(5, np.complex64), spec)
    with pytest.raises(ValueError, match="batch, n, 2"):
        torch_face.apply(torch.zeros(2, 5), spec)
    with pytest.raises(ValueError, match="realization"):
        numpy_face.apply(np.zeros((2, 5), np.complex64), spec, realization=draw(spec, 2, 6, np.random.default_rng()))
