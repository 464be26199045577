"""Seeded, resumable training of one learned codec of MU-ASCC's lookup table: CompressAI's
``ScaleHyperprior`` at one rate-distortion trade-off ``lmbda``.

Loss: CompressAI's ``RateDistortionLoss`` (lmbda * 255^2 * MSE + bits per pixel), plus the
entropy bottleneck's auxiliary loss on its own Adam optimiser, as CompressAI's example trainer
does. Data (``CodecConfig.data``): ``photos``, random crops of the training split of the
offline photographs (:func:`testbed.data.images.photo_corpus`), never the held-out ones the
distortion is measured on; or ``fashion-mnist``, the semantic user's images: the 60000
Fashion-MNIST training images, each edge-replicated from 28 to 64 px as
:class:`~testbed.systems.mu_ascc.codec.HyperpriorCodec` pads them (the test split is held out). The paper (../shared/seeds/001_ef80d34948c98c54.txt, section V) trains 23 full-size models
for hundreds of epochs; here N and M are smaller and the steps few (minutes of CPU each); the
file records how far it got.

Checkpoints (model, both optimisers, step, elapsed time, random states) are written atomically
every ``CHECKPOINT_STEPS``; the same command resumes, and a finished run returns at once. The
finished codec is written as ``<out>/<name>.pt`` ({"name", "model", "config", "metrics"}).

    python -m testbed.systems.mu_ascc.train_codec --lmbda 0.0067 --steps 2000 --out DIR
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.losses import RateDistortionLoss
from compressai.models import ScaleHyperprior

from testbed.data.images import photo_corpus
from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError
from testbed.runner.files import atomic_torch_save
from testbed.systems.deepjscc.train import CropSampler
from testbed.systems.mu_ascc.codec import ALIGN_PX

CHECKPOINT_STEPS = 200
DEFAULT_CKPT_DIR = Path(os.environ.get("TESTBED_CKPT_DIR", Path.home() / ".cache" / "testbed")) / "mu_ascc"
# CompressAI's MSE lambdas of its quality levels 1..8 (compressai.zoo, bmshj2018-hyperprior).
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
DATA = ("photos", "fashion-mnist")


@dataclass(frozen=True)
class CodecConfig:
    """One codec: ``lmbda`` (rate-distortion trade-off), ``n``/``m`` (CompressAI's N and M:
    channels of the transforms and of the latent), trained on ``data`` (:data:`DATA`) in batches
    of ``batch`` crops of ``crop_px`` (photos; Fashion-MNIST images are always padded to 64 px)."""

    lmbda: float = 0.0067
    n: int = 64
    m: int = 96
    steps: int = 2000
    batch: int = 8
    crop_px: int = 128
    lr: float = 5e-4
    aux_lr: float = 1e-3
    seed: int = 0
    data: str = "photos"

    def __post_init__(self) -> None:
        if self.data not in DATA:
            raise ConfigError(f"data={self.data!r}; allowed: {', '.join(DATA)}")
        if not 0.0 < self.lmbda < 10.0:
            raise ConfigError(f"lmbda={self.lmbda}; allowed: 0 < lmbda < 10")
        if self.crop_px % 64 or self.crop_px <= 0:
            raise ConfigError(f"crop_px={self.crop_px}; allowed: a positive multiple of 64")
        for field_name in ("n", "m", "steps", "batch"):
            if getattr(self, field_name) < 1:
                raise ConfigError(f"{field_name}={getattr(self, field_name)}; allowed: >= 1")

    def name(self) -> str:
        tag = "" if self.data == "photos" else "-fmnist"
        return f"hyperprior{tag}-n{self.n}-m{self.m}-lmbda{self.lmbda:g}-seed{self.seed}-{self.steps}steps"


class FashionSampler:
    """Random Fashion-MNIST training images, random horizontal flips, edge-replicated from 28 to
    64 px (bottom and right, as ``HyperpriorCodec.encode`` pads). ``batch(n)`` -> float32
    (n, 3, 64, 64) in [0, 1], the grey image in all three channels."""

    def __init__(self, rng: np.random.Generator) -> None:
        images, _ = load_fashion_mnist(split="train")
        self.images = torch.from_numpy(images)  # float32 (60000, 1, 28, 28)
        self.rng = rng

    def batch(self, n: int) -> torch.Tensor:
        which = torch.from_numpy(self.rng.integers(0, len(self.images), n))
        flips = torch.from_numpy(self.rng.random(n) < 0.5)
        x = self.images[which]
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        pad = ALIGN_PX - x.shape[-1]
        return F.pad(x, (0, pad, 0, pad), mode="replicate").expand(-1, 3, -1, -1).contiguous()


def sampler_for(cfg: CodecConfig) -> CropSampler | FashionSampler:
    """The training data of ``cfg`` with its own seeded generator."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.data == "fashion-mnist":
        return FashionSampler(rng)
    return CropSampler(photo_corpus("train"), rng, size=cfg.crop_px)


def optimisers(model: ScaleHyperprior, cfg: CodecConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(main, aux): the entropy bottleneck's quantiles learn only from the auxiliary loss."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, cfg.lr), torch.optim.Adam(aux, cfg.aux_lr)


def train(cfg: CodecConfig, ckpt_dir: Path = DEFAULT_CKPT_DIR, threads: int = 1, log=print) -> dict:
    """Train (or resume) ``cfg``; {"model", "minutes", "log"} once all steps ran."""
    torch.set_num_threads(threads)
    path = Path(ckpt_dir) / f"{cfg.name()}.ckpt"
    torch.manual_seed(cfg.seed)
    model = ScaleHyperprior(cfg.n, cfg.m)
    main_opt, aux_opt = optimisers(model, cfg)
    sampler = sampler_for(cfg)
    state = {"step": 0, "seconds": 0.0, "log": []}
    if path.is_file():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        main_opt.load_state_dict(state["main_opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        sampler.rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
    criterion = RateDistortionLoss(lmbda=cfg.lmbda)
    started = time.monotonic() - state["seconds"]
    model.train()
    window: list[dict[str, float]] = []
    while state["step"] < cfg.steps:
        for group in main_opt.param_groups:  # cosine decay to 5% of lr
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * state["step"] / cfg.steps)))
        x = sampler.batch(cfg.batch)
        out = criterion(model(x), x)
        main_opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        main_opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad()
        aux.backward()
        aux_opt.step()
        state["step"] += 1
        window.append({"loss": out["loss"].item(), "bpp": out["bpp_loss"].item(),
                       "psnr_db": -10 * math.log10(out["mse_loss"].item()), "aux": aux.item()})
        if state["step"] % CHECKPOINT_STEPS == 0 or state["step"] == cfg.steps:
            entry = {"step": state["step"], **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
            window.clear()
            state["log"].append(entry)
            state.update(model=model.state_dict(), main_opt=main_opt.state_dict(), aux_opt=aux_opt.state_dict(),
                         np_rng=sampler.rng.bit_generator.state, torch_rng=torch.get_rng_state(),
                         seconds=time.monotonic() - started)
            atomic_torch_save(path, state)
            log(f"{cfg.name()} step {entry['step']}/{cfg.steps}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "step"))
    model.eval()
    return {"model": model, "minutes": state["seconds"] / 60.0, "log": state["log"]}


def command_line(cfg: CodecConfig, out: str | None, threads: int) -> str:
    """The command that trains ``cfg``; an absolute ``out`` shows as ``DIR`` (a card must not
    name a folder of the machine that trained it)."""
    if out and Path(out).is_absolute():
        out = "DIR"
    words = ["python -m testbed.systems.mu_ascc.train_codec", f"--lmbda {cfg.lmbda:g}", f"--n {cfg.n}",
             f"--m {cfg.m}", f"--steps {cfg.steps}", f"--batch {cfg.batch}", f"--seed {cfg.seed}",
             f"--data {cfg.data}", f"--threads {threads}"]
    return " ".join(words + ([f"--out {out}"] if out else []))


def write_codec(model: ScaleHyperprior, cfg: CodecConfig, out_dir: Path, minutes: float, log: list,
                command: str) -> Path:
    """``<out_dir>/<name>.pt`` with CDF tables built; written atomically."""
    model.update(force=True)
    path = Path(out_dir) / f"{cfg.name()}.pt"
    atomic_torch_save(path, {"name": cfg.name(), "model": model.state_dict(), "config": asdict(cfg), "minutes": minutes,
                 "command": command, "log": log, "torch": torch.__version__})
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.train_codec",
                                     description=__doc__.split("\n\n")[0])
    defaults = CodecConfig()
    parser.add_argument("--lmbda", type=float, default=defaults.lmbda,
                        help=f"rate-distortion trade-off (CompressAI's: {', '.join(map(str, LAMBDAS))})")
    parser.add_argument("--n", type=int, default=defaults.n)
    parser.add_argument("--m", type=int, default=defaults.m)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--data", choices=DATA, default=defaults.data)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--out", type=Path, default=None, help="write the finished codec (.pt) into this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = CodecConfig(lmbda=args.lmbda, n=args.n, m=args.m, steps=args.steps, batch=args.batch, seed=args.seed,
                      data=args.data)
    result = train(cfg, args.ckpt_dir, args.threads)
    written = None
    if args.out is not None:
        written = write_codec(result["model"], cfg, args.out, result["minutes"], result["log"],
                              command_line(cfg, str(args.out), args.threads))
    return {"config": asdict(cfg), "minutes": result["minutes"], "codec": str(written) if written else None}


if __name__ == "__main__":
    print(main())
