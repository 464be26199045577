"""The differentiable MU-MIMO uplink the adaptive-rate models train through (torch).

Same maths as :mod:`testbed.systems.adaptive_rate.detection` (numpy, the base station's receiver;
../shared/seeds/004_04072a72b64c0519.txt eqs. (5), (8) and Sec. IV-A), batched for training:
per batch item a Rayleigh H complex (M, K) with CN(0, 1) entries, Y = H X + N with
N ~ CN(0, sigma_n^2), sigma_n^2 = 10^(-snr_db / 10) for unit-power symbols; the detector uses
H_hat = H (perfect CSI) or H + dH with dH ~ CN(0, sigma_n^2) (the paper's imperfect CSI), and
gives X_hat = (H_hat^H H_hat + sigma_n^2 I_K)^-1 H_hat^H Y (eq. (8) through the push-through
identity). H_hat's columns are also what each user is told over the feedback path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _complex_normal(shape: tuple[int, ...], var: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """CN(0, var) entries; var broadcasts against ``shape``."""
    std = torch.sqrt(var / 2.0)
    real = torch.randn(shape, generator=generator)
    imag = torch.randn(shape, generator=generator)
    return torch.complex(real * std, imag * std)


@dataclass(frozen=True)
class UplinkDraw:
    """One batch of channel draws: ``h`` and ``h_hat`` complex64 (B, M, K), ``noise_var`` (B,)."""

    h: torch.Tensor
    h_hat: torch.Tensor
    noise_var: torch.Tensor


def draw(batch: int, antennas: int, users: int, snr_db: torch.Tensor, imperfect: bool = False,
         generator: torch.Generator | None = None) -> UplinkDraw:
    """Rayleigh channels and the CSI the receiver has, for ``snr_db`` float (B,)."""
    noise_var = 10.0 ** (-snr_db.float() / 10.0)
    h = _complex_normal((batch, antennas, users), torch.ones(()), generator)
    h_hat = h + _complex_normal(h.shape, noise_var[:, None, None], generator) if imperfect else h
    return UplinkDraw(h, h_hat, noise_var)


def lmmse(y: torch.Tensor, h_hat: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
    """Eq. (8): y complex (B, M, T), h_hat complex (B, M, K), noise_var (B,) -> X_hat (B, K, T)."""
    hh = h_hat.conj().transpose(-2, -1)
    eye = torch.eye(h_hat.shape[-1], dtype=h_hat.dtype)
    gram = hh @ h_hat + noise_var.to(h_hat.dtype)[:, None, None] * eye
    return torch.linalg.solve(gram, hh @ y)


def uplink(x: torch.Tensor, channel: UplinkDraw, generator: torch.Generator | None = None) -> torch.Tensor:
    """Send x complex (B, K, T) (unit average power per user) through ``channel``; X_hat (B, K, T)."""
    y = channel.h @ x
    y = y + _complex_normal(y.shape, channel.noise_var[:, None, None], generator)
    return lmmse(y, channel.h_hat, channel.noise_var)
