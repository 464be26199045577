"""Deep joint source-channel coding of 32x32 RGB tiles: DeepJSCC and the SNR-adaptive ADJSCC.

References:
    E. Bourtsoulatze, D. Burth Kurka, D. Gündüz, "Deep joint source-channel coding for wireless
    image transmission", IEEE TCCN 2019 (DeepJSCC: a conv encoder/decoder with PReLU, the last
    encoder layer's output read as complex channel symbols, power-normalised per image).
    J. Xu, B. Ai, W. Chen, A. Yang, P. Sun, M. Rodrigues, "Wireless image transmission using deep
    source channel coding with attention modules", IEEE TCSVT 2022 (ADJSCC: attention feature (AF)
    modules that pool the feature map, append the SNR and derive sigmoid channel weights through
    two fully connected layers), reference [13] of ../shared/seeds/000_5c86833aa1606c01.txt.

Architecture (both variants; ADJSCC adds an AF module after every hidden layer of the encoder
and the decoder):

    encoder: conv5x5/2 3->C  GDN PReLU | conv5x5/2 C->C GDN PReLU | conv5x5 C->C GDN PReLU
             | conv5x5 C->C GDN PReLU | conv5x5 C->c  -> (N, c, 8, 8) -> k = 32 c complex symbols
    decoder: the mirror image with inverse GDN, the two stride-2 layers transposed convolutions,
             a sigmoid at the output.

This is Bourtsoulatze's layer layout with the GDN/IGDN normalisation of ADJSCC and a common
width C (``width``, default 32; ADJSCC uses 256, Bourtsoulatze 16/32). The width is chosen for
CPU training: measured on one AMD EPYC thread with batch 64, C = 32 trains 11 steps/s, C = 48
6 steps/s, C = 64 4 steps/s, and per step the wider nets were not ahead in the first thousand
steps, so on a 45-minute CPU budget C = 32 sees ~2.5x more crops than C = 64 (about 25k steps).
GDN is a 1x1 convolution per layer (cheap) and is what learned image codecs use instead of
batch norm.

The bandwidth ratio k/n counts complex channel symbols k per real source value n = 3*32*32:
``"1/6"`` sends 512 complex symbols (c = 16 real channels at 8x8), ``"1/12"`` sends 256 (c = 8),
``"1/24"`` 128 (c = 4) and ``"1/32"`` 96 (c = 3; the two narrow ratios bracket the 0.0356 of
MU-ASCC's ZF-WF-DJSCC benchmark, docs/mu_ascc.md).
Symbols are real tensors (N, k, 2) (I/Q last, docs/architecture.md "Conventions"), scaled per image to
unit average power per complex symbol, so ``snr_db`` is Es/N0 with the testbed's convention.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from testbed.channels.spec import ChannelSpec
from testbed.channels.torch_face import Channel
from testbed.errors import ConfigError

TILE = 32
BANDWIDTH_RATIOS = {"1/6": 512, "1/12": 256, "1/24": 128, "1/32": 96}  # ratio -> complex symbols per 32x32x3 tile
VARIANTS = ("deepjscc", "adjscc")
CHANNELS = ("awgn", "rayleigh")
SNR_SCALE_DB = 10.0  # the AF modules see snr_db / SNR_SCALE_DB
LATENT_SIDE = TILE // 4  # two stride-2 layers: 32 -> 8


def symbols_per_tile(bandwidth_ratio: str) -> int:
    """Complex channel symbols k per 32x32 RGB tile for a bandwidth ratio of ``BANDWIDTH_RATIOS``."""
    if bandwidth_ratio not in BANDWIDTH_RATIOS:
        raise ConfigError(f"bandwidth_ratio {bandwidth_ratio!r} is unknown; allowed: {', '.join(BANDWIDTH_RATIOS)}")
    return BANDWIDTH_RATIOS[bandwidth_ratio]


class GDN(nn.Module):
    """Generalised divisive normalisation (Ballé et al. 2016), or its inverse.

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)   (inverse: x_i * sqrt(...)).
    beta and gamma are kept non-negative by squaring their parameters (plus small floors).
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(math.sqrt(0.1) * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta * self.beta + 1e-6
        gamma = self.gamma * self.gamma
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm


class AttentionFeature(nn.Module):
    """ADJSCC's AF module: channel weights from the pooled feature map and the SNR.

    Inputs: x float (N, C, H, W); snr float (N, 1) in dB.
    Outputs: x * sigmoid(FC2(ReLU(FC1([mean_hw(x), snr / 10])))) channel-wise, (N, C, H, W).
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(channels // 4, 8)
        self.fc1 = nn.Linear(channels + 1, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        context = torch.cat([x.mean(dim=(2, 3)), snr_db / SNR_SCALE_DB], dim=1)
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(context))))
        return x * weights[:, :, None, None]


class _Stage(nn.Module):
    """conv (or transposed conv) -> GDN/IGDN -> PReLU -> optional AF module."""

    def __init__(self, conv: nn.Module, channels: int, inverse: bool, attention: bool) -> None:
        super().__init__()
        self.conv = conv
        self.gdn = GDN(channels, inverse=inverse)
        self.act = nn.PReLU(channels)
        self.af = AttentionFeature(channels) if attention else None

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        x = self.act(self.gdn(self.conv(x)))
        return self.af(x, snr_db) if self.af is not None else x


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=stride, padding=2)


def _upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class DeepJSCC(nn.Module):
    """A DeepJSCC (``variant="deepjscc"``) or ADJSCC (``"adjscc"``) transceiver for 32x32 RGB tiles.

    Parameters:
        bandwidth_ratio: a key of ``BANDWIDTH_RATIOS``, e.g. ``"1/6"`` (k = 512 complex symbols
            per tile) or ``"1/12"`` (k = 256).
        variant: ``"deepjscc"`` (SNR-agnostic; ``snr_db`` inputs are accepted and ignored) or
            ``"adjscc"`` (AF modules conditioned on the SNR in encoder and decoder).
        width: filters C of every hidden layer.

    Deployment path (exported to ONNX):
        encode(image float32 (N, 3, 32, 32) in [0, 1], snr_db float32 (N, 1)) -> symbols (N, k, 2)
        decode(symbols float32 (N, k, 2), snr_db float32 (N, 1)) -> image (N, 3, 32, 32) in [0, 1]
    Training path: forward(image, snr_db, channel) -> {"recon", "symbols", "received", "snr_eff_db"}.
    """

    def __init__(self, bandwidth_ratio: str = "1/6", variant: str = "deepjscc", width: int = 32) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"variant {variant!r} is unknown; allowed: {', '.join(VARIANTS)}")
        self.k = symbols_per_tile(bandwidth_ratio)
        self.bandwidth_ratio = bandwidth_ratio
        self.variant = variant
        self.width = width
        self.latent_channels = 2 * self.k // (LATENT_SIDE * LATENT_SIDE)
        att = variant == "adjscc"
        c = width
        self.encoder = nn.ModuleList([
            _Stage(_conv(3, c, 2), c, False, att),
            _Stage(_conv(c, c, 2), c, False, att),
            _Stage(_conv(c, c), c, False, att),
            _Stage(_conv(c, c), c, False, att),
        ])
        self.encoder_out = _conv(c, self.latent_channels)
        self.decoder_in = _Stage(_conv(self.latent_channels, c), c, True, att)
        self.decoder = nn.ModuleList([
            _Stage(_conv(c, c), c, True, att),
            _Stage(_conv(c, c), c, True, att),
            _Stage(_upconv(c, c), c, True, att),
        ])
        self.decoder_out = _upconv(c, 3)

    def config(self) -> dict:
        """Constructor arguments, to rebuild the same module: ``DeepJSCC(**model.config())``."""
        return {"bandwidth_ratio": self.bandwidth_ratio, "variant": self.variant, "width": self.width}

    # -- deployment path -------------------------------------------------------------------
    def encode(self, image: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """image float (N, 3, 32, 32) in [0, 1], snr_db (N, 1) -> symbols (N, k, 2), unit power per image."""
        x = image - 0.5
        snr_db = snr_db.reshape(-1, 1)
        for stage in self.encoder:
            x = stage(x, snr_db)
        z = self.encoder_out(x).reshape(x.shape[0], self.k, 2)
        power = z.pow(2).sum(dim=(1, 2), keepdim=True) / self.k
        return z * torch.rsqrt(power + 1e-12)

    def decode(self, symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """symbols float (N, k, 2) (equalised), snr_db (N, 1) -> image (N, 3, 32, 32) in [0, 1]."""
        return torch.clamp(self._decode(symbols, snr_db), 0.0, 1.0)

    def _decode(self, symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        snr_db = snr_db.reshape(-1, 1)
        x = symbols.reshape(symbols.shape[0], self.latent_channels, LATENT_SIDE, LATENT_SIDE)
        x = self.decoder_in(x, snr_db)
        for stage in self.decoder:
            x = stage(x, snr_db)
        return torch.sigmoid(self.decoder_out(x))

    # -- training path ---------------------------------------------------------------------
    def forward(
        self,
        image: torch.Tensor,
        snr_db: torch.Tensor | float,
        channel: str = "awgn",
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode, pass through the testbed's differentiable channel, decode.

        Inputs: image float (N, 3, 32, 32) in [0, 1]; snr_db a float or (N,) / (N, 1) per-image
            Es/N0 in dB; channel ``"awgn"`` or ``"rayleigh"`` (block fading, one h per image);
            generator for the channel draws.
        Rayleigh: the receiver equalises with perfect CSI, the decoder sees (h x + n) / h and
            (ADJSCC) the effective SNR snr_db + 10 log10 |h|^2.
        Returns: {"recon" (N, 3, 32, 32), "symbols" (N, k, 2), "received" (N, k, 2) equalised,
            "snr_eff_db" (N, 1)}.
        """
        snr = per_image_snr(image, snr_db)
        symbols = self.encode(image, snr)
        received, snr_eff = through_channel(symbols, snr, channel, generator)
        recon = self._decode(received, snr_eff)
        return {"recon": recon, "symbols": symbols, "received": received, "snr_eff_db": snr_eff}


def per_image_snr(image: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
    """A float or (N,) / (N, 1) SNR in dB as (N, 1) for the N images of ``image``."""
    n = image.shape[0]
    return torch.as_tensor(snr_db, dtype=image.dtype, device=image.device).reshape(-1, 1).expand(n, 1)


def through_channel(symbols: torch.Tensor, snr_db: torch.Tensor, channel: str,
                    generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The testbed's differentiable channel, one block-fading draw per row, perfect-CSI equalisation.

    Inputs: symbols (N, k, 2); snr_db (N, 1); channel ``"awgn"`` or ``"rayleigh"``.
    Returns: received (N, k, 2) = (h x + n) / h, and the effective SNR snr_db + 10 log10 |h|^2 (N, 1).
    """
    if channel not in CHANNELS:
        raise ConfigError(f"channel {channel!r} is unknown; allowed: {', '.join(CHANNELS)}")
    y, h = Channel(ChannelSpec(model=channel, snr_db=0.0), generator)(symbols, snr_db[:, 0])
    if channel == "awgn":
        return y, snr_db
    hc = torch.view_as_complex(h.contiguous())
    received = torch.view_as_real(torch.view_as_complex(y.contiguous()) / hc[:, None])
    return received, snr_db + 10.0 * torch.log10(hc.abs().pow(2)[:, None])
