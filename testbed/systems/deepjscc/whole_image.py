"""Fully convolutional ADJSCC for whole images: no 32x32 tiles at inference, no block seams.

References: the ADJSCC of J. Xu et al., "Wireless image transmission using deep source channel
coding with attention modules" (IEEE TCSVT 2022; reference [13] of
../shared/seeds/000_5c86833aa1606c01.txt), on the DeepJSCC of Bourtsoulatze, Kurka and Gündüz
(IEEE TCCN 2019), the baseline every seed paper compares against.

Architecture (``width`` C, stride 8, an attention feature (AF) module after every hidden stage):

    encoder: conv5x5/2 3->C | conv5x5/2 C->C | conv5x5/2 C->C | conv3x3 C->C   (each GDN, PReLU, AF)
             | conv3x3 C->c  -> latent (N, c, H/8, W/8)
    decoder: conv3x3 c->C | conv3x3 C->C | tconv5x5/2 C->C | tconv5x5/2 C->C   (each IGDN, PReLU, AF)
             | tconv5x5/2 C->3, sigmoid

Against the tiled model (:mod:`testbed.systems.deepjscc.model`) it downsamples three times
instead of twice (each latent position sees a 61x61 px receptive field instead of 29x29) and is
wider; the AF modules pool over the whole image. Images of any size are padded by edge
replication to a multiple of 8 px; the symbols of the padding are sent too and count in the
bandwidth ratio the runner reports.

Bandwidth ratio k/n, complex symbols per real source value: ``"1/6"`` gives c = 64 latent
channels (k = H W / 2 complex symbols), ``"1/12"`` c = 32. Symbols are real tensors with I/Q last,
scaled per image to unit average power per complex symbol (``snr_db`` is Es/N0).

Symbol order: the encoder emits (N, k, 2) with k ordered (row, column, channel pair) of the
latent, so a frame of consecutive symbols is a band of image rows. The decoder takes them
reshaped to (N, H/8, W/8, c/2, 2): the receiver knows the image size from the frame manifest.
"""
from __future__ import annotations

import torch
from torch import nn

from testbed.errors import ConfigError
from testbed.systems.deepjscc.model import _Stage, per_image_snr, through_channel

STRIDE = 8
LATENT_CHANNELS = {"1/6": 64, "1/12": 32}  # ratio -> c real latent channels at stride 8


def latent_channels(bandwidth_ratio: str) -> int:
    """Real latent channels c for ``"1/6"`` or ``"1/12"`` (k = c H W / 128 complex symbols)."""
    if bandwidth_ratio not in LATENT_CHANNELS:
        raise ConfigError(f"bandwidth_ratio {bandwidth_ratio!r} is unknown; allowed: {', '.join(LATENT_CHANNELS)}")
    return LATENT_CHANNELS[bandwidth_ratio]


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class WholeImageJSCC(nn.Module):
    """SNR-adaptive JSCC transceiver for RGB images whose sides are multiples of 8 px.

    Parameters:
        bandwidth_ratio: ``"1/6"`` or ``"1/12"``.
        width: filters C of every hidden stage.

    Deployment path (exported to ONNX with dynamic N, H, W):
        encode(image float32 (N, 3, H, W) in [0, 1], snr_db float32 (N, 1)) -> symbols (N, k, 2),
            k = c H W / 128, unit average power per image.
        decode(symbols float32 (N, H/8, W/8, c/2, 2) equalised, snr_db (N, 1)) -> image (N, 3, H, W).
    Training path: forward(image, snr_db, channel, generator) -> {"recon", "symbols", "received",
        "snr_eff_db"}; Rayleigh is block fading with one h per image and perfect CSI.
    """

    variant = "adjscc-wide"

    def __init__(self, bandwidth_ratio: str = "1/6", width: int = 96) -> None:
        super().__init__()
        self.bandwidth_ratio = bandwidth_ratio
        self.width = width
        self.latent_channels = c = latent_channels(bandwidth_ratio)
        w = width
        self.encoder = nn.ModuleList([
            _Stage(_conv(3, w, 5, 2), w, False, True),
            _Stage(_conv(w, w, 5, 2), w, False, True),
            _Stage(_conv(w, w, 5, 2), w, False, True),
            _Stage(_conv(w, w, 3), w, False, True),
        ])
        self.encoder_out = _conv(w, c, 3)
        self.decoder = nn.ModuleList([
            _Stage(_conv(c, w, 3), w, True, True),
            _Stage(_conv(w, w, 3), w, True, True),
            _Stage(_upconv(w, w), w, True, True),
            _Stage(_upconv(w, w), w, True, True),
        ])
        self.decoder_out = _upconv(w, 3)

    def config(self) -> dict:
        """Constructor arguments: ``WholeImageJSCC(**model.config())`` rebuilds the module."""
        return {"bandwidth_ratio": self.bandwidth_ratio, "width": self.width}

    def encode(self, image: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """image (N, 3, H, W) in [0, 1] with H, W multiples of 8, snr_db (N, 1) -> symbols (N, k, 2)."""
        x = image - 0.5
        snr_db = snr_db.reshape(-1, 1)
        for stage in self.encoder:
            x = stage(x, snr_db)
        z = self.encoder_out(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2)
        power = z.pow(2).sum(dim=(1, 2), keepdim=True) / z.shape[1]
        return z * torch.rsqrt(power + 1e-12)

    def decode(self, symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """symbols (N, H/8, W/8, c/2, 2), snr_db (N, 1) -> image (N, 3, H, W) in [0, 1]."""
        return torch.clamp(self._decode(symbols, snr_db), 0.0, 1.0)

    def _decode(self, symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        snr_db = snr_db.reshape(-1, 1)
        x = symbols.flatten(3).permute(0, 3, 1, 2)
        for stage in self.decoder:
            x = stage(x, snr_db)
        return torch.sigmoid(self.decoder_out(x))

    def forward(self, image: torch.Tensor, snr_db: torch.Tensor | float, channel: str = "awgn",
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Encode, the testbed's differentiable channel, decode (shapes as in the class docstring)."""
        n, _, height, width = image.shape
        snr = per_image_snr(image, snr_db)
        symbols = self.encode(image, snr)
        received, snr_eff = through_channel(symbols, snr, channel, generator)
        shaped = received.reshape(n, height // STRIDE, width // STRIDE, self.latent_channels // 2, 2)
        return {"recon": self._decode(shaped, snr_eff), "symbols": symbols, "received": received,
                "snr_eff_db": snr_eff}
