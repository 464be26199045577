"""Torch evaluation of IRS-JSCE on held-out photographs: per-link PSNR and SSIM of one slot, with
the IRS as trained (1-bit), continuous, random (1-bit) or off, and the semantic throughput.

Reference: ../shared/seeds/000_5c86833aa1606c01.txt (eqs. (11)-(13), Sec. IV, Figs. 3 and 4).

Images: the held-out photographs (kodim23, astronaut, coffee, chelsea; never trained on),
centre-cropped to ``side`` x ``side`` px so that the superposed signals of a slot have one
length (L = side^2 / 2 symbols); link j of a slot carries photo j mod 4, sent as 32 px tiles
(the training crops' size: measured, the networks trained on 32 px crops fall to 10-15 dB on
whole 64-128 px images, so, like the tiled DeepJSCC models, they send tiles). Channels: coherence
blocks of :func:`channel.draw_channels` under ``EVAL_CHANNEL_SEED`` (training uses seed 0).

Semantic throughput, eq. (13) with B = 1: Gamma = (S / L) xi, S the symbols the raw image takes
under a traditional modulation M_tr (8-bit RGB on 16-QAM: 6 symbols per pixel), L the symbols
JSCE sends (ratio 1/6: 1/2 per pixel), so Gamma = 12 xi suts per channel use at ratio 1/6;
xi = SSIM (eq. (12)). A schedule's figure, the max-min objective (14), is
:func:`testbed.systems.irs_jsce.scheduling.objective`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from pytorch_msssim import ssim

from testbed.data.images import photo_corpus, tile, untile
from testbed.errors import ConfigError
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.model import Decoder, Encoder, cascaded, transmit_slot
from testbed.systems.irs_jsce.train import channel_bank, user_positions

EVAL_CHANNEL_SEED = 1
TILE_PX = 32  # the training crops' side: the networks send an image as tiles of this size
RANDOM_PHASES_SEED = 7
EVAL_MODES = ("trained", "continuous", "random", "off")
RAW_SYMBOLS_PER_PIXEL = 6.0  # 24 bits of 8-bit RGB on 16-QAM (4 bits per symbol): M_tr of eq. (11)


def semantic_throughput(xi: float | np.ndarray, symbols_per_pixel: float = 0.5) -> float | np.ndarray:
    """Eq. (13) with B = 1: (S / L) xi, S = 6 symbols per pixel, L = ``symbols_per_pixel`` per pixel."""
    return RAW_SYMBOLS_PER_PIXEL / symbols_per_pixel * xi


def held_out_images(side: int = 256) -> list[np.ndarray]:
    """The held-out photographs centre-cropped to float32 (3, side, side) (side a multiple of 4)."""
    if side % 4 or side < 8:
        raise ConfigError(f"irs_jsce evaluation side = {side!r} is invalid; allowed: a multiple of 4, >= 8")
    out = []
    for photo in photo_corpus("test"):
        _, height, width = photo.shape
        if min(height, width) < side:
            raise ConfigError(f"irs_jsce evaluation side = {side} is larger than a held-out photo "
                              f"({height} x {width}); allowed: <= {min(height, width)}")
        top, left = (height - side) // 2, (width - side) // 2
        out.append(np.ascontiguousarray(photo[:, top:top + side, left:left + side], dtype=np.float32))
    return out


def eval_phases(mode: str, trained: np.ndarray) -> np.ndarray | None:
    """The phases of an evaluation mode: float64 (N,) radians, or None (no IRS)."""
    if mode not in EVAL_MODES:
        raise ConfigError(f"irs_jsce IRS mode {mode!r} is unknown; allowed: {', '.join(EVAL_MODES)}")
    if mode == "off":
        return None
    if mode == "continuous":
        return np.asarray(trained, np.float64)
    if mode == "random":
        return channel.one_bit(np.random.default_rng(RANDOM_PHASES_SEED).uniform(0, 2 * np.pi, len(trained)))
    return channel.one_bit(trained)


@lru_cache(maxsize=4)
def eval_channels(geometry: channel.Geometry, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`channel_bank` under ``EVAL_CHANNEL_SEED``, drawn once per geometry (by identity) and
    block count: a table of 30 slots would otherwise draw the same blocks 30 times."""
    return channel_bank(geometry, EVAL_CHANNEL_SEED, blocks)


@torch.no_grad()
def evaluate_slot(encoder: Encoder, decoder: Decoder, geometry: channel.Geometry, phases: np.ndarray | None,
                  links: Sequence[tuple[int, int]], images: list[np.ndarray], blocks: int = 4,
                  noise_var: float = 0.1, seed: int = 0, tile_px: int = TILE_PX) -> dict:
    """Mean PSNR (dB), SSIM and throughput per link of one slot over ``blocks`` coherence blocks.

    Link j carries ``images[j % len(images)]`` (all of one shape, float32 (3, H, W)) as
    ``tile_px`` tiles (:func:`testbed.data.images.tile`), the size the networks were trained on;
    every tile of a slot meets the block's channel (the paper: a whole semantic feature within a
    coherence time). Returns {"links": [[r, k], ...], "psnr_db": [...], "ssim": [...], "throughput": [...]}."""
    g, h_direct = eval_channels(geometry, blocks)
    phase_t = None if phases is None else torch.from_numpy(np.asarray(phases, np.float32))
    h = cascaded(g, h_direct, phase_t)
    sent = [images[j % len(images)] for j in range(len(links))]
    tiles = torch.from_numpy(np.stack([tile(img, tile_px) for img in sent], axis=1))   # (T, n_links, 3, s, s)
    reference = torch.from_numpy(np.stack(sent))
    generator, positions = torch.Generator().manual_seed(seed), user_positions(geometry)
    psnr, xi = torch.zeros(len(links)), torch.zeros(len(links))
    for b in range(blocks):
        out = transmit_slot(encoder, decoder, tiles, links, h[b:b + 1].expand(len(tiles), -1, -1), noise_var,
                            positions, generator).clamp(0, 1).numpy()
        decoded = torch.from_numpy(np.stack([untile(out[:, j], sent[j].shape) for j in range(len(links))]))
        mse = ((decoded - reference) ** 2).mean(dim=(1, 2, 3))
        psnr += -10 * torch.log10(mse.clamp_min(1e-10)) / blocks
        xi += ssim(decoded, reference, data_range=1.0, size_average=False) / blocks
    return {"links": [list(link) for link in links], "psnr_db": [round(float(v), 3) for v in psnr],
            "ssim": [round(float(v), 4) for v in xi],
            "throughput": [round(float(semantic_throughput(float(v))), 4) for v in xi]}


def training_crops(count: int = 8, side: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``count`` random ``side``-px crops of the training photographs, float32 (3, side, side): what
    the scheduler's table is measured on (never the held-out photographs)."""
    rng = np.random.default_rng(seed)
    photos = [p for p in photo_corpus("train") if min(p.shape[1:]) >= side]
    crops = []
    for i in rng.integers(len(photos), size=count):
        photo = photos[i]
        top, left = rng.integers(photo.shape[1] - side + 1), rng.integers(photo.shape[2] - side + 1)
        crops.append(np.ascontiguousarray(photo[:, top:top + side, left:left + side], dtype=np.float32))
    return crops


def measure_table(encoder: Encoder, decoder: Decoder, geometry: channel.Geometry, phases: np.ndarray | None,
                  images: list[np.ndarray], blocks: int = 4, noise_var: float = 0.1) -> dict:
    """SSIM of every link of every half-duplex TX set: {tx set: {(r, k): xi}} (the scheduler's table)."""
    from testbed.systems.irs_jsce.train import transmitter_sets

    table = {}
    for txs in transmitter_sets(geometry.n_users):
        links = channel.slot_links(txs, geometry.n_users)
        result = evaluate_slot(encoder, decoder, geometry, phases, links, images, blocks, noise_var)
        table[txs] = {tuple(link): value for link, value in zip(links, result["ssim"])}
    return table


FIG3_LINKS = ((0, 1), (0, 2), (0, 3))
"""Fig. 3: the user at (1.13, 0.50) sends three images to the users at (-0.01, -0.21), (-1.10, -0.28), (0.19, 1.01)."""


def quality_by_transmitters(encoder: Encoder, decoder: Decoder, geometry: channel.Geometry,
                            phases: np.ndarray | None, images: list[np.ndarray], blocks: int,
                            noise_var: float) -> list[dict]:
    """Mean PSNR (dB) and SSIM over the links of every half-duplex TX set, grouped by its number of
    transmitters: [{"transmitters", "sets", "links", "psnr_db", "ssim"}, ...] (floats unrounded)."""
    from testbed.systems.irs_jsce.train import transmitter_sets

    by_size: dict[int, list[dict]] = {}
    for txs in transmitter_sets(geometry.n_users):
        links = channel.slot_links(txs, geometry.n_users)
        by_size.setdefault(len(txs), []).append(
            evaluate_slot(encoder, decoder, geometry, phases, links, images, blocks, noise_var))
    return [{"transmitters": size, "sets": len(results), "links": len(results[0]["links"]),
             "psnr_db": float(np.mean([r["psnr_db"] for r in results])),
             "ssim": float(np.mean([r["ssim"] for r in results]))} for size, results in sorted(by_size.items())]


def model_metrics(encoder: Encoder, decoder: Decoder, geometry: channel.Geometry, phases: np.ndarray | None,
                  noise_var: float = 0.1, side: int = 256, blocks: int = 4) -> dict:
    """The card's metrics on the held-out photographs: Fig. 3's slot under every IRS mode (only
    ``off`` for a model trained without IRS, ``phases`` None), and every TX set with the trained
    IRS, averaged per number of transmitters."""
    images = held_out_images(side)
    modes = ["off"] if phases is None else list(EVAL_MODES)
    fig3 = {}
    for mode in modes:
        result = evaluate_slot(encoder, decoder, geometry, eval_phases(mode, phases) if phases is not None else None,
                               FIG3_LINKS, images, blocks, noise_var)
        fig3[mode] = {**result, "mean_psnr_db": round(float(np.mean(result["psnr_db"])), 3),
                      "mean_ssim": round(float(np.mean(result["ssim"])), 4)}
    main_phases = None if phases is None else eval_phases("trained", phases)
    sets = {str(row["transmitters"]): {"sets": row["sets"], "links_per_slot": row["links"],
                                       "mean_psnr_db": round(row["psnr_db"], 3), "mean_ssim": round(row["ssim"], 4)}
            for row in quality_by_transmitters(encoder, decoder, geometry, main_phases, images, max(1, blocks // 2),
                                               noise_var)}
    return {"photos_side_px": side, "blocks": blocks, "noise_var": noise_var, "fig3_slot": fig3,
            "by_transmitters": sets}
