"""ONNX export of a trained adaptive-rate user (docs/adaptive_rate.md), with model cards.

The deployment path is :class:`~testbed.systems.adaptive_rate.transceiver.AdaptiveRateUser` at
temperature 0 in eval mode (the policies take their most probable class, as
:mod:`testbed.systems.adaptive_rate.evaluate` does). It is split where the uplink cuts it, into
one graph per process (N = batch, dynamic; M antennas; C/2 = 8 complex maps; 2L = 128 reals):

    <name>.transmitter.onnx  (a user's TX process)
        inputs:  image float32 (N, 3, 32, 32) in [0, 1], csi float32 (N, M, 2) the user's fed-back
                 column of H_hat as I/Q, snr_db float32 (N,) the fed-back SNR
        outputs: rows float32 (N, C/2, 2L) what is sent (selected, unpruned entries; zeros
                 elsewhere) before power normalisation, mask float32 (N, C/2) the selected complex
                 maps (1/0), ratio_index int64 (N,) into the card's ``pruning_ratios``, ratio
                 float32 (N,) that ratio, kept float32 (N, C/2, 2L) 1 where a real value is sent
    <name>.receiver.onnx     (the base station, after detection)
        inputs:  rows float32 (N, C/2, 2L) detected, power restored, kept float32 (N, C/2, 2L),
                 csi float32 (N, M, 2) the same column of H_hat, snr_db float32 (N,)
        outputs: image float32 (N, 3, 32, 32) in [0, 1]

The whole decision chain (2-D entropies, P1, argmax, thermometer, P2, argmax, l1 pruning) is
inside the transmitter graph, so every TX process makes exactly the torch decisions. Two pieces
differ in form from the torch code, not in result (tests/systems/test_adaptive_rate_export.py):

- ONNX has no complex tensors: the CSI enters as I/Q, and :class:`_IQ` shows it to
  :func:`~testbed.systems.adaptive_rate.model.context` (which reads ``.real`` and ``.imag``),
  so the encoder and both policies run their own code.
- ``torch.argsort(..., stable=True)`` (how :func:`rate_control.keep_masks` ranks |values|) does
  not export (aten::sort with ``stable``); :func:`stable_rank` counts, per entry, the smaller
  entries and the equal earlier ones, which is the same rank, with the same tie rule.

Power normalisation over the sent entries, dropping the unsent ones and complex symbols are
numpy, in :class:`~testbed.systems.adaptive_rate.onnx_user.OnnxAdaptiveRateUser` (what is sent
has a different length per image). As in testbed/onnx/export.py, constant folding is off and
every weight stays an initializer named ``model.<state_dict key>``; the torch user is rebuilt
from the two files (:func:`user_from_onnx`).

    python -m testbed.systems.adaptive_rate.export --checkpoint FILE --out models/adaptive_rate
"""
from __future__ import annotations

import argparse
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from testbed.errors import ConfigError, ModelError
from testbed.onnx.card import machine, read_card, write_card
from testbed.onnx.export import OPSET, export_graph, initializers
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate.model import (FEATURE_MAPS, FEATURE_SIDE, NoAttention, context, from_complex,
                                                 to_complex)
from testbed.systems.adaptive_rate.train import SNR_RANGE_DB, TrainConfig, build
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser

SYSTEM = "adaptive_rate"
ROLES = ("transmitter", "receiver")
IMAGE_SIDE = 32
EVAL_SNRS_DB = (0.0, 10.0, 20.0)
DEFAULT_OUT = Path("models/adaptive_rate")
DATA = ("K users x batch random 32x32 crops per step of photo_corpus('train'): real photographs "
        "downscaled to a short side of 512 px (sporco, scikit-image, scikit-learn, Debian wallpapers; "
        "CIFAR-10 cannot be had offline), one SNR per batch item uniform in [0, 25] dB, a fresh Rayleigh "
        "H per item; the held-out photos kodim23, astronaut, coffee, chelsea never trained on")
CHANNEL = ("K single-antenna users, M base-station antennas: H complex (M, K) with CN(0, 1) entries per item, "
           "AWGN of variance 10^(-snr_db/10) per antenna for unit-power symbols, LMMSE detection (eq. 8) "
           "with H_hat = H (perfect CSI) or H + CN(0, sigma_n^2) (imperfect)")
_NAME = re.compile(r"adaptive-k(?P<users>\d+)-m(?P<antennas>\d+)-a(?P<alpha>[0-9.]+(?:e[-+]?\d+)?)"
                   r"(?P<tags>(?:-no(?:entropy|attention|feedback|pruning))*)(?P<imperfect>-imperfect)?(?:-(?P<estimator>scst|fitted))?"
                   r"-seed(?P<seed>\d+)-(?P<steps>\d+)steps")


class _IQ:
    """An I/Q tensor float (B, M, 2) seen as a complex CSI (B, M) by
    :func:`~testbed.systems.adaptive_rate.model.context`, which reads only ``.real`` and ``.imag``
    (ONNX has no complex tensors)."""

    def __init__(self, iq: torch.Tensor) -> None:
        self.real, self.imag = iq[..., 0], iq[..., 1]


def stable_rank(values: torch.Tensor) -> torch.Tensor:
    """int64 rank of every entry of ``values`` (..., L) along the last axis in ascending order,
    ties broken by position (the earlier entry ranks lower), as ``argsort(argsort(values,
    stable=True))`` in :func:`rate_control.keep_masks`, written as comparisons that export to
    ONNX. Holds (..., L, L) tensors."""
    index = torch.arange(values.shape[-1], device=values.device)
    earlier = index[None, :] < index[:, None]                       # [i, j]: j before i
    other, this = values.unsqueeze(-2), values.unsqueeze(-1)        # (..., 1, L) j, (..., L, 1) i
    before = (other < this) | ((other == this) & earlier)
    return before.to(torch.int64).sum(-1)


def keep_masks(z: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """float (B, T, C2, 2L): 1 where :func:`rate_control.keep_masks` keeps an entry of z (B, C2, 2L)
    at each of the T ``ratios`` (the same count, floor(ratio * 2L + 1e-6), and the same rank)."""
    length = z.shape[-1]
    counts = torch.floor(ratios.reshape(1, -1, 1, 1) * length + 1e-6).long().clamp(0, length)   # (1, T, 1, 1)
    return (stable_rank(z.abs()).unsqueeze(1) >= counts).to(z.dtype)


class Transmitter(nn.Module):
    """:meth:`AdaptiveRateUser.transmit` at temperature 0 with the CSI as I/Q (see the module
    docstring): (image (N, 3, 32, 32), csi float (N, M, 2), snr_db (N,)) -> (rows, mask,
    ratio_index, ratio, kept). The weights stay under ``model.``."""

    def __init__(self, model: AdaptiveRateUser) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor):
        m = self.model
        if not m.feedback:
            csi, snr_db = torch.zeros_like(csi), torch.zeros_like(snr_db)
        iq = _IQ(csi)
        z0 = m.encoder(image, context(iq, snr_db))
        entropy = rc.entropy_2d(z0, soft=True)
        weights = rc.normalised_entropy(entropy) if m.entropy else torch.zeros_like(entropy)
        mask = rc.thermometer(rc.sample_one_hot(m.select(z0, weights, iq, snr_db), 0.0))     # (N, C/2)
        z1 = to_complex(z0) * mask[..., None]
        if m.pruning:
            probabilities = m.prune(z1, iq, snr_db)
            ratio_index = probabilities.argmax(-1)
            choice = rc.sample_one_hot(probabilities, 0.0)                                  # (N, T)
            kept = (choice[:, :, None, None] * keep_masks(z1, m.ratios)).sum(1) * mask[..., None]
            ratio = choice @ m.ratios
        else:
            kept = mask[..., None].expand_as(z1)
            ratio = torch.zeros_like(snr_db)
            ratio_index = ratio.long()
        return z1 * kept, mask, ratio_index, ratio, kept


class Receiver(nn.Module):
    """:meth:`AdaptiveRateUser.receive` with the CSI as I/Q: (rows (N, C/2, 2L), kept, csi float
    (N, M, 2), snr_db (N,)) -> image (N, 3, 32, 32). The weights stay under ``model.``."""

    def __init__(self, model: AdaptiveRateUser) -> None:
        super().__init__()
        self.model = model

    def forward(self, rows: torch.Tensor, kept: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(from_complex(rows * kept), context(_IQ(csi), snr_db))


def io_spec(antennas: int, maps: int = FEATURE_MAPS, side: int = FEATURE_SIDE) -> dict[str, dict[str, list[dict]]]:
    """Names, shapes ("N" = the dynamic batch axis) and dtypes of the two graphs."""
    def t(name: str, *shape, dtype: str = "float32") -> dict:
        return {"name": name, "shape": ["N", *shape], "dtype": dtype}

    half, length = maps // 2, 2 * side * side
    csi, snr = t("csi", antennas, 2), t("snr_db")
    rows, kept = t("rows", half, length), t("kept", half, length)
    return {"transmitter": {"inputs": [t("image", 3, IMAGE_SIDE, IMAGE_SIDE), csi, snr],
                            "outputs": [rows, t("mask", half), t("ratio_index", dtype="int64"), t("ratio"), kept]},
            "receiver": {"inputs": [rows, kept, csi, snr], "outputs": [t("image", 3, IMAGE_SIDE, IMAGE_SIDE)]}}


def architecture(model: AdaptiveRateUser) -> dict:
    """The card's ``architecture``: what :func:`user_from_onnx` builds the torch user from."""
    maps = model.encoder.out.out_channels
    return {"class": "testbed.systems.adaptive_rate.transceiver.AdaptiveRateUser",
            "antennas": (model.select.mlp[0].in_features - maps - 1) // 2, "maps": maps,
            "entropy": model.entropy, "attention": not isinstance(model.decoder.mhsa, NoAttention),
            "feedback": model.feedback, "pruning": model.pruning, "image_side": IMAGE_SIDE,
            "feature_side": FEATURE_SIDE, "pruning_ratios": [float(r) for r in rc.PRUNING_RATIOS],
            "entropy_levels": rc.ENTROPY_LEVELS, "index_symbols": rc.index_symbols(2 * FEATURE_SIDE ** 2)}


def _check_ratios(model: AdaptiveRateUser) -> None:
    """The graphs prune with ``model.ratios``, torch's :func:`rate_control.keep_masks` with
    :data:`rate_control.PRUNING_RATIOS`: they must be the same."""
    if not torch.equal(model.ratios, torch.tensor(rc.PRUNING_RATIOS)):
        raise ModelError(f"model ratios {model.ratios.tolist()} differ from rate_control.PRUNING_RATIOS "
                         f"{list(rc.PRUNING_RATIOS)}; allowed: the same")


def export_graphs(model: AdaptiveRateUser, out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``out_dir/<name>.transmitter.onnx`` and ``<name>.receiver.onnx`` (no cards).

    ``model`` is put in eval mode and stays so. Returns: {role: path}.
    Raises: ModelError when the model's pruning ratios are not :data:`rate_control.PRUNING_RATIOS`
        or an exported graph lacks a named input or output.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    _check_ratios(model)
    arch = architecture(model)
    spec = io_spec(arch["antennas"], arch["maps"])
    g = torch.Generator().manual_seed(0)
    csi = torch.randn(2, arch["antennas"], 2, generator=g)
    snr = torch.tensor([5.0, 15.0])
    half, length = arch["maps"] // 2, 2 * FEATURE_SIDE ** 2
    examples = {"transmitter": (torch.rand(2, 3, IMAGE_SIDE, IMAGE_SIDE, generator=g), csi, snr),
                "receiver": (torch.randn(2, half, length, generator=g), torch.ones(2, half, length), csi, snr)}
    modules = {"transmitter": Transmitter(model), "receiver": Receiver(model)}
    paths = {}
    with torch.no_grad():
        for role in ROLES:
            paths[role] = export_graph(modules[role], examples[role], out_dir / f"{name}.{role}.onnx", spec[role])
            _declare_output_shapes(paths[role], spec[role]["outputs"])
    return paths


def _declare_output_shapes(path: Path, outputs: list[dict]) -> None:
    """Write the spec's output shapes into the file's graph outputs, in place.

    The maps are cut into rows by reshapes whose target is computed from the input's shape
    (constant folding is off), so the exporter declares every output axis dynamic; the card and
    :class:`~testbed.onnx.session.OnnxModel` expect the fixed axes (C/2, 2L) as numbers.
    """
    graph = onnx.load(str(path))
    for entry, declared in zip(outputs, graph.graph.output):
        dims = declared.type.tensor_type.shape.dim
        if len(dims) != len(entry["shape"]):
            raise ModelError(f"{path}: output {entry['name']} has {len(dims)} axes; expected {entry['shape']}")
        for dim, size in zip(dims, entry["shape"]):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    onnx.checker.check_model(graph)
    path.write_bytes(graph.SerializeToString())


def card_metrics(model: AdaptiveRateUser, cfg: TrainConfig, tiles: int | None = None,
                 snrs_db: tuple[float, ...] = EVAL_SNRS_DB) -> dict:
    """The torch reference evaluation (:func:`testbed.systems.adaptive_rate.evaluate.evaluate`,
    temperature 0, seed 0) of ``model`` on the first ``tiles`` held-out 32x32 tiles (None = all
    512) at each SNR, K = ``cfg.users``: the per-user rows and their means per SNR."""
    from testbed.systems.adaptive_rate.evaluate import evaluate, held_out_tiles

    images = held_out_tiles(tiles)
    per_user = [row for snr in snrs_db for row in evaluate(model, images, snr, cfg.users, cfg.antennas,
                                                            cfg.imperfect_csi)]
    keys = ("psnr_db", "cpp", "selected_maps", "pruning_ratio")
    mean = [{"snr_db": float(snr), **{k: float(np.mean([r[k] for r in per_user if r["snr_db"] == snr])) for k in keys}}
            for snr in snrs_db]
    return {"evaluation": "testbed.systems.adaptive_rate.evaluate.evaluate (torch reference, temperature 0, seed 0)",
            "images": f"the first {len(images)} 32x32 tiles of the held-out photo crops (evaluate.held_out_tiles); "
                      f"tile i goes to user i mod K",
            "tiles": len(images), "users": cfg.users, "antennas": cfg.antennas, "imperfect_csi": cfg.imperfect_csi,
            "mean": mean, "per_user": per_user}


def export_user(model: AdaptiveRateUser, cfg: TrainConfig, out_dir: str | Path, *, command: str, minutes: float,
                steps: int, training_log: list[dict], metrics: dict, threads: int = 1,
                policy_fit: dict | None = None) -> dict[str, Path]:
    """Export ``model`` (:func:`export_graphs`) as ``cfg.name()`` and write a card per graph.

    Parameters: cfg, the training config (name, seed, flags); command, the training command (no
        absolute paths, :func:`command_line`); minutes and steps of training; training_log, its
        entries (the last goes into the metrics); metrics, measured ones (:func:`card_metrics`);
        policy_fit, the ``fitted`` estimator's summary (fit_policy.fit_to), kept in the card.
    Returns: {role: ONNX path}.
    """
    name = cfg.name()
    paths = export_graphs(model, out_dir, name)
    arch = architecture(model)
    spec = io_spec(arch["antennas"], arch["maps"])
    tags = [f"no{flag}" for flag in ("entropy", "attention", "feedback", "pruning") if not arch[flag]]
    for role, path in paths.items():
        card = {
            "name": name, "system": SYSTEM, "role": role, "file": path.name,
            "bandwidth_ratio": None, "variant": "-".join(["adaptive", *tags]), "architecture": arch,
            "rate": "adaptive per image: the transmitter's decision (mask, ratio, kept) sets what is sent; "
                    "CPP = C_k (L_k + L'_k) / (2HW) (rate_control.cpp)",
            "temperature": 0.0, "data": DATA, "command": command, "seed": cfg.seed,
            "snr_range_db": list(SNR_RANGE_DB), "channels": ["rayleigh-mumimo"], "channel": CHANNEL,
            "snr_convention": "Es/N0 per complex symbol in dB at each base-station antenna, unit mean power "
                              "over the sent symbols of an image",
            "training_minutes": round(minutes, 2), "training_steps": steps, "batch_size": cfg.batch,
            "training_config": asdict(cfg), "threads": threads, "machine": machine(),
            "metrics": {**metrics, "final_training": training_log[-1] if training_log else None,
                        **({"policy_fit": policy_fit} if policy_fit else {})},
            "opset": OPSET, "inputs": spec[role]["inputs"], "outputs": spec[role]["outputs"],
            "weights": "the torch user is rebuilt from the initializers of the transmitter and receiver files "
                       "(export.user_from_onnx)",
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        }
        write_card(path, card)
    return paths


def config_from_name(stem: str, batch: int | None = None, beta: float | None = None) -> TrainConfig:
    """The :class:`TrainConfig` whose ``name()`` is ``stem``; ``batch`` and ``beta`` are not in the
    name (None = the TrainConfig defaults). Raises: ConfigError naming the stem when it is not such
    a name."""
    match = _NAME.fullmatch(stem)
    defaults = TrainConfig()
    if match is None:
        raise ConfigError(f"checkpoint name {stem!r}; allowed: a TrainConfig name, "
                          "adaptive-k<K>-m<M>-a<alpha>[-no<flag>...][-imperfect]-seed<S>-<steps>steps")
    tags = match["tags"] or ""
    cfg = TrainConfig(users=int(match["users"]), antennas=int(match["antennas"]), alpha=float(match["alpha"]),
                      beta=defaults.beta if beta is None else beta, steps=int(match["steps"]),
                      batch=defaults.batch if batch is None else batch, imperfect_csi=bool(match["imperfect"]),
                      seed=int(match["seed"]), estimator=match["estimator"] or "gumbel",
                      **{flag: f"-no{flag}" not in tags for flag in ("entropy", "attention", "feedback", "pruning")})
    if cfg.name() != stem:
        raise ConfigError(f"checkpoint name {stem!r} reads as {cfg.name()!r}; allowed: a TrainConfig name")
    return cfg


def command_line(cfg: TrainConfig) -> str:
    """The command that trains ``cfg``; the checkpoint folder shows as ``DIR`` (a card must not
    name a folder of the machine that trained it)."""
    words = ["python -m testbed.systems.adaptive_rate.train", f"--users {cfg.users}", f"--antennas {cfg.antennas}",
             f"--alpha {cfg.alpha:g}", f"--beta {cfg.beta:g}", f"--steps {cfg.steps}", f"--batch {cfg.batch}",
             f"--seed {cfg.seed}"]
    words += ["--imperfect-csi"] if cfg.imperfect_csi else []
    words += [f"--estimator {cfg.estimator}"] if cfg.estimator != "gumbel" else []
    words += [f"--no-{flag}" for flag in ("entropy", "attention", "feedback", "pruning") if not getattr(cfg, flag)]
    return " ".join(words + ["--ckpt-dir DIR"])


def load_checkpoint(path: str | Path, batch: int | None = None,
                    beta: float | None = None) -> tuple[TrainConfig, AdaptiveRateUser, dict]:
    """(config, user in eval mode, checkpoint state) of a finished training checkpoint of
    :func:`testbed.systems.adaptive_rate.train.train`. The config is the checkpoint's ``config``
    when it has one, else read from its file name (``batch``, ``beta``: see :func:`config_from_name`).

    Raises: ConfigError naming the file when it is missing, its name is no TrainConfig name or the
        training has not finished.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--checkpoint {str(path)!r} is not a file; allowed: a .ckpt written by "
                          "python -m testbed.systems.adaptive_rate.train")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state.get("config"), dict):
        cfg = TrainConfig(**state["config"])
        if cfg.name() != path.stem:
            raise ConfigError(f"--checkpoint {path.name}: its config is named {cfg.name()!r}; allowed: the file's name")
    else:
        cfg = config_from_name(path.stem, batch, beta)
    if state["step"] < cfg.steps or (cfg.estimator == "fitted" and "fit" not in state):
        raise ConfigError(f"--checkpoint {path.name}: training at step {state['step']} of {cfg.steps}"
                          f"{', policies not fitted' if state['step'] >= cfg.steps else ''}; allowed: a "
                          "finished training (the training command resumes it)")
    model = build(cfg)
    model.load_state_dict(state["model"])
    return cfg, model.eval(), state


def export_checkpoint(path: str | Path, out_dir: str | Path, *, batch: int | None = None, beta: float | None = None,
                      tiles: int | None = None, threads: int = 1) -> dict[str, Path]:
    """Export a finished checkpoint (:func:`load_checkpoint`) with :func:`card_metrics` on ``tiles``."""
    cfg, model, state = load_checkpoint(path, batch, beta)
    metrics = card_metrics(model, cfg, tiles)
    return export_user(model, cfg, out_dir, command=command_line(cfg), minutes=state["seconds"] / 60.0,
                       steps=state["step"], training_log=state["log"], metrics=metrics, threads=threads,
                       policy_fit=state.get("fit"))


def user_from_onnx(transmitter: str | Path, receiver: str | Path) -> AdaptiveRateUser:
    """The torch user (eval mode) built from the transmitter card's architecture with the weights
    of both files' initializers (``model.<state_dict key>``).

    Without pruning (the ablation) the pruning policy is in no graph; its weights stay freshly
    initialised (they change nothing: ``transmit`` does not call it), and so does the ``ratios``
    buffer (:data:`rate_control.PRUNING_RATIOS`). Raises: ModelError when a card cannot be read
    or any other weight is missing or has another shape.
    """
    arch = read_card(transmitter)["architecture"]
    try:
        model = AdaptiveRateUser(arch["antennas"], arch["maps"], entropy=arch["entropy"], attention=arch["attention"],
                                 feedback=arch["feedback"], pruning=arch["pruning"])
    except (KeyError, TypeError) as err:
        raise ModelError(f"{transmitter}: card architecture {arch} is invalid ({err!r})") from None
    found = {key[len("model."):]: value for path in (transmitter, receiver)
             for key, value in initializers(path).items() if key.startswith("model.")}
    state = model.state_dict()
    for key, ref in state.items():
        if key not in found:
            if not model.pruning and (key.startswith("prune.") or key == "ratios"):
                continue
            raise ModelError(f"{transmitter}, {receiver}: weight {key} is missing from the ONNX initializers")
        if tuple(found[key].shape) != tuple(ref.shape):
            raise ModelError(f"{transmitter}, {receiver}: weight {key} has shape {found[key].shape}, "
                             f"the model needs {tuple(ref.shape)}")
        state[key] = torch.from_numpy(found[key].copy())
    model.load_state_dict(state)
    return model.eval()


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.adaptive_rate.export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a finished .ckpt of adaptive_rate.train")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tiles", type=int, default=None, help="held-out tiles the card metrics use (default all)")
    parser.add_argument("--batch", type=int, default=None,
                        help="the training's --batch, when the checkpoint does not record its config")
    parser.add_argument("--beta", type=float, default=None,
                        help="the training's --beta, when the checkpoint does not record its config")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.tiles is not None and args.tiles < 1:
        raise ConfigError(f"--tiles {args.tiles}; allowed: >= 1")
    torch.set_num_threads(args.threads)
    paths = export_checkpoint(args.checkpoint, args.out, batch=args.batch, beta=args.beta, tiles=args.tiles,
                              threads=args.threads)
    return {role: str(path) for role, path in paths.items()}


if __name__ == "__main__":
    print(main())
