"""The Bit-TDMA baseline of IRS-JSCE: raw image bits on LDPC n = 1296, R = 2/3 and 16-QAM, one
ordered pair at a time, the IRS co-phased for the pair in service.

Reference: ../shared/seeds/000_5c86833aa1606c01.txt (Sec. IV: "For Bit-TDMA, we set the length of
the LDPC code block n = 1296 and the rate of the code R = 2/3 ... sigma^2 = 0.1 and 16-QAM").

Each pair (r, k) in turn: per coherence block the surface takes the 1-bit phases that maximise
|h_{r,k}| (:func:`channel.link_optimal_phases`, quantised: the strongest honest setting, which a
TDMA controller can afford since one link is served at a time), the link's SNR is
|h_{r,k}|^2 / sigma^2, and each codeword of the image's 8-bit RGB stream is lost with the
codeword error rate the PHY measured at that SNR (:class:`testbed.systems.digital.bler.BlerTable`,
frame sync and header losses included). A lost codeword's bytes are mid-grey. xi = SSIM of the
received image; throughput eq. (11) is (S / L) xi with S = 6 16-QAM symbols per pixel uncoded and
L = 24 / (4 * 2/3) = 9 coded symbols per pixel, so Gamma = (2/3) xi per channel use while the
pair is served, and 1 / (K (K - 1)) of that averaged over a TDMA round.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ssim

from testbed.systems.digital.bler import BlerTable
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.evaluate import EVAL_CHANNEL_SEED, RAW_SYMBOLS_PER_PIXEL

MCS = "ldpc_1296_2_3/qam16"
INFO_BYTES = 1296 * 2 // 3 // 8  # 108 bytes of image per codeword
CODED_SYMBOLS_PER_PIXEL = 24 / (4 * 2 / 3)


def link_snr_db(geometry: channel.Geometry, tx: int, rx: int, block: int, noise_var: float,
                draw: channel.ChannelDraw | None = None) -> float:
    """SNR of pair (tx, rx) in coherence block ``block`` (``draw``: its channels, drawn if None)
    with the surface co-phased for it (1-bit)."""
    draw = draw or channel.draw_channels(geometry, EVAL_CHANNEL_SEED, block)
    phases = channel.one_bit(channel.link_optimal_phases(draw, tx, rx))
    gain = abs(channel.cascaded(draw, phases)[tx, rx]) ** 2
    return 10 * math.log10(gain / noise_var)


def received_image(img: np.ndarray, error_rate: float, rng: np.random.Generator) -> np.ndarray:
    """``img`` float32 (3, H, W) sent as 8-bit bytes in codewords of INFO_BYTES, each lost with
    ``error_rate`` (its bytes mid-grey); float32 (3, H, W)."""
    data = np.rint(img * 255).astype(np.uint8).reshape(-1)
    n_words = -(-data.size // INFO_BYTES)
    lost = np.repeat(rng.random(n_words) < error_rate, INFO_BYTES)[:data.size]
    out = np.where(lost, np.uint8(128), data)
    return (out.astype(np.float32) / 255).reshape(img.shape)


def evaluate(geometry: channel.Geometry, images: list[np.ndarray], noise_var: float = 0.1, blocks: int = 2,
             seed: int = 0, table: BlerTable | None = None) -> dict:
    """Every ordered pair served alone: mean SNR, codeword error rate, SSIM and throughput per pair,
    and the TDMA round's max-min throughput per channel use."""
    table = table or BlerTable.load()
    rng = np.random.default_rng(seed)
    pairs = [(r, k) for r in range(geometry.n_users) for k in range(geometry.n_users) if r != k]
    draws = [channel.draw_channels(geometry, EVAL_CHANNEL_SEED, block) for block in range(blocks)]  # once for every pair
    rows = []
    for j, (r, k) in enumerate(pairs):
        img = images[j % len(images)]
        snrs, xis, rates = [], [], []
        for block in range(blocks):
            snr_db = link_snr_db(geometry, r, k, block, noise_var, draws[block])
            rate = float(table.codeword_error_rate(MCS, snr_db))
            got = received_image(img, rate, rng)
            xis.append(float(ssim(torch.from_numpy(got)[None], torch.from_numpy(img)[None], data_range=1.0)))
            snrs.append(snr_db)
            rates.append(rate)
        xi = float(np.mean(xis))
        rows.append({"link": [r, k], "snr_db": round(float(np.mean(snrs)), 2), "codeword_error_rate": float(np.mean(rates)),
                     "ssim": round(xi, 4), "throughput": round(RAW_SYMBOLS_PER_PIXEL / CODED_SYMBOLS_PER_PIXEL * xi, 4)})
    worst = min(row["throughput"] for row in rows)
    return {"mcs": MCS, "pairs": rows, "tdma_max_min_throughput": round(worst / len(pairs), 5)}
