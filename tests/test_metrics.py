"""Metrics against hand-computed values."""
import math

import numpy as np
import pytest
import pytorch_msssim
import torch

from testbed import errors, metrics
from testbed.metrics import accuracy, ber, bler, cpp, evm_db, ms_ssim, ms_ssim_scales, psnr_db, ssim


def test_metric_keys_are_the_report_vocabulary():
    assert metrics.METRIC_KEYS == ("psnr_db", "ssim", "ms_ssim", "accuracy", "ber", "bler", "evm_db",
                                   "snr_est_db", "cpp", "latency_ms")


def test_psnr_single_and_batch():
    ref = np.zeros((3, 2, 2), np.float32)
    test = ref.copy()
    test[1, 0, 1] = 0.5  # MSE = 0.25 / 12
    assert psnr_db(ref, test) == pytest.approx(10 * math.log10(48))
    assert psnr_db(ref * 255, test * 255, data_range=255.0) == pytest.approx(10 * math.log10(48))
    batch = psnr_db(np.stack([ref, ref]), np.stack([test, ref]))
    assert batch.shape == (2,) and batch[0] == pytest.approx(16.8124, abs=1e-4) and batch[1] == math.inf


def test_shape_mismatch_is_a_testbed_error():
    with pytest.raises(errors.TestbedError, match="cannot be compared"):
        psnr_db(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))


def _constant(value: float, size: int) -> np.ndarray:
    return np.full((3, size, size), value, np.float32)


def test_ssim_of_constant_images_is_the_luminance_term():
    # sigma = 0: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2
    expected = (2 * 0.5 * 0.25 + 1e-4) / (0.5**2 + 0.25**2 + 1e-4)
    assert ssim(_constant(0.5, 16), _constant(0.25, 16)) == pytest.approx(expected, rel=1e-5)
    assert ssim(_constant(0.5, 16), _constant(0.5, 16)) == pytest.approx(1.0)


@pytest.mark.parametrize("size, scales", [(11, 1), (32, 2), (80, 3), (81, 4), (128, 4), (160, 4), (161, 5)])
def test_ms_ssim_scale_count(size, scales):
    assert ms_ssim_scales(size, size + 50) == scales


def test_ms_ssim_refuses_tiny_images():
    with pytest.raises(errors.TestbedError, match="larger than 10 px"):
        ms_ssim(_constant(0.5, 10), _constant(0.5, 10))


def test_ms_ssim_of_constant_images_on_a_small_image():
    # cs = 1 at every scale, so MS-SSIM = l ** w_last; 32 px uses 2 scales,
    # w = (0.0448, 0.2856) rescaled to the total 1.0001 of all five weights
    luminance = (2 * 0.5 * 0.25 + 1e-4) / (0.5**2 + 0.25**2 + 1e-4)
    w_last = 0.2856 * 1.0001 / (0.0448 + 0.2856)
    assert ms_ssim(_constant(0.5, 32), _constant(0.25, 32)) == pytest.approx(luminance**w_last, rel=1e-5)


def test_ms_ssim_equals_pytorch_msssim_on_large_images():
    rng = np.random.default_rng(0)
    ref = rng.random((2, 3, 176, 180), dtype=np.float32)
    test = np.clip(ref + 0.1 * rng.standard_normal(ref.shape).astype(np.float32), 0, 1)
    expected = pytorch_msssim.ms_ssim(torch.from_numpy(ref), torch.from_numpy(test), data_range=1.0,
                                      size_average=False).numpy()
    np.testing.assert_allclose(ms_ssim(ref, test), expected, rtol=1e-5)
    assert ms_ssim(ref[0], ref[0]) == pytest.approx(1.0)


def test_ber_bler_accuracy():
    assert ber([0, 1, 1, 0], [0, 0, 1, 1]) == 0.5
    assert ber(np.array([True, False]), np.array([1, 0])) == 0.0
    assert bler([True, False, True, True]) == 0.25
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    with pytest.raises(errors.TestbedError, match="ber needs"):
        ber([0, 1], [0, 1, 1])
    with pytest.raises(errors.TestbedError, match="at least one block"):
        bler([])


def test_evm_db():
    ref = np.array([1, -1, 1j, -1j], np.complex64)
    assert evm_db(ref, ref + 0.1) == pytest.approx(-20.0, abs=1e-5)  # RMS EVM 10 %
    assert evm_db(ref, ref) == -math.inf


def test_cpp():
    assert cpp(512, 32, 32) == 0.5
