"""One registry of systems, channels, radios and models.

Everything with a name that a user can pick (CLI choices, GNU Radio block parameters,
parametrised tests) is looked up here, so no second list of names exists anywhere.

    @register("channel", "awgn")
    class Awgn: ...

    create("channel", "awgn", snr_db=10)
    names("channel")  # ['awgn', ...]
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from testbed.errors import ConfigError

T = TypeVar("T")
# "model": encoder/decoder transceivers (the DeepJSCC family, plugins); "system-model": trained
# models whose ONNX roles are their system's own (e.g. superposition's transmitter, receiver1,
# receiver2), registered by that system, each with ``verify()`` and ``parity()``.
# "irs-channel": a system's own IRS channel model for the emulator (``topology.irs.channel``),
# built from the surface fields and the node positions (docs/architecture.md "Topologies").
KINDS = ("system", "channel", "radio", "model", "codec", "system-model", "irs-channel")
_TABLES: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
# Modules whose import registers entries; imported lazily on the first lookup.
_PROVIDERS = (
    "testbed.codecs",
    "testbed.channels",
    "testbed.radios",
    "testbed.models_registry",
    "testbed.systems",
)
_loaded = False
PLUGINS_ENV = "TESTBED_PLUGINS"
"""Folders (``os.pathsep``-separated) of out-of-tree systems, loaded with the providers; node
processes inherit the variable, so a plugin system runs in every node of a network run."""


def _check_kind(kind: str) -> dict[str, Any]:
    if kind not in _TABLES:
        raise ConfigError(f"registry kind {kind!r} is unknown; allowed: {', '.join(KINDS)}")
    return _TABLES[kind]


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator registering ``obj`` under ``kind``/``name``; a second use of a name is an error."""
    table = _check_kind(kind)

    def decorate(obj: T) -> T:
        if name in table and table[name] is not obj and table[name] != obj:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = obj
        return obj

    return decorate


def _load_providers() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _PROVIDERS:
            importlib.import_module(module)
        for folder in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
            load_plugins(folder)


def load_plugins(folder: str | Path) -> None:
    """Import every ``*.py`` of ``folder`` (each registers what it defines) and register the
    model cards below it. Nothing outside ``folder`` is touched."""
    from testbed.models_registry import register_cards

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{PLUGINS_ENV} folder {str(folder)!r} does not exist; allowed: a folder of *.py systems")
    for path in sorted(folder.glob("*.py")):
        name = f"testbed_plugin_{abs(hash(str(path.resolve())))}_{path.stem}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    register_cards(folder)


def get(kind: str, name: str) -> Any:
    """The registered object; ConfigError naming the allowed names when ``name`` is unknown."""
    _load_providers()
    table = _check_kind(kind)
    if name not in table:
        raise ConfigError(f"{kind} {name!r} is unknown; allowed: {', '.join(sorted(table)) or '(none)'}")
    return table[name]


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Instantiate the registered class (or call the factory) ``name`` of ``kind``."""
    return get(kind, name)(**kwargs)


def names(kind: str) -> list[str]:
    """Sorted registered names of ``kind``."""
    _load_providers()
    return sorted(_check_kind(kind))
