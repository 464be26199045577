"""The "Generate" half of a channel: random draws and the deterministic response of a spec.

Following Sionna's Generate/Apply split, everything random about a frame (the block-fading
coefficient and the noise) is drawn here into a :class:`Realization` (or, for channel matrices,
generated block by block from counter-based generators: :func:`draw_block` and
:func:`generate_matrix` take block b of link (j, i) from ``default_rng([seed, j, i, b])``), and
everything deterministic (the timing-offset interpolator convolved with the multipath taps, the CFO
rotation) is computed here from the :class:`~testbed.channels.spec.ChannelSpec`. The numpy and
torch faces and the streaming emulator all use these functions, so they apply one channel
definition (docs/architecture.md "How data flows": the channel trained on in torch is the one the emulator
applies) and the faces give the same output on the same Realization.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from testbed.channels.spec import ChannelSpec
from testbed.errors import ConfigError

FRAC_HALF_LENGTH = 8
"""Half-length of the fractional-delay interpolator (2 * FRAC_HALF_LENGTH taps)."""
KAISER_BETA = 6.0
"""Kaiser window shape of the interpolator (about -60 dB side lobes)."""


@dataclasses.dataclass(frozen=True)
class Realization:
    """The random part of one batch of frames.

    Attributes:
        h: complex64 (batch,), flat coefficient per frame: fading times amplitude gain (the gain
            alone for awgn, the gain times the coefficient for fixed).
        noise: complex64 (batch, n), circular Gaussian noise of variance ``no`` per sample.
    """

    h: np.ndarray
    noise: np.ndarray

    @property
    def batch(self) -> int:
        return int(self.noise.shape[0])

    @property
    def n(self) -> int:
        return int(self.noise.shape[1])


@dataclasses.dataclass(frozen=True)
class Response:
    """The deterministic linear part of a link, y[t] = sum_k fir[k] x[t - shift - k].

    Attributes:
        fir: complex64 (L,), fractional-delay interpolator convolved with the multipath taps.
        delay: integer part of ``delay_samples``.
        lead: group delay of the interpolator in whole samples (0 when the delay is an integer);
            the block faces advance the FIR by ``lead`` so the total delay is ``delay_samples``.
    """

    fir: np.ndarray
    delay: int
    lead: int

    @property
    def shift(self) -> int:
        """Shift applied before the FIR in the block faces (may be negative)."""
        return self.delay - self.lead

    @property
    def is_identity(self) -> bool:
        return self.shift == 0 and self.fir.shape == (1,) and self.fir[0] == 1


def draw_fading(spec: ChannelSpec, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` independent flat coefficients of ``spec`` drawn from ``rng``; complex64 (count,).

    The fading law of :func:`fading_law` (awgn and fixed draw nothing), amplitude gain included.
    """
    if not spec.fades:
        return fading_law(spec, np.zeros((count, 2)))
    return fading_law(spec, rng.standard_normal((count, 2)))


def fading_law(spec: ChannelSpec, normals: np.ndarray) -> np.ndarray:
    """Flat coefficients from standard normal pairs; float (count, 2) in, complex64 (count,) out.

    awgn: g; fixed: g c (``spec.coefficient``); rayleigh: g CN(0, 1); rician: g (sqrt(K/(K+1)) +
    sqrt(1/(K+1)) CN(0, 1)), where the pair (a, b) gives CN(0, 1) = (a + j b) / sqrt(2) and
    g = 10**(gain_db/20).
    """
    if not spec.fades:
        return np.full(len(normals), spec.fixed_h, np.complex64)
    gain = spec.amplitude_gain
    scattered = normals @ np.array([1.0, 1.0j]) / math.sqrt(2.0)
    if spec.model == "rician":
        k = spec.k_factor
        scattered = math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * scattered
    return (gain * scattered).astype(np.complex64)


def block_rng(seed: int, *counters: int) -> np.random.Generator:
    """The counter-based generator ``np.random.default_rng([seed, *counters])``.

    Every random draw that must be reproducible out of order (fading block b of link (j, i),
    an IRS block) takes its own generator keyed by its counters, so no face needs sequential state.
    Raises ConfigError unless the seed and counters are integers >= 0.
    """
    return np.random.default_rng([check_seed("seed", seed), *(check_seed("counter", c) for c in counters)])


def check_seed(field: str, value: object) -> int:
    """``value`` as an int >= 0 (a seed or counter); ConfigError naming ``field`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"channel {field} {value!r} is invalid; allowed: an integer >= 0")
    return int(value)


def draw_block(spec: ChannelSpec, seed: int, rx: int, tx: int, block: int) -> np.complex64:
    """Flat coefficient of fading block ``block`` of link TX ``tx`` -> RX ``rx``; complex64 scalar.

    Drawn by :func:`fading_law` from ``block_rng(seed, rx, tx, block)``, so every face (the
    streaming emulator included) gets the same coefficient for the same block, in any order.
    """
    if not spec.fades:
        return fading_law(spec, np.zeros((1, 2)))[0]
    return fading_law(spec, block_rng(seed, rx, tx, block).standard_normal((1, 2)))[0]


def generate_matrix(specs: Sequence[Sequence[ChannelSpec]], seed: int, blocks: Iterable[int]) -> np.ndarray:
    """The channel matrices of fading blocks ``blocks``: H[b, j, i] = draw_block(specs[j][i], seed, j, i, b).

    Parameters:
        specs: n_rx rows of n_tx specs; ``specs[j][i]`` is the link TX i -> RX j.
        seed: the emulator's seed.
        blocks: fading block indices (block b covers stream samples b*coherence .. (b+1)*coherence - 1).

    Returns:
        complex64 (n_blocks, n_rx, n_tx), amplitude gains included.
    """
    blocks = list(blocks)
    h = np.empty((len(blocks), len(specs), len(specs[0])), np.complex64)
    for k, block in enumerate(blocks):
        for j, row in enumerate(specs):
            for i, spec in enumerate(row):
                h[k, j, i] = draw_block(spec, seed, j, i, block)
    return h


def draw_noise(no: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Circular Gaussian noise of variance ``no`` per complex sample; complex64 ``shape``."""
    pairs = rng.standard_normal((*shape, 2), dtype=np.float32)
    pairs *= np.float32(math.sqrt(no / 2.0))
    return pairs.view(np.complex64).reshape(shape)


def draw(spec: ChannelSpec, batch: int, n: int, rng: np.random.Generator) -> Realization:
    """Draw the fading (first) and the noise (second) of ``batch`` frames of ``n`` samples.

    Returns:
        Realization with h complex64 (batch,) and noise complex64 (batch, n) of variance ``spec.no``.
    """
    h = draw_fading(spec, batch, rng)
    return Realization(h=h, noise=draw_noise(spec.no, (batch, n), rng))


def fractional_delay_fir(mu: float, half_length: int = FRAC_HALF_LENGTH) -> np.ndarray:
    """Kaiser-windowed sinc delaying by ``half_length - 1 + mu`` samples; float64 (2 half_length,).

    ``mu`` in [0, 1); ``mu == 0`` returns the identity ``[1.0]``. The DC gain is 1.
    """
    if mu == 0:
        return np.ones(1)
    t = np.arange(2 * half_length) - (half_length - 1) - mu
    window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half_length) ** 2, 0.0, None)))
    fir = np.sinc(t) * window
    return fir / fir.sum()


def response(spec: ChannelSpec) -> Response:
    """The deterministic FIR of ``spec``: timing-offset interpolator convolved with the taps."""
    delay = int(math.floor(spec.delay_samples))
    mu = spec.delay_samples - delay
    interpolator = fractional_delay_fir(mu)
    fir = np.convolve(interpolator, np.asarray(spec.taps, np.complex128)).astype(np.complex64)
    return Response(fir=fir, delay=delay, lead=(len(interpolator) - 1) // 2)


def cfo_rotation(spec: ChannelSpec, n: int, start: int = 0) -> np.ndarray:
    """exp(j 2 pi cfo/fs t) for t = start .. start + n - 1, computed in float64; complex64 (n,)."""
    phase = spec.cfo_rad_per_sample * (start + np.arange(n, dtype=np.float64))
    return np.exp(1j * phase).astype(np.complex64)
