"""Seeded, resumable training of the adaptive-rate system (the paper's schedule, scaled to a CPU).

../shared/seeds/004_04072a72b64c0519.txt, Sec. III-E and IV-A: Adam with weight decay 5e-4;
the whole model at lr 1e-3 (150 epochs), then 1e-4 (100); fine-tuning at 1e-5 with CEM and P2
frozen (150), then CAEM and P1 frozen (100). Trained that way from scratch the policies
collapsed to one choice at every SNR (docs/adaptive_rate.md): while the codec is still poor, the
rate penalty outweighs any gain in MSE. So the first phase here trains the codec alone with
random decisions (every rate, 40 % of ``steps`` at 1e-3), the second the policies alone on that
codec (15 % at 1e-3), and then the paper's phases follow (25 % at 1e-4, 10 % and 10 % at 1e-5).
The codec phase does not depend on alpha: its end state is saved once (:func:`codec_path`) and a
run with another alpha starts from it. The Gumbel-softmax temperature is 5 e^(-0.01 epoch) with
the epoch counted as the same fraction of the paper's 500.

``estimator``: how the policies learn. ``gumbel`` is the paper's straight-through Gumbel-softmax.
Measured here, it left the policies at one decision for every SNR even on a codec whose best
decision does change with the SNR (docs/adaptive_rate.md). ``scst`` is a self-critical policy
gradient (REINFORCE with the greedy decision as baseline, Rennie et al. 2017): per image the
sampled decision and the policies' greedy one go through the same channel and noise, and
log p(sampled) is weighted by the difference of their eq. (21) losses (MSE + alpha * usage), so
the image's own difficulty cancels. The codec then learns from the sampled hard decisions. Each step: K users x ``batch`` random 32x32
crops of the training photographs (CIFAR-10 cannot be had here; docs/adaptive_rate.md), one SNR
per batch item uniform in [0, 25] dB, a fresh Rayleigh H per item, perfect or imperfect CSI.

Ablations (the paper's Tables V-VII, Fig. 17) are flags of the config: ``entropy`` (the entropy
input of P1 and the entropy term of the loss), ``attention`` (CBAM-CSI and MHSA), ``feedback``
(CSI and SNR at the transmitter), ``pruning`` (the pruning module).

Checkpoints (model, optimiser, phase, step, elapsed time, random states) are written atomically
every ``CHECKPOINT_STEPS``; the same command resumes, and a finished run returns at once.

    python -m testbed.systems.adaptive_rate.train --users 2 --antennas 4 --alpha 2e-4 --steps 3000
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from testbed.data.images import photo_corpus
from testbed.errors import ConfigError
from testbed.runner.files import atomic_torch_save
from testbed.systems.adaptive_rate import channel as uplink_channel
from testbed.systems.adaptive_rate import fit_policy
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser, loss, per_image_loss, run_users
from testbed.systems.deepjscc.train import CropSampler

CHECKPOINT_STEPS = 100
ESTIMATORS = ("gumbel", "scst", "fitted")
PAPER_EPOCHS = 500
SNR_RANGE_DB = (0.0, 25.0)
DEFAULT_CKPT_DIR = Path(os.environ.get("TESTBED_CKPT_DIR", Path.home() / ".cache" / "testbed")) / "adaptive_rate"


@dataclass(frozen=True)
class Phase:
    name: str
    fraction: float
    lr: float
    frozen: tuple[str, ...]  # parameter-name prefixes kept fixed
    explore: bool = False    # random decisions instead of the policies' (transceiver.run_users)


PHASES = (Phase("codec", 0.4, 1e-3, ("select.", "prune."), explore=True),
          Phase("policy", 0.15, 1e-3, ("encoder.", "decoder.")),
          Phase("whole-low-lr", 0.25, 1e-4, ()),
          Phase("freeze-cem-p2", 0.1, 1e-5, ("encoder.cem.", "prune.")),
          Phase("freeze-caem-p1", 0.1, 1e-5, ("encoder.res.", "encoder.attention.", "encoder.adapt.",
                                              "encoder.out.", "select.")))
# ``fitted``: the codec alone on random decisions, then the policies fitted to the codec's best
# decisions (fit_policy.py); the codec never sees the policies, so none of it depends on alpha.
FITTED_PHASES = (Phase("codec", 0.75, 1e-3, ("select.", "prune."), explore=True),
                 Phase("codec-low-lr", 0.25, 1e-4, ("select.", "prune."), explore=True))


@dataclass(frozen=True)
class TrainConfig:
    users: int = 2
    antennas: int = 4
    alpha: float = 2e-4
    beta: float = 1e-5
    steps: int = 3000
    batch: int = 32
    imperfect_csi: bool = False
    entropy: bool = True
    attention: bool = True
    feedback: bool = True
    pruning: bool = True
    seed: int = 0
    estimator: str = "gumbel"

    def __post_init__(self) -> None:
        if not 1 <= self.users <= self.antennas:
            raise ConfigError(f"users={self.users} with antennas={self.antennas}; allowed: 1 <= users <= antennas "
                              "(LMMSE separates at most M streams)")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator={self.estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        for name in ("steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 1")

    def name(self) -> str:
        off = [f for f in ("entropy", "attention", "feedback", "pruning") if not getattr(self, f)]
        tags = "".join(f"-no{f}" for f in off) + ("-imperfect" if self.imperfect_csi else "")
        tags += "" if self.estimator == "gumbel" else f"-{self.estimator}"
        return f"adaptive-k{self.users}-m{self.antennas}-a{self.alpha:g}{tags}-seed{self.seed}-{self.steps}steps"


def phases(cfg: TrainConfig) -> tuple[Phase, ...]:
    return FITTED_PHASES if cfg.estimator == "fitted" else PHASES


def codec_path(cfg: TrainConfig, ckpt_dir: Path) -> Path:
    """Checkpoint at the end of the codec phase, shared by the runs that differ only in alpha or
    in the estimator (the codec phase depends on neither). ``fitted`` runs keep their own: their
    codec trains for all the steps (FITTED_PHASES) and is saved before the policies are fitted."""
    shared = dataclasses.replace(cfg, estimator="fitted" if cfg.estimator == "fitted" else "gumbel")
    return Path(ckpt_dir) / f"{shared.name().replace(f'-a{cfg.alpha:g}', '-codec', 1)}.ckpt"


def build(cfg: TrainConfig) -> AdaptiveRateUser:
    return AdaptiveRateUser(cfg.antennas, entropy=cfg.entropy, attention=cfg.attention, feedback=cfg.feedback,
                            pruning=cfg.pruning)


def phase_at(cfg: TrainConfig, step: int) -> tuple[int, Phase]:
    """Index and phase of global ``step`` (0-based)."""
    edge, schedule = 0.0, phases(cfg)
    for i, phase in enumerate(schedule):
        edge += phase.fraction
        if step < round(edge * cfg.steps) or i == len(schedule) - 1:
            return i, phase
    raise AssertionError("unreachable")


def codec_ends(cfg: TrainConfig, step: int) -> bool:
    """Whether ``step`` steps complete the random-decision (explore) phases: the codec that
    :func:`codec_path` shares is done."""
    return phase_at(cfg, step - 1)[1].explore and (step == cfg.steps or not phase_at(cfg, step)[1].explore)


def temperature_at(cfg: TrainConfig, step: int) -> float:
    return 5.0 * math.exp(-0.01 * PAPER_EPOCHS * step / cfg.steps)


def _optimiser(model: AdaptiveRateUser, phase: Phase) -> torch.optim.Adam:
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(phase.frozen))
        if p.requires_grad:
            params.append(p)
    return torch.optim.Adam(params, lr=phase.lr, weight_decay=5e-4)


def self_critical_loss(model: AdaptiveRateUser, images: torch.Tensor, snr_db: torch.Tensor, cfg: TrainConfig,
                       tau: float, beta: float) -> tuple[torch.Tensor, dict[str, float], list]:
    """Eq. (21) on the sampled decisions (the codec's gradient) plus the self-critical policy
    gradient (module docstring); both passes meet one channel draw and one noise draw."""
    draw = uplink_channel.draw(images.shape[1], cfg.antennas, images.shape[0], snr_db, cfg.imperfect_csi)
    seed = int(torch.randint(0, 2**31 - 1, ()))
    recon, decisions = run_users(model, images, snr_db, cfg.antennas, cfg.imperfect_csi, max(tau, 1e-3),
                                 torch.Generator().manual_seed(seed), channel=draw, straight_through=False)
    with torch.no_grad():
        greedy, chosen = run_users(model, images, snr_db, cfg.antennas, cfg.imperfect_csi, 0.0,
                                   torch.Generator().manual_seed(seed), channel=draw, straight_through=False)
        advantage = (per_image_loss(images, recon, decisions, cfg.alpha)
                     - per_image_loss(images, greedy, chosen, cfg.alpha))
    total, parts = loss(images, recon, decisions, cfg.alpha, beta)
    policy = (advantage * torch.stack([d.log_prob for d in decisions])).mean()
    return total + policy, {**parts, "advantage": float(advantage.mean())}, decisions


def train(cfg: TrainConfig, ckpt_dir: Path = DEFAULT_CKPT_DIR, threads: int = 1, log=print) -> dict:
    """Train (or resume) ``cfg``; {"model", "minutes", "log"} once all steps ran."""
    torch.set_num_threads(threads)
    path = Path(ckpt_dir) / f"{cfg.name()}.ckpt"
    torch.manual_seed(cfg.seed)
    model = build(cfg)
    sampler = CropSampler(photo_corpus("train"), np.random.default_rng(cfg.seed), size=32)
    state = {"step": 0, "seconds": 0.0, "log": [], "optimizer": None}
    start = path if path.is_file() else codec_path(cfg, ckpt_dir)
    if start.is_file():
        state = torch.load(start, weights_only=False)
        model.load_state_dict(state["model"])
        sampler.rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
    beta = cfg.beta if cfg.entropy else 0.0
    started = time.monotonic() - state["seconds"]
    phase_index = state.get("phase", phase_at(cfg, state["step"])[0])  # the optimiser's phase
    optimiser = _optimiser(model, phases(cfg)[phase_index])
    if state["optimizer"] is not None:
        optimiser.load_state_dict(state["optimizer"])
    model.train()
    window: list[dict[str, float]] = []
    while state["step"] < cfg.steps:
        index, now = phase_at(cfg, state["step"])
        if index != phase_index:
            phase_index, optimiser = index, _optimiser(model, now)
        images = sampler.batch(cfg.users * cfg.batch).reshape(cfg.users, cfg.batch, 3, 32, 32)
        snr_db = torch.from_numpy(sampler.rng.uniform(*SNR_RANGE_DB, cfg.batch)).float()
        tau = temperature_at(cfg, state["step"])
        if cfg.estimator == "scst" and not now.explore:
            total, parts, decisions = self_critical_loss(model, images, snr_db, cfg, tau, beta)
        else:
            recon, decisions = run_users(model, images, snr_db, cfg.antennas, cfg.imperfect_csi, tau,
                                         explore=now.explore)
            total, parts = loss(images, recon, decisions, cfg.alpha, beta)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        state["step"] += 1
        window.append({**parts, "cpp": float(torch.cat([d.cpp() for d in decisions]).mean())})
        boundary = phase_at(cfg, state["step"])[0] != index or state["step"] == cfg.steps
        if state["step"] % CHECKPOINT_STEPS == 0 or boundary:
            entry = {"step": state["step"], "phase": now.name,
                     **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
            entry["psnr_db"] = -10 * math.log10(entry["mse"])
            window.clear()
            state["log"].append(entry)
            state.update(model=model.state_dict(), optimizer=optimiser.state_dict(), phase=phase_index, config=asdict(cfg),
                         np_rng=sampler.rng.bit_generator.state,
                         torch_rng=torch.get_rng_state(), seconds=time.monotonic() - started)
            atomic_torch_save(path, state)
            if codec_ends(cfg, state["step"]):
                atomic_torch_save(codec_path(cfg, ckpt_dir), state)
            log(f"{cfg.name()} {now.name} step {entry['step']}/{cfg.steps}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if isinstance(v, float)))
    if cfg.estimator == "fitted" and "fit" not in state:
        state = _fit(model, cfg, sampler, state, path, log)
    model.eval()
    return {"model": model, "minutes": state["seconds"] / 60.0, "log": state["log"], "fit": state.get("fit")}


def _fit(model: AdaptiveRateUser, cfg: TrainConfig, sampler: CropSampler, state: dict, path: Path, log) -> dict:
    """The ``fitted`` estimator's last step (fit_policy.py) on fresh training crops; checkpointed."""
    started = time.monotonic()
    batches = []
    for _ in range(fit_policy.FIT_BATCHES):
        images = sampler.batch(cfg.users * cfg.batch).reshape(cfg.users, cfg.batch, 3, 32, 32)
        batches.append((images, torch.from_numpy(sampler.rng.uniform(*SNR_RANGE_DB, cfg.batch)).float()))
    seed = int(sampler.rng.integers(0, 2**31 - 1))
    summary = fit_policy.fit(model, batches, cfg.antennas, cfg.imperfect_csi, cfg.alpha, seed,
                             lambda line: log(f"{cfg.name()} {line}"))
    state.update(model=model.state_dict(), fit=summary, np_rng=sampler.rng.bit_generator.state,
                 torch_rng=torch.get_rng_state(), seconds=state["seconds"] + time.monotonic() - started)
    atomic_torch_save(path, state)
    return state


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.adaptive_rate.train",
                                     description=__doc__.split("\n\n")[0])
    for name in ("users", "antennas", "steps", "batch", "seed"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("alpha", "beta"):
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    parser.add_argument("--imperfect-csi", action="store_true")
    parser.add_argument("--estimator", choices=ESTIMATORS, default=defaults.estimator,
                        help="how the policies learn (module docstring)")
    for name in ("entropy", "attention", "feedback", "pruning"):
        parser.add_argument(f"--no-{name}", action="store_true", help=f"ablation: without {name}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = TrainConfig(users=args.users, antennas=args.antennas, alpha=args.alpha, beta=args.beta, steps=args.steps,
                      batch=args.batch, imperfect_csi=args.imperfect_csi, entropy=not args.no_entropy,
                      attention=not args.no_attention, feedback=not args.no_feedback, pruning=not args.no_pruning,
                      seed=args.seed, estimator=args.estimator)
    result = train(cfg, args.ckpt_dir, args.threads)
    return {"config": asdict(cfg), "minutes": result["minutes"], "last": result["log"][-1]}


if __name__ == "__main__":
    print(main())
