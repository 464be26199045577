"""ONNX export of a trained anchor-aided broadcast: the encoder and every decoder, with cards.

Files of a model set ``<name>`` (e.g. ``anchor-awgn-two-stage``), one per role, each with its card:
    ``<name>.transmitter.onnx`` (the base-station encoder): image float32 (N, 3, H, W), snr_db float32 (N, 1) -> symbols float32
        (N, K, 2), K = H W / 2 (H, W multiples of 4), unit average power per image;
    ``<name>.<decoder>.onnx`` for the anchor decoder (two_stage only) and each user family:
        symbols float32 (N, H/4, W/4, 8, 2), snr_db float32 (N, 1) -> image float32 (N, 3, H, W);
    ``<name>.transmitter-turn<j>.onnx`` (iterative only): the encoder after turn j of the forgetting
        experiment (:mod:`testbed.systems.anchor.train`; turn 3, the last of the last round, is
        ``transmitter`` itself and is not repeated).
The encoder's role is ``transmitter`` (not ``encoder``): the set registers itself
(:mod:`testbed.systems.anchor.models`), not as a DeepJSCC encoder/decoder pair.
Weights keep their state_dict names under ``model.`` (testbed/onnx/export.py), so the torch
modules are rebuilt from the shipped files for the parity tests.
"""
from __future__ import annotations

from pathlib import Path

import onnx
import torch

from testbed.onnx.card import machine, write_card
from testbed.onnx.export import OPSET, export_graph
from testbed.systems.anchor.model import BANDWIDTH_RATIO, LATENT_CHANNELS
from testbed.systems.anchor.train import ANCHOR, TRAIN_SNRS_DB, TrainConfig, load_models, module_steps, schedule

DATA = ("random {crop}x{crop} crops (random flips) of the offline photo corpus, train split "
        "(testbed.data.images.photo_corpus: Debian wallpapers, sporco/scikit-image/scikit-learn photos, short "
        "side 512 px; the paper's DIV2K is not installable offline); metrics on the held-out full-size photos "
        "(kodim23, astronaut, coffee, chelsea), never trained on")
FINAL_TURN = "turn3"
TRANSMITTER = "transmitter"


class _Role(torch.nn.Module):
    """A module as the exporter sees it (weights under ``model.``). ``snr_db`` enters every graph
    (``+ 0 * snr_db`` per image, exactly zero), so a decoder family that ignores it still has
    the interface every user decoder has."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        out = self.model(x, snr_db)
        return out + 0.0 * snr_db.reshape(-1, *([1] * (out.ndim - 1)))


def _t(name: str, *shape) -> dict:
    return {"name": name, "shape": ["N", *shape], "dtype": "float32"}


ENCODER_SPEC = {"inputs": [_t("image", 3, "H", "W"), _t("snr_db", 1)], "outputs": [_t("symbols", "K", 2)]}
DECODER_SPEC = {"inputs": [_t("symbols", "H/4", "W/4", LATENT_CHANNELS // 2, 2), _t("snr_db", 1)],
                "outputs": [_t("image", 3, "H", "W")]}


def export_encoder(encoder: torch.nn.Module, path: Path) -> Path:
    example = (torch.rand(2, 3, 32, 48), torch.full((2, 1), 7.0))
    return export_graph(_Role(encoder.eval()), example, path, ENCODER_SPEC)


def export_decoder(decoder: torch.nn.Module, path: Path) -> Path:
    example = (torch.randn(2, 8, 12, LATENT_CHANNELS // 2, 2), torch.full((2, 1), 7.0))
    return export_graph(_Role(decoder.eval()), example, path, DECODER_SPEC)


def convergence(cfg: TrainConfig, history: list) -> str:
    """How far from converged, measured: the running MSE of the last non-extra phase at its middle
    and at its end (history rows are [phase, step, elapsed_s, running MSE] every 50 steps)."""
    phases = schedule(cfg)
    last = max(i for i, p in enumerate(phases) if not p.extra)
    rows = [r for r in history if r[0] == last]
    head = (f"{cfg.steps} steps of {cfg.batch_size} {cfg.crop}x{cfg.crop} crops per decoder "
            f"({cfg.steps * cfg.batch_size} crops; the paper trains DIV2K for many epochs)")
    if len(rows) < 2:
        return f"{head}; too few logged steps to judge convergence"
    middle, end = rows[(len(rows) - 1) // 2][3], rows[-1][3]
    change = 100.0 * (middle - end) / middle
    verdict = "not converged: the loss was still falling" if change > 1.0 else "the loss had levelled off"
    return (f"{head}; running MSE of the last phase {middle:.5f} at its middle, {end:.5f} at its end "
            f"({change:.1f} % lower, with the learning rate annealed): {verdict}")


def base_card(cfg: TrainConfig, command: str, minutes: float, threads: int, metrics: dict, history: list) -> dict:
    """The card fields every role of a model set shares."""
    steps = module_steps(cfg)
    return {
        "name": cfg.name(), "system": "anchor", "bandwidth_ratio": BANDWIDTH_RATIO, "variant": cfg.scheme,
        "data": DATA.format(crop=cfg.crop), "command": command, "seed": cfg.seed,
        "snr_range_db": [min(TRAIN_SNRS_DB), max(TRAIN_SNRS_DB)], "train_snrs_db": list(TRAIN_SNRS_DB),
        "snr_convention": "Es/N0 per complex symbol in dB, unit mean symbol power per image",
        "channels": [cfg.channel], "training_minutes": round(minutes, 2), "training_steps": steps,
        "batch_size": cfg.batch_size, "crop": cfg.crop, "threads": threads, "machine": machine(),
        "convergence": convergence(cfg, history),
        "metrics": metrics, "opset": OPSET, "torch_version": torch.__version__, "onnx_version": onnx.__version__,
    }


def export_checkpoint(checkpoint: Path, out_dir: Path, command: str, threads: int = 1,
                      metrics: dict | None = None) -> list[Path]:
    """Evaluate the kept models on the held-out photos (unless ``metrics``), export every role, write the cards."""
    from testbed.systems.anchor.evaluate import evaluate

    state = torch.load(checkpoint, weights_only=False)
    cfg, encoder, decoders, snapshots = load_models(checkpoint)
    if metrics is None:
        metrics = {f"photos_{cfg.channel}": evaluate(encoder, decoders, TRAIN_SNRS_DB, cfg.channel)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = base_card(cfg, command, state["elapsed_s"] / 60.0, threads, metrics, state["history"])
    arch = {"width": encoder.width, "latent_channels": encoder.latent_channels}
    paths = [export_encoder(encoder, out_dir / f"{cfg.name()}.{TRANSMITTER}.onnx")]
    write_card(paths[-1], {**card, "role": TRANSMITTER, "file": paths[-1].name, "architecture": {"class": "Encoder", **arch},
                           "inputs": ENCODER_SPEC["inputs"], "outputs": ENCODER_SPEC["outputs"]})
    for tag, weights in sorted(snapshots.items()):
        if tag == FINAL_TURN:
            continue
        snap = type(encoder)(**encoder.config())
        snap.load_state_dict(weights)
        paths.append(export_encoder(snap, out_dir / f"{cfg.name()}.{TRANSMITTER}-{tag}.onnx"))
        write_card(paths[-1], {**card, "role": f"{TRANSMITTER}-{tag}", "file": paths[-1].name,
                               "architecture": {"class": "Encoder", **arch},
                               "inputs": ENCODER_SPEC["inputs"], "outputs": ENCODER_SPEC["outputs"]})
    for name, decoder in decoders.items():
        family = "attention" if name == ANCHOR else name
        paths.append(export_decoder(decoder, out_dir / f"{cfg.name()}.{name}.onnx"))
        write_card(paths[-1], {**card, "role": name, "file": paths[-1].name,
                               "architecture": {"class": type(decoder).__name__, "family": family, **arch},
                               "inputs": DECODER_SPEC["inputs"], "outputs": DECODER_SPEC["outputs"]})
    return paths
