"""Seeded, resumable training of DeepSCM (the paper's three-stage Algorithm 1) and of the three
coded-modulation baselines, on Fashion-MNIST with its coarse/fine hierarchy (``data.py``).

Schemes (../shared/seeds/003_75f868b86f184b01.txt, section IV-A3):

- ``deepscm``: stage 1 trains the first JCM block and Rx1 with L1 (eq. 19); stage 2 freezes them
  and trains the second JCM block, the decorrelator and Rx2 with L2 (eq. 20); stage 3 fine-tunes
  everything with L3 = L1 + beta L2 (eq. 21).
- ``cm-joint``: one encoder and one M-QAM modulator, trained with both receivers on L1 + beta L2.
- ``cm-rx1``: encoder, modulator and Rx1 trained on L1; then the transmitter is frozen and Rx2
  trained alone (the upper bound of Rx1 under CM). ``cm-rx2``: the same with the roles swapped.

Every scheme gets the same number of steps in all (``steps``, split over its stages as in
:func:`stages`). Adam with a cosine decay per stage (the paper: 100/200/100 epochs with cosine
warm restarts; here a few epochs, scaled to a CPU; the card says so). Each step draws a batch
uniformly from the 55000 training images; SNRs are the fixed training SNRs of the two receivers
(the paper trains one model per SNR pair). Checkpoints (model, optimiser, stage, step, elapsed
time, random states) are written atomically every ``CHECKPOINT_STEPS`` and at the end of each
stage; the same command resumes (a finished run returns at once).

    python -m testbed.systems.superposition.train --scheme deepscm --n 128 --orders 4 16 \\
        --snr-db 1 20 --steps 1800 --seed 0 --out models/superposition
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from testbed.errors import ConfigError
from testbed.systems.superposition.data import Labelled, fashion_mnist
from testbed.systems.superposition.model import CodedModulation, DeepSCM, awgn

SCHEMES = ("deepscm", "cm-joint", "cm-rx1", "cm-rx2")
CHECKPOINT_STEPS = 100
VALIDATE_IMAGES = 1000
DEFAULT_CKPT_DIR = Path(os.environ.get("TESTBED_CKPT_DIR", Path.home() / ".cache" / "testbed" / "superposition"))


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``orders``: (inner, outer) QAM orders for DeepSCM; the CM baselines use
    one QAM of order inner x outer. ``snr_db``: (Rx1, Rx2) training SNRs."""

    scheme: str = "deepscm"
    n: int = 128
    orders: tuple[int, int] = (4, 16)
    snr_db: tuple[float, float] = (1.0, 20.0)  # the PHY's frame sync holds from about -1 dB (system.py)
    steps: int = 1800
    batch_size: int = 128
    lr: float = 2e-3
    image_weight: float = 100.0  # lambda_1 = lambda_2: CE + 100 MSE (MSE 0.01 = 20 dB weighs 1)
    rate_weight: float = 0.01    # lambda_3 of eq. (20)
    beta: float = 1.0            # eq. (21)
    width: int = 16
    seed: int = 0
    stage_split: tuple[float, ...] = field(default=(0.35, 0.35, 0.30))

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"scheme = {self.scheme!r} is unknown; allowed: {', '.join(SCHEMES)}")
        if tuple(self.orders) not in ((4, 4), (4, 16)):
            raise ConfigError(f"orders = {list(self.orders)} is unsupported; allowed: [4, 4] (16-QAM) "
                              f"or [4, 16] (64-QAM), the rectangular super-constellations")
        if self.n < 8 or self.n % 2:
            raise ConfigError(f"n = {self.n} is invalid; allowed: an even number of channel uses >= 8")

    def name(self) -> str:
        """e.g. ``deepscm-4x16-n128-1db-20db`` (Rx1 and Rx2 training SNRs; ``m5db`` = -5 dB);
        the CM baselines ``cm-joint-64qam-n128-1db-20db``."""
        inner, outer = self.orders
        mod = f"{inner}x{outer}" if self.scheme == "deepscm" else f"{inner * outer}qam"
        snrs = "-".join(f"{s:g}db".replace("-", "m") for s in self.snr_db)
        return f"{self.scheme}-{mod}-n{self.n}-{snrs}"


def build(cfg: TrainConfig) -> torch.nn.Module:
    if cfg.scheme == "deepscm":
        return DeepSCM(cfg.n, *cfg.orders, width=cfg.width)
    return CodedModulation(cfg.n, cfg.orders[0] * cfg.orders[1], width=cfg.width)


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int
    modules: tuple[str, ...]  # trained submodules; the rest are frozen (eval mode, no gradient)
    receivers: tuple[int, ...]  # whose losses count


def stages(cfg: TrainConfig) -> list[Stage]:
    """The stages of a scheme with their step counts (summing to ``cfg.steps``)."""
    split = [int(round(cfg.steps * f)) for f in cfg.stage_split]
    split[-1] = cfg.steps - sum(split[:-1])
    if cfg.scheme == "deepscm":
        return [Stage("jcm1+rx1", split[0], ("encoder1", "modulator1", "rx1"), (1,)),
                Stage("jcm2+rx2", split[1], ("encoder2", "modulator2", "decorrelator", "rx2"), (2,)),
                Stage("fine-tune", split[2], ("encoder1", "modulator1", "rx1", "encoder2", "modulator2",
                                              "decorrelator", "rx2"), (1, 2))]
    everything = ("encoder", "modulator", "rx1", "rx2")
    if cfg.scheme == "cm-joint":
        return [Stage("joint", cfg.steps, everything, (1, 2))]
    first, second = (1, 2) if cfg.scheme == "cm-rx1" else (2, 1)
    return [Stage(f"tx+rx{first}", split[0] + split[2], ("encoder", "modulator", f"rx{first}"), (first,)),
            Stage(f"rx{second} alone", split[1], (f"rx{second}",), (second,))]


def losses(model: torch.nn.Module, cfg: TrainConfig, images: torch.Tensor, coarse: torch.Tensor,
           fine: torch.Tensor, receivers: tuple[int, ...]) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 (eq. 19), L2 (eq. 20) and their sum (eq. 21) for one batch; returns (loss, parts)."""
    y, rate = model.transmit(images)
    total = torch.zeros(())
    parts: dict[str, float] = {}
    for rx, labels in ((1, coarse), (2, fine)):
        if rx not in receivers:
            continue
        recon, logits = getattr(model, f"rx{rx}")(awgn(y, cfg.snr_db[rx - 1]))
        mse = F.mse_loss(recon, images)
        ce = F.cross_entropy(logits, labels)
        loss = ce + cfg.image_weight * mse
        if rx == 2:  # L2 carries the rate term; in L3 it is weighted by beta
            loss = (loss + cfg.rate_weight * rate) * (cfg.beta if len(receivers) > 1 else 1.0)
        total = total + loss
        parts[f"rx{rx}_psnr_db"] = float(-10 * torch.log10(mse.detach()))
        parts[f"rx{rx}_ce"] = float(ce.detach())
    parts["rate"] = float(rate.detach())
    return total, parts


def _set_trainable(model: torch.nn.Module, modules: tuple[str, ...]) -> list[torch.nn.Parameter]:
    model.eval()
    params = []
    for name, child in model.named_children():
        trained = name in modules
        child.train(trained)
        for p in child.parameters():
            p.requires_grad_(trained)
            if trained:
                params.append(p)
    return params


def checkpoint_path(cfg: TrainConfig, ckpt_dir: Path) -> Path:
    return Path(ckpt_dir) / f"{cfg.name()}-seed{cfg.seed}-{cfg.steps}steps.ckpt"


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, ckpt_dir: Path = DEFAULT_CKPT_DIR, threads: int = 1, log=print) -> dict:
    """Train (or resume) ``cfg``; returns {"model", "minutes", "steps", "log"} when all stages ran."""
    torch.set_num_threads(threads)
    path = checkpoint_path(cfg, ckpt_dir)
    torch.manual_seed(cfg.seed)  # the initial weights
    model = build(cfg)
    data = fashion_mnist("train")
    state = torch.load(path, weights_only=False) if path.is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])
        np_rng = np.random.default_rng()
        np_rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
    else:
        np_rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        state = {"stage": 0, "step": 0, "seconds": 0.0, "log": [], "optimizer": None}
    plan = stages(cfg)
    started = time.monotonic() - state["seconds"]
    while state["stage"] < len(plan):
        stage = plan[state["stage"]]
        params = _set_trainable(model, stage.modules)
        optimizer = torch.optim.Adam(params, cfg.lr)
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        while state["step"] < stage.steps:
            fraction = state["step"] / max(stage.steps, 1)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * fraction)))
            idx = np_rng.integers(0, len(data), cfg.batch_size)
            images = torch.from_numpy(data.images[idx])
            loss, parts = losses(model, cfg, images, torch.from_numpy(data.coarse[idx]),
                                 torch.from_numpy(data.fine[idx]), stage.receivers)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state["step"] += 1
            if state["step"] % CHECKPOINT_STEPS == 0 or state["step"] == stage.steps:
                val = validate(model, cfg)
                entry = {"stage": stage.name, "step": state["step"], **parts, **val}
                state["log"].append(entry)
                log(f"{cfg.name()} {stage.name} step {state['step']}/{stage.steps}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in entry.items() if isinstance(v, float)))
                _set_trainable(model, stage.modules)
                state.update(model=model.state_dict(), optimizer=optimizer.state_dict(),
                             np_rng=np_rng.bit_generator.state, torch_rng=torch.get_rng_state(),
                             seconds=time.monotonic() - started)
                _save(path, state)
        state.update(stage=state["stage"] + 1, step=0, optimizer=None)
        _save(path, state)
    model.eval()
    return {"model": model, "minutes": state["seconds"] / 60.0, "steps": cfg.steps, "log": state["log"]}


@torch.no_grad()
def validate(model: torch.nn.Module, cfg: TrainConfig) -> dict[str, float]:
    """PSNR and accuracy of both receivers on the first VALIDATE_IMAGES validation images."""
    from testbed.systems.superposition.evaluate import evaluate

    data = fashion_mnist("validation")
    subset = Labelled(data.images[:VALIDATE_IMAGES], data.coarse[:VALIDATE_IMAGES], data.fine[:VALIDATE_IMAGES])
    result = evaluate(model, subset, cfg.snr_db, seed=1, ms_ssim=False)
    return {f"val_{k}": v for k, v in result.items()}


def command_line(cfg: TrainConfig, out: str | None, threads: int = 1) -> str:
    words = ["python -m testbed.systems.superposition.train", f"--scheme {cfg.scheme}", f"--n {cfg.n}",
             f"--orders {cfg.orders[0]} {cfg.orders[1]}", f"--snr-db {cfg.snr_db[0]:g} {cfg.snr_db[1]:g}",
             f"--steps {cfg.steps}", f"--seed {cfg.seed}", f"--threads {threads}"]
    return " ".join(words + ([f"--out {out}"] if out else []))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="testbed train superposition", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", default="deepscm", choices=SCHEMES)
    parser.add_argument("--n", type=int, default=128, help="channel uses per image (rate r = n / 784)")
    parser.add_argument("--orders", type=int, nargs=2, default=(4, 16), help="inner and outer QAM orders")
    parser.add_argument("--snr-db", type=float, nargs=2, default=(1.0, 20.0), help="Rx1 and Rx2 training SNRs")
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--out", default=None, help="export ONNX files and model cards into this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = TrainConfig(scheme=args.scheme, n=args.n, orders=tuple(args.orders), snr_db=tuple(args.snr_db),
                      steps=args.steps, seed=args.seed)
    result = train(cfg, args.ckpt_dir, args.threads)
    if args.out:
        from testbed.systems.superposition.export import export

        export(result["model"], Path(args.out), cfg, minutes=result["minutes"],
               command=command_line(cfg, args.out, args.threads), training_log=result["log"], threads=args.threads)
    return {"config": asdict(cfg), "minutes": result["minutes"]}


if __name__ == "__main__":
    main()
