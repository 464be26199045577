"""Adaptive-rate control pieces: 2-D entropy against a direct loop over eqs. (17)-(18),
thermometer selection, l1 pruning with its index matrix, the policies' shapes and the CPP."""
import math

import numpy as np
import pytest
import torch

from testbed.errors import ConfigError
from testbed.systems.adaptive_rate import rate_control as rc


def _entropy_loop(fmap: np.ndarray, levels: int) -> float:
    """Eqs. (17)-(18) by hand: quantised value and quantised 3x3 neighbourhood mean per pixel."""
    h, w = fmap.shape

    def quantise(a):
        return np.clip(np.rint((a - a.min()) / max(a.max() - a.min(), 1e-12) * (levels - 1)), 0, levels - 1)

    padded = np.pad(fmap, 1, mode="edge")
    mean = np.array([[padded[i:i + 3, j:j + 3].mean() for j in range(w)] for i in range(h)])
    counts: dict[tuple[float, float], int] = {}
    for m, n in zip(quantise(fmap).ravel(), quantise(mean).ravel()):
        counts[(m, n)] = counts.get((m, n), 0) + 1
    p = np.array(list(counts.values())) / (h * w)
    return float(-(p * np.log2(p)).sum())


def test_entropy_2d_matches_a_direct_evaluation_of_eqs_17_18():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((2, 3, 8, 8))
    got = rc.entropy_2d(torch.from_numpy(maps), levels=8).numpy()
    want = np.array([[_entropy_loop(maps[b, c], 8) for c in range(3)] for b in range(2)])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_a_flat_map_has_no_entropy_and_a_busy_one_has_much():
    flat = torch.ones(1, 1, 8, 8)
    busy = torch.from_numpy(np.random.default_rng(1).uniform(size=(1, 1, 8, 8)))
    assert rc.entropy_2d(flat).item() == pytest.approx(0.0, abs=1e-9)
    assert rc.entropy_2d(busy).item() > 3.0


def test_the_soft_entropy_has_a_gradient_and_tracks_the_hard_one():
    maps = torch.randn(4, 16, 8, 8, dtype=torch.float64, requires_grad=True)
    soft = rc.entropy_2d(maps, soft=True)
    soft.exp().mean().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    hard = rc.entropy_2d(maps.detach())
    assert np.corrcoef(soft.detach().ravel(), hard.ravel())[0, 1] > 0.5


def test_normalised_entropy_is_a_softmax_over_the_maps():
    h = torch.tensor([[1.0, 2.0, 3.0]])
    out = rc.normalised_entropy(h)
    assert out.sum().item() == pytest.approx(1.0) and torch.argmax(out).item() == 2


def test_thermometer_code_selects_from_the_hot_position_on():
    one_hot = torch.eye(5)  # C/2 = 4 maps and the no-map class
    expected = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(rc.thermometer(one_hot), expected)


def test_prune_l1_zeroes_the_smallest_values_and_marks_them():
    z = torch.tensor([[[0.5, -0.1, 2.0, -3.0, 0.2, 0.05, -0.7, 1.0, 0.3, 0.4]]])
    pruned, index = rc.prune_l1(z, torch.tensor([0.3]))
    assert index.sum().item() == 3
    assert index[0, 0].tolist() == [False, True, False, False, True, True, False, False, False, False]
    assert torch.equal(pruned[~index], z[~index]) and pruned[index].abs().sum() == 0
    none, none_index = rc.prune_l1(z, torch.tensor([0.0]))
    assert torch.equal(none, z) and not none_index.any()


def test_the_policies_give_distributions_of_the_right_length():
    torch.manual_seed(0)
    z = torch.randn(3, 16, 8, 8)
    csi, snr = torch.randn(3, 4, dtype=torch.complex64), torch.tensor([0.0, 10.0, 25.0])
    p1 = rc.SelectionPolicy(maps=16, antennas=4)(z, rc.normalised_entropy(rc.entropy_2d(z)), csi, snr)
    p2 = rc.PruningPolicy(maps=16, antennas=4)(torch.randn(3, 8, 128), csi, snr)
    assert p1.shape == (3, 9) and p2.shape == (3, len(rc.PRUNING_RATIOS))
    torch.testing.assert_close(p1.sum(-1), torch.ones(3))
    one_hot = rc.sample_one_hot(p1, rc.temperature(0))
    assert torch.equal(one_hot.sum(-1), torch.ones(3)) and one_hot.requires_grad
    assert rc.temperature(100) == pytest.approx(5 * math.exp(-1))
    with pytest.raises(ConfigError, match="maps=15"):
        rc.SelectionPolicy(maps=15, antennas=4)


def test_cpp_counts_the_index_rows_only_when_pruning():
    # CIFAR size, C = 16 (8 complex maps of 2L = 128 reals): all 8 maps unpruned -> 0.5
    assert rc.cpp(8, 128, 128, 32, 32) == pytest.approx(0.5)
    assert rc.index_symbols(128) == 29  # 128 bits / (3/4) / 6 bits per 64-QAM symbol, rounded up
    assert rc.cpp(8, 64, 128, 32, 32) == pytest.approx(8 * (64 + 29) / 2048)
