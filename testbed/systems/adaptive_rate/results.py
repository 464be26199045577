"""docs/results for the adaptive-rate system: PSNR against SNR of the shipped model and of the two
baselines at matched CPP, K = 2..4 users, perfect and imperfect CSI, on held-out photographs and
on the genuine CIFAR-10 samples (../shared/seeds/004_04072a72b64c0519.txt, Figs. 12-16, Tables
I-IV). Torch and numpy, no PHY: the network's own figures come from ``testbed run
adaptive-rate-mumimo`` and :mod:`testbed.systems.adaptive_rate.reference`.

The uplink is the training one (M = 4 antennas, Rayleigh H with CN(0, 1) entries per tile, LMMSE
of eq. (8) on H or on H + CN(0, sigma_n^2)).

- ``adaptive``: the shipped model, its policies at temperature 0 (:mod:`evaluate`).
- ``deepjscc``: the testbed's SNR-adaptive ADJSCC at a fixed bandwidth ratio (``adjscc-r12``: 0.25
  complex symbols per pixel, ``adjscc-r6``: 0.5), each user's stream detected by the same LMMSE,
  de-biased, and decoded with that stream's post-detection SINR as its SNR (the receiver's own
  estimate): a fixed-CPP deep JSCC that is told its channel. The paper's baseline CPPs 0.328
  and 0.289 lie between the two; no model of the testbed has them.
- ``adjscc@cpp``: the two ADJSCC curves interpolated linearly in CPP to the adaptive model's CPP
  at that point (matched CPP, as the paper's 0.328 / 0.289 models are matched).
- ``fixed-decision``: the shipped codec with one decision for every tile, whatever the channel:
  the (maps, pruning ratio) whose CPP is nearest the adaptive model's at that point. What the
  policies' adaptation is worth on the same codec.
- ``digital``: the image codec (HEVC intra, the testbed's BPG) + LDPC 648 rate 1/2 + QPSK with the
  codec's bitstream filling the adaptive model's measured CPP at that point (channel uses per
  pixel x pixels bits, one bit per channel use); the whole 256 px crop is one bitstream, one
  Rayleigh draw per crop, and it arrives whole with probability 1 - FER at the stream's
  post-LMMSE SINR (``models/digital/bler-awgn.json``, the PHY's measured curves), otherwise the
  receiver shows mid-grey. 32x32 tiles cannot be coded separately: the codec's headers alone
  exceed the budget.

    python -m testbed.systems.adaptive_rate.results --out docs/results
"""
from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from testbed import registry
from testbed.data.images import held_out_crops, tile
from testbed.data.loaders import genuine_cifar_samples
from testbed.metrics import psnr_db
from testbed.runner.files import write_json
from testbed.systems.adaptive_rate import detection
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate.evaluate import _user_batches, evaluate
from testbed.systems.adaptive_rate.export import user_from_onnx
from testbed.systems.adaptive_rate.model import FEATURE_MAPS, FEATURE_SIDE
from testbed.systems.adaptive_rate.system import AdaptiveRateSystem
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.digital import LOST_FILL
from testbed.systems.digital.bler import BlerTable

SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
USERS = (2, 3, 4)
ANTENNAS = 4
DEEPJSCC = ("adjscc-r12", "adjscc-r6")
DIGITAL_MCS = "ldpc_648_1_2/qpsk"
DIGITAL_CODEC = "hevc"
DIGITAL_DRAWS = 16


def _rng(seed: int, users: int, snr_db: float, imperfect: bool, stream: int) -> np.random.Generator:
    """The generator of one point (SNR in 0.1 dB steps from -100 dB)."""
    return np.random.default_rng([seed, users, int(round((snr_db + 100.0) * 10)), int(imperfect), stream])


def _channels(n: int, users: int, snr_db: float, imperfect: bool, rng: np.random.Generator):
    """(H, H_hat) complex128 (n, M, K) and the noise variance."""
    noise = 10.0 ** (-snr_db / 10.0)
    h = detection.complex_gaussian((n, ANTENNAS, users), 1.0, rng)
    dh = detection.complex_gaussian(h.shape, noise, rng)
    return h, (h + dh if imperfect else h), noise


def _lmmse(h: np.ndarray, h_hat: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Per item: the de-biased LMMSE rows W complex (n, K, M) built on h_hat and the true
    post-detection SINR (n, K) of the biased rows (the de-biasing does not change it)."""
    rows, sinr = [], []
    for hi, hh in zip(h, h_hat):
        w = detection.lmmse_matrix(hh, noise)
        sinr.append(detection.post_detection_sinr(w, hi, noise))
        rows.append(w / np.diag(w @ hh)[:, None])
    return np.asarray(rows), np.asarray(sinr)


def deepjscc_point(codec: NeuralImageCodec, tiles: np.ndarray, users: int, snr_db: float, imperfect: bool,
                   seed: int) -> float:
    """Mean PSNR (dB, per tile) of ``codec`` for K users sending tiles float32 (K, n, 3, 32, 32)."""
    rng = _rng(seed, users, snr_db, imperfect, 0)
    k, n = tiles.shape[:2]
    symbols = np.stack([codec.encoder.run(image=tiles[u], snr_db=np.full((n, 1), snr_db, np.float32))["symbols"]
                        for u in range(k)])
    x = symbols[..., 0] + 1j * symbols[..., 1]                                                 # (K, n, T)
    h, h_hat, noise = _channels(n, users, snr_db, imperfect, rng)
    y = np.einsum("nmk,knt->nmt", h, x)
    y += detection.complex_gaussian(y.shape, noise, rng)
    w, sinr = _lmmse(h, h_hat, noise)
    detected = np.einsum("nkm,nmt->knt", w, y)
    out = []
    for u in range(k):
        snr = 10 * np.log10(np.maximum(sinr[:, u], 1e-3)).astype(np.float32)
        out.append(codec.decode_tiles(detected[u].astype(np.complex64), snr))
    return float(np.mean(psnr_db(tiles.reshape(-1, 3, 32, 32), np.concatenate(out))))


def digital_point(crops: list[np.ndarray], cpp: float, users: int, snr_db: float, imperfect: bool, seed: int,
                  table: BlerTable) -> dict[str, float]:
    """Mean PSNR (dB, per crop) of codec + LDPC 1/2 + QPSK at ``cpp`` channel uses per pixel, and
    the fraction of crops that arrive (module docstring)."""
    codec = registry.create("codec", DIGITAL_CODEC)
    rng = _rng(seed, users, snr_db, imperfect, 1)
    scores, arrived = [], []
    for img in crops:
        bits = int(cpp * img.shape[1] * img.shape[2])
        fitted = codec.fit_budget(img, bits // 8)
        decoded = codec.decode(fitted[0]) if fitted is not None else None
        codewords = math.ceil(len(fitted[0]) * 8 / 324) if fitted is not None else 0
        h, h_hat, noise = _channels(DIGITAL_DRAWS, users, snr_db, imperfect, rng)
        _, sinr = _lmmse(h, h_hat, noise)
        for s in sinr[:, 0]:
            ok = fitted is not None and rng.random() >= table.frame_error_rate(DIGITAL_MCS, 10 * math.log10(s),
                                                                              codewords)
            arrived.append(ok)
            scores.append(psnr_db(img, decoded if ok else np.full_like(img, LOST_FILL)))
    return {"psnr_db": float(np.mean(scores)), "arrived": float(np.mean(arrived))}


def nearest_decision(cpp: float) -> tuple[int, int]:
    """(maps, pruning ratio index) whose CPP (:func:`rate_control.cpp` of a 32x32 tile) is nearest ``cpp``."""
    length = 2 * FEATURE_SIDE ** 2
    options = [(maps, r) for maps in range(1, FEATURE_MAPS // 2 + 1) for r in range(len(rc.PRUNING_RATIOS))]
    return min(options, key=lambda o: abs(rc.cpp(o[0], int(round((1 - rc.PRUNING_RATIOS[o[1]]) * length)), length,
                                                 32, 32) - cpp))


def collect(model, crops: list[np.ndarray], cifar: np.ndarray, seed: int = 0) -> dict:
    """Every curve: rows {"images", "scheme", "users", "csi", "snr_db", "psnr_db", ...}."""
    tiles = np.concatenate([tile(img, 32) for img in crops])
    codecs = {name: NeuralImageCodec(name) for name in DEEPJSCC}
    table = BlerTable.load()
    rows = []
    for images_name, images in (("held-out", tiles), ("cifar10", cifar)):
        for users in USERS:
            split = _user_batches(images, users).numpy()
            for csi in ("perfect", "imperfect"):
                imperfect = csi == "imperfect"
                for snr in SNRS_DB:
                    ours = evaluate(model, images, snr, users, ANTENNAS, imperfect, seed)
                    mean = {k: float(np.mean([r[k] for r in ours])) for k in ("psnr_db", "cpp", "selected_maps",
                                                                                 "pruning_ratio")}
                    base = {"images": images_name, "users": users, "csi": csi, "snr_db": snr}
                    rows.append({**base, "scheme": "adaptive", **mean})
                    fixed = nearest_decision(mean["cpp"])
                    same = evaluate(model, images, snr, users, ANTENNAS, imperfect, seed, fixed=fixed)
                    rows.append({**base, "scheme": "fixed-decision", "decision": list(fixed),
                                 **{k: float(np.mean([r[k] for r in same])) for k in ("psnr_db", "cpp")}})
                    neural = {}
                    for name, codec in codecs.items():
                        cpp = 3 * float(Fraction(codec.bandwidth_ratio))  # complex symbols per pixel
                        neural[cpp] = deepjscc_point(codec, split, users, snr, imperfect, seed)
                        rows.append({**base, "scheme": name, "cpp": cpp, "psnr_db": neural[cpp]})
                    cpps = sorted(neural)
                    rows.append({**base, "scheme": "adjscc@cpp", "cpp": mean["cpp"],
                                 "psnr_db": float(np.interp(mean["cpp"], cpps, [neural[c] for c in cpps]))})
                    if images_name == "held-out":
                        rows.append({**base, "scheme": f"{DIGITAL_CODEC}+ldpc1/2+qpsk", "cpp": mean["cpp"],
                                     **digital_point(crops, mean["cpp"], users, snr, imperfect, seed, table)})
    return {"rows": rows}


def markdown(result: dict) -> str:
    """PSNR tables per image set, K and CSI; the adaptive model's CPP and maps per SNR."""
    rows = result["rows"]
    lines = ["# Adaptive rate control over a MU-MIMO uplink (M = 4): PSNR (dB) against SNR", "",
             "Written by `python -m testbed.systems.adaptive_rate.results --out docs/results` "
             "(torch/numpy, no PHY); what each scheme is: that module's docstring.", ""]
    for images in ("held-out", "cifar10"):
        for users in USERS:
            for csi in ("perfect", "imperfect"):
                part = [r for r in rows if (r["images"], r["users"], r["csi"]) == (images, users, csi)]
                schemes = list(dict.fromkeys(r["scheme"] for r in part))
                lines += [f"## {images}, K = {users}, {csi} CSI", "",
                          "| scheme | " + " | ".join(f"{s:g} dB" for s in SNRS_DB) + " |",
                          "|---|" + "---|" * len(SNRS_DB)]
                for scheme in schemes:
                    cells = [next(r for r in part if r["scheme"] == scheme and r["snr_db"] == s) for s in SNRS_DB]
                    lines.append(f"| {scheme} | " + " | ".join(f"{c['psnr_db']:.2f}" for c in cells) + " |")
                ours = [next(r for r in part if r["scheme"] == "adaptive" and r["snr_db"] == s) for s in SNRS_DB]
                lines.append("| adaptive CPP | " + " | ".join(f"{c['cpp']:.3f}" for c in ours) + " |")
                lines.append("| adaptive maps | " + " | ".join(f"{c['selected_maps']:.2f}" for c in ours) + " |")
                lines.append("| adaptive pruning | " + " | ".join(f"{c['pruning_ratio']:.2f}" for c in ours) + " |")
                lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.adaptive_rate.results",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--model", default="", help="an exported model (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    system = AdaptiveRateSystem({"model": args.model})
    model = user_from_onnx(*system.model_files()).eval()
    cifar = genuine_cifar_samples()["cifar10"][0]
    result = {"model": system.model_name, **collect(model, [img for _, img in held_out_crops()], cifar, args.seed)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "adaptive_rate.json", result)
    (args.out / "adaptive_rate.md").write_text(markdown(result) + "\n")
    return result


if __name__ == "__main__":
    main()
