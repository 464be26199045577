"""Streaming channel emulator: the numpy core of the GNU Radio channel block.

One emulator process joins the TX sample streams of the virtual radios to their RX streams
through a matrix of links (DESIGN.md "Topologies"):

    y_j = sum_i impair_ji(x_i) + noise_j,   i < n_tx, j < n_rx

which serves the single link (1 x 1), downlink broadcast (1 x N, each receiver with its own SNR
and fading), MU-MISO downlink (Nt x N) and the MU-MIMO uplink (K x M). Each link is a
:class:`LinkImpairment` applying one :class:`~testbed.channels.spec.ChannelSpec` with state kept
across calls, so splitting a stream into chunks of any size gives the same output as one call:
the delay line and the FIR history carry over, the CFO phase keeps turning, and block fading is
redrawn every ``coherence_samples`` output samples from the link's own generator.

The linear part (timing-offset interpolator convolved with the taps), the fading law and the CFO
rotation come from :mod:`testbed.channels.realization`, as in the block faces. The stream face is
causal: when the delay is fractional and smaller than the interpolator's group delay, the link
delays by ``LinkImpairment.delay_samples`` (more than asked) instead of looking ahead.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.signal

from testbed.channels.realization import cfo_rotation, draw_fading, response
from testbed.channels.spec import ChannelSpec
from testbed.errors import ConfigError

SHIFT_ADD_MAX_TAPS = 48
"""Longest FIR filtered by summing shifted copies; longer ones use FFT convolution."""


class LinkImpairment:
    """One TX -> RX link of a stream, without noise: delay, FIR, block fading, CFO.

    Parameters:
        spec: the link.
        rng: the link's own generator for its fading draws.

    Attributes:
        delay_samples: total delay of the stream (input sample t appears at output
            t + delay_samples); ``spec.delay_samples`` unless causality forces more.
    """

    def __init__(self, spec: ChannelSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        resp = response(spec)
        self._fir = resp.fir
        self._prepend = max(resp.shift, 0)
        self.delay_samples = spec.delay_samples + max(-resp.shift, 0)
        self._history = np.zeros(self._prepend + len(self._fir) - 1, np.complex64)
        self._rng = rng
        self._h = draw_fading(spec, 1, rng)[0]
        self._left = spec.coherence_samples
        self._phase = 0.0
        self._rotation = np.zeros(0, np.complex64)

    @property
    def h(self) -> np.complex64:
        """The block-fading coefficient in force at the next output sample (1 for awgn)."""
        return self._h

    def process(self, x: np.ndarray) -> np.ndarray:
        """Impair the next ``m`` samples of the link; complex64 (m,) in, new complex64 (m,) out."""
        y = self._delay_and_filter(x)
        if self.spec.model != "awgn":
            y = y * self._fading(len(x))
        if self.spec.cfo_hz:
            y = self._rotate(y)
        return y

    def _delay_and_filter(self, x: np.ndarray) -> np.ndarray:
        """sum_k fir[k] x[t - prepend - k] with the previous inputs as history; complex64 (m,)."""
        if not self._history.size:
            return x * self._fir[0] if self._fir[0] != 1 else x
        m = len(x)
        buffer = np.concatenate([self._history, x])
        self._history = buffer[m:].copy()
        if len(self._fir) == 1 or m == 0:
            return buffer[:m] * self._fir[0]
        return _fir_valid(buffer[: m + len(self._fir) - 1], self._fir)

    def _fading(self, m: int) -> np.complex64 | np.ndarray:
        """The fading of the next ``m`` output samples: a scalar, or complex64 (m,) across redraws."""
        block = self.spec.coherence_samples
        if not block:
            return self._h
        if m <= self._left:
            self._left -= m
            return self._h
        n_new = math.ceil((m - self._left) / block)
        values = np.concatenate([[self._h], draw_fading(self.spec, n_new, self._rng)])
        counts = [self._left] + [block] * (n_new - 1) + [m - self._left - block * (n_new - 1)]
        self._h, self._left = values[-1], block - counts[-1]
        return np.repeat(values, counts)

    def _rotate(self, y: np.ndarray) -> np.ndarray:
        """y * exp(j (phase + 2 pi cfo/fs t)), the phase carried over between calls; new array."""
        m = len(y)
        if len(self._rotation) < m:
            self._rotation = cfo_rotation(self.spec, m)
        y = y * self._rotation[:m]
        y *= np.complex64(np.exp(1j * self._phase))
        self._phase = (self._phase + self.spec.cfo_rad_per_sample * m) % (2.0 * math.pi)
        return y


def _fir_valid(buffer: np.ndarray, fir: np.ndarray) -> np.ndarray:
    """np.convolve(buffer, fir, "valid") for complex64; (len(buffer) - len(fir) + 1,).

    Short FIRs are summed as shifted copies (numpy's complex convolve costs ~25 ns a sample
    whatever the length); long ones use overlap-add FFT convolution.
    """
    if len(fir) > SHIFT_ADD_MAX_TAPS:
        return scipy.signal.oaconvolve(buffer, fir, "valid").astype(np.complex64, copy=False)
    last = len(fir) - 1
    m = len(buffer) - last
    y = fir[0] * buffer[last:]
    for k in range(1, len(fir)):
        y += fir[k] * buffer[last - k : last - k + m]
    return y


class ChannelMatrixEmulator:
    """n_tx sample streams -> n_rx sample streams through a matrix of links plus receiver noise.

    Parameters:
        n_tx: number of transmit streams.
        n_rx: number of receive streams.
        specs: n_rx rows of n_tx :class:`ChannelSpec`; ``specs[j][i]`` is the link TX i -> RX j.
            Receiver j's noise has the variance of ``specs[j][0].snr_db`` (Es/N0 per sample).
        seed: seeds every link's fading and every receiver's noise (independent streams).

    Attributes:
        samples_in: samples consumed so far, summed over the TX streams.
        samples_out: samples produced so far, summed over the RX streams.
    """

    def __init__(self, n_tx: int, n_rx: int, specs: list[list[ChannelSpec]], seed: int) -> None:
        _check_matrix(n_tx, n_rx, specs)
        self.n_tx, self.n_rx = n_tx, n_rx
        seeds = np.random.SeedSequence(seed).spawn(n_rx * n_tx + n_rx)
        self.links = [
            [LinkImpairment(specs[j][i], np.random.default_rng(seeds[j * n_tx + i])) for i in range(n_tx)]
            for j in range(n_rx)
        ]
        self._noise_rngs = [np.random.default_rng(s) for s in seeds[n_rx * n_tx :]]
        self._noise_scales = [np.float32(math.sqrt(row[0].no / 2.0)) for row in specs]
        self.samples_in = 0
        self.samples_out = 0

    def process(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The next ``m`` samples of every RX stream from the next ``m`` of every TX stream.

        Parameters:
            inputs: n_tx arrays complex64 (m,), one per TX stream, all of one length.

        Returns:
            n_rx new arrays complex64 (m,).
        """
        xs = self._check_inputs(inputs)
        m = len(xs[0])
        outputs = []
        for j in range(self.n_rx):
            y = self._noise(j, m)
            for i, x in enumerate(xs):
                y += self.links[j][i].process(x)
            outputs.append(y)
        self.samples_in += self.n_tx * m
        self.samples_out += self.n_rx * m
        return outputs

    def _noise(self, j: int, m: int) -> np.ndarray:
        """Receiver j's next ``m`` noise samples; new complex64 (m,)."""
        noise = np.empty(m, np.complex64)
        self._noise_rngs[j].standard_normal(out=noise.view(np.float32), dtype=np.float32)
        noise *= self._noise_scales[j]
        return noise

    def _check_inputs(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != self.n_tx:
            raise ValueError(f"expected {self.n_tx} input streams, got {len(inputs)}")
        xs = [np.asarray(x, np.complex64) for x in inputs]
        if any(x.ndim != 1 or len(x) != len(xs[0]) for x in xs):
            raise ValueError(f"input streams must be 1-D of one length; got shapes {[x.shape for x in xs]}")
        return xs


def _check_matrix(n_tx: int, n_rx: int, specs: list[list[ChannelSpec]]) -> None:
    """ConfigError unless ``specs`` is n_rx rows of n_tx ChannelSpec and n_tx, n_rx >= 1."""
    if n_tx < 1 or n_rx < 1:
        raise ConfigError(f"channel matrix n_tx={n_tx}, n_rx={n_rx} is invalid; allowed: both >= 1")
    shape = [len(row) for row in specs]
    if shape != [n_tx] * n_rx:
        raise ConfigError(
            f"channel matrix has rows of lengths {shape}; allowed: {n_rx} rows (n_rx) of {n_tx} links (n_tx)"
        )
    for row in specs:
        for spec in row:
            if not isinstance(spec, ChannelSpec):
                raise ConfigError(f"channel matrix entry {spec!r} is invalid; allowed: a ChannelSpec")
