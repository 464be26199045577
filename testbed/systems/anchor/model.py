"""The anchor-aided multi-user JSCC networks: one SNR-adaptive base-station encoder, its
symmetric anchor decoder, and the user decoder families of the heterogeneous receivers.

Reference: "Anchor-Aided Multi-User Semantic Communication with Adaptive Decoders",
../shared/seeds/002_dc33bc085f1347c9.txt (Sec. IV-B2, eqs. 9-23, Fig. 4).

Encoder (the paper's attention architecture, eqs. 9-14), ``width`` W filters:

    conv5x5/2 3->W | conv5x5/2 W->W | conv5x5 W->W | conv5x5 W->W   (each GDN, PReLU, attention)
    | conv5x5 W->c  -> latent (N, c, H/4, W/4), power-normalised per image

The attention module pools the feature map, appends the SNR, and derives sigmoid channel weights
through FC, ReLU, FC (:class:`testbed.systems.deepjscc.model.AttentionFeature`, the same module).
GDN is CompressAI's (``compressai.layers.GDN``; inverse GDN in the decoders).

Bandwidth ratio: c = 16 real latent channels at stride 4 give k = H W / 2 complex symbols for
n = 3 H W real values, k/n = 1/6. Symbols are real tensors with I/Q last, unit average power
per complex symbol per image (``snr_db`` is Es/N0). Symbol order: (row, column, channel pair)
of the latent, so a frame of consecutive symbols is a band of image rows; decoders take them
shaped (N, H/4, W/4, c/2, 2).

Every decoder maps (symbols (N, H/4, W/4, c/2, 2) float32, snr_db (N, 1) float32) to an image
float32 (N, 3, H, W) in [0, 1]; the families are registered by name in :data:`DECODERS`
(``@decoder_family("name")``), which is what the trainer, the export, the system and the tests
iterate over, so a fifth family is one more registered class in this folder.
"""
from __future__ import annotations

from typing import Callable

import torch
from compressai.layers import GDN
from torch import nn

from testbed.systems.deepjscc.model import SNR_SCALE_DB, AttentionFeature

STRIDE = 4
LATENT_CHANNELS = 16  # c at stride 4: k/n = 16 / (2 * 3 * 16) = 1/6
BANDWIDTH_RATIO = "1/6"
WIDTH = 48

DECODERS: dict[str, type["Decoder"]] = {}
"""family name -> decoder class; the paper's four in its training order, then any added ones."""


def decoder_family(name: str) -> Callable[[type["Decoder"]], type["Decoder"]]:
    """Class decorator registering a user decoder family under ``name``."""
    def wrap(cls: type["Decoder"]) -> type["Decoder"]:
        cls.family = name
        DECODERS[name] = cls
        return cls
    return wrap


def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _upconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    if stride == 1:
        return nn.ConvTranspose2d(cin, cout, kernel, padding=kernel // 2)
    return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=kernel // 2, output_padding=1)


def _snr(snr_db: torch.Tensor) -> torch.Tensor:
    return snr_db.reshape(-1, 1) / SNR_SCALE_DB


class _AttentionStage(nn.Module):
    """conv (or transposed conv) -> GDN (or inverse GDN) -> PReLU -> attention with the SNR (eqs. 9-14)."""

    def __init__(self, conv: nn.Module, channels: int, inverse: bool) -> None:
        super().__init__()
        self.conv = conv
        self.gdn = GDN(channels, inverse=inverse)
        self.act = nn.PReLU(channels)
        self.attention = AttentionFeature(channels)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.attention(self.act(self.gdn(self.conv(x))), snr_db)


class SnrScale(nn.Module):
    """Element-wise scaling of a feature map by an FC layer of the SNR (eq. 17): x * (1 + FC(snr / 10))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(1, channels)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + self.fc(_snr(snr_db)))[:, :, None, None]


class Encoder(nn.Module):
    """The base-station encoder: image float32 (N, 3, H, W) in [0, 1] (H, W multiples of 4),
    snr_db (N, 1) -> symbols float32 (N, k, 2), k = c H W / 32, unit average power per image."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.width, self.latent_channels = width, latent_channels
        self.stages = nn.ModuleList([
            _AttentionStage(_conv(3, width, stride=2), width, False),
            _AttentionStage(_conv(width, width, stride=2), width, False),
            _AttentionStage(_conv(width, width), width, False),
            _AttentionStage(_conv(width, width), width, False),
        ])
        self.out = _conv(width, latent_channels)

    def config(self) -> dict:
        return {"width": self.width, "latent_channels": self.latent_channels}

    def forward(self, image: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = image - 0.5
        for stage in self.stages:
            x = stage(x, snr_db)
        z = self.out(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2)
        power = z.pow(2).sum(dim=(1, 2), keepdim=True) / z.shape[1]
        return z * torch.rsqrt(power + 1e-12)


class Decoder(nn.Module):
    """Base of the user decoder families: ``forward(symbols, snr_db) -> image`` (module docstring)."""

    family: str = ""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.width, self.latent_channels = width, latent_channels

    def config(self) -> dict:
        return {"width": self.width, "latent_channels": self.latent_channels}

    def forward(self, symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.logits(symbols.flatten(3).permute(0, 3, 1, 2), snr_db).sigmoid(), 0.0, 1.0)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """latent float32 (N, c, H/4, W/4), snr_db (N, 1) -> pre-sigmoid image (N, 3, H, W)."""
        raise NotImplementedError


@decoder_family("attention")
class AttentionDecoder(Decoder):
    """The encoder's mirror (eqs. 9-14 with transposed convolutions and inverse GDN); also the
    architecture of the anchor decoder of the self-reflective stage."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__(width, latent_channels)
        self.stages = nn.ModuleList([
            _AttentionStage(_upconv(latent_channels, width, stride=1), width, True),
            _AttentionStage(_upconv(width, width, stride=1), width, True),
            _AttentionStage(_upconv(width, width, stride=1), width, True),
            _AttentionStage(_upconv(width, width), width, True),
        ])
        self.out = _upconv(width, 3)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = latent
        for stage in self.stages:
            x = stage(x, snr_db)
        return self.out(x)


@decoder_family("conv")
class ConvDecoder(Decoder):
    """Hierarchical upsampling (eqs. 15-17): blocks of transposed conv, inverse GDN, PReLU, each
    scaled element-wise by an FC layer of the SNR."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__(width, latent_channels)
        self.convs = nn.ModuleList([_upconv(latent_channels, width, stride=1), _upconv(width, width, stride=1),
                                    _upconv(width, width)])
        self.gdns = nn.ModuleList([GDN(width, inverse=True) for _ in self.convs])
        self.acts = nn.ModuleList([nn.PReLU(width) for _ in self.convs])
        self.scales = nn.ModuleList([SnrScale(width) for _ in self.convs])
        self.out = _upconv(width, 3)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = latent
        for conv, gdn, act, scale in zip(self.convs, self.gdns, self.acts, self.scales):
            x = scale(act(gdn(conv(x))), snr_db)
        return self.out(x)


class _Residual(nn.Module):
    """x + conv3x3(PReLU(conv3x3(x))) (He et al. 2016), then PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), nn.PReLU(channels), _conv(channels, channels, 3))
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


@decoder_family("resnet")
class ResNetDecoder(Decoder):
    """Residual decoder (eqs. 18-20): a head conv with the SNR fused by FC scaling, five residual
    blocks at the latent resolution, two transposed-conv upsamplings."""

    BLOCKS = 5

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__(width, latent_channels)
        self.head = _conv(latent_channels, width, 3)
        self.head_act = nn.PReLU(width)
        self.scale = SnrScale(width)
        self.blocks = nn.Sequential(*[_Residual(width) for _ in range(self.BLOCKS)])
        self.up = _upconv(width, width)
        self.up_act = nn.PReLU(width)
        self.out = _upconv(width, 3)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = self.scale(self.head_act(self.head(latent)), snr_db)
        x = self.blocks(x)
        return self.out(self.up_act(self.up(x)))


class _VggBlock(nn.Module):
    """Two consecutive transposed convolutions with PReLU (the second may upsample by 2), a 3x3
    average pooling (stride 1), and the SNR fused by FC scaling (eqs. 21-23)."""

    def __init__(self, cin: int, cout: int, upsample: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(_upconv(cin, cout, 3, stride=1), nn.PReLU(cout),
                                  _upconv(cout, cout, 3, stride=2 if upsample else 1), nn.PReLU(cout),
                                  nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
        self.scale = SnrScale(cout)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.scale(self.body(x), snr_db)


@decoder_family("vgg")
class VggDecoder(Decoder):
    """VGG-style decoder: three blocks of paired transposed convolutions (two of them upsampling),
    a 3x3 conv to RGB, sigmoid."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__(width, latent_channels)
        self.blocks = nn.ModuleList([_VggBlock(latent_channels, width, False), _VggBlock(width, width, True),
                                     _VggBlock(width, width, True)])
        self.out = _conv(width, 3, 3)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = latent
        for block in self.blocks:
            x = block(x, snr_db)
        return self.out(x)


def build_decoder(family: str, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS) -> Decoder:
    """A fresh decoder of a registered family (ConfigError naming the families for another name)."""
    from testbed.errors import ConfigError

    if family not in DECODERS:
        raise ConfigError(f"decoder family {family!r} is unknown; allowed: {', '.join(DECODERS)}")
    return DECODERS[family](width, latent_channels)


def shape_symbols(received: torch.Tensor, height: int, width: int, latent_channels: int = LATENT_CHANNELS) -> torch.Tensor:
    """Received symbols (N, k, 2) -> the decoders' grid (N, H/4, W/4, c/2, 2)."""
    return received.reshape(received.shape[0], height // STRIDE, width // STRIDE, latent_channels // 2, 2)
