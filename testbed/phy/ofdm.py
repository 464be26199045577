"""OFDM numerology and the (de)modulation of OFDM symbols.

The burst PHY is OFDM with a 64-point FFT, 16-sample cyclic prefix and the 802.11a carrier plan:
52 used carriers (-26..26 without DC), 4 of them pilots (+-7, +-21), 48 data carriers. DC is
left empty because the Pluto (AD9363) direct-conversion receiver corrupts the bins next to DC;
docs/phy.md justifies OFDM against single carrier.

Scaling: the FFT pair is unitary, so a data carrier of unit energy gives time samples of average
power 52/64 and a white noise of variance ``no`` per time sample appears with variance ``no`` on
every carrier. Hence SNR = Es/N0 per data symbol, the project's convention (docs/architecture.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class OfdmParams:
    """OFDM numerology; all indices are FFT bins in numpy order (0 = DC, negative = N - k)."""

    fft_len: int = 64
    cp_len: int = 16
    used: tuple[int, ...] = tuple(k for k in range(-26, 27) if k != 0)
    pilots: tuple[int, ...] = (-21, -7, 7, 21)
    data: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", tuple(k for k in self.used if k not in self.pilots))

    @property
    def sym_len(self) -> int:
        """Samples per OFDM symbol, cyclic prefix included."""
        return self.fft_len + self.cp_len

    @property
    def n_data(self) -> int:
        return len(self.data)

    def bins(self, carriers: tuple[int, ...]) -> np.ndarray:
        """FFT bin indices (int64) of signed carrier numbers."""
        return np.asarray(carriers, dtype=np.int64) % self.fft_len


def to_time(grid: np.ndarray, params: OfdmParams, cp_len: int | None = None) -> np.ndarray:
    """Frequency grid -> time samples with cyclic prefix.

    Inputs: grid complex (n_sym, fft_len) in numpy FFT order.
    Outputs: complex64 (n_sym * (fft_len + cp)), unitary IFFT scaling.
    """
    cp = params.cp_len if cp_len is None else cp_len
    t = np.fft.ifft(grid, axis=-1) * np.sqrt(params.fft_len)
    if cp:
        t = np.concatenate([t[:, -cp:], t], axis=1)
    return t.astype(np.complex64).reshape(-1)


def to_freq(samples: np.ndarray, n_sym: int, params: OfdmParams, start: int) -> np.ndarray:
    """Time samples -> frequency grid of ``n_sym`` OFDM symbols.

    Inputs: samples complex64 (n,); ``start`` is the index of the first FFT window (just after
    the first cyclic prefix, possibly backed off into it).
    Outputs: complex64 (n_sym, fft_len), unitary FFT scaling.
    """
    idx = start + np.arange(n_sym)[:, None] * params.sym_len + np.arange(params.fft_len)[None, :]
    return (np.fft.fft(samples[idx], axis=-1) / np.sqrt(params.fft_len)).astype(np.complex64)


def pilot_values(n_sym: int, first_symbol: int = 0) -> np.ndarray:
    """Known BPSK pilot values (float32 (n_sym, 4)): 802.11a polarity sequence times (1,1,1,-1)."""
    polarity = _polarity_sequence()
    p = polarity[(first_symbol + np.arange(n_sym)) % polarity.size]
    return (p[:, None] * np.array([1.0, 1.0, 1.0, -1.0], dtype=np.float32)).astype(np.float32)


@lru_cache(maxsize=1)
def _polarity_sequence() -> np.ndarray:
    """127-long pilot polarity sequence of the 802.11a scrambler (x^7 + x^4 + 1, all-ones seed)."""
    state = [1] * 7
    out = np.empty(127, dtype=np.float32)
    for i in range(127):
        bit = state[3] ^ state[6]
        state = [bit] + state[:-1]
        out[i] = 1.0 - 2.0 * bit
    return out


def build_grid(data: np.ndarray, params: OfdmParams, first_symbol: int = 0) -> np.ndarray:
    """Place data symbols and pilots on the carrier grid.

    Inputs: data complex (n_sym, n_data).
    Outputs: complex64 (n_sym, fft_len) grid in FFT order.
    """
    n_sym = data.shape[0]
    grid = np.zeros((n_sym, params.fft_len), dtype=np.complex64)
    grid[:, params.bins(params.data)] = data
    grid[:, params.bins(params.pilots)] = pilot_values(n_sym, first_symbol)
    return grid
