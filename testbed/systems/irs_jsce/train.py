"""Training of the IRS-JSCE encoder, decoder and IRS phases by back-propagation (the inner loop
of XD-DRL), seeded, checkpointed and resumable.

Reference: ../shared/seeds/000_5c86833aa1606c01.txt (Sec. III-A, Algorithm 1 line 5, Sec. IV).

Each step draws one half-duplex slot: a transmitter set T (uniform over the 2^K - 2 sets that
leave a receiver; in the first ``warmup_steps`` a curriculum instead: one TX to d receivers, d
growing from 1 to K - 1; measured, with every set from the start the networks stayed at the mean
image (12 dB) for 1500 steps; every TX addresses every non-TX user, :func:`channel.slot_links`) and, for each
of ``batch_slots`` slots, a coherence block of the geometry's channels (a bank of ``bank_blocks``
draws of :func:`channel.draw_channels`, training seed 0 keys) and one random ``crop`` x ``crop``
crop per link. The loss is the MSE over every link of the slot (Sec. III-A: "we maximize the
semantic similarity by minimizing the MSE"); the IRS phases are weights of the network
(:class:`model.IrsPhases`), updated by the same loss at ``phase_lr``, and quantised to {0, pi}
after training. The paper pre-trains with every user talking to every other user at once and
then trains per schedule; here the schedule is drawn per step, which is what the scheduler
later picks from. Noise sigma^2 = ``noise_var`` per complex symbol (the paper's 0.1) at unit
power per TX. Adam; cosine learning rate to 5 % over the steps.

Data: random crops of ``photo_corpus("train")`` (the paper's CIFAR-10 and ImageNet do not install
offline; `make train-data` adds the Debian wallpapers). Checkpoints (networks, phases, optimizers,
step, random states) are written atomically every ``checkpoint_minutes``; the same command
resumes. Command line::

    python -m testbed.systems.irs_jsce.train --steps 6000 --seed 0 --out models/irs_jsce
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from testbed.data.images import photo_corpus
from testbed.errors import ConfigError
from testbed.runner.files import atomic_torch_save
from testbed.systems.base import train_then_export
from testbed.systems.deepjscc.train import CropSampler
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.model import WIDTH, Decoder, Encoder, IrsPhases, cascaded, transmit_slot

LR_FLOOR = 0.05
IRS_TRAINING = ("trained", "fixed", "off")
TRAIN_CHANNEL_SEED = 0
"""Channel draws of training; evaluation uses other seeds (:mod:`testbed.systems.irs_jsce.evaluate`)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run (its fields are the run's identity: a checkpoint resumes only the same)."""

    steps: int = 6000
    batch_slots: int = 8
    crop: int = 32
    lr: float = 1e-3
    phase_lr: float = 1e-2
    noise_var: float = 0.1
    width: int = WIDTH
    irs_side: int = 8
    irs: str = "trained"  # trained: phases learnt; fixed: the random initial phases kept; off: no IRS (h = h^d)
    bank_blocks: int = 2048
    warmup_steps: int = 1000  # the first steps draw only single-TX slots (1 -> K - 1 broadcast)
    seed: int = 0
    init: str = ""  # a shipped model whose networks this run starts from (its phases start afresh)

    def __post_init__(self) -> None:
        checks = [("steps", self.steps >= 1, "an integer >= 1"), ("batch_slots", self.batch_slots >= 1, ">= 1"),
                  ("crop", self.crop >= 8 and self.crop % 4 == 0, "a multiple of 4, >= 8"),
                  ("noise_var", self.noise_var > 0, "> 0"), ("irs_side", 1 <= self.irs_side <= 32, "1..32"),
                  ("bank_blocks", self.bank_blocks >= 1, ">= 1"),
                  ("irs", self.irs in IRS_TRAINING, " | ".join(IRS_TRAINING))]
        for field, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"irs_jsce training {field} = {getattr(self, field)!r} is invalid; allowed: {allowed}")

    def name(self) -> str:
        irs = "no-irs" if self.irs == "off" else f"irs{self.irs_side}x{self.irs_side}" + (
            "-fixed" if self.irs == "fixed" else "")
        return f"irs-jsce-{irs}-{self.steps}steps" + (f"-from-{self.init}" if self.init else "")


def geometry_for(cfg: TrainConfig) -> channel.Geometry:
    """The shipped geometry with a ``irs_side`` x ``irs_side`` surface."""
    geometry = channel.load_geometry()
    return replace(geometry, array=replace(geometry.array, rows=cfg.irs_side, cols=cfg.irs_side))


def user_positions(geometry: channel.Geometry) -> torch.Tensor:
    """The users' 2-D positions, float32 (K, 2) metres: the networks' link input (model.link_features)."""
    return torch.from_numpy(geometry.users_m[:, :2].astype(np.float32))


def channel_bank(geometry: channel.Geometry, seed: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """g complex64 (blocks, K, N) and h^d complex64 (blocks, K, K) of coherence blocks 0..blocks-1."""
    draws = [channel.draw_channels(geometry, seed, b) for b in range(blocks)]
    g = torch.from_numpy(np.stack([d.g for d in draws]).astype(np.complex64))
    return g, torch.from_numpy(np.stack([d.h_direct for d in draws]).astype(np.complex64))


def transmitter_sets(n_users: int) -> list[tuple[int, ...]]:
    """Every TX set of a half-duplex slot that leaves at least one receiver, by size then index."""
    sets = [tuple(u for u in range(n_users) if mask >> u & 1) for mask in range(1, 2 ** n_users - 1)]
    return sorted(sets, key=lambda s: (len(s), s))


def learning_rate(progress: float, lr: float) -> float:
    return lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))))


class Trainer:
    """The networks, phases, optimizers, step and random state of one run."""

    def __init__(self, cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.geometry = geometry_for(cfg)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.encoder, self.decoder = Encoder(cfg.width), Decoder(cfg.width)
        if cfg.init:
            self._start_from(cfg.init)
        self.irs = IrsPhases(self.geometry.array.n_elements, torch.Generator().manual_seed(cfg.seed + 2))
        self.irs.phases.requires_grad_(cfg.irs == "trained")
        groups = [{"params": [*self.encoder.parameters(), *self.decoder.parameters()], "lr": cfg.lr}]
        if cfg.irs == "trained":
            groups.append({"params": [self.irs.phases], "lr": cfg.phase_lr})
        self.optimizer = torch.optim.Adam(groups)
        self.step, self.elapsed_s = 0, 0.0
        self.history: list[list[float]] = []
        self.rng = np.random.default_rng(cfg.seed)
        self.sets = transmitter_sets(self.geometry.n_users)
        self.g, self.h_direct = channel_bank(self.geometry, TRAIN_CHANNEL_SEED, cfg.bank_blocks)
        self.positions_m = user_positions(self.geometry)

    def _start_from(self, model: str) -> None:
        """The networks' weights of the shipped model ``model`` (ConfigError naming the allowed ones)."""
        from testbed.systems.irs_jsce.models import ENTRIES

        if model not in ENTRIES:
            raise ConfigError(f"irs_jsce training init = {model!r} is unknown; allowed: {', '.join(ENTRIES)}")
        entry = ENTRIES[model]
        self.encoder.load_state_dict(entry.torch_module("transmitter").state_dict())
        self.decoder.load_state_dict(entry.torch_module("receiver").state_dict())

    def draw_links(self) -> list[tuple[int, int]]:
        """The links of this step's slot: in the warm-up one TX to d random receivers, d growing
        from 1 to K - 1 over ``warmup_steps``; then every TX of a uniform TX set to every non-TX user."""
        n_users = self.geometry.n_users
        if self.step >= self.cfg.warmup_steps:
            return channel.slot_links(self.sets[self.rng.integers(len(self.sets))], n_users)
        tx = int(self.rng.integers(n_users))
        d = 1 + self.step * (n_users - 1) // self.cfg.warmup_steps
        receivers = self.rng.choice([k for k in range(n_users) if k != tx], d, replace=False)
        return [(tx, int(k)) for k in sorted(receivers)]

    def state(self) -> dict:
        return {"config": asdict(self.cfg), "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
                "irs": self.irs.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "elapsed_s": self.elapsed_s, "history": self.history, "numpy_rng": self.rng.bit_generator.state,
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}

    def load(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.irs.load_state_dict(state["irs"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed_s, self.history = state["step"], state["elapsed_s"], state["history"]
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def train_step(self, sampler: CropSampler) -> float:
        """One slot-batch step; returns its MSE over the links."""
        cfg = self.cfg
        links = self.draw_links()
        blocks = torch.from_numpy(self.rng.integers(0, cfg.bank_blocks, cfg.batch_slots))
        h = cascaded(self.g[blocks], self.h_direct[blocks], None if cfg.irs == "off" else self.irs())
        images = sampler.batch(cfg.batch_slots * len(links)).reshape(cfg.batch_slots, len(links), 3, cfg.crop, cfg.crop)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step / cfg.steps, cfg.lr if group is self.optimizer.param_groups[0]
                                        else cfg.phase_lr)
        decoded = transmit_slot(self.encoder, self.decoder, images, links, h, cfg.noise_var, self.positions_m,
                                self.generator)
        loss = torch.mean((decoded - images) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def checkpoint_path(checkpoints: Path, cfg: TrainConfig) -> Path:
    return Path(checkpoints) / f"{cfg.name()}-seed{cfg.seed}.ckpt"


def snapshot_path(checkpoint: Path, step: int) -> Path:
    """Where a run keeps its state at ``step`` (``train(snapshot_every=...)``)."""
    return checkpoint.with_name(f"{checkpoint.stem}-step{step}.ckpt")


def train(cfg: TrainConfig, checkpoints: Path, threads: int = 1, checkpoint_minutes: float = 2.0,
          progress: bool = True, stop_after: int | None = None, snapshot_every: int = 0) -> Path:
    """Run (or resume) ``cfg`` to its last step, or to step ``stop_after`` (a run in pieces); returns
    the checkpoint path. ``snapshot_every`` > 0 also keeps the state every that many steps
    (:func:`snapshot_path`, for the curves over training)."""
    torch.set_num_threads(threads)
    path = checkpoint_path(checkpoints, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg)
    if path.exists():
        state = torch.load(path, weights_only=False)
        if TrainConfig(**state["config"]) != cfg:
            raise ConfigError(f"checkpoint {str(path)!r} was written by another run {state['config']}; "
                              f"allowed: the same arguments, or remove the file")
        trainer.load(state)
    last = cfg.steps if stop_after is None else min(stop_after, cfg.steps)
    if trainer.step >= last:
        return path
    sampler = CropSampler(photo_corpus("train"), trainer.rng, cfg.crop)
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not progress, desc=cfg.name())
    started, last_save, running = time.monotonic() - trainer.elapsed_s, trainer.elapsed_s, None
    while trainer.step < last:
        value = trainer.train_step(sampler)
        running = value if running is None else 0.98 * running + 0.02 * value
        trainer.step += 1
        bar.update(1)
        trainer.elapsed_s = time.monotonic() - started
        if trainer.step % 50 == 0:
            trainer.history.append([trainer.step, round(trainer.elapsed_s, 1), running])
            bar.set_postfix_str(f"{-10 * math.log10(running):.2f} dB")
        if trainer.elapsed_s - last_save >= checkpoint_minutes * 60.0 or trainer.step == last:
            atomic_torch_save(path, trainer.state())
            last_save = trainer.elapsed_s
        if snapshot_every and trainer.step % snapshot_every == 0:
            atomic_torch_save(snapshot_path(path, trainer.step), trainer.state())
    bar.close()
    return path


def load_models(path: Path, finished: bool = True) -> tuple[TrainConfig, Encoder, Decoder, np.ndarray]:
    """(config, encoder, decoder, continuous phases float64 (N,)) of a finished checkpoint (or, with
    ``finished`` False, of a snapshot on the way), in eval mode."""
    state = torch.load(path, weights_only=False)
    cfg = TrainConfig(**state["config"])
    if finished and state["step"] < cfg.steps:
        raise ConfigError(f"checkpoint {str(path)!r} is at step {state['step']} of {cfg.steps}; "
                          f"allowed: a run trained to its end")
    encoder, decoder = Encoder(cfg.width), Decoder(cfg.width)
    encoder.load_state_dict(state["encoder"])
    decoder.load_state_dict(state["decoder"])
    return cfg, encoder.eval(), decoder.eval(), state["irs"]["phases"].double().numpy()


def command_line(cfg: TrainConfig, out: Path, threads: int) -> str:
    """The command that reproduces a shipped model (recorded in its card)."""
    return (f"python -m testbed.systems.irs_jsce.train --steps {cfg.steps} --batch-slots {cfg.batch_slots} --crop {cfg.crop} "
            f"--irs-side {cfg.irs_side} --irs {cfg.irs} --seed {cfg.seed} --threads {threads} --out {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.irs_jsce.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-slots", type=int, default=TrainConfig.batch_slots, help="slots per step")
    parser.add_argument("--crop", type=int, default=TrainConfig.crop, help="side of the training crops, px")
    parser.add_argument("--irs-side", type=int, default=TrainConfig.irs_side, help="the surface is SIDE x SIDE")
    parser.add_argument("--irs", default="trained", choices=IRS_TRAINING,
                        help="trained: learn the phases; fixed: keep the random initial ones; off: no IRS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("models/irs_jsce"), help="where the ONNX files and cards go")
    parser.add_argument("--checkpoints", type=Path, default=Path.home() / ".cache" / "testbed" / "irs_jsce")
    parser.add_argument("--no-export", action="store_true", help="train (or resume) only")
    parser.add_argument("--snapshot-every", type=int, default=0, help="also keep the state every N steps (curves)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = TrainConfig(steps=args.steps, batch_slots=args.batch_slots, crop=args.crop, irs_side=args.irs_side,
                      irs=args.irs, seed=args.seed)
    from testbed.systems.irs_jsce.export import export_checkpoint

    def export(path: Path) -> list[Path]:
        return export_checkpoint(path, args.out, command_line(cfg, args.out, args.threads), threads=args.threads)

    return train_then_export(lambda: train(cfg, args.checkpoints, args.threads, snapshot_every=args.snapshot_every),
                             None if args.no_export else export)


if __name__ == "__main__":
    main()
