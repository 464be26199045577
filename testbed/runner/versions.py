"""Versions recorded in every metrics.json, and the git revision of the run."""
from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

import testbed


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """testbed, GNU Radio, ONNX Runtime, torch and numpy versions (None when absent)."""
    try:
        from gnuradio import gr

        gnuradio = gr.version()
    except ImportError:
        gnuradio = None
    return {"testbed": testbed.__version__, "gnuradio": gnuradio, "onnxruntime": _version("onnxruntime"),
            "torch": _version("torch"), "numpy": _version("numpy"), "git": git_revision()}


def git_revision() -> str | None:
    root = Path(testbed.__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def relative_path(path: Path) -> str:
    """A model path relative to the working directory when it lies below it (as metrics.json names it)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
