"""The streaming emulator (testbed.channels.stream) behind the GNU Radio channel block."""
import math

import numpy as np
import pytest

from testbed.channels import ChannelMatrixEmulator, ChannelSpec, LinkImpairment, numpy_face
from testbed.channels.realization import draw_block
from testbed.channels.stream import fading
from testbed.errors import ConfigError

LINKS = {
    "awgn_cfo": ChannelSpec("awgn", 10, cfo_hz=3.3e3),
    "rayleigh_taps_frac": ChannelSpec("rayleigh", 15, delay_samples=2.4, taps=(1, 0.4j, 0.1)),
    "rician_all": ChannelSpec(
        "rician", 5, cfo_hz=-11e3, delay_samples=37.75, taps=(1, 0.5), coherence_samples=700
    ),
    "rayleigh_long_fft_filtered_taps": ChannelSpec(
        "rayleigh", 10, delay_samples=0.5, taps=tuple(np.exp(-0.1 * np.arange(60)) * np.exp(1j * np.arange(60)))
    ),
    "rayleigh_integer_delay_fast_fading": ChannelSpec("rayleigh", 20, delay_samples=5, coherence_samples=64),
}


def _symbols(seed, n):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def _chunked(emulator, streams, sizes):
    outputs, start = [], 0
    for size in sizes:
        outputs.append(emulator.process([s[start : start + size] for s in streams]))
        start += size
    return [np.concatenate(parts) for parts in zip(*outputs)]


@pytest.mark.parametrize("name", sorted(LINKS))
def test_chunked_processing_equals_one_call(name):
    spec = LINKS[name]
    n = 20000
    x = _symbols(0, n)
    whole = ChannelMatrixEmulator(1, 1, [[spec]], seed=11).process([x])[0]
    cuts = np.sort(np.random.default_rng(12).choice(np.arange(2, n), 30, replace=False))
    sizes = np.diff(np.concatenate([[0, 1, 1], cuts, [n]]))  # a 1-sample and an empty chunk first
    chunked = _chunked(ChannelMatrixEmulator(1, 1, [[spec]], seed=11), [x], sizes)
    np.testing.assert_allclose(chunked[0], whole, atol=1e-5)


@pytest.mark.parametrize("name", ["awgn_cfo", "rayleigh_taps_frac", "rayleigh_long_fft_filtered_taps"])
def test_stream_matches_the_block_face_shifted_by_its_extra_latency(name):
    spec = LINKS[name].with_snr(200)
    x = _symbols(1, 3000)
    link = LinkImpairment(spec, fading(spec, 3))
    h = link.h
    streamed = np.concatenate([link.process(x[:1234]), link.process(x[1234:])])
    extra = round(link.delay_samples - spec.delay_samples)
    block = numpy_face.propagate(x[None], spec, np.array([h]))[0]
    rotation_offset = np.exp(1j * spec.cfo_rad_per_sample * extra)
    np.testing.assert_allclose(streamed[extra:], block[: len(x) - extra] * rotation_offset, atol=1e-5)


def test_receiver_noise_statistics():
    snrs = [0.0, 10.0, 20.0]
    specs = [[ChannelSpec("awgn", snr)] for snr in snrs]
    emulator = ChannelMatrixEmulator(1, 3, specs, seed=5)
    outputs = emulator.process([np.zeros(100000, np.complex64)])
    for y, snr in zip(outputs, snrs):
        assert y.dtype == np.complex64
        assert np.mean(np.abs(y) ** 2) == pytest.approx(10 ** (-snr / 10), rel=0.02)
        assert abs(np.mean(y)) < 0.01 * 10 ** (-snr / 20)
        assert abs(np.mean(y * y)) < 0.02 * 10 ** (-snr / 10)  # circular
    assert not np.allclose(outputs[0] / np.std(outputs[0]), outputs[1] / np.std(outputs[1]), atol=0.1)


def test_matrix_sums_links_and_counts_samples():
    quiet = ChannelSpec("awgn", 200)
    delayed = ChannelSpec("awgn", 200, delay_samples=2)
    emulator = ChannelMatrixEmulator(2, 3, [[quiet, quiet], [quiet, delayed], [delayed, quiet]], seed=0)
    x1, x2 = _symbols(1, 50), _symbols(2, 50)
    y = emulator.process([x1, x2])
    pad = np.concatenate([np.zeros(2, np.complex64), x2[:-2]])
    np.testing.assert_allclose(y[0], x1 + x2, atol=1e-6)
    np.testing.assert_allclose(y[1], x1 + pad, atol=1e-6)
    np.testing.assert_allclose(y[2], np.concatenate([[0, 0], x1[:-2]]) + x2, atol=1e-6)
    emulator.process([x1[:10], x2[:10]])
    assert (emulator.samples_in, emulator.samples_out) == (2 * 60, 3 * 60)


def test_block_fading_redraws_every_coherence_samples():
    spec = ChannelSpec("rayleigh", 200, coherence_samples=100)
    link = LinkImpairment(spec, fading(spec, 4))
    gains = np.concatenate([link.process(np.ones(n, np.complex64)) for n in (30, 250, 120)])
    assert gains.dtype == np.complex64
    blocks = gains.reshape(4, 100)
    assert np.all(blocks == blocks[:, :1])
    assert len(np.unique(blocks[:, 0])) == 4
    rician = ChannelSpec("rician", 200)
    constant = LinkImpairment(rician, fading(rician, 4))
    assert len(np.unique(constant.process(np.ones(500, np.complex64)))) == 1


def test_bad_matrix_and_inputs_are_refused():
    spec = ChannelSpec("awgn", 10)
    with pytest.raises(ConfigError, match="rows of lengths"):
        ChannelMatrixEmulator(2, 2, [[spec, spec], [spec]], seed=0)
    with pytest.raises(ConfigError, match="n_tx=0"):
        ChannelMatrixEmulator(0, 1, [[]], seed=0)
    emulator = ChannelMatrixEmulator(2, 1, [[spec, spec]], seed=0)
    with pytest.raises(ValueError, match="2 input streams"):
        emulator.process([np.zeros(4, np.complex64)])
    with pytest.raises(ValueError, match="one length"):
        emulator.process([np.zeros(4, np.complex64), np.zeros(5, np.complex64)])


def _fading_block_run(sizes: tuple[list[int], list[int]], block: int):
    """Outputs of TX 0's unit stream (TX 1 silent) through the links of ``test_set_fading_block``,
    chunked as ``sizes`` before and after ``set_fading_block(block)`` at sample 250; the emulator."""
    specs = [[ChannelSpec("rayleigh", 200), ChannelSpec("rician", 200, k_factor_db=3.0)],
             [ChannelSpec("rayleigh", 200, coherence_samples=100), ChannelSpec("awgn", 200)]]
    emulator = ChannelMatrixEmulator(2, 2, specs, seed=5, noise_var=[0.0, 0.0])
    ones, zeros = np.ones(250, np.complex64), np.zeros(250, np.complex64)
    before = _chunked(emulator, [ones, zeros], sizes[0])
    emulator.set_fading_block(block)
    after = _chunked(emulator, [ones, zeros], sizes[1])
    return [np.concatenate(pair) for pair in zip(before, after)], emulator


def test_set_fading_block_moves_the_links_without_coherence_time_to_that_draw():
    (y0, y1), emulator = _fading_block_run(([250], [250]), 3)
    specs = [[link.spec for link in row] for row in emulator.links]
    draw = lambda j, i, b: draw_block(specs[j][i], 5, j, i, b)  # noqa: E731
    np.testing.assert_array_equal(y0[:250], draw(0, 0, 0))
    np.testing.assert_array_equal(y0[250:], draw(0, 0, 3))  # from the next output sample on
    assert draw(0, 0, 3) != draw(0, 0, 4) and draw(0, 1, 3) != draw(0, 1, 4)
    np.testing.assert_array_equal(y1[200:300], draw(1, 0, 2))  # its own blocks, by output sample
    np.testing.assert_array_equal(y1[300:400], draw(1, 0, 3))
    expected = [[draw(0, 0, 3), draw(0, 1, 3)], [draw(1, 0, 5), draw(1, 1, 0)]]  # at sample 500
    np.testing.assert_array_equal(emulator.realised_h(), np.array(expected, np.complex64))
    assert emulator.changes == [{"sample": 250, "what": "set_fading_block", "block": 3}]
    emulator.set_link(0, 0, ChannelSpec("rayleigh", 200, delay_samples=2))  # a rebuilt link keeps the block
    assert emulator.realised_h()[0, 0] == draw_block(emulator.spec(0, 0), 5, 0, 0, 3)
    with pytest.raises(ConfigError, match="block -1 is invalid; allowed: an integer >= 0"):
        emulator.set_fading_block(-1)


def test_set_fading_block_is_chunking_independent():
    one, _ = _fading_block_run(([250], [250]), 7)
    many, _ = _fading_block_run(([1, 99, 150], [7, 200, 43]), 7)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
