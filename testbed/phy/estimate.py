"""Channel, noise, SNR and phase estimation and equalisation for one received frame.

- LS channel estimate on the 52 used carriers from the averaged LTF repetitions, then projected
  onto the channel impulse responses that fit the delay window ``delays`` (a least-squares
  DFT-domain fit). The receiver's default window of 10 taps (-2..7 samples around the FFT
  window start, 8 us of delay spread at 1 MS/s) costs about 0.25 dB at 0 dB Es/N0 with 4 LTF
  repetitions, against about 1 dB for the raw LS estimate.
- Noise variance from the spread of the LTF repetitions (unbiased), SNR = mean |H|^2 / no.
- Common phase per OFDM symbol from the pilots, modelled as a linear ramp (residual CFO) plus
  an offset, estimated without phase unwrapping so it holds at 0 dB.
- Per-carrier equalisation; for one stream the unbiased MMSE estimate is y / h with noise
  variance no / |h|^2 (the LLR demapper's input).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from testbed.phy.ofdm import OfdmParams


@lru_cache(maxsize=8)
def _projection(used: tuple[int, ...], fft_len: int, delays: tuple[int, ...]) -> np.ndarray:
    """Projection (complex128 (52, 52)) onto responses sum_l g_l exp(-j 2 pi k l / N)."""
    k = np.asarray(used, dtype=np.float64)[:, None]
    a = np.exp(-2j * np.pi * k * np.asarray(delays, dtype=np.float64)[None, :] / fft_len)
    return a @ np.linalg.pinv(a)


def ltf_channel(ltf_grid: np.ndarray, ltf_freq: np.ndarray, params: OfdmParams,
                delays: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Channel on the used carriers and noise variance from the LTF repetitions.

    Inputs: ltf_grid complex64 (n_rep, fft_len) FFTs of the repetitions; ltf_freq float32 (52,).
    Outputs: H complex64 (52,) in ``params.used`` order (smoothed), noise variance float.
    """
    per_rep = ltf_grid[:, params.bins(params.used)] * ltf_freq[None, :]
    h_ls = per_rep.mean(axis=0)
    no = float(np.mean(np.var(per_rep, axis=0, ddof=1))) if per_rep.shape[0] > 1 else 1e-3
    h = _projection(params.used, params.fft_len, delays) @ h_ls
    return h.astype(np.complex64), max(no, 1e-12)


def snr_db(h: np.ndarray, no: float) -> float:
    """Es/N0 in dB of unit-energy symbols through channel h (complex (n,)) with noise no."""
    return float(10 * np.log10(max(np.mean(np.abs(h) ** 2), 1e-30) / no))


def pilot_phase(y_pilots: np.ndarray, h_pilots: np.ndarray, x_pilots: np.ndarray) -> np.ndarray:
    """Phase (float64 (n_sym,)) per OFDM symbol: offset + slope * symbol index.

    The slope (residual CFO) is the maximum-likelihood single-tone estimate: the peak of the
    zero-padded periodogram of the per-symbol pilot correlations, refined by parabolic
    interpolation. (A lag-1 correlation is far too noisy at 0 dB: its slope error, multiplied
    by the frame length, costs about 1 dB.)
    Inputs: y_pilots complex (n_sym, 4) received, h_pilots complex (4,), x_pilots (n_sym, 4).
    """
    c = np.sum(y_pilots * np.conj(h_pilots[None, :] * x_pilots), axis=1)
    n = np.arange(c.size)
    slope = _tone_frequency(c) if c.size > 1 else 0.0
    offset = float(np.angle(np.sum(c * np.exp(-1j * slope * n))))
    return offset + slope * n


def iq_dc(x: np.ndarray) -> tuple[complex, complex]:
    """Blind estimates of a receiver's DC offset and IQ imbalance from OFDM data samples.

    With y = mu s + nu conj(s) + dc and s circular (E[s^2] = 0, as OFDM data is), the mean is the
    DC offset and, after removing it, E[y^2] / (2 E[|y|^2]) = w ~ nu / conj(mu); y - w conj(y)
    has no image left (to first order in nu). Each estimate is 0 unless it stands out of its own
    noise (3 standard deviations for len(x) samples), so a clean receiver is not disturbed.

    Inputs: x complex (n,) raw samples (before CFO correction). Returns: (dc, w).
    """
    if x.size == 0:
        return 0j, 0j
    x = np.asarray(x, dtype=np.complex64)
    n = x.size
    # Three reductions without temporaries (moments about 0, then shifted by the DC estimate):
    # E|x|^2, E[x] and E[x^2] (np.dot does not conjugate).
    power = float(np.vdot(x, x).real) / n
    mean = complex(np.sum(x, dtype=np.complex128)) / n
    square = complex(np.dot(x, x)) / n
    dc = mean if abs(mean) ** 2 > 9.0 * power / n else 0j
    w = (square - 2 * dc * mean + dc * dc) / (2.0 * max(power - 2 * (dc.conjugate() * mean).real + abs(dc) ** 2, 1e-30))
    w = w if abs(w) > 3.0 / np.sqrt(n) else 0j
    return dc, w


def correct_iq_dc(x: np.ndarray, dc: complex, w: complex) -> np.ndarray:
    """x - dc with the image w conj(x - dc) removed; complex64, x's shape."""
    if dc == 0 and w == 0:
        return x
    y = x - np.complex64(dc)
    return (y - np.complex64(w) * np.conj(y)).astype(np.complex64)


SCO_MIN_SYMBOLS = 32  # shorter frames (the 9-symbol header) drift too little to be worth the noise


def pilot_sco(y_pilots: np.ndarray, h_pilots: np.ndarray, x_pilots: np.ndarray, k_pilots: np.ndarray,
              phase: np.ndarray) -> float:
    """Sample-clock offset as a phase slope alpha (rad per OFDM symbol per subcarrier index):
    after the common phase, pilot k turns by alpha * k per symbol (the FFT window drifts by a
    fraction of a sample each symbol). Each pilot's turn rate is the ML tone frequency of its
    correlations; alpha is their least-squares fit through the origin in k. 0 for frames of
    fewer than SCO_MIN_SYMBOLS symbols.

    Inputs: y_pilots complex (n_sym, P), h_pilots (P,), x_pilots (n_sym, P), k_pilots int (P,)
        signed subcarrier indices, phase float (n_sym,) from :func:`pilot_phase`.
    """
    if y_pilots.shape[0] < SCO_MIN_SYMBOLS:
        return 0.0
    c = y_pilots * np.conj(h_pilots[None, :] * x_pilots) * np.exp(-1j * phase)[:, None]
    rates = _tone_frequencies(c)
    k = np.asarray(k_pilots, dtype=float)
    return float(np.sum(k * rates) / np.sum(k * k))


def _tone_frequency(c: np.ndarray) -> float:
    """ML angular frequency (rad/sample) of a complex tone in noise, c complex (n,)."""
    return float(_tone_frequencies(c[:, None])[0])


def _tone_frequencies(c: np.ndarray) -> np.ndarray:
    """ML angular frequency (rad/sample) of the tone in each column of c complex (n, P): the
    peak of the zero-padded periodogram (one FFT for all columns), parabolically interpolated."""
    size = max(1024, 8 * (1 << int(np.ceil(np.log2(c.shape[0])))))
    spec = np.abs(np.fft.fft(c, size, axis=0))
    cols = np.arange(c.shape[1])
    k = np.argmax(spec, axis=0)
    left, mid, right = spec[k - 1, cols], spec[k, cols], spec[(k + 1) % size, cols]
    denom = left - 2 * mid + right
    delta = np.divide(0.5 * (left - right), denom, out=np.zeros_like(denom), where=denom != 0)
    w = 2 * np.pi * (k + delta) / size
    return (w + np.pi) % (2 * np.pi) - np.pi


def equalize(y: np.ndarray, h: np.ndarray, no: float) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased per-carrier MMSE (= ZF for one stream).

    Inputs: y complex (n_sym, n_sc), h complex (n_sc,), no float.
    Outputs: x_hat complex64 (n_sym, n_sc), noise variance float32 (n_sym, n_sc).
    """
    power = np.maximum(np.abs(h) ** 2, 1e-12)
    x_hat = y * (np.conj(h) / power)[None, :]
    noise = np.broadcast_to((no / power)[None, :], y.shape)
    return x_hat.astype(np.complex64), noise.astype(np.float32)


def evm_db(x_hat: np.ndarray, reference: np.ndarray) -> float:
    """Error vector magnitude in dB of equalised symbols against reference symbols."""
    err = np.mean(np.abs(x_hat - reference) ** 2)
    return float(10 * np.log10(max(err, 1e-30) / max(np.mean(np.abs(reference) ** 2), 1e-30)))
