"""A throwaway fifth decoder family for the anchor broadcast, registered from this folder only
(through ``testbed.registry.load_plugins``), with the model set whose cards lie beside it."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from testbed.systems.anchor.model import Decoder, _upconv, decoder_family
from testbed.systems.anchor.models import register_folder


@decoder_family("throwaway")
class ThrowawayDecoder(Decoder):
    """Two transposed convolutions, no SNR input: the smallest decoder that maps the grid to an image."""

    def __init__(self, width: int = 16, latent_channels: int = 16) -> None:
        super().__init__(width, latent_channels)
        self.up = _upconv(latent_channels, width)
        self.act = nn.PReLU(width)
        self.out = _upconv(width, 3)

    def logits(self, latent: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.up(latent)))


register_folder(Path(__file__).parent)
