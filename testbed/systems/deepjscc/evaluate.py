"""Measure a DeepJSCC/ADJSCC model on held-out real images (never on training crops).

Data sets:
    ``"photos"``: the test split of the offline photo corpus (kodim23, astronaut, coffee,
        chelsea; short side 512 px). Tiled models: each photo cut into 32x32 tiles, transmitted
        tile by tile, put back together. Whole-image models: each photo padded to a multiple of
        8 px and sent in one piece; under Rayleigh its symbols are cut into frames of
        ``FRAME_SYMBOLS`` (the deepjscc system's default frame) with one fading draw each, as in
        the chain. PSNR and MS-SSIM (5 scales) per whole photo, averaged over photos.
    ``"cifar"``: the 20 genuine CIFAR-10 test images (foolbox wheel), one tile each; MS-SSIM
        with 2 scales (32 px, see :mod:`testbed.metrics`).
    ``"default"``: the embedded default images (128 px, cut from the test photos), 4-scale MS-SSIM.
"""
from __future__ import annotations

import numpy as np
import torch

from testbed.data.images import default_images, photo_corpus, tile, untile
from testbed.errors import ConfigError
from testbed.metrics import ms_ssim, psnr_db
from testbed.systems.deepjscc.model import CHANNELS, TILE, through_channel
from testbed.systems.deepjscc.whole_image import STRIDE, WholeImageJSCC

DATASETS = ("photos", "cifar", "default")
FRAME_SYMBOLS = 12288  # DeepJsccParams.max_frame_symbols


def held_out_images(data: str) -> list[np.ndarray]:
    """The evaluation images of a data set, float32 (3, H, W) each."""
    if data == "photos":
        return photo_corpus("test")
    if data == "cifar":
        from testbed.data.loaders import genuine_cifar_samples

        return list(genuine_cifar_samples()["cifar10"][0])
    if data == "default":
        return [img for _, img in default_images()]
    raise ConfigError(f"data {data!r} is unknown; allowed: {', '.join(DATASETS)}")


@torch.no_grad()
def transmit(model: torch.nn.Module, tiles: np.ndarray, snr_db: float, channel: str,
             generator: torch.Generator, batch_size: int = 256) -> np.ndarray:
    """Tiles float32 (N, 3, 32, 32) through encoder, channel and decoder -> float32 (N, 3, 32, 32)."""
    out = []
    for start in range(0, len(tiles), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(tiles[start:start + batch_size]))
        recon = model(x, torch.full((len(x),), float(snr_db)), channel, generator)["recon"]
        out.append(recon.clamp(0.0, 1.0).numpy())
    return np.concatenate(out)


@torch.no_grad()
def transmit_whole(model: WholeImageJSCC, img: np.ndarray, snr_db: float, channel: str,
                   generator: torch.Generator, frame_symbols: int = FRAME_SYMBOLS) -> np.ndarray:
    """One image float32 (3, H, W) through a whole-image model -> float32 (3, H, W).

    Rayleigh: one draw per frame of ``frame_symbols`` symbols, perfect CSI per frame, and the
    decoder's SNR that of the frames' mean noise variance (what the deepjscc system feeds it).
    """
    height, width = (-(-side // STRIDE) * STRIDE for side in img.shape[1:])
    padded = np.pad(img, ((0, 0), (0, height - img.shape[1]), (0, width - img.shape[2])), mode="edge")
    x = torch.from_numpy(np.ascontiguousarray(padded))[None]
    snr = torch.full((1, 1), float(snr_db))
    if channel == "awgn":
        recon = model(x, snr, "awgn", generator)["recon"]
    else:
        symbols = model.encode(x, snr)
        k = symbols.shape[1]
        n_frames = -(-k // frame_symbols)
        blocks = torch.nn.functional.pad(symbols, (0, 0, 0, n_frames * frame_symbols - k)).reshape(
            n_frames, frame_symbols, 2)
        received, frame_snr = through_channel(blocks, snr.expand(n_frames, 1), "rayleigh", generator)
        received = received.reshape(1, -1, 2)[:, :k]
        snr_eff = -10.0 * torch.log10(torch.mean(10.0 ** (-frame_snr / 10.0)))
        grid = received.reshape(1, height // STRIDE, width // STRIDE, model.latent_channels // 2, 2)
        recon = model.decode(grid, snr_eff.reshape(1, 1))
    return recon[0, :, :img.shape[1], :img.shape[2]].clamp(0.0, 1.0).numpy()


def reconstruct(model: torch.nn.Module, img: np.ndarray, snr_db: float, channel: str,
                generator: torch.Generator) -> np.ndarray:
    """One image through a tiled or whole-image model and the torch channel -> float32 (3, H, W)."""
    if isinstance(model, WholeImageJSCC):
        return transmit_whole(model, img, snr_db, channel, generator)
    return untile(transmit(model, tile(img, TILE), snr_db, channel, generator), img.shape)


def evaluate(model: torch.nn.Module, snr_db_list, channel: str = "awgn", data: str = "photos",
             seed: int = 0, images: list[np.ndarray] | None = None) -> dict:
    """Mean PSNR and MS-SSIM of whole held-out images at each SNR.

    Parameters: model, a :class:`~testbed.systems.deepjscc.model.DeepJSCC` or
        :class:`~testbed.systems.deepjscc.whole_image.WholeImageJSCC`; snr_db_list, the
        SNRs (Es/N0, dB); channel ``"awgn"`` or ``"rayleigh"`` (one fading draw per 32x32 tile
        or per frame of a whole image, perfect CSI at the receiver); data ``"photos"``, ``"cifar"`` or ``"default"``; seed of
        the channel draws; images to use instead of ``data``'s (then ``data`` only labels them).
    Returns: {"data", "channel", "n_images", "snr_db": [...], "psnr_db": [...], "ms_ssim": [...]}
        (one mean over images per SNR).
    """
    if channel not in CHANNELS:
        raise ConfigError(f"channel {channel!r} is unknown; allowed: {', '.join(CHANNELS)}")
    images = held_out_images(data) if images is None else images
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    result = {"data": data, "channel": channel, "n_images": len(images), "snr_db": [], "psnr_db": [], "ms_ssim": []}
    try:
        for snr in snr_db_list:
            refs, recons = [], []
            for img in images:
                recon = reconstruct(model, img, snr, channel, generator)
                refs.append(img)
                recons.append(recon)
            result["snr_db"].append(float(snr))
            result["psnr_db"].append(round(float(np.mean([psnr_db(a, b) for a, b in zip(refs, recons)])), 3))
            result["ms_ssim"].append(round(float(np.mean([ms_ssim(a, b) for a, b in zip(refs, recons)])), 4))
    finally:
        model.train(was_training)
    return result


def card_metrics(model: torch.nn.Module, seed: int = 0) -> dict:
    """The metrics of a model card: held-out photos at 0, 5, 10, 15, 20 dB AWGN and Rayleigh, CIFAR-10 at 10 dB AWGN.

    Returns: {"photos_awgn": evaluate(...), "photos_rayleigh": ..., "cifar10_awgn": ...}.
    """
    photos = held_out_images("photos")
    metrics = {f"photos_{ch}": evaluate(model, [0, 5, 10, 15, 20], ch, "photos", seed, images=photos) for ch in CHANNELS}
    try:
        metrics["cifar10_awgn"] = evaluate(model, [10], "awgn", "cifar", seed)
    except Exception as err:  # noqa: BLE001  (foolbox absent: say so in the card)
        metrics["cifar10_awgn"] = {"error": str(err)}
    return metrics
