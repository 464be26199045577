"""Training of the anchor-aided broadcast: the two-stage scheme of the paper and its two
benchmarks, seeded, checkpointed and resumable.

Reference: ../shared/seeds/002_dc33bc085f1347c9.txt (Sec. IV-A/B, Algorithm 1, Sec. V-B).

Schemes (``steps`` S = gradient steps every user decoder gets, the same in every scheme):

- ``two_stage`` (proposed): the self-reflective stage trains the encoder with its symmetric
  anchor decoder for S steps; then the encoder is frozen (the anchor) and each user's decoder is
  trained alone on its output for S steps. The four decoders of stage two share the batches but
  not their losses or optimizers: their problems are independent (Theorem 2), so this is the
  same as training them one after another, at a quarter of the encoder passes.
- ``iterative``: ``rounds`` R rounds; in each, the encoder is trained with one decoder for S/R
  steps (one "epoch" of the paper), then with the next, in the family order of ``DECODERS``.
- ``simultaneous``: S steps of the encoder and all decoders on the sum of the users' losses.

Every user has its own channel draw per step. Training data: random ``crop`` x ``crop`` crops of
``photo_corpus("train")`` (the paper's DIV2K is not installable offline), SNR per sample drawn
from {1, 4, 7, 10, 13} dB (Sec. V-A), AWGN or Rayleigh block fading (one draw per image, perfect
CSI: the decoder sees the effective SNR) per run. Loss MSE, Adam; each module's learning rate
follows a cosine over its own steps (to LR * LR_FLOOR).

The forgetting experiment (Fig. 5) rides on ``iterative``: after the last round the encoder is
kept, then trained ``len(DECODERS) - 1`` more turns (the first families again); the encoder after
each of the last 2 len(DECODERS) - 1 turns is saved, so each decoder can be scored with the
encoder it was last trained with and after 1, 2 and 3 other decoders' turns
(:mod:`testbed.systems.anchor.results`). The extra turns run at the learning rate of the last
round and do not change the shipped models.

Checkpoints (every module, every optimizer, the phase and step, all random states) are written
atomically every ``checkpoint_minutes`` to ``checkpoints/<name>-seed<seed>.ckpt``; the same command
resumes. Command line (also ``testbed train anchor``)::

    python -m testbed.systems.anchor.train --scheme two_stage --channel awgn --steps 1200 \
        --seed 0 --out models/anchor --checkpoints ~/.cache/testbed/anchor
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from testbed.data.images import photo_corpus
from testbed.errors import ConfigError
from testbed.runner.files import atomic_torch_save
from testbed.systems.anchor.model import DECODERS, WIDTH, AttentionDecoder, Encoder, build_decoder, shape_symbols
from testbed.systems.deepjscc.model import CHANNELS, through_channel
from testbed.systems.base import train_then_export
from testbed.systems.deepjscc.train import CropSampler

SCHEMES = ("two_stage", "iterative", "simultaneous")
TRAIN_SNRS_DB = (1.0, 4.0, 7.0, 10.0, 13.0)
ANCHOR = "anchor"
LR_FLOOR = 0.05


@dataclass(frozen=True)
class TrainConfig:
    """One training run (its fields are the run's identity: a checkpoint resumes only the same)."""

    scheme: str
    channel: str = "awgn"
    steps: int = 1200
    rounds: int = 6
    batch_size: int = 16
    crop: int = 64
    lr: float = 1e-3
    width: int = WIDTH
    seed: int = 0
    families: tuple[str, ...] = field(default_factory=lambda: tuple(DECODERS))
    anchor_steps: int = 0  # two_stage: steps of the self-reflective stage; 0 = ``steps``

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"scheme {self.scheme!r} is unknown; allowed: {', '.join(SCHEMES)}")
        if self.channel not in CHANNELS:
            raise ConfigError(f"channel {self.channel!r} is unknown; allowed: {', '.join(CHANNELS)}")
        for name, value, low in (("steps", self.steps, 1), ("rounds", self.rounds, 1), ("batch_size", self.batch_size, 1),
                                 ("crop", self.crop, 8)):
            if value < low:
                raise ConfigError(f"{name} = {value!r} is invalid; allowed: >= {low}")
        if self.anchor_steps < 0 or (self.anchor_steps and self.scheme != "two_stage"):
            raise ConfigError(f"anchor_steps = {self.anchor_steps} is invalid for scheme {self.scheme}; allowed: "
                              ">= 0, and non-zero only for two_stage")
        if self.crop % 4:
            raise ConfigError(f"crop = {self.crop} is invalid; allowed: a multiple of 4")
        if self.scheme == "iterative" and self.steps % self.rounds:
            raise ConfigError(f"steps = {self.steps} is invalid for rounds = {self.rounds}; allowed: a multiple of rounds")
        unknown = [f for f in self.families if f not in DECODERS]
        if unknown or not self.families:
            raise ConfigError(f"families = {list(self.families)} is invalid; allowed: one or more of {', '.join(DECODERS)}")

    def name(self) -> str:
        """The shipped model set's name, e.g. ``anchor-awgn-two-stage``; a self-reflective stage
        of other than ``steps`` says so: ``anchor-awgn-two-stage-anchor4800``."""
        extra = f"-anchor{self.anchor_steps}" if self.anchor_steps else ""
        return f"anchor-{self.channel}-{self.scheme.replace('_', '-')}{extra}"


@dataclass(frozen=True)
class Phase:
    """A stretch of training: ``steps`` steps of the ``decoders`` (and the encoder if ``encoder``).

    ``lr_progress`` fixes the modules' schedule position (the forgetting turns); ``snapshot``
    saves the encoder after the phase under that tag; ``extra`` phases come after the shipped
    models are kept."""

    decoders: tuple[str, ...]
    steps: int
    encoder: bool
    snapshot: str = ""
    extra: bool = False
    lr_progress: float | None = None


def schedule(cfg: TrainConfig) -> list[Phase]:
    """The phases of a scheme (module docstring)."""
    fams = cfg.families
    if cfg.scheme == "two_stage":
        return [Phase((ANCHOR,), cfg.anchor_steps or cfg.steps, True), Phase(fams, cfg.steps, False)]
    if cfg.scheme == "simultaneous":
        return [Phase(fams, cfg.steps, True)]
    turn = cfg.steps // cfg.rounds
    phases = []
    for r in range(cfg.rounds):
        last = r == cfg.rounds - 1
        phases += [Phase((f,), turn, True, snapshot=f"turn{i}" if last else "") for i, f in enumerate(fams)]
    last_round = 1.0 - 1.0 / cfg.rounds
    phases += [Phase((f,), turn, True, snapshot=f"turn{len(fams) + i}", extra=True, lr_progress=last_round)
               for i, f in enumerate(fams[:-1])]
    return phases


def module_steps(cfg: TrainConfig) -> dict[str, int]:
    """Steps each module takes in the non-extra phases (what its cosine runs over)."""
    total: dict[str, int] = {}
    for phase in schedule(cfg):
        if phase.extra:
            continue
        for name in phase.decoders + (("encoder",) if phase.encoder else ()):
            total[name] = total.get(name, 0) + phase.steps
    return total


def learning_rate(progress: float, lr: float) -> float:
    """Cosine from lr to lr * LR_FLOOR over progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return lr * (LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class Trainer:
    """The modules, optimizers, schedule position and random state of one run."""

    def __init__(self, cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.encoder = Encoder(cfg.width)
        names = ((ANCHOR,) if cfg.scheme == "two_stage" else ()) + cfg.families
        self.decoders = torch.nn.ModuleDict(
            {n: AttentionDecoder(cfg.width) if n == ANCHOR else build_decoder(n, cfg.width) for n in names})
        self.optimizers = {n: torch.optim.Adam(m.parameters(), lr=cfg.lr)
                           for n, m in [("encoder", self.encoder), *self.decoders.items()]}
        self.counts = {n: 0 for n in self.optimizers}
        self.totals = module_steps(cfg)
        self.phase, self.step, self.elapsed_s = 0, 0, 0.0
        self.history: list[list[float]] = []
        self.snapshots: dict[str, dict] = {}
        self.kept: dict | None = None  # the shipped state, kept before the extra phases
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)

    def state(self) -> dict:
        return {"config": asdict(self.cfg), "encoder": self.encoder.state_dict(), "decoders": self.decoders.state_dict(),
                "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()}, "counts": self.counts,
                "phase": self.phase, "step": self.step, "elapsed_s": self.elapsed_s, "history": self.history,
                "snapshots": self.snapshots, "kept": self.kept, "numpy_rng": self.rng.bit_generator.state,
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}

    def load(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.decoders.load_state_dict(state["decoders"])
        for n, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][n])
        self.counts, self.phase, self.step = state["counts"], state["phase"], state["step"]
        self.elapsed_s, self.history = state["elapsed_s"], state["history"]
        self.snapshots, self.kept = state["snapshots"], state["kept"]
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def models_state(self) -> dict:
        return {"encoder": {k: v.clone() for k, v in self.encoder.state_dict().items()},
                "decoders": {k: v.clone() for k, v in self.decoders.state_dict().items()}}

    def train_step(self, phase: Phase, images: torch.Tensor) -> float:
        """One step of ``phase`` on ``images`` float32 (B, 3, crop, crop); returns the summed MSE."""
        n, _, height, width = images.shape
        snr = torch.from_numpy(self.rng.choice(TRAIN_SNRS_DB, n).astype(np.float32)).reshape(-1, 1)
        active = list(phase.decoders) + (["encoder"] if phase.encoder else [])
        for name in active:
            progress = phase.lr_progress if phase.lr_progress is not None else self.counts[name] / self.totals[name]
            for group in self.optimizers[name].param_groups:
                group["lr"] = learning_rate(progress, self.cfg.lr)
        with torch.set_grad_enabled(phase.encoder):
            symbols = self.encoder(images, snr)
        loss = torch.zeros(())
        for name in phase.decoders:
            received, snr_eff = through_channel(symbols, snr, self.cfg.channel, self.generator)
            recon = self.decoders[name](shape_symbols(received, height, width), snr_eff)
            loss = loss + torch.mean((recon - images) ** 2)
        for name in active:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in active:
            self.optimizers[name].step()
            self.counts[name] += 1
        return float(loss.detach()) / len(phase.decoders)


def checkpoint_path(checkpoints: Path, cfg: TrainConfig) -> Path:
    return Path(checkpoints) / f"{cfg.name()}-seed{cfg.seed}.ckpt"


def train(cfg: TrainConfig, checkpoints: Path, threads: int = 1, checkpoint_minutes: float = 2.0,
          progress: bool = True) -> Path:
    """Run (or resume) ``cfg`` to the end of its schedule; returns the final checkpoint path.

    The checkpoint holds ``kept`` (the shipped encoder and decoders state_dicts) and, for
    ``iterative``, ``snapshots`` (tag -> encoder state_dict after that turn)."""
    torch.set_num_threads(threads)
    checkpoints = Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(checkpoints, cfg)
    trainer = Trainer(cfg)
    if path.exists():
        state = torch.load(path, weights_only=False)
        if config_from_state(state["config"]) != cfg:
            raise ConfigError(f"checkpoint {str(path)!r} was written by another run {state['config']}; "
                              f"allowed: the same arguments, or remove the file")
        trainer.load(state)
    phases = schedule(cfg)
    total = sum(p.steps for p in phases)
    done = sum(p.steps for p in phases[:trainer.phase]) + trainer.step
    if trainer.phase >= len(phases):
        return path
    sampler = CropSampler(photo_corpus("train"), trainer.rng, cfg.crop)
    bar = tqdm(total=total, initial=done, disable=not progress, desc=cfg.name())
    started, last_save, running = time.monotonic() - trainer.elapsed_s, trainer.elapsed_s, None
    while trainer.phase < len(phases):
        phase = phases[trainer.phase]
        if phase.extra and trainer.kept is None:
            trainer.kept = trainer.models_state()
        value = trainer.train_step(phase, sampler.batch(cfg.batch_size))
        running = value if running is None else 0.98 * running + 0.02 * value
        trainer.step += 1
        bar.update(1)
        trainer.elapsed_s = time.monotonic() - started
        if trainer.step % 50 == 0:
            trainer.history.append([trainer.phase, trainer.step, round(trainer.elapsed_s, 1), running])
            bar.set_postfix_str(f"phase {trainer.phase} {'+'.join(phase.decoders)} {-10 * math.log10(running):.2f} dB")
        if trainer.step == phase.steps:
            if phase.snapshot:
                trainer.snapshots[phase.snapshot] = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
            trainer.phase, trainer.step = trainer.phase + 1, 0
        if trainer.elapsed_s - last_save >= checkpoint_minutes * 60.0 or trainer.phase == len(phases):
            atomic_torch_save(path, trainer.state())
            last_save = trainer.elapsed_s
    bar.close()
    if trainer.kept is None:
        trainer.kept = trainer.models_state()
        atomic_torch_save(path, trainer.state())
    return path


def config_from_state(config: dict) -> TrainConfig:
    """The TrainConfig a checkpoint's ``config`` was written by (fields it predates take their defaults)."""
    return TrainConfig(**{**config, "families": tuple(config["families"])})


def load_models(path: Path) -> tuple[TrainConfig, Encoder, dict[str, torch.nn.Module], dict[str, dict]]:
    """(config, encoder, name -> decoder, snapshots) of a finished checkpoint, in eval mode."""
    state = torch.load(path, weights_only=False)
    cfg = config_from_state(state["config"])
    if state.get("kept") is None:
        raise ConfigError(f"checkpoint {str(path)!r} is not finished; allowed: a run trained to its end")
    trainer = Trainer(cfg)
    trainer.encoder.load_state_dict(state["kept"]["encoder"])
    trainer.decoders.load_state_dict(state["kept"]["decoders"])
    return cfg, trainer.encoder.eval(), {n: d.eval() for n, d in trainer.decoders.items()}, state["snapshots"]


def command_line(cfg: TrainConfig, out: Path, threads: int) -> str:
    """The command that reproduces a shipped model set (recorded in its cards)."""
    extra = f" --rounds {cfg.rounds}" if cfg.scheme == "iterative" else ""
    extra += f" --anchor-steps {cfg.anchor_steps}" if cfg.anchor_steps else ""
    return (f"testbed train anchor --scheme {cfg.scheme} --channel {cfg.channel} --steps {cfg.steps}{extra} "
            f"--batch-size {cfg.batch_size} --crop {cfg.crop} --seed {cfg.seed} --threads {threads} --out {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="testbed train anchor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", required=True, choices=SCHEMES)
    parser.add_argument("--channel", default="awgn", choices=CHANNELS)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="gradient steps per user decoder")
    parser.add_argument("--rounds", type=int, default=TrainConfig.rounds, help="iterative: turns per decoder")
    parser.add_argument("--anchor-steps", type=int, default=0,
                        help="two_stage: steps of the self-reflective stage (default: --steps)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--crop", type=int, default=TrainConfig.crop, help="side of the training crops, px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("models/anchor"), help="where the ONNX files and cards go")
    parser.add_argument("--checkpoints", type=Path, default=Path.home() / ".cache" / "testbed" / "anchor")
    parser.add_argument("--no-export", action="store_true", help="train (or resume) only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = TrainConfig(args.scheme, args.channel, args.steps, args.rounds, args.batch_size, args.crop, seed=args.seed,
                      anchor_steps=args.anchor_steps)
    from testbed.systems.anchor.export import export_checkpoint

    def export(path: Path) -> list[Path]:
        return export_checkpoint(path, args.out, command_line(cfg, args.out, args.threads), threads=args.threads)

    return train_then_export(lambda: train(cfg, args.checkpoints, args.threads), None if args.no_export else export)


if __name__ == "__main__":
    main()
