"""Channel matrices: counter-based generation, the numpy/torch Apply faces and the streaming
emulator on one seed, run-time control of the emulator (set_link, set_noise_var, genie CSI)."""
import math

import numpy as np
import pytest
import torch

from testbed.channels import ChannelMatrixEmulator, ChannelSpec, numpy_face, torch_face
from testbed.channels.realization import draw_block, generate_matrix
from testbed.channels.stream import H_LOG_LENGTH
from testbed.errors import ConfigError

COHERENCE = 64
N_BLOCKS = 6


def _symbols(rng, shape):
    return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)).astype(np.complex64)


def _to_torch(x):
    return torch.from_numpy(np.stack([x.real, x.imag], axis=-1).astype(np.float32))


def _to_numpy(t):
    t = t.detach().numpy()
    return t[..., 0] + 1j * t[..., 1]


def _specs_2x3():
    return [[ChannelSpec("rayleigh", 10, coherence_samples=COHERENCE, gain_db=-3.0 * (i + j)) for i in range(3)]
            for j in range(2)]


def _stream(emulator, streams, sizes):
    outputs, start = [], 0
    for size in sizes:
        outputs.append(emulator.process([s[start : start + size] for s in streams]))
        start += size
    return np.stack([np.concatenate(parts) for parts in zip(*outputs)])


def test_draw_block_is_counter_based_and_independent_of_order():
    spec = ChannelSpec("rician", 0, k_factor_db=3, gain_db=6)
    pair = np.random.default_rng([5, 1, 2, 7]).standard_normal(2)
    k = 10**0.3
    scattered = (pair[0] + 1j * pair[1]) / math.sqrt(2)
    expected = 10 ** (6 / 20) * (math.sqrt(k / (k + 1)) + math.sqrt(1 / (k + 1)) * scattered)
    assert draw_block(spec, 5, 1, 2, 7) == pytest.approx(expected, abs=1e-6)
    specs = _specs_2x3()
    forward = generate_matrix(specs, 9, range(N_BLOCKS))
    backward = generate_matrix(specs, 9, reversed(range(N_BLOCKS)))
    assert forward.dtype == np.complex64 and forward.shape == (N_BLOCKS, 2, 3)
    np.testing.assert_array_equal(forward, backward[::-1])
    assert len(np.unique(forward)) == forward.size
    assert draw_block(ChannelSpec("awgn", 0, gain_db=20), 0, 0, 0, 3) == pytest.approx(10.0)


def test_numpy_torch_and_stream_give_one_output_for_a_2x3_block_fading_matrix():
    specs, seed = _specs_2x3(), 21
    rng = np.random.default_rng(0)
    streams = _symbols(rng, (3, N_BLOCKS * COHERENCE))
    emulator = ChannelMatrixEmulator(3, 2, specs, seed, noise_var=[0.0, 0.0])
    sizes = [1, 0, 63, 100, 7, 29, 184]  # chunk edges off the block edges
    streamed = _stream(emulator, list(streams), sizes)  # (n_rx, n)
    h = generate_matrix(specs, seed, range(N_BLOCKS))
    x_blocks = streams.reshape(3, N_BLOCKS, COHERENCE).transpose(1, 0, 2)  # (batch, n_tx, n)
    zeros = np.zeros((N_BLOCKS, 2, COHERENCE), np.complex64)
    y_np, h_np = numpy_face.apply_matrix(x_blocks, h, noise=zeros)
    y_t, h_t = torch_face.apply_matrix(_to_torch(x_blocks), _to_torch(h), noise=_to_torch(zeros))
    expected = streamed.reshape(2, N_BLOCKS, COHERENCE).transpose(1, 0, 2)
    assert y_np.dtype == np.complex64 and y_np.shape == (N_BLOCKS, 2, COHERENCE)
    assert y_t.dtype == torch.float32 and y_t.shape == (N_BLOCKS, 2, COHERENCE, 2)
    np.testing.assert_allclose(y_np, expected, atol=1e-5)
    np.testing.assert_allclose(_to_numpy(y_t), expected, atol=1e-5)
    np.testing.assert_array_equal(h_np, h)
    np.testing.assert_allclose(_to_numpy(h_t), h, atol=1e-7)


def test_matrix_faces_agree_on_given_noise_and_draw_per_rx_noise_variance():
    rng = np.random.default_rng(1)
    x, h = _symbols(rng, (4, 3, 32)), _symbols(rng, (4, 2, 3))
    noise = _symbols(rng, (4, 2, 32))
    y_np, _ = numpy_face.apply_matrix(x, h, noise=noise)
    y_t, _ = torch_face.apply_matrix(_to_torch(x), h, noise=noise)
    np.testing.assert_allclose(_to_numpy(y_t), y_np, atol=1e-5)
    zeros_x = np.zeros((8, 2, 20000), np.complex64)
    no = [0.5, 0.01]
    y_np, _ = numpy_face.apply_matrix(zeros_x, np.eye(2), no, rng=np.random.default_rng(2))
    y_t, _ = torch_face.apply_matrix(torch.zeros(8, 2, 20000, 2), np.eye(2), torch.tensor(no),
                                     generator=torch.Generator().manual_seed(2))
    for y in (y_np, _to_numpy(y_t)):
        for j in range(2):
            assert np.mean(np.abs(y[:, j]) ** 2) == pytest.approx(no[j], rel=0.03)


def test_torch_matrix_face_is_differentiable_in_x_and_h():
    x = torch.randn(2, 3, 16, 2, requires_grad=True)
    h = torch.randn(2, 2, 3, 2, requires_grad=True)
    y, _ = torch_face.apply_matrix(x, h, 0.1)
    y.square().sum().backward()
    assert x.grad.abs().sum() > 0 and h.grad.abs().sum() > 0


def test_matrix_faces_refuse_bad_shapes():
    with pytest.raises(ValueError, match="n_rx"):
        numpy_face.apply_matrix(np.zeros((2, 3, 4), np.complex64), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="batch, n_tx, n, 2"):
        torch_face.apply_matrix(torch.zeros(2, 3, 4), np.zeros((2, 3)))


def test_gain_db_scales_the_link_in_every_face_and_is_validated():
    spec = ChannelSpec("awgn", 200, gain_db=-6)
    x = np.ones((1, 8), np.complex64)
    y, h = numpy_face.apply(x, spec, rng=np.random.default_rng(0))
    np.testing.assert_allclose(y, 10 ** (-6 / 20), rtol=1e-5)
    y_t, _ = torch_face.apply(_to_torch(x), spec)
    np.testing.assert_allclose(_to_numpy(y_t), 10 ** (-6 / 20), rtol=1e-5)
    out = ChannelMatrixEmulator(1, 1, [[spec]], 0, noise_var=[0.0]).process([x[0]])[0]
    np.testing.assert_allclose(out, 10 ** (-6 / 20), rtol=1e-5)
    with pytest.raises(ConfigError, match="channel.gain_db nan is invalid; allowed"):
        ChannelSpec("awgn", 0, gain_db=math.nan)


def test_set_link_lands_at_the_logged_sample_keeping_delay_line_and_cfo_phase():
    base = ChannelSpec("awgn", 200, cfo_hz=5e3, delay_samples=3)
    x = _symbols(np.random.default_rng(3), 400)
    reference = ChannelMatrixEmulator(1, 1, [[base]], 0, noise_var=[0.0]).process([x])[0]
    emulator = ChannelMatrixEmulator(1, 1, [[base]], 0, noise_var=[0.0])
    first = emulator.process([x[:150]])[0]
    emulator.set_link(0, 0, ChannelSpec("awgn", 200, cfo_hz=5e3, delay_samples=3, gain_db=6))
    second = emulator.process([x[150:]])[0]
    change = emulator.changes[-1]
    assert (change["sample"], change["what"], change["rx"], change["tx"]) == (150, "set_link", 0, 0)
    assert change["rebuilt"] is False
    np.testing.assert_allclose(first, reference[:150], atol=1e-6)
    np.testing.assert_allclose(second, 10 ** (6 / 20) * reference[150:], atol=1e-5)
    emulator.set_link(0, 0, ChannelSpec("awgn", 200, delay_samples=5))
    assert emulator.changes[-1]["rebuilt"] and emulator.changes[-1]["sample"] == 400
    np.testing.assert_allclose(emulator.process([x[:10]])[0], np.r_[np.zeros(5), x[:5]], atol=1e-6)


def test_rx_noise_follows_its_first_link_until_set_explicitly():
    emulator = ChannelMatrixEmulator(1, 1, [[ChannelSpec("awgn", 30)]], 4)
    zeros = np.zeros(50000, np.complex64)
    assert np.mean(np.abs(emulator.process([zeros])[0]) ** 2) == pytest.approx(1e-3, rel=0.05)
    emulator.set_link(0, 0, ChannelSpec("awgn", 10))
    assert emulator.changes[-1]["noise_var"] == pytest.approx(0.1)
    assert np.mean(np.abs(emulator.process([zeros])[0]) ** 2) == pytest.approx(0.1, rel=0.05)
    emulator.set_noise_var(0, 0.0)
    assert emulator.changes[-1] == {"sample": 100000, "what": "set_noise_var", "rx": 0, "noise_var": 0.0}
    emulator.set_link(0, 0, ChannelSpec("awgn", 0))
    assert "noise_var" not in emulator.changes[-1]
    np.testing.assert_array_equal(emulator.process([zeros[:100]])[0], 0)


def test_realised_h_and_h_log_are_the_generated_matrices():
    specs, seed = _specs_2x3(), 13
    emulator = ChannelMatrixEmulator(3, 2, specs, seed, log_h=True)
    h = generate_matrix(specs, seed, range(N_BLOCKS))
    streams = list(np.zeros((3, 200), np.complex64))
    _stream(emulator, streams, [10, 100, 90])
    assert emulator.realised_h().dtype == np.complex64
    np.testing.assert_array_equal(emulator.realised_h(), h[200 // COHERENCE])
    assert [s for s, _ in emulator.h_log] == [0, 64, 128, 192]
    for sample, matrix in emulator.h_log:
        np.testing.assert_array_equal(matrix, h[sample // COHERENCE])
    emulator.set_link(1, 2, ChannelSpec("awgn", 10, coherence_samples=COHERENCE))
    assert emulator.h_log[-1][0] == 200 and emulator.h_log[-1][1][1, 2] == 1
    assert emulator.h_log.maxlen == H_LOG_LENGTH
    assert ChannelMatrixEmulator(1, 1, [[specs[0][0]]], 0).h_log is None


def test_bad_controls_name_field_value_and_allowed():
    spec = ChannelSpec("awgn", 10)
    emulator = ChannelMatrixEmulator(2, 1, [[spec, spec]], 0)
    with pytest.raises(ConfigError, match="channel control tx 2 is invalid; allowed: an integer 0..1"):
        emulator.set_link(0, 2, spec)
    with pytest.raises(ConfigError, match="spec 'x' is invalid; allowed: a ChannelSpec"):
        emulator.set_link(0, 0, "x")
    with pytest.raises(ConfigError, match="noise_var -1 is invalid; allowed: a finite number >= 0"):
        emulator.set_noise_var(0, -1)
    with pytest.raises(ConfigError, match="set_irs_phases is invalid here; allowed"):
        emulator.set_irs_phases(np.zeros(4))
    with pytest.raises(ConfigError, match=r"noise_var \[0.1\] is invalid; allowed: 2 numbers"):
        ChannelMatrixEmulator(2, 2, [[spec, spec], [spec, spec]], 0, noise_var=[0.1])
    with pytest.raises(ConfigError, match="seed -1 is invalid; allowed: an integer >= 0"):
        ChannelMatrixEmulator(1, 1, [[spec]], -1)
    assert emulator.changes == []
