"""Time-budgeted, resumable training of DeepJSCC / ADJSCC on crops of the offline photo corpus.

Training data: random 32x32 crops of ``photo_corpus("train")`` (real photographs downscaled to a
short side of 512 px, docs/architecture.md "Datasets"), the photo drawn uniformly per crop (not by area),
random horizontal flips. Per sample the SNR is uniform in ``snr_range_db``; per batch the channel
is AWGN or Rayleigh block fading with probability 1/2 each. Loss: MSE. Adam, learning rate with a
short linear warm-up and a cosine decay over the *time* budget (the schedule follows elapsed
training seconds, so a run of any length ends annealed). ``--snr-db 10 10 --channels awgn`` trains
at one SNR on one channel (the "trained at 10 dB" DJSCC benchmark of MU-ASCC); the shipped name
then says so, e.g. ``deepjscc-r24-awgn-10db``.

Checkpoints (model, optimizer, step, elapsed time, every random state) are written atomically
every ``checkpoint_minutes`` and at the end to ``out_dir/<name>-seed<seed>-<minutes>min.ckpt``;
calling :func:`train` again with the same arguments resumes from it (a finished run returns at
once).

Command line (also what ``testbed train deepjscc`` runs): train, evaluate on the held-out photos,
export ONNX encoder/decoder + model cards + the torch weights for parity::

    python -m testbed.systems.deepjscc.train --ratio 1/6 --variant adjscc --minutes 40 --seed 0 \
        --out models/deepjscc
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from testbed.data.images import photo_corpus
from testbed.errors import ConfigError
from testbed.systems.deepjscc.model import BANDWIDTH_RATIOS, CHANNELS, TILE, VARIANTS, DeepJSCC, symbols_per_tile
from testbed.systems.deepjscc.whole_image import WholeImageJSCC

LR = 2e-3
WIDTH = 32
WHOLE_IMAGE = WholeImageJSCC.variant
ALL_VARIANTS = (*VARIANTS, WHOLE_IMAGE)
# Defaults per family: the tiled models train on 32x32 crops in batches of 64; the whole-image
# model on 128x128 crops (16 times the area: the stride-8 latent sees whole objects) in batches of 8.
DEFAULTS = {
    "deepjscc": {"width": WIDTH, "crop": TILE, "batch_size": 64, "lr": LR},
    "adjscc": {"width": WIDTH, "crop": TILE, "batch_size": 64, "lr": LR},
    WHOLE_IMAGE: {"width": 96, "crop": 128, "batch_size": 8, "lr": 1e-3},
}


def build_model(bandwidth_ratio: str, variant: str, width: int) -> torch.nn.Module:
    """A fresh tiled DeepJSCC/ADJSCC or a whole-image ADJSCC (``variant="adjscc-wide"``)."""
    if variant == WHOLE_IMAGE:
        return WholeImageJSCC(bandwidth_ratio, width)
    return DeepJSCC(bandwidth_ratio, variant, width)
LR_FLOOR = 0.02  # the cosine decays to LR * LR_FLOOR
WARMUP_FRACTION = 0.02


DEFAULT_SNR_RANGE_DB = (0.0, 20.0)


def model_name(bandwidth_ratio: str, variant: str, snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB,
               channels: tuple[str, ...] = CHANNELS) -> str:
    """Shipped model name, e.g. ``"adjscc-r6"`` for ratio ``"1/6"``; a model trained on other
    SNRs or channels than the defaults says which: ``"deepjscc-r24-awgn-10db"``."""
    symbols_per_tile(bandwidth_ratio)
    if variant not in ALL_VARIANTS:
        raise ConfigError(f"variant {variant!r} is unknown; allowed: {', '.join(ALL_VARIANTS)}")
    name = f"{variant}-r{bandwidth_ratio.split('/')[1]}"
    low, high = (float(v) for v in snr_range_db)
    if (low, high) == DEFAULT_SNR_RANGE_DB and tuple(channels) == CHANNELS:
        return name
    snr = f"{low:g}db" if low == high else f"{low:g}to{high:g}db"
    return f"{name}-{'+'.join(channels)}-{snr}"


class CropSampler:
    """Random 32x32 crops of a list of photos, photo drawn uniformly, random horizontal flips.

    Photos are kept as uint8 (H, W, 3) to save memory. ``batch(n)`` -> float32 (n, 3, 32, 32).
    """

    def __init__(self, photos: list[np.ndarray], rng: np.random.Generator, size: int = TILE) -> None:
        if not photos:
            raise ConfigError("the training split of the photo corpus is empty; allowed: a machine with "
                              "sporco/scikit-image/scikit-learn photos or the Debian wallpapers installed")
        self.photos = [np.ascontiguousarray(np.rint(p.transpose(1, 2, 0) * 255).astype(np.uint8)) for p in photos]
        self.rng = rng
        self.size = size

    def batch(self, n: int) -> torch.Tensor:
        rng, s = self.rng, self.size
        out = np.empty((n, s, s, 3), dtype=np.uint8)
        which = rng.integers(0, len(self.photos), n)
        flips = rng.random(n) < 0.5
        for i, (p, flip) in enumerate(zip(which, flips)):
            photo = self.photos[p]
            y = rng.integers(0, photo.shape[0] - s + 1)
            x = rng.integers(0, photo.shape[1] - s + 1)
            crop = photo[y:y + s, x:x + s]
            out[i] = crop[:, ::-1] if flip else crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def learning_rate(fraction: float, lr: float = LR) -> float:
    """Learning rate at ``fraction`` of the time budget: linear warm-up, then cosine to lr * LR_FLOOR."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < WARMUP_FRACTION:
        return lr * max(fraction / WARMUP_FRACTION, 0.05)
    t = (fraction - WARMUP_FRACTION) / (1.0 - WARMUP_FRACTION)
    return lr * (LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * t)))


def checkpoint_path(out_dir: Path, name: str, seed: int, minutes: float, init_tag: str = "") -> Path:
    """Where the run of model ``name`` (:func:`model_name`) keeps its resumable checkpoint."""
    tag = f"-init{init_tag}" if init_tag else ""
    return Path(out_dir) / f"{name}-seed{seed}-{minutes:g}min{tag}.ckpt"


def _init_state(init: Path, bandwidth_ratio: str, variant: str, width: int) -> dict:
    """The weights of a finished checkpoint to warm-start from, and where they came from."""
    from testbed.onnx.card import sha256_file

    if not Path(init).is_file():
        raise ConfigError(f"init {str(init)!r} is not a file; allowed: a checkpoint written by testbed train deepjscc")
    state = torch.load(init, weights_only=False)
    rc = state.get("run_config", {})
    mine = {"bandwidth_ratio": bandwidth_ratio, "variant": variant, "width": width}
    theirs = {k: rc.get(k) for k in mine}
    if theirs != mine:
        raise ConfigError(f"init {str(init)!r} is a {theirs} model; allowed: a checkpoint of {mine}")
    before = rc.get("init", {}).get("minutes_total", 0.0)
    return {"model": state["model"], "provenance": {
        "file": Path(init).name, "sha256": sha256_file(init), "steps": state["step"],
        "minutes_total": before + rc["minutes"], "command": command_line(
            rc["bandwidth_ratio"], rc["variant"], rc["minutes"], rc["seed"], Path("models/deepjscc"), rc["threads"],
            rc["width"], rc["lr"], rc["snr_range_db"], rc.get("channels", CHANNELS))}}


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    bandwidth_ratio: str,
    variant: str,
    minutes: float,
    seed: int,
    out_dir: Path,
    threads: int = 1,
    batch_size: int | None = None,
    snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB,
    channels: tuple[str, ...] = CHANNELS,
    width: int | None = None,
    lr: float | None = None,
    crop: int | None = None,
    checkpoint_minutes: float = 2.0,
    progress: bool = True,
    init: Path | None = None,
) -> Path:
    """Train one model for ``minutes`` of wall-clock time; resume if a checkpoint exists.

    Parameters: bandwidth_ratio ``"1/6"``/``"1/12"``; variant ``"deepjscc"``/``"adjscc"``;
        minutes, the training time budget (excluding data loading); seed for torch and numpy;
        out_dir for checkpoints; threads for torch; batch_size crops per step; snr_range_db
        (low, high) for the uniform per-sample SNR; channels, those of ``CHANNELS`` a batch is
        drawn from (uniformly); width, the hidden filters; lr, Adam's peak
        learning rate; crop, the side of the square training crops in px. None takes the
        family's value from ``DEFAULTS``. init, a finished checkpoint of the same architecture
        to start from (a warm restart: fresh optimizer and schedule, weights kept), so a long
        training can go on after its schedule ended; its name, sha256, steps and minutes are
        recorded in the run config.
    Returns: path of the final checkpoint (a dict with "model" state_dict, "config", "step",
        "elapsed_s", "optimizer", "history", ...).
    """
    if minutes <= 0:
        raise ConfigError(f"minutes {minutes!r} is invalid; allowed: > 0")
    channels = tuple(channels)
    if not channels or any(c not in CHANNELS for c in channels):
        raise ConfigError(f"channels {channels!r} is invalid; allowed: one or more of {', '.join(CHANNELS)}")
    name = model_name(bandwidth_ratio, variant, snr_range_db, channels)
    family = DEFAULTS[variant]
    width = family["width"] if width is None else width
    lr = family["lr"] if lr is None else lr
    crop = family["crop"] if crop is None else crop
    batch_size = family["batch_size"] if batch_size is None else batch_size
    low, high = (float(v) for v in snr_range_db)
    if not low <= high:
        raise ConfigError(f"snr_range_db {snr_range_db!r} is invalid; allowed: (low, high) with low <= high")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = _init_state(init, bandwidth_ratio, variant, width) if init is not None else None
    path = checkpoint_path(out_dir, name, seed, minutes, start["provenance"]["sha256"][:8] if start else "")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    model = build_model(bandwidth_ratio, variant, width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    run_config = {"bandwidth_ratio": bandwidth_ratio, "variant": variant, "minutes": minutes, "seed": seed,
                  "batch_size": batch_size, "snr_range_db": [low, high], "width": width, "lr": lr, "threads": threads}
    if channels != CHANNELS:
        run_config["channels"] = list(channels)
    if variant == WHOLE_IMAGE:
        run_config["crop"] = crop
    if start is not None:
        run_config["init"] = start["provenance"]
        model.load_state_dict(start["model"])
    step, elapsed, history = 0, 0.0, []
    if path.exists():
        state = torch.load(path, weights_only=False)
        if state["run_config"] != run_config:
            raise ConfigError(f"checkpoint {str(path)!r} was written by another run {state['run_config']}; "
                              f"allowed: the same arguments, or remove the file")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, history = state["step"], state["elapsed_s"], state["history"]
        rng.bit_generator.state = state["numpy_rng"]
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
    budget = minutes * 60.0

    def snapshot() -> None:
        _save(path, {
            "model": model.state_dict(), "config": model.config(), "variant": variant, "optimizer": optimizer.state_dict(),
            "step": step, "elapsed_s": elapsed, "history": history, "run_config": run_config,
            "numpy_rng": rng.bit_generator.state, "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        })

    if elapsed >= budget:
        return path
    sampler = CropSampler(photo_corpus("train"), rng, crop)
    model.train()
    bar = tqdm(total=round(budget), initial=round(elapsed), unit="s", disable=not progress,
               desc=name, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")
    last_checkpoint = elapsed
    running = None
    start = time.monotonic() - elapsed
    while elapsed < budget:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(elapsed / budget, lr)
        images = sampler.batch(batch_size)
        snr = torch.from_numpy(rng.uniform(low, high, batch_size).astype(np.float32))
        channel = channels[int(rng.integers(0, len(channels)))]
        out = model(images, snr, channel, generator)
        loss = torch.mean((out["recon"] - images) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        now = time.monotonic() - start
        bar.update(round(now) - round(elapsed))
        elapsed = now
        if step % 50 == 0:
            history.append([step, round(elapsed, 1), running])
            bar.set_postfix_str(f"step {step} loss {running:.5f} ({-10 * math.log10(running):.2f} dB mixed)")
        if elapsed - last_checkpoint >= checkpoint_minutes * 60.0:
            snapshot()
            last_checkpoint = elapsed
    bar.close()
    snapshot()
    return path


def load_checkpoint_model(path: Path) -> torch.nn.Module:
    """The trained model of a checkpoint written by :func:`train`, in eval mode."""
    state = torch.load(path, weights_only=False)
    config = state["config"]
    model = WholeImageJSCC(**config) if state.get("variant") == WHOLE_IMAGE else DeepJSCC(**config)
    model.load_state_dict(state["model"])
    return model.eval()


def command_line(ratio: str, variant: str, minutes: float, seed: int, out: Path, threads: int = 1,
                 width: int | None = None, lr: float | None = None,
                 snr_range_db: tuple[float, float] = DEFAULT_SNR_RANGE_DB, channels: tuple[str, ...] = CHANNELS) -> str:
    """The canonical command that reproduces a shipped model (recorded in its model card)."""
    family = DEFAULTS[variant]
    extra = f" --threads {threads}" if threads != 1 else ""
    low, high = (float(v) for v in snr_range_db)
    extra += f" --snr-db {low:g} {high:g}" if (low, high) != DEFAULT_SNR_RANGE_DB else ""
    extra += f" --channels {' '.join(channels)}" if tuple(channels) != CHANNELS else ""
    extra += f" --width {width}" if width not in (None, family["width"]) else ""
    extra += f" --lr {lr:g}" if lr not in (None, family["lr"]) else ""
    return (f"testbed train deepjscc --ratio {ratio} --variant {variant} --minutes {minutes:g} "
            f"--seed {seed} --out {out}{extra}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="testbed train deepjscc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratio", default="1/6", choices=list(BANDWIDTH_RATIOS), help="bandwidth ratio k/n")
    parser.add_argument("--variant", default="deepjscc", choices=list(ALL_VARIANTS),
                        help="deepjscc/adjscc: tiled 32x32 models; adjscc-wide: the whole-image model")
    parser.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("models/deepjscc"), help="folder for ONNX, cards, .pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=None, help="filters per hidden layer (default: the family's)")
    parser.add_argument("--lr", type=float, default=None, help="peak Adam learning rate (default: the family's)")
    parser.add_argument("--snr-db", type=float, nargs=2, default=list(DEFAULT_SNR_RANGE_DB), metavar=("LOW", "HIGH"),
                        help="per-sample training SNR, uniform in [LOW, HIGH] dB (10 10: one SNR)")
    parser.add_argument("--channels", nargs="+", default=list(CHANNELS), choices=list(CHANNELS),
                        help="channels a training batch is drawn from")
    parser.add_argument("--init", type=Path, default=None,
                        help="warm-start from this finished checkpoint (same ratio, variant, width)")
    parser.add_argument("--checkpoints", type=Path, default=Path("runs/train/deepjscc"),
                        help="folder for the resumable checkpoints (not shipped)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate on held-out photos, export ONNX + cards + weights; prints and returns the cards' metrics."""
    from testbed.onnx.export import export_system

    args = parse_args(argv)
    snr_range_db, channels = tuple(args.snr_db), tuple(args.channels)
    ckpt = train(args.ratio, args.variant, args.minutes, args.seed, args.checkpoints, threads=args.threads,
                 snr_range_db=snr_range_db, channels=channels, width=args.width, lr=args.lr, init=args.init)
    model = load_checkpoint_model(ckpt)
    state = torch.load(ckpt, weights_only=False)
    command = command_line(args.ratio, args.variant, args.minutes, args.seed, args.out, args.threads,
                           args.width, args.lr, snr_range_db, channels)
    before = state["run_config"].get("init", {})
    if before:  # a warm restart: the card counts every minute and step since the first run
        command = f"{before['command']} && {command} --init {before['file']}"
    paths, card = export_system(model, args.out, model_name(args.ratio, args.variant, snr_range_db, channels),
                                command=command,
                                seed=args.seed, minutes=args.minutes + before.get("minutes_total", 0.0),
                                steps=state["step"] + before.get("steps", 0),
                                run_config=state["run_config"], threads=args.threads)
    print(json.dumps({"files": [str(p) for p in paths], "metrics": card["metrics"]}, indent=1))
    return card


if __name__ == "__main__":
    main()
