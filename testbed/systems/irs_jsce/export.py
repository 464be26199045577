"""ONNX export of a trained IRS-JSCE model: the user-independent encoder and decoder, with cards
that carry the trained 1-bit IRS phases.

Files of a model ``<name>`` (e.g. ``irs-jsce-irs8x8-4000steps``), each with its card:
    ``<name>.transmitter.onnx`` (the encoder): image float32 (N, 3, H, W) (H, W multiples of 4), link float32 (N, 4),
        slot float32 (N, 5) -> symbols float32 (N, L, 2), L = H W / 2, s^a of eq. (5) before the
        TX's normalisation;
    ``<name>.receiver.onnx`` (the decoder): symbols float32 (N, H/4, W/4, 8, 2) (the MMSE-scaled received
        symbols in the encoder's order), link float32 (N, 4), slot float32 (N, 5) -> image float32
        (N, 3, H, W).
link is the receiver's and the transmitter's (x, y) in metres (:func:`model.link_features`; the
users' positions are in the card's ``users_m``), slot the slot's schedule
(1 for each transmitter, :func:`model.slot_indicator`). The cards hold
``irs_phases_rad`` (the trained phases quantised to {0, pi}, element n = row * cols + col; null
for a model trained without IRS), the geometry's surface size and ``noise_var``.
Weights keep their state_dict names under ``model.`` (testbed/onnx/export.py), so the torch
modules are rebuilt from the shipped files for the parity test.
"""
from __future__ import annotations

import math
from pathlib import Path

import onnx
import torch

from testbed.onnx.card import machine, write_card
from testbed.onnx.export import OPSET, export_graph
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.model import BANDWIDTH_RATIO, LATENT_CHANNELS, N_USERS, STRIDE, Decoder, Encoder
from testbed.systems.irs_jsce.train import TrainConfig, geometry_for, load_models

DATA = ("random {crop}x{crop} crops (random flips) of the offline photo corpus, train split "
        "(testbed.data.images.photo_corpus: Debian wallpapers, sporco/scikit-image/scikit-learn photos; the "
        "paper's CIFAR-10 and ImageNet are not installable offline); metrics on the held-out photos (kodim23, "
        "astronaut, coffee, chelsea; 256x256 centre crops sent as 32x32 tiles), never trained on")
ROLES = ("transmitter", "receiver")  # not encoder/decoder: the generic DeepJSCC registry claims those names
_SLOT = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 0]])


class _EncoderGraph(torch.nn.Module):
    def __init__(self, model: Encoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, link: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        return self.model(image, link, slot)


class _DecoderGraph(torch.nn.Module):
    """The decoder on symbols shaped (N, H/4, W/4, c/2, 2), so the graph knows the image size."""

    def __init__(self, model: Decoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, symbols: torch.Tensor, link: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        n, rows, cols = symbols.shape[0], symbols.shape[1], symbols.shape[2]
        return self.model(symbols.reshape(n, -1, 2), link, slot, rows * STRIDE, cols * STRIDE)


def _t(name: str, *shape) -> dict:
    return {"name": name, "shape": ["N", *shape], "dtype": "float32"}


SPECS = {
    "transmitter": {"inputs": [_t("image", 3, "H", "W"), _t("link", 4), _t("slot", N_USERS)],
                "outputs": [_t("symbols", "L", 2)]},
    "receiver": {"inputs": [_t("symbols", "H/4", "W/4", LATENT_CHANNELS // 2, 2), _t("link", 4), _t("slot", N_USERS)],
                "outputs": [_t("image", 3, "H", "W")]},
}


def export_role(role: str, module: torch.nn.Module, path: Path) -> Path:
    if role == "transmitter":
        return export_graph(_EncoderGraph(module.eval()), (torch.rand(2, 3, 32, 48), torch.randn(2, 4), _SLOT), path,
                            SPECS[role])
    return export_graph(_DecoderGraph(module.eval()), (torch.randn(2, 8, 12, LATENT_CHANNELS // 2, 2),
                                                        torch.randn(2, 4), _SLOT), path, SPECS[role])


def convergence(cfg: TrainConfig, history: list) -> str:
    """How far from converged, measured: the running MSE at the middle and at the end of the run
    (history rows are [step, elapsed_s, running MSE] every 50 steps)."""
    head = f"{cfg.steps} steps of {cfg.batch_slots} slots of {cfg.crop}x{cfg.crop} crops, one per link"
    if len(history) < 2:
        return f"{head}; too few logged steps to judge convergence"
    middle, end = history[(len(history) - 1) // 2][2], history[-1][2]
    change = 100.0 * (middle - end) / middle
    verdict = "not converged: the loss was still falling" if change > 1.0 else "the loss had levelled off"
    return (f"{head}; running MSE {middle:.5f} at the middle, {end:.5f} at the end ({change:.1f} % lower, "
            f"with the learning rate annealed): {verdict}")


def export_checkpoint(checkpoint: Path, out_dir: Path, command: str, threads: int = 1,
                      metrics: dict | None = None) -> list[Path]:
    """Evaluate on the held-out photos (unless ``metrics``), export both roles, write the cards."""
    from testbed.systems.irs_jsce.evaluate import model_metrics

    state = torch.load(checkpoint, weights_only=False)
    cfg, encoder, decoder, phases = load_models(checkpoint)
    geometry = geometry_for(cfg)
    one_bit = None if cfg.irs == "off" else channel.one_bit(phases)
    if metrics is None:
        metrics = model_metrics(encoder, decoder, geometry, phases if cfg.irs != "off" else None, cfg.noise_var)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = {
        "name": cfg.name(), "system": "irs_jsce", "bandwidth_ratio": BANDWIDTH_RATIO, "variant": f"irs-{cfg.irs}",
        "data": DATA.format(crop=cfg.crop), "command": command, "seed": cfg.seed,
        "noise_var": cfg.noise_var, "users_m": geometry.users_m[:, :2].tolist(),
        "snr_range_db": [round(-10 * math.log10(cfg.noise_var), 2)] * 2,
        "snr_convention": "unit power per TX over sigma^2 = noise_var per complex symbol, before the channel "
                          "gain |h_{r,k}|^2 (the paper's fixed sigma^2 = 0.1)",
        "irs": {"rows": geometry.array.rows, "cols": geometry.array.cols, "training": cfg.irs,
                "geometry": "testbed/systems/irs_jsce/geometry.yaml"},
        "irs_phases_rad": None if one_bit is None else one_bit.tolist(),
        "channels": ["irs"], "training_minutes": round(state["elapsed_s"] / 60.0, 2), "training_steps": cfg.steps,
        "batch_slots": cfg.batch_slots, "crop": cfg.crop, "threads": threads, "machine": machine(),
        "convergence": convergence(cfg, state["history"]), "metrics": metrics, "opset": OPSET,
        "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        "architecture": encoder.config(),
    }
    paths = []
    for role, module in zip(ROLES, (encoder, decoder)):
        paths.append(export_role(role, module, out_dir / f"{cfg.name()}.{role}.onnx"))
        write_card(paths[-1], {**card, "role": role, "file": paths[-1].name, "inputs": SPECS[role]["inputs"],
                               "outputs": SPECS[role]["outputs"]})
    return paths
