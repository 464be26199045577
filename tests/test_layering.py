"""docs/architecture.md layering: phy, channels, systems, data, codecs and the registry never import
gnuradio, uhd or adi; radios import hardware libraries lazily."""
import json
import pkgutil
import subprocess
import sys

import testbed

PURE = ("testbed.phy", "testbed.channels", "testbed.systems", "testbed.data", "testbed.codecs", "testbed.config")
FORBIDDEN = ("gnuradio", "uhd", "adi", "iio")


def _modules(package: str) -> list[str]:
    mod = __import__(package, fromlist=["_"])
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(mod.__path__)]


def test_pure_packages_never_import_gnuradio_or_hardware():
    modules = [m for p in PURE for m in _modules(p)] + ["testbed.registry", "testbed.metrics", "testbed.radios"]
    code = (f"import importlib, sys, json\nfor m in {modules!r}: importlib.import_module(m)\n"
            "import testbed.registry as r\nfor k in r.KINDS: r.names(k)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_registered_name_is_unique_per_kind():
    from testbed import registry

    assert set(registry.names("system")) >= {"digital", "link"}
    assert set(registry.names("channel")) == {"awgn", "rayleigh", "rician", "fixed"}
    assert set(registry.names("radio")) == {"zmq", "uhd", "pluto"}
    assert testbed.__version__
