"""The torch face of the channel: the same :class:`ChannelSpec` as the numpy face, differentiable in x.

Neural transceivers (docs/architecture.md "Topologies": deepjscc single link and every per-user link of the
multi-user systems) are trained through this face, so the channel a model learns is the channel
the emulator applies. Complex symbols are real tensors with a trailing I/Q axis of size 2
(docs/architecture.md "Conventions"); internally they are viewed as complex tensors.

Per frame: y = h * rot * (fir ⊛ x) + noise, with the FIR, rotation and fading law taken from
:mod:`testbed.channels.realization` (one definition for both faces). Given the same
:class:`~testbed.channels.realization.Realization`, :func:`apply` matches
:func:`testbed.channels.numpy_face.apply`; given the same matrices, :func:`apply_matrix` matches
:func:`testbed.channels.numpy_face.apply_matrix`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from testbed.channels.realization import Realization, Response, cfo_rotation, response
from testbed.channels.spec import ChannelSpec


def apply(
    x: torch.Tensor,
    spec: ChannelSpec,
    generator: torch.Generator | None = None,
    realization: Realization | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass ``batch`` frames through the channel (differentiable in ``x``).

    Parameters:
        x: float (batch, n, 2) transmitted symbols, I/Q on the last axis, unit average power.
        spec: the channel.
        generator: source of the draws when ``realization`` is None (on x's device).
        realization: numpy fading and noise to use instead of drawing (to compare with numpy).

    Returns:
        y: float (batch, n, 2) received samples, x's dtype.
        h: float (batch, 2) flat coefficient (fading times amplitude gain) of each frame.
    """
    xc = _as_complex(x)
    batch, n = xc.shape
    if realization is None:
        h, noise = _draw(spec, batch, n, spec.no, generator, xc)
    else:
        h, noise = _from_realization(realization, xc)
    y = propagate(xc, spec, h) + noise
    return torch.view_as_real(y), torch.view_as_real(h)


def propagate(xc: torch.Tensor, spec: ChannelSpec, h: torch.Tensor) -> torch.Tensor:
    """Noise-free output h * rot * (fir ⊛ x); complex (batch, n) from complex (batch, n), h (batch,)."""
    y = filter_frames(xc, response(spec)) * h[:, None]
    if spec.cfo_hz:
        rotation = torch.from_numpy(cfo_rotation(spec, xc.shape[1]))
        y = y * rotation.to(device=xc.device, dtype=xc.dtype)
    return y


def filter_frames(xc: torch.Tensor, resp: Response) -> torch.Tensor:
    """y[:, t] = sum_k fir[k] x[:, t - shift - k], zero outside the frame; complex (batch, n)."""
    n = xc.shape[1]
    terms = [
        complex(coefficient) * _shifted(xc, resp.shift + k)
        for k, coefficient in enumerate(resp.fir)
        if abs(resp.shift + k) < n
    ]
    return torch.stack(terms).sum(0) if terms else torch.zeros_like(xc)


def _shifted(xc: torch.Tensor, d: int) -> torch.Tensor:
    """x[:, t - d] with zeros where t - d falls outside the frame; complex (batch, n)."""
    n = xc.shape[1]
    zeros = xc.new_zeros((xc.shape[0], abs(d)))
    if d >= 0:
        return torch.cat([zeros, xc[:, : n - d]], dim=1)
    return torch.cat([xc[:, -d:], zeros], dim=1)


def apply_matrix(
    x: torch.Tensor,
    h: torch.Tensor | np.ndarray,
    noise_var: torch.Tensor | float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply flat channel matrices, differentiable in ``x`` and ``h``; matches
    :func:`testbed.channels.numpy_face.apply_matrix`: y[b, j] = sum_i h[b, j, i] x[b, i] + noise[b, j].

    Parameters:
        x: float (batch, n_tx, n, 2), block b of every TX stream, I/Q on the last axis.
        h: float (n_rx, n_tx, 2) or (batch, n_rx, n_tx, 2), or a complex numpy array of those
            shapes without the I/Q axis (e.g. from :func:`~testbed.channels.realization.generate_matrix`).
        noise_var: noise variance per complex sample, a float or a tensor (n_rx,) (one per RX stream).
        generator: source of the noise when ``noise`` is None (on x's device).
        noise: float (batch, n_rx, n, 2) or complex numpy (batch, n_rx, n) noise instead of drawing it.

    Returns:
        y: float (batch, n_rx, n, 2), x's dtype.
        h: float (batch, n_rx, n_tx, 2), the matrices applied.
    """
    if x.ndim != 4 or x.shape[-1] != 2 or not x.is_floating_point():
        raise ValueError(f"x must be real (batch, n_tx, n, 2); got {x.dtype} {tuple(x.shape)}")
    xc = torch.view_as_complex(x.contiguous())
    hc = _complex_like(h, xc)
    if hc.ndim == 2:
        hc = hc.expand(xc.shape[0], *hc.shape)
    if hc.ndim != 3 or hc.shape[0] != xc.shape[0] or hc.shape[2] != xc.shape[1]:
        raise ValueError(
            f"h must be (n_rx, {xc.shape[1]}) or ({xc.shape[0]}, n_rx, {xc.shape[1]}); got {tuple(hc.shape)}")
    y = torch.einsum("bji,bin->bjn", hc, xc)
    if noise is None:
        real = x.dtype
        no = torch.as_tensor(noise_var, dtype=real, device=x.device).expand(y.shape[1])
        pairs = torch.randn(*y.shape, 2, generator=generator, dtype=real, device=x.device)
        noise_c = torch.view_as_complex(pairs) * torch.sqrt(no / 2.0)[:, None]
    else:
        noise_c = _complex_like(noise, xc)
        if noise_c.shape != y.shape:
            raise ValueError(f"noise must be {tuple(y.shape)} (batch, n_rx, n); got {tuple(noise_c.shape)}")
    return torch.view_as_real(y + noise_c), torch.view_as_real(hc)


def _complex_like(value: torch.Tensor | np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A complex numpy array or a real (..., 2) tensor as a complex tensor of ``like``'s dtype and device."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.asarray(value, np.complex64)).to(device=like.device, dtype=like.dtype)
    if value.shape[-1] != 2:
        raise ValueError(f"a real tensor needs a trailing I/Q axis of 2; got shape {tuple(value.shape)}")
    return torch.view_as_complex(value.to(like.real.dtype).contiguous())


class Channel(torch.nn.Module):
    """A :class:`ChannelSpec` as a module for training; the SNR may change per call and per sample.

    ``forward(x, snr_db=None)``: x float (batch, n, 2); snr_db None (use ``spec.snr_db``), a float,
    or a tensor (batch,) of per-frame Es/N0 in dB. Returns y (batch, n, 2) and h (batch, 2).
    """

    def __init__(self, spec: ChannelSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.generator = generator

    def forward(
        self, x: torch.Tensor, snr_db: torch.Tensor | float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if snr_db is None:
            return apply(x, self.spec, self.generator)
        xc = _as_complex(x)
        batch, n = xc.shape
        no = torch.pow(10.0, -torch.as_tensor(snr_db, dtype=x.dtype, device=x.device) / 10.0)
        if no.ndim == 1:
            no = no[:, None]
        h, noise = _draw(self.spec, batch, n, no, self.generator, xc)
        y = propagate(xc, self.spec, h) + noise
        return torch.view_as_real(y), torch.view_as_real(h)

    def extra_repr(self) -> str:
        return repr(self.spec)


def _draw(
    spec: ChannelSpec,
    batch: int,
    n: int,
    no: torch.Tensor | float,
    generator: torch.Generator | None,
    like: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat coefficient complex (batch,) (fading times amplitude gain) and noise complex (batch, n) of
    variance ``no`` (float or (batch, 1))."""
    real = torch.view_as_real(like).dtype
    options = {"generator": generator, "dtype": real, "device": like.device}
    if spec.fades:
        h = torch.view_as_complex(torch.randn(batch, 2, **options) / math.sqrt(2.0))
        if spec.model == "rician":
            k = spec.k_factor
            h = math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * h
        h = h * spec.amplitude_gain
    else:
        h = torch.full((batch,), spec.fixed_h, dtype=like.dtype, device=like.device)
    scale = torch.sqrt(torch.as_tensor(no, dtype=real, device=like.device) / 2.0)
    noise = torch.view_as_complex(torch.randn(batch, n, 2, **options)) * scale
    return h, noise


def _from_realization(realization: Realization, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if realization.h.shape != like.shape[:1] or realization.noise.shape != like.shape:
        raise ValueError(
            f"realization has h {realization.h.shape} and noise {realization.noise.shape}; "
            f"x needs h ({like.shape[0]},) and noise {tuple(like.shape)}"
        )
    h = torch.from_numpy(realization.h).to(device=like.device, dtype=like.dtype)
    noise = torch.from_numpy(realization.noise).to(device=like.device, dtype=like.dtype)
    return h, noise


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 3 or x.shape[-1] != 2:
        raise ValueError(f"x must be real (batch, n, 2); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor; got {x.dtype}")
    return torch.view_as_complex(x.contiguous())
