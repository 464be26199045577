"""ONNX export of a trained DeepSCM (or CM) model: one file per role, with model cards.

Roles and their graphs (N = batch, dynamic; n channel uses; L1, L2 PAM levels per real dimension):
    transmitter: image float32 (N, 1, 28, 28) -> inner_logp float32 (N, 2n, L1), outer_logp (N, 2n, L2)
        (CM: logp (N, 2n, L)); the node samples the levels from these log-probabilities (eq. 10)
    receiver1: symbols float32 (N, n, 2) -> image float32 (N, 1, 28, 28), logits float32 (N, 4)
    receiver2: symbols float32 (N, n, 2) -> image float32 (N, 1, 28, 28), logits float32 (N, 10)

As for the DeepJSCC models (testbed/onnx/export.py), constant folding is off and the weights stay
named ``model.<state_dict key>``, so the torch model is rebuilt from the three files
(:func:`testbed.systems.superposition.models.SuperpositionEntry.torch_model`) and the parity test
compares ONNX Runtime with the PyTorch source on the shipped weights.
"""
from __future__ import annotations

from pathlib import Path

import onnx
import torch

from testbed.onnx.card import machine, write_card
from testbed.onnx.export import OPSET, export_graph
from testbed.systems.superposition.models import ROLES

DATA = ("Fashion-MNIST (Debian dataset-fashion-mnist): the first 55000 training images (batches drawn "
        "uniformly), coarse labels = 4 groups of the 10 classes (tops; bottoms and dresses; footwear; bags); "
        "the last 5000 training images validate; metrics on the 10000 test images, never trained on")


class _Role(torch.nn.Module):
    """One role of ``model`` as a module for the exporter (the weights stay under ``model.``)."""

    def __init__(self, model: torch.nn.Module, role: str) -> None:
        super().__init__()
        self.model, self.role = model, role

    def forward(self, x: torch.Tensor):
        if self.role == "transmitter":
            return self.model.transmit_logits(x)
        return getattr(self.model, "rx" + self.role[-1])(x)


def io_spec(model: torch.nn.Module) -> dict[str, dict[str, list[dict]]]:
    """Names, shapes ("N" dynamic) and dtypes of each role's inputs and outputs."""
    def t(name: str, *shape) -> dict:
        return {"name": name, "shape": ["N", *shape], "dtype": "float32"}

    n = model.n
    if model.kind == "deepscm":
        tx_out = [t("inner_logp", 2 * n, model.modulator1.levels), t("outer_logp", 2 * n, model.modulator2.levels)]
    else:
        tx_out = [t("logp", 2 * n, model.modulator.levels)]
    spec = {"transmitter": {"inputs": [t("image", 1, 28, 28)], "outputs": tx_out}}
    for rx, classes in zip((1, 2), model.classes):
        spec[f"receiver{rx}"] = {"inputs": [t("symbols", n, 2)],
                                 "outputs": [t("image", 1, 28, 28), t("logits", classes)]}
    return spec


def export_onnx(model: torch.nn.Module, out_dir: Path, name: str) -> dict[str, Path]:
    """Write ``out_dir/<name>.<role>.onnx`` for every role (no cards); returns role -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    spec = io_spec(model)
    examples = {"transmitter": torch.rand(2, 1, 28, 28), "receiver1": torch.randn(2, model.n, 2),
                "receiver2": torch.randn(2, model.n, 2)}
    return {role: export_graph(_Role(model, role), (examples[role],), out_dir / f"{name}.{role}.onnx", spec[role])
            for role in ROLES}


def export(model: torch.nn.Module, out_dir: Path, cfg, *, minutes: float, command: str, training_log: list,
           threads: int = 1, metrics: dict | None = None) -> dict[str, Path]:
    """Evaluate on the test split (unless ``metrics`` is given), export every role, write the cards."""
    from testbed.systems.superposition.data import fashion_mnist
    from testbed.systems.superposition.evaluate import evaluate

    if metrics is None:
        test = fashion_mnist("test")
        metrics = {"test_soft": evaluate(model, test, cfg.snr_db, seed=0),
                   "test_hard": evaluate(model, test, cfg.snr_db, seed=0, rx_input="hard")}
    name = cfg.name()
    paths = export_onnx(model, out_dir, name)
    spec = io_spec(model)
    last = training_log[-1] if training_log else {}
    for role, path in paths.items():
        card = {
            "name": name, "system": "superposition", "role": role, "file": path.name,
            "bandwidth_ratio": f"{model.n}/784", "variant": cfg.scheme, "architecture": model.config(),
            "data": DATA, "command": command, "seed": cfg.seed, "snr_range_db": list(cfg.snr_db),
            "snr_convention": "Es/N0 per complex symbol in dB at Rx1 and Rx2, unit mean symbol power",
            "channels": ["awgn"], "training_minutes": round(minutes, 2), "training_steps": cfg.steps,
            "batch_size": cfg.batch_size, "threads": threads, "machine": machine(),
            "convergence": (f"{cfg.steps} steps of {cfg.batch_size} ({cfg.steps * cfg.batch_size / 55000:.1f} "
                            f"epochs over all stages; the paper trains 400 epochs): not converged; last "
                            f"validation {({k: round(v, 3) for k, v in last.items() if k.startswith('val_')})}"),
            "metrics": metrics, "opset": OPSET, "inputs": spec[role]["inputs"], "outputs": spec[role]["outputs"],
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        }
        write_card(path, card)
    return paths
