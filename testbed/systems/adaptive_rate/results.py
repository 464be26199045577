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

Ablations (the paper's Tables V-VII and Fig. 17; K = 2, perfect CSI):

- ``no-entropy (refit)`` and ``no-pruning (refit)``: the shipped codec with its policies fitted
  again (:mod:`fit_policy`, on training crops) without the entropy input of P1, or with ratio 0
  only. Without pruning the paper retrains at a larger alpha so that the CPPs are similar; here
  the refit takes the alpha of ABLATION_ALPHAS whose mean CPP over the SNR points is nearest the
  shipped model's. Only for a ``fitted`` model: its policies are the codec's search, so a refit
  changes the policy and nothing else. The codec itself was trained with the entropy term and
  with pruning.
- ``adaptive, refit at alpha A``: the same codec's policies fitted at the paper's alphas (its
  Tables I and II use 2e-4 and 3e-4); the codec does not depend on alpha (train.py).
- any other exported model with an ablation tag (``-noattention``, ``-nofeedback`` ...) of the
  same users, antennas and estimator as the shipped one: retrained without that part.

    python -m testbed.systems.adaptive_rate.results --out docs/results
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from testbed import registry
from testbed.data.images import held_out_crops, photo_corpus, tile
from testbed.data.loaders import genuine_cifar_samples
from testbed.metrics import psnr_db
from testbed.runner.files import write_json
from testbed.systems.adaptive_rate import detection, fit_policy
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate.evaluate import _user_batches, evaluate
from testbed.systems.adaptive_rate.export import config_from_name, user_from_onnx
from testbed.systems.adaptive_rate.model import FEATURE_MAPS, FEATURE_SIDE
from testbed.systems.adaptive_rate.system import MODEL_DIR, AdaptiveRateSystem, shipped_models
from testbed.systems.adaptive_rate.train import SNR_RANGE_DB
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.deepjscc.train import CropSampler
from testbed.systems.digital import LOST_FILL
from testbed.systems.digital.bler import BlerTable

SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
USERS = (2, 3, 4)
ANTENNAS = 4
DEEPJSCC = ("adjscc-r12", "adjscc-r6")
DIGITAL_MCS = "ldpc_648_1_2/qpsk"
DIGITAL_CODEC = "hevc"
DIGITAL_DRAWS = 16
ABLATION_USERS = 2
ABLATION_ALPHAS = (1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4, 8e-4, 1.2e-3)
ABLATION_BATCH = 32
PAPER_ALPHAS = (2e-4, 3e-4)  # Tables I and II: the same codec's policies refit at the paper's alphas
ABLATION_PROBE = 128   # training crops per user on which the no-pruning refit matches the CPP


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


def _point_means(model: AdaptiveRateUser, images: np.ndarray, snr_db: float, users: int, seed: int) -> dict:
    rows = evaluate(model, images, snr_db, users, ANTENNAS, False, seed)
    return {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_db", "cpp", "selected_maps", "pruning_ratio")}


def refit_variants(model: AdaptiveRateUser, alpha: float, seed: int, log=print) -> dict[str, tuple[AdaptiveRateUser, float]]:
    """The policy-level ablations of a fitted model (module docstring): {scheme: (model, alpha)}.
    Labels and the CPP match come from training crops, never from the held-out ones."""
    sampler = CropSampler(photo_corpus("train"), np.random.default_rng([seed, 21]), size=32)
    probe = sampler.batch(ABLATION_USERS * ABLATION_PROBE).numpy()
    batches = [(sampler.batch(ABLATION_USERS * ABLATION_BATCH).reshape(ABLATION_USERS, ABLATION_BATCH, 3, 32, 32),
                torch.from_numpy(sampler.rng.uniform(*SNR_RANGE_DB, ABLATION_BATCH)).float())
               for _ in range(fit_policy.FIT_BATCHES)]
    data = fit_policy.label_batches(model, batches, ANTENNAS, False, seed)
    variants = {}
    no_entropy = copy.deepcopy(model)
    no_entropy.entropy = False
    fit_policy.fit_to(no_entropy, data, alpha, log)
    variants["no-entropy (refit)"] = (no_entropy.eval(), alpha)
    target = np.mean([_point_means(model, probe, s, ABLATION_USERS, seed)["cpp"] for s in SNRS_DB])
    best = None
    for a in ABLATION_ALPHAS:
        plain = copy.deepcopy(model)
        plain.pruning = False
        fit_policy.fit_to(plain, data, a, log)
        cpp = np.mean([_point_means(plain.eval(), probe, s, ABLATION_USERS, seed)["cpp"] for s in SNRS_DB])
        if best is None or abs(cpp - target) < best[0]:
            best = (abs(cpp - target), plain, a)
    variants["no-pruning (refit)"] = (best[1], best[2])
    for a in PAPER_ALPHAS:
        if a != alpha:
            other = copy.deepcopy(model)
            fit_policy.fit_to(other, data, a, log)
            variants[f"adaptive, refit at alpha {a:g}"] = (other.eval(), a)
    return variants


def retrained_variants(shipped: str, folder: Path = MODEL_DIR) -> dict[str, AdaptiveRateUser]:
    """Exported ablations in ``folder`` of the shipped model's configuration: {"no-<flag> (retrained)": model}."""
    base = config_from_name(shipped)
    found = {}
    for name in shipped_models(folder):
        cfg = config_from_name(name)
        off = [f for f in ("entropy", "attention", "feedback", "pruning") if not getattr(cfg, f)]
        same = dataclasses.replace(cfg, entropy=True, attention=True, feedback=True, pruning=True)
        if off and same == base:
            found[" ".join(f"no-{f}" for f in off) + " (retrained)"] = user_from_onnx(
                folder / f"{name}.transmitter.onnx", folder / f"{name}.receiver.onnx")
    return found


def ablation_rows(model: AdaptiveRateUser, shipped: str, crops: list[np.ndarray], cifar: np.ndarray,
                  collected: list[dict], seed: int = 0, log=print) -> list[dict]:
    """Rows {"images", "scheme", "users", "csi", "snr_db", "psnr_db", "cpp", ...} of the ablations;
    the shipped model's own come from :func:`collect`'s rows (``collected``), which evaluated it so."""
    cfg = config_from_name(shipped)
    tiles = np.concatenate([tile(img, 32) for img in crops])
    variants = {}
    if cfg.estimator == "fitted":
        variants.update(refit_variants(model, cfg.alpha, seed, log))
    variants.update({k: (m, cfg.alpha) for k, m in retrained_variants(shipped).items()})
    rows = []
    for images_name, images in (("held-out", tiles), ("cifar10", cifar)):
        rows += [{**r, "alpha": cfg.alpha} for r in collected if r["scheme"] == "adaptive"
                 and (r["images"], r["users"], r["csi"]) == (images_name, ABLATION_USERS, "perfect")]
        for scheme, (variant, alpha) in variants.items():
            for snr in SNRS_DB:
                rows.append({"images": images_name, "users": ABLATION_USERS, "csi": "perfect", "snr_db": snr,
                             "scheme": scheme, "alpha": alpha, **_point_means(variant, images, snr, ABLATION_USERS,
                                                                              seed)})
    return rows


def markdown(result: dict) -> str:
    """PSNR tables per image set, K and CSI; the adaptive model's CPP and maps per SNR."""
    rows = result["rows"]
    lines = ["# Adaptive rate control over a MU-MIMO uplink (M = 4): PSNR (dB) against SNR", "",
             "Written by `python -m testbed.systems.adaptive_rate.results --out docs/results` "
             "(torch/numpy, no PHY); what each scheme is: that module's docstring.", "",
             "`adjscc@cpp` interpolates between the shipped ADJSCC ratios (CPP 0.25 and 0.5) and does not "
             "extrapolate: where the adaptive CPP is below 0.25 it is adjscc-r12, with more channel uses "
             "than the adaptive model.", ""]
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
    return "\n".join(lines + claims(rows) + ablation_markdown(result.get("ablations", [])))


def claims(rows: list[dict]) -> list[str]:
    """The paper's two claims on held-out tiles, per K and CSI: the adaptive model's PSNR minus
    deep JSCC's at matched CPP (the paper: +0.4 dB or more), and minus the digital baseline's
    where the digital one lost more than half of its crops (the paper: graceful degradation)."""
    lines = ["## Claims checked (held-out tiles)", "",
             "| K | CSI | adaptive - adjscc@cpp (dB), " + " / ".join(f"{s:g}" for s in SNRS_DB)
             + " dB | adaptive - digital where digital arrived < 50 % |", "|---|---|---|---|"]
    for users in USERS:
        for csi in ("perfect", "imperfect"):
            part = [r for r in rows if (r["images"], r["users"], r["csi"]) == ("held-out", users, csi)]
            get = {(r["scheme"], r["snr_db"]): r for r in part}
            gap = [get[("adaptive", s)]["psnr_db"] - get[("adjscc@cpp", s)]["psnr_db"] for s in SNRS_DB]
            digital = [(s, get[("adaptive", s)]["psnr_db"] - r["psnr_db"]) for (name, s), r in get.items()
                       if name.startswith(DIGITAL_CODEC) and r["arrived"] < 0.5]
            lines.append(f"| {users} | {csi} | " + " / ".join(f"{g:+.2f}" for g in gap) + " | "
                         + (", ".join(f"{g:+.2f} at {s:g} dB" for s, g in digital) or "none collapsed") + " |")
    return lines + [""]


def ablation_markdown(rows: list[dict]) -> list[str]:
    """PSNR, CPP and selected maps per ablation and SNR (K = 2, perfect CSI)."""
    lines = []
    for images in ("held-out", "cifar10"):
        part = [r for r in rows if r["images"] == images]
        if not part:
            continue
        lines += [f"## Ablations and other alphas, {images}, K = {ABLATION_USERS}, perfect CSI: "
                  "PSNR (dB) / CPP / selected maps", "",
                  "| scheme | alpha | " + " | ".join(f"{s:g} dB" for s in SNRS_DB) + " |",
                  "|---|---|" + "---|" * len(SNRS_DB)]
        for scheme in dict.fromkeys(r["scheme"] for r in part):
            cells = [next(r for r in part if r["scheme"] == scheme and r["snr_db"] == s) for s in SNRS_DB]
            lines.append(f"| {scheme} | {cells[0]['alpha']:g} | "
                         + " | ".join(f"{c['psnr_db']:.2f} / {c['cpp']:.3f} / {c['selected_maps']:.2f}"
                                      for c in cells) + " |")
        lines.append("")
    return lines


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
    crops = [img for _, img in held_out_crops()]
    result = {"model": system.model_name, **collect(model, crops, cifar, args.seed)}
    result["ablations"] = ablation_rows(model, system.model_name, crops, cifar, result["rows"], args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "adaptive_rate.json", result)
    (args.out / "adaptive_rate.md").write_text(markdown(result) + "\n")
    return result


if __name__ == "__main__":
    main()
