"""Semantic encoder and decoder of the entropy-and-channel-adaptive system (torch).

Implements section III-A of ../shared/seeds/004_04072a72b64c0519.txt:

- encoder = CEM (convs 3x64x7, 64x128x3, 128x256x3; strides 1, 2, 2 so a 32x32 input gives
  8x8 maps, L = 64) + CAEM (two ResNet blocks, each followed by a CBAM-CSI attention module and
  a channel-condition adaptive module, then a 3x3 conv to C = 16 maps);
- CBAM-CSI (Figs. 4-5, eqs. 13-14): channel attention whose average- and max-pooled vectors are
  each concatenated with the CSI (2M reals) and the SNR and sent through one shared two-layer
  1x1-conv path, then 7x7 spatial attention over the channel-wise average and max;
- channel-condition adaptive module (Fig. 6): the pooled maps with CSI and SNR through two
  MLPs, a scale s and a bias b; z' = z * s + z (the paper's formula) + b (the bias factor the
  paper names but leaves out of its formula);
- decoder = CADM (MHSA over the 64 positions with the C maps as features, heads summed, with a
  residual; a 3x3 conv to 256; two channel-condition adaptive modules and ResNet blocks) + CDM
  (transposed convs 256x128x3, 128x64x3 with stride 2, conv 64x3x5, sigmoid).

The paper does not name its activations; PReLU is used throughout. ``context`` everywhere is
float (B, 2M + 1): the real and imaginary parts of the user's estimated CSI and the SNR in dB
(:func:`context`).
"""
from __future__ import annotations

import torch
from torch import nn

FEATURE_MAPS = 16   # C
FEATURE_SIDE = 8    # 8 x 8 maps, L = 64, for 32 x 32 inputs


def context(csi: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """complex (B, M) CSI and (B,) SNR in dB -> float32 (B, 2M + 1)."""
    return torch.cat([csi.real, csi.imag, snr_db.reshape(-1, 1).to(csi.real.dtype)], dim=-1).float()


class ResBlock(nn.Module):
    """Two 3x3 convs and a residual connection (channels unchanged)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.out = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.body(x))


class ChannelAttentionCSI(nn.Module):
    """Eq. (13): M_ca = sigmoid(CL([avg; ctx]) + CL([max; ctx])), CL two shared 1x1 convs."""

    def __init__(self, channels: int, context_size: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.path = nn.Sequential(nn.Conv2d(channels + context_size, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        c = ctx[:, :, None, None]
        avg = torch.cat([x.mean(dim=(2, 3), keepdim=True), c], dim=1)
        mx = torch.cat([x.amax(dim=(2, 3), keepdim=True), c], dim=1)
        return x * torch.sigmoid(self.path(avg) + self.path(mx))


class SpatialAttention(nn.Module):
    """Eq. (14): M_sa = sigmoid(conv7x7([mean over channels; max over channels]))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CbamCsi(nn.Module):
    """Channel attention with CSI and SNR, then spatial attention (Figs. 4-5)."""

    def __init__(self, channels: int, context_size: int) -> None:
        super().__init__()
        self.channel = ChannelAttentionCSI(channels, context_size)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x, ctx))


class ChannelConditionAdaptive(nn.Module):
    """Fig. 6: scale and bias from [pooled maps; ctx] by two MLPs; z * s + z + b."""

    def __init__(self, channels: int, context_size: int, hidden: int = 64) -> None:
        super().__init__()

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(channels + context_size, hidden), nn.ReLU(), nn.Linear(hidden, channels))

        self.scale, self.bias = mlp(), mlp()
        for head in (self.scale[-1], self.bias[-1]):  # start as the identity z' = z: the context
            nn.init.zeros_(head.weight)                # bias would otherwise swamp the maps at init
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([x.mean(dim=(2, 3)), ctx], dim=1)
        return x * self.scale(summary)[:, :, None, None] + x + self.bias(summary)[:, :, None, None]


class MultiHeadSelfAttention(nn.Module):
    """Eqs. (15)-(16) over the positions of (B, C, H, W) maps, C features each; the heads' outputs
    are summed (as the paper says) and added to the input (the residual)."""

    def __init__(self, channels: int, heads: int = 4, dim: int = 32) -> None:
        super().__init__()
        self.heads, self.dim = heads, dim
        self.qkv = nn.Linear(channels, 3 * heads * dim, bias=False)
        self.out = nn.Linear(dim, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)                          # (B, HW, C)
        q, k, v = self.qkv(tokens).reshape(b, h * w, 3, self.heads, self.dim).permute(2, 0, 3, 1, 4)
        attended = torch.softmax(q @ k.transpose(-2, -1) / self.dim ** 0.5, dim=-1) @ v  # (B, heads, HW, dim)
        summed = self.out(attended.sum(dim=1))                         # (B, HW, C)
        return x + summed.transpose(1, 2).reshape(b, c, h, w)


class NoAttention(nn.Module):
    """Stands in for an attention module in the "no attention" ablation: returns its input."""

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        return x


class SemanticEncoder(nn.Module):
    """float32 images (B, 3, 32, 32) in [0, 1] and ctx (B, 2M + 1) -> maps (B, C, 8, 8).
    ``attention=False``: the CBAM-CSI modules are left out (the paper's ablation)."""

    def __init__(self, antennas: int, maps: int = FEATURE_MAPS, attention: bool = True) -> None:
        super().__init__()
        ctx = 2 * antennas + 1
        self.cem = nn.Sequential(nn.Conv2d(3, 64, 7, padding=3), nn.PReLU(64),
                                 nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.PReLU(128),
                                 nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.PReLU(256))
        self.res = nn.ModuleList([ResBlock(256), ResBlock(256)])
        self.attention = nn.ModuleList([CbamCsi(256, ctx) if attention else NoAttention() for _ in range(2)])
        self.adapt = nn.ModuleList([ChannelConditionAdaptive(256, ctx), ChannelConditionAdaptive(256, ctx)])
        self.out = nn.Conv2d(256, maps, 3, padding=1)
        init_convolutions(self)

    def forward(self, images: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = self.cem(images)
        for res, attention, adapt in zip(self.res, self.attention, self.adapt):
            x = adapt(attention(res(x), ctx), ctx)
        return self.out(x)


class SemanticDecoder(nn.Module):
    """Recovered maps (B, C, 8, 8) and ctx (B, 2M + 1) -> float32 images (B, 3, 32, 32) in [0, 1].
    ``attention=False``: no MHSA module (the paper's ablation)."""

    def __init__(self, antennas: int, maps: int = FEATURE_MAPS, attention: bool = True) -> None:
        super().__init__()
        ctx = 2 * antennas + 1
        self.mhsa = MultiHeadSelfAttention(maps) if attention else NoAttention()
        self.inp = nn.Sequential(nn.Conv2d(maps, 256, 3, padding=1), nn.PReLU(256))
        self.adapt = nn.ModuleList([ChannelConditionAdaptive(256, ctx), ChannelConditionAdaptive(256, ctx)])
        self.res = nn.ModuleList([ResBlock(256), ResBlock(256)])
        self.cdm = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1), nn.PReLU(128),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), nn.PReLU(64),
            nn.Conv2d(64, 3, 5, padding=2), nn.Sigmoid())
        init_convolutions(self)

    def forward(self, maps: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = self.inp(self.mhsa(maps))
        for adapt, res in zip(self.adapt, self.res):
            x = res(adapt(x, ctx))
        return self.cdm(x)


def init_convolutions(module: nn.Module) -> None:
    """He initialisation for the PReLU stacks (PyTorch's default shrinks every un-normalised
    layer's output by about sqrt(3), so after the CEM the maps were a tenth of their input)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, a=0.25, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)


def to_complex(maps: torch.Tensor) -> torch.Tensor:
    """Real maps (B, C, H, W) -> (B, C/2, 2L) real rows: maps 2i and 2i+1 concatenated, the first
    L values the real part of the i-th complex map and the last L its imaginary part."""
    b, c, h, w = maps.shape
    return maps.reshape(b, c // 2, 2 * h * w)


def from_complex(rows: torch.Tensor, side: int = FEATURE_SIDE) -> torch.Tensor:
    """Inverse of :func:`to_complex`: (B, C/2, 2L) -> (B, C, side, side)."""
    b, half, _ = rows.shape
    return rows.reshape(b, 2 * half, side, side)
