"""``testbed doctor``: what is installed, which GNU Radio modules load, which radios are attached.

:func:`doctor_report` gathers everything into a JSON-friendly dict (``testbed doctor --json``);
:func:`render` turns it into a rich table. Nothing here needs hardware: without radios the
report says "no radios found" and the command still succeeds.
"""
from __future__ import annotations

import importlib
import platform
from importlib import metadata
from typing import Any

from rich.table import Table

import testbed
from testbed.registry import create, names

GR_MODULES = ("blocks", "analog", "digital", "channels", "fec", "pdu", "zeromq", "uhd", "iio", "qtgui")
PACKAGES = ("onnxruntime", "onnx", "torch", "torchvision", "compressai", "cvxpy", "numpy", "numba")
NO_RADIOS = "no radios found"


def _gnuradio() -> dict[str, Any]:
    """GNU Radio version and, per module, ``{"ok": bool, "detail": error or ""}``."""
    try:
        from gnuradio import gr
    except ImportError as err:
        return {"version": None, "error": str(err), "modules": {}}
    modules = {}
    for name in GR_MODULES:
        try:
            importlib.import_module(f"gnuradio.{name}")
            modules[name] = {"ok": True, "detail": ""}
        except Exception as err:  # a broken binding raises more than ImportError
            modules[name] = {"ok": False, "detail": f"{type(err).__name__}: {err}"}
    return {"version": gr.version(), "modules": modules}


def _package_version(name: str) -> str | None:
    """Installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def doctor_report() -> dict[str, Any]:
    """Versions, GNU Radio modules, radio backends and attached radios.

    Returns
    -------
    ``{"testbed": str, "python": str, "gnuradio": {"version", "modules"}, "packages":
    {name: version or None}, "radio_backends": {name: {"available", "reason"}},
    "radios": [{"backend", ...}, ...]}``; ``radios`` is [] when none is attached.
    """
    backends, radios = {}, []
    for name in names("radio"):
        backend = create("radio", name)
        ok, reason = backend.available()
        backends[name] = {"available": ok, "reason": reason}
        radios.extend(backend.discover() if ok else [])
    return {
        "testbed": testbed.__version__,
        "python": platform.python_version(),
        "gnuradio": _gnuradio(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "radio_backends": backends,
        "radios": radios,
    }


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]missing[/red]"


def render(report: dict[str, Any]) -> Table:
    """A rich table of ``report`` (from :func:`doctor_report`)."""
    table = Table(title=f"testbed {report['testbed']} doctor", show_lines=False)
    table.add_column("component")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_row("python", "[green]ok[/green]", report["python"])
    gnuradio = report["gnuradio"]
    table.add_row("gnuradio", _mark(gnuradio["version"] is not None),
                  gnuradio["version"] or gnuradio.get("error", ""))
    for name, module in gnuradio["modules"].items():
        table.add_row(f"  gnuradio.{name}", _mark(module["ok"]), module["detail"])
    for name, version in report["packages"].items():
        table.add_row(name, _mark(version is not None), version or "not installed")
    for name, backend in report["radio_backends"].items():
        table.add_row(f"radio backend {name}", _mark(backend["available"]), backend["reason"])
    if report["radios"]:
        for radio in report["radios"]:
            detail = ", ".join(f"{key}={value}" for key, value in radio.items() if key != "backend")
            table.add_row(f"radio ({radio['backend']})", "[green]found[/green]", detail)
    else:
        table.add_row("radios", "[yellow]none[/yellow]",
                      f"{NO_RADIOS} (virtual ZMQ radios still work)")
    return table
