"""The shipped DeepSCM / CM models, registered under kind ``"system-model"`` from their
model cards in ``models/superposition/`` (one entry per card name, no other list).

Each model is three ONNX files, ``<name>.transmitter.onnx``, ``<name>.receiver1.onnx`` and
``<name>.receiver2.onnx`` (testbed/systems/superposition/export.py), each with its card. The
torch model is rebuilt from their initializers and the card's architecture, so the parity check
compares ONNX Runtime with the PyTorch source on the shipped weights.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from testbed.errors import ModelError, TestbedError
from testbed.models_registry import MODELS_DIR
from testbed.onnx.card import read_card
from testbed.registry import register

KIND = "system-model"
ROLES = ("transmitter", "receiver1", "receiver2")
FOLDER = MODELS_DIR / "superposition"
# Buffers the exported graphs do not need (the PAM levels are used only when sampling in torch;
# BatchNorm's step counter only in training): rebuilt from the architecture instead.
_REBUILT = ("points", "num_batches_tracked")


@dataclasses.dataclass(frozen=True)
class SuperpositionEntry:
    """One shipped model: name, variant (``deepscm`` or a CM scheme), and role -> ONNX path."""

    name: str
    variant: str
    files: dict

    @property
    def card(self) -> dict:
        return read_card(self.files["transmitter"])

    def torch_model(self):
        """The torch module with the weights of the three ONNX files, in eval mode.

        Raises: ModelError when a file or card is missing or a weight is absent or misshapen."""
        import torch

        from testbed.onnx.export import initializers
        from testbed.systems.superposition.model import CodedModulation, DeepSCM

        for role in ROLES:
            if not Path(self.files.get(role, "")).is_file():
                raise ModelError(f"{self.name}: the {role} file {self.files.get(role)} is missing")
        arch = self.card["architecture"]
        model = (DeepSCM if self.variant == "deepscm" else CodedModulation)(**arch)
        found: dict[str, np.ndarray] = {}
        for path in self.files.values():
            found.update({k[len("model."):]: v for k, v in initializers(path).items() if k.startswith("model.")})
        state = model.state_dict()
        for key, ref in state.items():
            if key.rsplit(".", 1)[-1] in _REBUILT:
                continue
            if key not in found or tuple(found[key].shape) != tuple(ref.shape):
                raise ModelError(f"{self.name}: weight {key} is missing from the ONNX files or misshapen")
            state[key] = torch.from_numpy(found[key].copy())
        model.load_state_dict(state)
        return model.eval()

    def sessions(self, threads: int = 1) -> dict:
        from testbed.onnx.session import OnnxModel

        return {role: OnnxModel(path, threads=threads, batch_size=1024) for role, path in self.files.items()}

    def verify(self) -> list[str]:
        """Problems of the files and cards (empty = fine)."""
        from testbed.onnx.session import OnnxModel

        problems = []
        for role in ROLES:
            try:
                card = OnnxModel(self.files[role]).card
            except (ModelError, KeyError) as err:
                problems.append(f"{self.name}: {role}: {err}")
                continue
            for field, value in {"name": self.name, "role": role, "system": "superposition",
                                 "variant": self.variant}.items():
                if card.get(field) != value:
                    problems.append(f"{self.files[role]}: card {field} is {card.get(field)!r}, expected {value!r}")
        if not problems:
            try:
                self.torch_model()
            except (TestbedError, RuntimeError) as err:
                problems.append(str(err))
        return problems

    def parity(self, n: int = 8, seed: int = 0) -> float:
        """Largest |ONNX Runtime - torch| over every output of every role, on random inputs
        (images U(0, 1); received symbols: unit-variance Gaussian)."""
        import torch

        with torch.no_grad():
            return self._parity(n, seed)

    def _parity(self, n: int, seed: int) -> float:
        import torch

        rng = np.random.default_rng(seed)
        model, onnx = self.torch_model(), self.sessions()
        image = rng.random((n, 1, 28, 28), dtype=np.float32)
        worst = 0.0
        torch_tx = model.transmit_logits(torch.from_numpy(image))
        onnx_tx = onnx["transmitter"].run(image=image)
        for ref, name in zip(torch_tx, onnx["transmitter"].output_names):
            worst = max(worst, float(np.max(np.abs(ref.numpy() - onnx_tx[name]))))
        symbols = rng.normal(0, 1, (n, model.n, 2)).astype(np.float32)
        for rx in (1, 2):
            ref_image, ref_logits = getattr(model, f"rx{rx}")(torch.from_numpy(symbols))
            out = onnx[f"receiver{rx}"].run(symbols=symbols)
            worst = max(worst, float(np.max(np.abs(ref_image.numpy() - out["image"]))),
                        float(np.max(np.abs(ref_logits.numpy() - out["logits"]))))
        return worst


def register_folder(folder: Path = FOLDER) -> list[SuperpositionEntry]:
    """Register one entry per model name found in the cards below ``folder``."""
    found: dict[str, dict] = {}
    for card_file in sorted(Path(folder).glob("*.json")):
        card = read_card(card_file.with_suffix(".onnx"))
        if card.get("system") == "superposition":
            found.setdefault(card["name"], {"variant": card["variant"], "files": {}})["files"][card["role"]] = \
                card_file.with_suffix(".onnx")
    entries = []
    for name, parts in sorted(found.items()):
        entry = SuperpositionEntry(name, parts["variant"], parts["files"])
        register(KIND, name)(entry)
        entries.append(entry)
    return entries


ENTRIES = {entry.name: entry for entry in register_folder()}
