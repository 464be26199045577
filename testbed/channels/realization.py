"""The "Generate" half of a channel: random draws and the deterministic response of a spec.

Following Sionna's Generate/Apply split, everything random about a frame (the block-fading
coefficient and the noise) is drawn here into a :class:`Realization`, and everything
deterministic (the timing-offset interpolator convolved with the multipath taps, the CFO
rotation) is computed here from the :class:`~testbed.channels.spec.ChannelSpec`. The numpy and
torch faces and the streaming emulator all use these functions, so they apply one channel
definition (DESIGN.md "How data flows": the channel trained on in torch is the one the emulator
applies) and the faces give the same output on the same Realization.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from testbed.channels.spec import ChannelSpec

FRAC_HALF_LENGTH = 8
"""Half-length of the fractional-delay interpolator (2 * FRAC_HALF_LENGTH taps)."""
KAISER_BETA = 6.0
"""Kaiser window shape of the interpolator (about -60 dB side lobes)."""


@dataclasses.dataclass(frozen=True)
class Realization:
    """The random part of one batch of frames.

    Attributes:
        h: complex64 (batch,), block-fading coefficient per frame (1 for awgn).
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
    """``count`` independent block-fading coefficients of ``spec.model``; complex64 (count,).

    awgn: all ones (no draw); rayleigh: CN(0, 1); rician: sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1).
    """
    if spec.model == "awgn":
        return np.ones(count, np.complex64)
    scattered = rng.standard_normal((count, 2)) @ np.array([1.0, 1.0j]) / math.sqrt(2.0)
    if spec.model == "rician":
        k = spec.k_factor
        scattered = math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * scattered
    return scattered.astype(np.complex64)


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
