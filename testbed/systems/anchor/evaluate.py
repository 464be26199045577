"""Torch evaluation of the anchor-aided broadcast on held-out photographs (never training crops).

Each photo (the test split of the offline corpus: kodim23, astronaut, coffee, chelsea; short
side 512 px) is padded by edge replication to a multiple of 4 px, encoded once per SNR and sent
to every user decoder through its own channel draw. Under Rayleigh the symbols are cut into
frames of ``FRAME_SYMBOLS`` (the anchor system's default frame) with one fading draw each and
perfect CSI, and each decoder is told the SNR of the frames' mean noise variance: what the
testbed's chain does. PSNR and MS-SSIM (5 scales) per photo, averaged over photos.
"""
from __future__ import annotations

import numpy as np
import torch

from testbed.data.images import photo_corpus
from testbed.metrics import ms_ssim, psnr_db
from testbed.systems.anchor.model import STRIDE, shape_symbols
from testbed.systems.deepjscc.model import through_channel

FRAME_SYMBOLS = 12288  # AnchorParams.max_frame_symbols


def pad(img: np.ndarray) -> np.ndarray:
    """float32 (3, H, W) -> (3, H', W') with H', W' the next multiples of STRIDE (edge replication)."""
    height, width = (-(-side // STRIDE) * STRIDE for side in img.shape[1:])
    return np.pad(img, ((0, 0), (0, height - img.shape[1]), (0, width - img.shape[2])), mode="edge")


def channel_frames(symbols: torch.Tensor, snr_db: float, channel: str, generator: torch.Generator,
                   frame_symbols: int = FRAME_SYMBOLS) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's symbols (1, k, 2) through the torch channel in frames -> (received (1, k, 2),
    decoder SNR (1, 1) in dB): AWGN as is; Rayleigh one draw per frame, SNR of the mean noise variance."""
    snr = torch.full((1, 1), float(snr_db))
    if channel == "awgn":
        return through_channel(symbols, snr, "awgn", generator)
    k = symbols.shape[1]
    n_frames = -(-k // frame_symbols)
    blocks = torch.nn.functional.pad(symbols, (0, 0, 0, n_frames * frame_symbols - k)).reshape(n_frames, frame_symbols, 2)
    received, frame_snr = through_channel(blocks, snr.expand(n_frames, 1), channel, generator)
    snr_eff = -10.0 * torch.log10(torch.mean(10.0 ** (-frame_snr / 10.0)))
    return received.reshape(1, -1, 2)[:, :k], snr_eff.reshape(1, 1)


@torch.no_grad()
def broadcast(encoder: torch.nn.Module, decoders: dict[str, torch.nn.Module], img: np.ndarray, snr_db: float,
              channel: str, generator: torch.Generator, encoder_snr_db: float | None = None) -> dict[str, np.ndarray]:
    """One image float32 (3, H, W) encoded once (told ``encoder_snr_db``, default ``snr_db``), each
    decoder on its own channel draw at ``snr_db`` -> name -> reconstruction float32 (3, H, W)."""
    padded = torch.from_numpy(np.ascontiguousarray(pad(img)))[None]
    _, _, height, width = padded.shape
    told = snr_db if encoder_snr_db is None else encoder_snr_db
    symbols = encoder(padded, torch.full((1, 1), float(told)))
    out = {}
    for name, decoder in decoders.items():
        received, snr_eff = channel_frames(symbols, snr_db, channel, generator)
        recon = decoder(shape_symbols(received, height, width), snr_eff)
        out[name] = recon[0, :, :img.shape[1], :img.shape[2]].clamp(0.0, 1.0).numpy()
    return out


def evaluate(encoder: torch.nn.Module, decoders: dict[str, torch.nn.Module], snr_db_list, channel: str,
             images: list[np.ndarray] | None = None, seed: int = 0, draws: int = 1) -> dict[str, dict[str, list[float]]]:
    """Mean PSNR and MS-SSIM of each decoder on the held-out photos at each SNR, over ``draws``
    channel draws per photo (the same draws for any encoder and decoders: the generator is seeded
    by ``seed`` and consumed in the same order, so two model sets are compared on equal noise).

    Returns: {decoder name: {"snr_db": [...], "psnr_db": [...], "ms_ssim": [...]}}."""
    images = photo_corpus("test") if images is None else images
    images = [img for _ in range(draws) for img in images]
    encoder.eval()
    for decoder in decoders.values():
        decoder.eval()
    generator = torch.Generator().manual_seed(seed)
    result = {name: {"snr_db": [], "psnr_db": [], "ms_ssim": []} for name in decoders}
    for snr in snr_db_list:
        recons = [broadcast(encoder, decoders, img, snr, channel, generator) for img in images]
        for name, row in result.items():
            row["snr_db"].append(float(snr))
            row["psnr_db"].append(round(float(np.mean([psnr_db(a, r[name]) for a, r in zip(images, recons)])), 3))
            row["ms_ssim"].append(round(float(np.mean([ms_ssim(a, r[name]) for a, r in zip(images, recons)])), 4))
    return result
