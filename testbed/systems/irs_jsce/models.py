"""The shipped IRS-JSCE models, registered under kind ``"system-model"`` from their cards in
``models/irs_jsce/`` (one entry per card name, no other list).

A model (testbed/systems/irs_jsce/export.py) is the user-independent encoder and decoder and the
trained 1-bit IRS phases of its cards. The torch modules are rebuilt from the ONNX initializers
and the cards' architecture, so the parity check compares ONNX Runtime with the PyTorch source
on the shipped weights.
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
FOLDER = MODELS_DIR / "irs_jsce"
ROLES = ("transmitter", "receiver")  # the encoder's and the decoder's roles (export.ROLES)


@dataclasses.dataclass(frozen=True)
class IrsJsceEntry:
    """One shipped model: name, IRS training (trained, fixed, off) and role -> ONNX path."""

    name: str
    irs: str
    files: dict

    def card(self, role: str = "transmitter") -> dict:
        return read_card(self.files[role])

    def phases(self) -> np.ndarray | None:
        """The trained IRS phases, float64 (N,) in {0, pi}; None for a model trained without IRS."""
        phases = self.card()["irs_phases_rad"]
        return None if phases is None else np.asarray(phases, np.float64)

    def torch_module(self, role: str):
        """The torch encoder or decoder with the shipped weights, in eval mode (ModelError when a
        file, card or weight is missing or misshapen)."""
        from testbed.onnx.export import state_dict_from_onnx
        from testbed.systems.irs_jsce.model import Decoder, Encoder

        path = Path(self.files.get(role, ""))
        if role not in ROLES or not path.is_file():
            raise ModelError(f"{self.name}: the {role} file {self.files.get(role)} is missing; allowed roles: "
                             f"{', '.join(ROLES)}")
        module = (Encoder if role == "transmitter" else Decoder)(**self.card(role)["architecture"])
        module.load_state_dict(state_dict_from_onnx(module, path))
        return module.eval()

    def session(self, role: str, threads: int = 1):
        from testbed.onnx.session import OnnxModel

        return OnnxModel(self.files[role], threads=threads, batch_size=64)

    def verify(self) -> list[str]:
        """Problems of the files and cards (empty = fine)."""
        problems = [f"{self.name}: no {role} file" for role in ROLES if role not in self.files]
        for role, path in self.files.items():
            try:
                card = self.session(role).card
                self.torch_module(role)
            except (TestbedError, RuntimeError) as err:
                problems.append(f"{self.name}: {role}: {err}")
                continue
            for field, value in {"name": self.name, "role": role, "system": "irs_jsce"}.items():
                if card.get(field) != value:
                    problems.append(f"{path}: card {field} is {card.get(field)!r}, expected {value!r}")
        return problems

    def parity(self, n: int = 2, seed: int = 0) -> float:
        """Largest |ONNX Runtime - torch| of both roles on random 32x48 images U(0, 1), unit Gaussian
        received symbols, random links (positions in [-2, 2] m) and random schedules."""
        import torch

        from testbed.systems.irs_jsce.export import _DecoderGraph, _EncoderGraph

        rng = np.random.default_rng(seed)
        link = rng.uniform(-2, 2, (n, 4)).astype(np.float32)
        slot = (rng.random((n, self.card()["architecture"]["n_users"])) < 0.5).astype(np.float32)
        inputs = {"transmitter": {"image": rng.random((n, 3, 32, 48), dtype=np.float32), "link": link, "slot": slot},
                  "receiver": {"symbols": rng.normal(0, 1, (n, 8, 12, 8, 2)).astype(np.float32), "link": link,
                              "slot": slot}}
        worst = 0.0
        with torch.no_grad():
            for role, feed in inputs.items():
                graph = (_EncoderGraph if role == "transmitter" else _DecoderGraph)(self.torch_module(role))
                ref = graph(*(torch.from_numpy(v) for v in feed.values())).numpy()
                out = next(iter(self.session(role).run(**feed).values()))
                worst = max(worst, float(np.max(np.abs(ref - out))))
        return worst


def read_folder(folder: Path = FOLDER) -> list[IrsJsceEntry]:
    """One entry per model name found in the cards below ``folder`` (not registered)."""
    found: dict[str, dict] = {}
    for card_file in sorted(Path(folder).glob("*.json")):
        card = read_card(card_file.with_suffix(".onnx"))
        if card.get("system") == "irs_jsce":
            entry = found.setdefault(card["name"], {"irs": card["irs"]["training"], "files": {}})
            entry["files"][card["role"]] = card_file.with_suffix(".onnx")
    return [IrsJsceEntry(name, parts["irs"], parts["files"]) for name, parts in sorted(found.items())]


def register_folder(folder: Path = FOLDER, kind: str = KIND) -> list[IrsJsceEntry]:
    """Register the entries of :func:`read_folder` under ``kind``."""
    entries = read_folder(folder)
    for entry in entries:
        register(kind, entry.name)(entry)
    return entries


ENTRIES = {entry.name: entry for entry in register_folder()}
