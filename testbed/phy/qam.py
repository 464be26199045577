"""Gray-mapped BPSK and square QAM with max-log soft demapping.

The constellations are those of IEEE Std 802.11-2012, 18.3.5.8 (Figure 18-10, Tables 18-9..18-12;
256-QAM as in 802.11ac, 22.3.10.9): each of the I and Q axes carries k/2 bits on a Gray-coded PAM
(BPSK: one bit on I). Along an axis the level index i = 0..M-1 (ascending amplitude 2i - M + 1)
carries the bits of gray(i) = i ^ (i >> 1), most significant first; so bit 0 maps to -1 in BPSK
and b0 b1 = 00, 01, 11, 10 map to -3, -1, +1, +3 in 16-QAM. The first k/2 bits of a symbol go on
I, the last k/2 on Q. Constellations are scaled to unit average energy.

Soft output is the max-log LLR, llr = log P(b = 0 | y) / P(b = 1 | y) (positive means 0), for
complex AWGN of variance ``no`` per complex symbol (``no / 2`` per axis). Square QAM separates
into independent I and Q PAM problems, which is what the demapper exploits.
"""

import functools

import numba
import numpy as np

from testbed.errors import ConfigError

MODULATIONS = {"bpsk": 1, "qpsk": 2, "qam16": 4, "qam64": 6, "qam256": 8}


def _gray_bits(bits_per_axis: int) -> np.ndarray:
    """(M, m) uint8: the Gray bits (MSB first) of each PAM level index, M = 2**m."""
    index = np.arange(1 << bits_per_axis)
    gray = index ^ (index >> 1)
    shifts = np.arange(bits_per_axis - 1, -1, -1)
    return ((gray[:, None] >> shifts) & 1).astype(np.uint8)


@numba.njit(cache=True, fastmath=True)
def _pam_llr(y: np.ndarray, inv_no: np.ndarray, levels: np.ndarray, level_bits: np.ndarray,
             out: np.ndarray, col: int) -> None:
    """Max-log LLRs of one PAM axis, written to ``out[:, col:col + m]``.

    y: float32 (N,) received axis values; inv_no: float32 (N,) 1 / no; levels: float32 (M,);
    level_bits: uint8 (M, m); out: float32 (N, k).
    """
    n_levels, m = level_bits.shape
    best = np.empty((2, m), dtype=np.float32)
    for i in range(y.shape[0]):
        best[:] = np.inf
        for j in range(n_levels):
            d = (y[i] - levels[j]) ** 2
            for p in range(m):
                b = level_bits[j, p]
                if d < best[b, p]:
                    best[b, p] = d
        for p in range(m):
            out[i, col + p] = (best[1, p] - best[0, p]) * inv_no[i]


class QamModem:
    """Gray-mapped BPSK/QPSK/16/64/256-QAM modulator and soft/hard demodulator.

    Parameters
    ----------
    bits_per_symbol : int
        1 (BPSK), 2 (QPSK), 4 (16-QAM), 6 (64-QAM) or 8 (256-QAM).
    """

    def __init__(self, bits_per_symbol: int) -> None:
        allowed = sorted(MODULATIONS.values())
        if bits_per_symbol not in allowed:
            raise ConfigError(
                f"bits_per_symbol: {bits_per_symbol!r} is not supported; allowed: {allowed}")
        self.bits_per_symbol = bits_per_symbol
        self.bits_per_axis = max(bits_per_symbol // 2, 1)
        n_levels = 1 << self.bits_per_axis
        mean_axis_energy = (n_levels ** 2 - 1) / 3
        self.scale = float(1 / np.sqrt(mean_axis_energy * (2 if bits_per_symbol > 1 else 1)))
        self.levels = ((2 * np.arange(n_levels) - n_levels + 1) * self.scale).astype(np.float32)
        self.level_bits = _gray_bits(self.bits_per_axis)
        gray_value = self.level_bits @ (1 << np.arange(self.bits_per_axis - 1, -1, -1))
        self._level_of_gray = np.empty(n_levels, dtype=np.float32)
        self._level_of_gray[gray_value] = self.levels
        self._weights = 1 << np.arange(self.bits_per_axis - 1, -1, -1)

    @property
    def constellation(self) -> np.ndarray:
        """complex64 (2**k,): the point of each k-bit label (label read MSB first)."""
        labels = np.arange(1 << self.bits_per_symbol)
        bits = ((labels[:, None] >> np.arange(self.bits_per_symbol - 1, -1, -1)) & 1)
        return self.modulate(bits.astype(np.uint8).ravel())

    def _axis_bits(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Split (N, k) bits into the I and Q Gray values (N,) each (Q is None for BPSK)."""
        m = self.bits_per_axis
        i_value = bits[:, :m] @ self._weights
        q_value = bits[:, m:] @ self._weights if self.bits_per_symbol > 1 else None
        return i_value, q_value

    def modulate(self, bits: np.ndarray) -> np.ndarray:
        """Map bits to symbols.

        Inputs: ``bits`` uint8 (..., n) of 0/1 with n a multiple of ``bits_per_symbol``.
        Outputs: complex64 (..., n // bits_per_symbol), unit average energy.
        """
        bits = np.asarray(bits, dtype=np.uint8)
        k = self.bits_per_symbol
        if bits.shape[-1] % k:
            raise ValueError(f"bit count {bits.shape[-1]} is not a multiple of {k}")
        i_value, q_value = self._axis_bits(bits.reshape(-1, k))
        symbols = self._level_of_gray[i_value].astype(np.complex64)
        if q_value is not None:
            symbols.imag = self._level_of_gray[q_value]
        return symbols.reshape(bits.shape[:-1] + (bits.shape[-1] // k,))

    def demodulate(self, symbols: np.ndarray, no: float | np.ndarray) -> np.ndarray:
        """Max-log soft demapping.

        Inputs: ``symbols`` complex (..., N); ``no`` noise variance per complex symbol, a scalar or
        an array broadcastable to (..., N) (e.g. per-symbol after equalization).
        Outputs: float32 (..., N * bits_per_symbol) LLRs, log P(b=0)/P(b=1).
        """
        symbols = np.asarray(symbols)
        flat = symbols.reshape(-1)
        inv_no = np.broadcast_to(1 / np.asarray(no, dtype=np.float32), symbols.shape)
        inv_no = np.ascontiguousarray(inv_no, dtype=np.float32).reshape(-1)
        k = self.bits_per_symbol
        out = np.empty((flat.size, k), dtype=np.float32)
        real = np.ascontiguousarray(flat.real, dtype=np.float32)
        _pam_llr(real, inv_no, self.levels, self.level_bits, out, 0)
        if k > 1:
            imag = np.ascontiguousarray(flat.imag, dtype=np.float32)
            _pam_llr(imag, inv_no, self.levels, self.level_bits, out, self.bits_per_axis)
        return out.reshape(symbols.shape[:-1] + (symbols.shape[-1] * k,))

    def _axis_hard(self, y: np.ndarray) -> np.ndarray:
        """(N,) axis values -> (N, m) bits of the nearest level."""
        n_levels = self.levels.size
        index = np.nan_to_num(np.rint((y / self.scale + n_levels - 1) / 2), nan=0.0)  # NaN: level 0
        return self.level_bits[np.clip(index, 0, n_levels - 1).astype(np.intp)]

    def hard(self, symbols: np.ndarray) -> np.ndarray:
        """Nearest-point (hard) demapping.

        Inputs: ``symbols`` complex (..., N).
        Outputs: uint8 (..., N * bits_per_symbol).
        """
        symbols = np.asarray(symbols)
        flat = symbols.reshape(-1)
        parts = [self._axis_hard(flat.real)]
        if self.bits_per_symbol > 1:
            parts.append(self._axis_hard(flat.imag))
        bits = np.concatenate(parts, axis=1)
        return bits.reshape(symbols.shape[:-1] + (symbols.shape[-1] * self.bits_per_symbol,))


@functools.lru_cache(maxsize=None)
def get_modem(bits_per_symbol: int) -> QamModem:
    """Shared modem instance (the constellation tables are built once per order)."""
    return QamModem(bits_per_symbol)
