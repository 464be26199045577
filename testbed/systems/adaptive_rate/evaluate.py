"""Torch reference evaluation of a trained adaptive-rate model: per user and SNR, PSNR, CPP, the
number of selected maps and the pruning ratio (the quantities of the paper's Tables I/II).

The policies act deterministically (their most probable class, temperature 0); every SNR point
draws its channels and noise from a generator seeded by (seed, SNR, K), so a point is repeatable
and the network run can be compared with it. Images are 32x32 tiles (``testbed.data.images.tile``)
of the held-out photographs, or the 20 genuine CIFAR-10 test images; tile i goes to user i mod K.
"""
from __future__ import annotations

import numpy as np
import torch

from testbed.data.images import held_out_crops, tile
from testbed.metrics import psnr_db
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser, run_users


def held_out_tiles(limit: int | None = None) -> np.ndarray:
    """32x32 tiles of the held-out 256-px crops, float32 (N, 3, 32, 32) (64 per crop)."""
    tiles = np.concatenate([tile(img, 32) for _, img in held_out_crops()])
    return tiles if limit is None else tiles[:limit]


def _user_batches(images: np.ndarray, users: int) -> torch.Tensor:
    """(N, 3, 32, 32) -> (K, N // K, 3, 32, 32); the last N mod K images are left out."""
    per_user = len(images) // users
    return torch.from_numpy(images[:per_user * users]).reshape(per_user, users, 3, 32, 32).transpose(0, 1)


@torch.no_grad()
def evaluate(model: AdaptiveRateUser, images: np.ndarray, snr_db: float, users: int, antennas: int,
             imperfect_csi: bool = False, seed: int = 0, fixed: tuple[int, int] | None = None) -> list[dict]:
    """One row per user: {"user", "snr_db", "psnr_db", "cpp", "selected_maps", "pruning_ratio"}
    (means over the user's images); ``fixed`` = (maps, pruning ratio index) replaces the
    policies' decisions by that one."""
    model.eval()
    batches = _user_batches(images, users)
    generator = torch.Generator().manual_seed(hash((seed, round(snr_db * 100), users)) % 2**31)
    snr = torch.full((batches.shape[1],), float(snr_db))
    recon, decisions = run_users(model, batches, snr, antennas, imperfect_csi, 0.0, generator, fixed=fixed)
    rows = []
    for k, d in enumerate(decisions):
        rows.append({"user": k, "snr_db": float(snr_db),
                     "psnr_db": float(np.mean(psnr_db(batches[k].numpy(), recon[k].numpy()))),
                     "cpp": float(d.cpp().mean()), "selected_maps": float(d.selected.mean()),
                     "pruning_ratio": float(d.ratio.mean())})
    return rows
