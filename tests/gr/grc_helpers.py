"""Helpers shared by the GNU Radio Companion tests: load a grcc-generated script, wait for a
condition with a bound, and a free ZMQ address (the project's own free-port helper)."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

from testbed.radios.virtual import endpoint, free_tcp_port


def load_script(script: Path) -> ModuleType:
    """Import a generated flowgraph script as a module."""
    spec = importlib.util.spec_from_file_location(f"generated_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(cond, timeout_s: float) -> bool:
    """Poll ``cond`` every 50 ms until true or ``timeout_s``; its last value."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def free_tcp_address() -> str:
    return endpoint(free_tcp_port())
