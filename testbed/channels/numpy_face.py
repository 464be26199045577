"""The numpy face of the channel: apply a :class:`ChannelSpec` to a batch of complex frames.

Used by numpy simulations and golden-vector generation; the torch face
(:mod:`testbed.channels.torch_face`) applies the same definition differentiably and is tested
against this one on the same :class:`~testbed.channels.realization.Realization`. Each row of the
batch is one frame through a single link (DESIGN.md "Topologies": the per-link building block of
every topology; the streaming emulator in :mod:`testbed.channels.stream` joins links into
broadcast and MIMO matrices).

Per frame: y = h * rot * (fir ⊛ x) + noise, where the FIR holds the integer + fractional timing
offset and the multipath taps (zero before the frame, truncated to its length n), h is the
block-fading coefficient and rot[t] = exp(j 2 pi cfo/fs t).
"""
from __future__ import annotations

import numpy as np

from testbed.channels.realization import (
    Realization,
    Response,
    cfo_rotation,
    draw,
    draw_noise,
    response,
)
from testbed.channels.spec import ChannelSpec


def apply(
    x: np.ndarray,
    spec: ChannelSpec,
    rng: np.random.Generator | None = None,
    realization: Realization | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pass ``batch`` frames through the channel.

    Parameters:
        x: complex (batch, n) transmitted symbols (unit average power for the stated SNR).
        spec: the channel.
        rng: source of the draws when ``realization`` is None (a fresh generator if both are None).
        realization: fading and noise to use instead of drawing (to compare faces on one draw).

    Returns:
        y: complex64 (batch, n) received samples.
        h: complex64 (batch,) block-fading coefficient of each frame.
    """
    x = _as_frames(x)
    batch, n = x.shape
    if realization is None:
        realization = draw(spec, batch, n, rng if rng is not None else np.random.default_rng())
    _check_realization(realization, batch, n)
    y = propagate(x, spec, realization.h)
    y += realization.noise
    return y, realization.h


def propagate(x: np.ndarray, spec: ChannelSpec, h: np.ndarray) -> np.ndarray:
    """The noise-free channel output h * rot * (fir ⊛ x); complex64 (batch, n) from (batch, n), h (batch,)."""
    x = _as_frames(x)
    y = filter_frames(x, response(spec))
    y *= np.asarray(h, np.complex64)[:, None]
    if spec.cfo_hz:
        y *= cfo_rotation(spec, x.shape[1])
    return y


def filter_frames(x: np.ndarray, resp: Response) -> np.ndarray:
    """y[:, t] = sum_k fir[k] x[:, t - shift - k], zero outside the frame; complex64 (batch, n)."""
    n = x.shape[1]
    y = np.zeros_like(x)
    for k, coefficient in enumerate(resp.fir):
        d = resp.shift + k
        if abs(d) < n:
            _accumulate_shifted(y, x, d, coefficient)
    return y


def _accumulate_shifted(y: np.ndarray, x: np.ndarray, d: int, coefficient: np.complex64) -> None:
    """y[:, t] += coefficient * x[:, t - d] where 0 <= t - d < n."""
    n = x.shape[1]
    if d >= 0:
        y[:, d:] += coefficient * x[:, : n - d]
    else:
        y[:, : n + d] += coefficient * x[:, -d:]


def awgn(x: np.ndarray, snr_db: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """x + circular Gaussian noise of variance 10**(-snr_db/10) per sample; complex64, x's shape."""
    rng = rng if rng is not None else np.random.default_rng()
    x = np.asarray(x, np.complex64)
    return x + draw_noise(10.0 ** (-snr_db / 10.0), x.shape, rng)


def _as_frames(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.complex64)
    if x.ndim != 2:
        raise ValueError(f"x must be complex (batch, n); got shape {x.shape}")
    return x


def _check_realization(realization: Realization, batch: int, n: int) -> None:
    if realization.h.shape != (batch,) or realization.noise.shape != (batch, n):
        raise ValueError(
            f"realization has h {realization.h.shape} and noise {realization.noise.shape}; "
            f"x needs h ({batch},) and noise ({batch}, {n})"
        )
