"""Model cards: the JSON file beside every shipped ``.onnx`` (same stem, ``.json``).

A card says what the file is and how it was made (docs/architecture.md "Contracts: ONNX models"): name,
system, role, bandwidth ratio, variant, training data, the exact training command, seed, SNR
range, channels, training minutes, machine, measured metrics, opset, the named inputs and
outputs with shapes (``"N"`` = the dynamic batch axis) and dtypes, and the sha256 of the
``.onnx`` file. :class:`testbed.onnx.session.OnnxModel` refuses a file that does not match it.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from testbed.errors import ModelError

REQUIRED_FIELDS = (
    "name", "system", "role", "bandwidth_ratio", "variant", "architecture", "data", "command", "seed",
    "snr_range_db", "channels", "training_minutes", "machine", "metrics", "opset", "inputs", "outputs",
    "sha256",
)
ROLES = ("encoder", "decoder")


def card_path(onnx_path: str | Path) -> Path:
    """The card of an ONNX file: ``x.encoder.onnx`` -> ``x.encoder.json``."""
    return Path(onnx_path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def machine() -> dict:
    """The CPU model, core count and OS of this machine (for the card's "machine" field)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform()}


def write_card(onnx_path: str | Path, card: dict) -> Path:
    """Write ``card`` beside ``onnx_path`` with the file's sha256 filled in; returns the card path."""
    card = dict(card, sha256=sha256_file(onnx_path))
    missing = [field for field in REQUIRED_FIELDS if field not in card]
    if missing:
        raise ModelError(f"{onnx_path}: model card lacks {', '.join(missing)}")
    path = card_path(onnx_path)
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def read_card(onnx_path: str | Path) -> dict:
    """The card of ``onnx_path``; ModelError naming the file when it is missing, not JSON or incomplete."""
    path = card_path(onnx_path)
    if not path.is_file():
        raise ModelError(f"{onnx_path}: model card {path} is missing")
    try:
        card = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"{onnx_path}: model card {path} is not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{onnx_path}: model card {path} is not a JSON object")
    missing = [field for field in REQUIRED_FIELDS if field not in card]
    if missing:
        raise ModelError(f"{onnx_path}: model card {path} lacks {', '.join(missing)}")
    return card
