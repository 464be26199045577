"""Burst preamble: short training field (detection, coarse timing and CFO) and long training
field (fine timing, fine CFO, channel and noise estimation).

STF: 12 QPSK tones on every 4th carrier -> a 16-sample period, repeated ``n_stf`` times. The
lag-16 autocorrelation measures CFO unambiguously within +-fs/32 (+-31.25 kHz at 1 MS/s), which
covers the +-20 kHz seen between two Pluto TCXOs at 915 MHz. That coarse estimate resolves the
integer-carrier ambiguity (multiples of fs/64) of the fine lag-64 LTF estimate.

LTF: all 52 used carriers with known BPSK values, a 32-sample guard interval then ``n_ltf``
contiguous 64-sample repetitions. Both fields have the same average sample power as data
symbols (52/64), so the receiver's SNR estimate refers to the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from testbed.phy.ofdm import OfdmParams

_STF_SEED = 0x5717
_LTF_SEED = 0x1717


@dataclass(frozen=True)
class Preamble:
    """Known preamble waveforms for one OFDM numerology."""

    params: OfdmParams = OfdmParams()
    n_stf: int = 10
    n_ltf: int = 4
    ltf_gi: int = 32

    @property
    def stf_period(self) -> int:
        return self.params.fft_len // 4

    @property
    def stf_len(self) -> int:
        return self.n_stf * self.stf_period

    @property
    def ltf_len(self) -> int:
        return self.ltf_gi + self.n_ltf * self.params.fft_len

    @property
    def length(self) -> int:
        return self.stf_len + self.ltf_len

    @cached_property
    def ltf_freq(self) -> np.ndarray:
        """Known LTF values on the used carriers (float32 (52,), +-1), in ``params.used`` order."""
        rng = np.random.default_rng(_LTF_SEED)
        return (1.0 - 2.0 * rng.integers(0, 2, len(self.params.used))).astype(np.float32)

    @cached_property
    def ltf_symbol(self) -> np.ndarray:
        """One 64-sample LTF period (complex64 (64,)), unitary IFFT scaling."""
        grid = np.zeros(self.params.fft_len, dtype=np.complex64)
        grid[self.params.bins(self.params.used)] = self.ltf_freq
        return (np.fft.ifft(grid) * np.sqrt(self.params.fft_len)).astype(np.complex64)

    @cached_property
    def stf_symbol(self) -> np.ndarray:
        """One 16-sample STF period (complex64 (16,)) with the data's average sample power."""
        tones = np.array([k for k in self.params.used if k % 4 == 0 and abs(k) <= 24])
        rng = np.random.default_rng(_STF_SEED)
        qpsk = np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, tones.size)))
        grid = np.zeros(self.params.fft_len, dtype=np.complex128)
        grid[tones % self.params.fft_len] = qpsk * np.sqrt(len(self.params.used) / tones.size)
        period = np.fft.ifft(grid) * np.sqrt(self.params.fft_len)
        return period[: self.stf_period].astype(np.complex64)

    @cached_property
    def waveform(self) -> np.ndarray:
        """The whole preamble (complex64 (length,)): STF, LTF guard, LTF repetitions."""
        ltf = np.tile(self.ltf_symbol, self.n_ltf)
        gi = self.ltf_symbol[-self.ltf_gi :]
        return np.concatenate([np.tile(self.stf_symbol, self.n_stf), gi, ltf]).astype(np.complex64)
