"""Entropy-and-channel-adaptive rate control of one user: 2-D feature-map entropy, the two policy
networks, thermometer-coded map selection, l1-norm pruning with its index matrix, and the CPP.

Implements section III-B of ../shared/seeds/004_04072a72b64c0519.txt (torch, differentiable
where training needs it):

- :func:`entropy_2d`: eqs. (17)-(18). Each map is quantised to ``levels`` grey values (min-max
  per map); m is a pixel's value and n the mean of its 3x3 neighbourhood (the pixel included,
  edges replicated), also quantised; H = -sum P(m, n) log2 P(m, n). The hard histogram is the
  paper's; ``soft=True`` spreads each pixel over the two nearest levels (linear weights) so the
  entropy term of the loss (eq. 21) has a gradient. An 8x8 map has only 64 pixels, so the default
  is 8 levels (with 256 every pair would be unique and every map would score log2(64) = 6 bits).
- :func:`normalised_entropy`: eq. (19), softmax over a user's C maps.
- :class:`SelectionPolicy` (P1, Fig. 9) and :class:`PruningPolicy` (P2, Fig. 11): row means
  (plus the entropies for P1), 2M CSI reals and the SNR through a two-layer MLP; straight-through
  Gumbel-softmax samples a one-hot; :func:`thermometer` turns P1's into the selection mask
  (the one-hot's position p selects maps p .. C/2 - 1; the extra last class selects none).
- :func:`prune_l1`: per selected complex map (2L reals), the ``ratio`` fraction with the smallest
  absolute values is zeroed; the index matrix M_p marks them (1 = pruned).
- :func:`index_symbols` / :func:`cpp`: CPP_k = C_k (L_k + L'_k) / (2HW) with L'_k the symbols
  of one 2L-bit index row after LDPC rate 3/4 and 64-QAM (0 when nothing is pruned).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from testbed.errors import ConfigError
from testbed.systems.adaptive_rate.model import context

PRUNING_RATIOS = (0.0, 0.2, 0.3, 0.4, 0.5)
ENTROPY_LEVELS = 8


def _quantise(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Per-map min-max scaling of (B, C, H, W) to [0, levels - 1] (float)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12) * (levels - 1)


def _assign(q: torch.Tensor, levels: int, soft: bool) -> torch.Tensor:
    """Level weights (B, C, P, levels) of quantised values q (B, C, P): one-hot of the nearest
    level, or linear weights over the two nearest (soft)."""
    if not soft:
        return F.one_hot(q.round().long().clamp(0, levels - 1), levels).to(q.dtype)
    grid = torch.arange(levels, dtype=q.dtype, device=q.device)
    return (1.0 - (q.unsqueeze(-1) - grid).abs()).clamp_min(0.0)


def entropy_2d(maps: torch.Tensor, levels: int = ENTROPY_LEVELS, soft: bool = False) -> torch.Tensor:
    """Eqs. (17)-(18): 2-D entropy in bits of each map of ``maps`` float (B, C, H, W) -> (B, C)."""
    if maps.ndim != 4 or min(maps.shape[-2:]) < 1:
        raise ConfigError(f"maps of shape {tuple(maps.shape)}; allowed: (B, C, H, W) feature maps")
    if levels < 2:
        raise ConfigError(f"levels={levels}; allowed: >= 2")
    b, c, h, w = maps.shape
    value = _quantise(maps, levels)
    padded = F.pad(maps.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    mean = _quantise(F.avg_pool2d(padded, 3, stride=1).reshape(b, c, h, w), levels)
    wm = _assign(value.reshape(b, c, -1), levels, soft)
    wn = _assign(mean.reshape(b, c, -1), levels, soft)
    joint = torch.einsum("bcpm,bcpn->bcmn", wm, wn) / (h * w)
    return -(joint * torch.log2(joint.clamp_min(1e-30))).sum(dim=(-2, -1))


def normalised_entropy(entropy_bits: torch.Tensor) -> torch.Tensor:
    """Eq. (19): softmax of (B, C) entropies over the C maps."""
    return torch.softmax(entropy_bits, dim=-1)


def thermometer(one_hot: torch.Tensor) -> torch.Tensor:
    """(B, C/2 + 1) one-hot -> (B, C/2) selection mask: 1 from the hot position on, all 0 when the
    last (no-map) class is hot. Linear, so a straight-through one-hot keeps its gradient."""
    return torch.cumsum(one_hot, dim=-1)[..., :-1]


class SelectionPolicy(nn.Module):
    """P1 (Fig. 9): (maps (B, C, H, W), normalised entropies (B, C), CSI complex (B, M), SNR dB (B,))
    -> class probabilities (B, C/2 + 1)."""

    def __init__(self, maps: int, antennas: int, hidden: int = 64) -> None:
        super().__init__()
        if maps % 2:
            raise ConfigError(f"maps={maps}; allowed: an even number (real and imaginary halves)")
        self.mlp = nn.Sequential(nn.Linear(maps + 2 * antennas + 1, hidden), nn.ReLU(),
                                 nn.Linear(hidden, maps // 2 + 1))

    def forward(self, z: torch.Tensor, entropy: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        info = torch.cat([z.flatten(2), entropy.unsqueeze(-1)], dim=-1)  # (B, C, L + 1)
        return torch.softmax(self.mlp(torch.cat([info.mean(-1), context(csi, snr_db)], dim=-1)), dim=-1)


class PruningPolicy(nn.Module):
    """P2 (Fig. 11): (selected complex maps as reals (B, C/2, 2L), CSI (B, M), SNR dB (B,)) ->
    probabilities (B, len(PRUNING_RATIOS))."""

    def __init__(self, maps: int, antennas: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(maps // 2 + 2 * antennas + 1, hidden), nn.ReLU(),
                                 nn.Linear(hidden, len(PRUNING_RATIOS)))

    def forward(self, z: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(torch.cat([z.mean(-1), context(csi, snr_db)], dim=-1)), dim=-1)


def sample_one_hot(probabilities: torch.Tensor, temperature: float, hard: bool = True) -> torch.Tensor:
    """Straight-through Gumbel-softmax one-hot of (B, K) probabilities (torch's gumbel_softmax);
    ``temperature`` 0 gives the most probable class (evaluation: the policy's own choice)."""
    if temperature <= 0:
        return F.one_hot(probabilities.argmax(-1), probabilities.shape[-1]).to(probabilities.dtype)
    return F.gumbel_softmax(torch.log(probabilities.clamp_min(1e-20)), tau=temperature, hard=hard)


def temperature(epoch: int, start: float = 5.0, decay: float = 0.01) -> float:
    """The paper's Gumbel-softmax temperature: 5 at epoch 0, decaying exponentially at 0.01."""
    return start * math.exp(-decay * epoch)


def prune_l1(z: torch.Tensor, ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the ``ratio`` fraction (floor of ratio * 2L) of smallest-|value| entries of each map.

    z float (B, C2, 2L); ratio float (B,) in [0, 1). Returns (pruned z (B, C2, 2L), index matrix
    bool (B, C2, 2L), True = pruned). Ties are broken by position (the earlier entry is pruned).
    """
    if z.ndim != 3:
        raise ConfigError(f"z of shape {tuple(z.shape)}; allowed: (B, C/2, 2L)")
    pruned = _smallest(z, ratio.reshape(-1, 1, 1))
    return z.masked_fill(pruned, 0.0), pruned


def _smallest(z: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """True for the floor(ratio * 2L) smallest-|value| entries of each map of z (B, C2, 2L);
    ``ratio`` broadcasts against (B, C2, 2L) with any leading axes, e.g. (T, 1, 1, 1)."""
    length = z.shape[-1]
    counts = torch.floor(ratio.detach() * length + 1e-6).long().clamp(0, length)
    rank = torch.argsort(torch.argsort(z.detach().abs(), dim=-1, stable=True), dim=-1)
    return rank < counts


def keep_masks(z: torch.Tensor, ratios: tuple[float, ...] = PRUNING_RATIOS) -> torch.Tensor:
    """bool (B, T, C2, 2L): entries :func:`prune_l1` keeps at each of the T ``ratios``, ranking the
    values once for all of them."""
    table = torch.tensor(ratios, dtype=z.dtype).reshape(-1, 1, 1, 1)
    return ~_smallest(z, table).transpose(0, 1)


def index_symbols(length: int, code_rate: float = 0.75, bits_per_symbol: int = 6) -> int:
    """Complex symbols of one ``length``-bit index row after the LDPC code and QAM (64-QAM, R 3/4)."""
    return math.ceil(length / code_rate / bits_per_symbol)


def cpp(selected_maps: int, kept_length: int, full_length: int, height: int, width: int) -> float:
    """CPP of one user (the paper's formula after Table II): C_k (L_k + L'_k) / (2 H W), with
    L'_k = :func:`index_symbols` (full_length) when anything was pruned, else 0."""
    overhead = index_symbols(full_length) if kept_length < full_length else 0
    return selected_maps * (kept_length + overhead) / (2 * height * width)
