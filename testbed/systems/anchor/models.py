"""The shipped anchor-aided broadcast model sets, registered under kind ``"system-model"`` from
their cards in ``models/anchor/`` (one entry per card name, no other list).

A set (testbed/systems/anchor/export.py) is the base-station encoder (role ``transmitter``) and
one decoder per role (the anchor and
the user families), plus, for ``iterative``, the encoders of the forgetting turns. The torch
modules are rebuilt from the ONNX initializers and the cards' architecture, so the parity check
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
FOLDER = MODELS_DIR / "anchor"
ENCODER = "transmitter"  # the base-station encoder's role (export.TRANSMITTER)


@dataclasses.dataclass(frozen=True)
class AnchorEntry:
    """One shipped model set: name, scheme, channel, and role -> ONNX path."""

    name: str
    scheme: str
    channel: str
    files: dict

    def card(self, role: str = ENCODER) -> dict:
        return read_card(self.files[role])

    @property
    def decoders(self) -> list[str]:
        """The decoder roles: the anchor (two_stage) and the user families."""
        return [r for r in self.files if not r.startswith(ENCODER)]

    @property
    def encoders(self) -> list[str]:
        return [r for r in self.files if r.startswith(ENCODER)]

    def torch_module(self, role: str):
        """The torch encoder or decoder of ``role`` with the shipped weights, in eval mode.

        Raises: ModelError when the file or card is missing, the family is not registered, or a
        weight is absent or misshapen."""
        from testbed.onnx.export import state_dict_from_onnx
        from testbed.systems.anchor.model import DECODERS, Encoder

        path = Path(self.files.get(role, ""))
        if not path.is_file():
            raise ModelError(f"{self.name}: the {role} file {self.files.get(role)} is missing")
        arch = dict(self.card(role)["architecture"])
        arch.pop("class")
        family = arch.pop("family", None)
        if role.startswith(ENCODER):
            module = Encoder(**arch)
        elif family in DECODERS:
            module = DECODERS[family](**arch)
        else:
            raise ModelError(f"{path}: decoder family {family!r} is not registered; allowed: {', '.join(DECODERS)}")
        module.load_state_dict(state_dict_from_onnx(module, path))
        return module.eval()

    def session(self, role: str, threads: int = 1):
        from testbed.onnx.session import OnnxModel

        return OnnxModel(self.files[role], threads=threads, batch_size=64)

    def verify(self) -> list[str]:
        """Problems of the files and cards (empty = fine)."""
        problems = []
        for role, path in self.files.items():
            try:
                card = self.session(role).card
            except ModelError as err:
                problems.append(f"{self.name}: {role}: {err}")
                continue
            for field, value in {"name": self.name, "role": role, "system": "anchor", "variant": self.scheme}.items():
                if card.get(field) != value:
                    problems.append(f"{path}: card {field} is {card.get(field)!r}, expected {value!r}")
            if not problems:
                try:
                    self.torch_module(role)
                except (TestbedError, RuntimeError) as err:
                    problems.append(str(err))
        return problems

    def parity(self, n: int = 2, seed: int = 0) -> float:
        """Largest |ONNX Runtime - torch| over every role, on random 32x48 images U(0, 1) and unit
        Gaussian received symbols, at random SNRs in [0, 15] dB."""
        import torch

        rng = np.random.default_rng(seed)
        snr = rng.uniform(0, 15, (n, 1)).astype(np.float32)
        image = rng.random((n, 3, 32, 48), dtype=np.float32)
        symbols = rng.normal(0, 1, (n, 8, 12, 8, 2)).astype(np.float32)
        worst = 0.0
        with torch.no_grad():
            for role in self.files:
                x = image if role.startswith(ENCODER) else symbols
                ref = self.torch_module(role)(torch.from_numpy(x), torch.from_numpy(snr)).numpy()
                out = self.session(role).run(**{"image" if role.startswith(ENCODER) else "symbols": x, "snr_db": snr})
                worst = max(worst, float(np.max(np.abs(ref - next(iter(out.values()))))))
        return worst


def register_folder(folder: Path = FOLDER, kind: str = KIND) -> list[AnchorEntry]:
    """Register one entry per model-set name found in the cards below ``folder``."""
    found: dict[str, dict] = {}
    for card_file in sorted(Path(folder).glob("*.json")):
        card = read_card(card_file.with_suffix(".onnx"))
        if card.get("system") == "anchor":
            entry = found.setdefault(card["name"], {"scheme": card["variant"], "channel": card["channels"][0], "files": {}})
            entry["files"][card["role"]] = card_file.with_suffix(".onnx")
    entries = []
    for name, parts in sorted(found.items()):
        entry = AnchorEntry(name, parts["scheme"], parts["channel"], parts["files"])
        register(kind, name)(entry)
        entries.append(entry)
    return entries


ENTRIES = {entry.name: entry for entry in register_folder()}
