"""The shipped neural models, registered under kind ``"model"`` from their model cards: one entry
per card name found below ``models/``, no other list.

    from testbed.registry import get, create, names
    names("model")                    # ['adjscc-r12', 'adjscc-r6', 'deepjscc-r12', 'deepjscc-r6']
    entry = get("model", "adjscc-r6") # ModelEntry: paths of the ONNX files, variant, ratio
    torch_model = create("model", "adjscc-r6")  # the DeepJSCC torch module with the shipped weights

Files live in ``models/deepjscc/`` at the repository root: ``<name>.encoder.onnx``,
``<name>.decoder.onnx`` and their model cards ``<name>.encoder.json`` / ``<name>.decoder.json``.
The torch model is rebuilt from the ONNX initializers (the export keeps every ``state_dict``
name, :func:`testbed.onnx.export.state_dict_from_onnx`) and the architecture in the card: the
parity check then compares ONNX Runtime with the PyTorch source code (``DeepJSCC.encode`` /
``decode``) on the very weights that are shipped, and no second weights file can drift from them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from testbed.registry import register

MODELS_DIR = Path(os.environ.get("TESTBED_MODELS_DIR", Path(__file__).resolve().parents[1] / "models"))


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One shipped transceiver.

    Attributes: name (e.g. ``"adjscc-r6"``); system; variant (``"deepjscc"``/``"adjscc"``);
        bandwidth_ratio (``"1/6"``/``"1/12"``); encoder, decoder: paths of the ONNX files.
    Calling the entry (``create("model", name)``) returns the torch model.
    """

    name: str
    variant: str
    bandwidth_ratio: str
    encoder: Path | None
    decoder: Path | None
    system: str = "deepjscc"

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.encoder, self.decoder

    def torch_model(self):
        """The torch DeepJSCC / WholeImageJSCC module with the weights of the ONNX files, in eval mode.

        Raises: ModelError when a file or card is missing, the architecture is not recorded,
            or a weight is absent.
        """
        from testbed.errors import ModelError
        from testbed.onnx.card import read_card
        from testbed.onnx.export import state_dict_from_onnx
        from testbed.systems.deepjscc.model import DeepJSCC
        from testbed.systems.deepjscc.whole_image import WholeImageJSCC

        for path in self.paths:
            if not Path(path).is_file():
                raise ModelError(f"{path}: model file is missing")
        card = read_card(self.encoder)
        try:
            model = (WholeImageJSCC if card.get("whole_image") else DeepJSCC)(**card["architecture"])
        except TypeError as err:
            raise ModelError(f"{self.encoder}: card architecture {card['architecture']} is invalid ({err})") from None
        model.load_state_dict(state_dict_from_onnx(model, *self.paths))
        return model.eval()

    def __call__(self):
        return self.torch_model()


def register_cards(folder: Path) -> list[ModelEntry]:
    """Register one entry per model name found in the cards (``*.json`` with ``name``, ``system``
    and ``role``) below ``folder``; the ONNX file of each card is its ``file`` beside it. A
    folder that does not exist registers nothing."""
    from testbed.onnx.card import read_card

    found: dict[str, dict] = {}
    for card_file in sorted(Path(folder).glob("**/*.json")):
        if not _is_model_card(card_file):  # other data beside the models, e.g. the digital BLER table
            continue
        onnx_file = card_file.with_suffix(".onnx")  # a missing file is reported when it is loaded
        card = read_card(onnx_file)
        found.setdefault(card["name"], {"card": card})[card["role"]] = onnx_file
    entries = []
    for name, parts in found.items():
        card = parts["card"]
        entry = ModelEntry(name=name, variant=card.get("variant", name), system=card["system"],
                           bandwidth_ratio=str(card.get("bandwidth_ratio", "")),
                           encoder=parts.get("encoder"), decoder=parts.get("decoder"))
        register("model", name)(entry)
        entries.append(entry)
    return entries


def _is_model_card(path: Path) -> bool:
    """Whether a JSON file is the card of an encoder or decoder (``name``, ``system``, ``role``
    in ``encoder``/``decoder``); unreadable files count as cards, so that loading them reports
    what is wrong. Cards of other roles (e.g. superposition's ``transmitter``/``receiver1``) are
    registered by their own system."""
    from testbed.onnx.card import ROLES

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return True
    return not isinstance(doc, dict) or ({"name", "system", "role"} <= set(doc) and doc["role"] in ROLES)


ENTRIES = {entry.name: entry for entry in register_cards(MODELS_DIR)}
