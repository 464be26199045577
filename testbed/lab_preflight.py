"""``testbed doctor --lab``: a lab-machine preflight, each check with what to do when it fails.

What a lab bench needs beyond ``testbed doctor``: GNU Radio 3.10 with the modules the labs use,
libiio and pyadi-iio for PlutoSDR, UHD with its FPGA images for USRPs, the USB speed of each
attached radio (a B200/B210 on a USB 2 port drops samples at lab rates), the CPU (cores and
frequency governor), memory, free disk and whether Qt GUI flowgraphs can open.

Each check gives a :class:`Check` with status ``ok``, ``warn`` (the virtual rung still works) or
``fail`` (a lab cannot run). The machine is read through :class:`Machine`, whose filesystem root
and command runner a test replaces, so every branch is tested without hardware.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GR_LAB_MODULES = ("zeromq", "qtgui", "uhd", "iio", "fec", "digital")
MIN_GNURADIO = (3, 10)
MIN_CORES = 2
MIN_MEMORY_GIB = 4.0
MIN_DISK_GIB = 2.0
# USB ids (vendor, product) of the radios the labs use, and the lowest speed (Mb/s) each needs.
USB_RADIOS = {
    ("2500", "0020"): ("USRP B200/B210", 5000),
    ("2500", "0021"): ("USRP B200mini", 5000),
    ("2500", "0022"): ("USRP B205mini", 5000),
    ("3923", "7813"): ("USRP B200 (NI)", 5000),
    ("3923", "7814"): ("USRP B210 (NI)", 5000),
    ("0456", "b673"): ("ADALM-PLUTO", 480),
    ("0456", "b674"): ("ADALM-PLUTO (DFU mode)", 480),
}
# FPGA images a B2xx loads at start; UHD looks in $UHD_IMAGES_DIR, then <prefix>/share/uhd/images.
B2XX_IMAGES = ("usrp_b200_fpga.bin", "usrp_b210_fpga.bin", "usrp_b200_fw.hex")
STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One preflight result; ``fix`` says what to do when ``status`` is not ``ok``."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _run_command(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, str(err)
    return done.returncode, done.stdout + done.stderr


@dataclass
class Machine:
    """What the checks read: files under ``root`` (``/`` on a real machine), commands through
    ``run`` (argv -> (exit code, output)), Python modules through ``import_module``, and the
    environment."""

    root: Path = Path("/")
    run: Callable[[list[str]], tuple[int, str]] = _run_command
    import_module: Callable[[str], object] = importlib.import_module
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        try:
            return self.path(absolute).read_text().strip()
        except OSError:
            return None


def check_gnuradio(machine: Machine) -> list[Check]:
    """GNU Radio >= 3.10 and each module the labs use."""
    apt = "apt install gnuradio gr-osmosdr (Debian 12 / Ubuntu 22.04 ship 3.10); or `make setup`"
    try:
        gr = machine.import_module("gnuradio.gr")
        version = str(gr.version())
    except Exception as err:  # a broken install raises more than ImportError
        return [Check("gnuradio", "fail", f"does not import: {err}", apt)]
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    checks = [Check("gnuradio", "ok" if parts >= MIN_GNURADIO else "fail", version,
                    "" if parts >= MIN_GNURADIO else f"GNU Radio {version} is older than 3.10: {apt}")]
    for name in GR_LAB_MODULES:
        try:
            machine.import_module(f"gnuradio.{name}")
            checks.append(Check(f"gnuradio.{name}", "ok", "imports"))
        except Exception as err:
            checks.append(Check(f"gnuradio.{name}", "fail", f"{type(err).__name__}: {err}",
                                f"the Debian package gnuradio provides gr-{name}; reinstall it: {apt}"))
    return checks


def check_qt(machine: Machine) -> Check:
    """Can a QT GUI flowgraph open a window (a display, or the offscreen platform)?"""
    env = machine.environ
    if env.get("QT_QPA_PLATFORM") == "offscreen":
        return Check("qt display", "ok", "QT_QPA_PLATFORM=offscreen (headless: widgets render off screen)")
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return Check("qt display", "ok", f"display {env.get('DISPLAY') or env.get('WAYLAND_DISPLAY')}")
    return Check("qt display", "warn", "no DISPLAY or WAYLAND_DISPLAY: the lab GUIs cannot open a window",
                 "run from a desktop session, use ssh -X, or set QT_QPA_PLATFORM=offscreen for headless runs")


def check_iio(machine: Machine) -> list[Check]:
    """libiio (the Python binding's library version) and pyadi-iio, for PlutoSDR."""
    checks = []
    try:
        iio = machine.import_module("iio")
        checks.append(Check("libiio", "ok", "version " + ".".join(str(v) for v in iio.version[:2])))
    except Exception as err:
        checks.append(Check("libiio", "warn", f"Python binding does not import: {err}",
                            "apt install libiio0 libiio-utils python3-libiio (Pluto labs only)"))
    try:
        machine.import_module("adi")
        checks.append(Check("pyadi-iio", "ok", "imports"))
    except Exception as err:
        checks.append(Check("pyadi-iio", "warn", f"does not import: {err}",
                            "pip install pyadi-iio (in the testbed venv: `make setup`)"))
    return checks


def images_dir(machine: Machine) -> Path:
    """Where UHD looks for FPGA images: $UHD_IMAGES_DIR, else /usr/share/uhd/images."""
    return Path(machine.environ.get("UHD_IMAGES_DIR") or "/usr/share/uhd/images")


def check_uhd(machine: Machine) -> list[Check]:
    """UHD's version and whether the B2xx FPGA images are where UHD looks."""
    code, out = machine.run(["uhd_config_info", "--version"])
    if code != 0:
        return [Check("uhd", "warn", "uhd_config_info not found", "apt install uhd-host (USRP labs only)")]
    checks = [Check("uhd", "ok", out.strip().splitlines()[-1] if out.strip() else "installed")]
    folder = images_dir(machine)
    missing = [name for name in B2XX_IMAGES if not machine.path(str(folder / name)).is_file()]
    if missing:
        checks.append(Check("uhd fpga images", "warn", f"{folder}: missing {', '.join(missing)}",
                            "on a networked host run `uhd_images_downloader -t b2xx` (or apt install "
                            "uhd-images) and copy the images here, or set UHD_IMAGES_DIR"))
    else:
        checks.append(Check("uhd fpga images", "ok", f"{folder}: {', '.join(B2XX_IMAGES)}"))
    return checks


def usb_radios(machine: Machine) -> list[dict[str, str | int]]:
    """Attached lab radios from sysfs: [{"name", "port", "speed_mbps", "needs_mbps"}]."""
    found = []
    devices = machine.path("/sys/bus/usb/devices")
    for device in sorted(devices.glob("*")) if devices.is_dir() else []:
        ids = ((device / "idVendor"), (device / "idProduct"))
        if not all(p.is_file() for p in ids):
            continue
        key = tuple(p.read_text().strip().lower() for p in ids)
        if key in USB_RADIOS:
            name, needs = USB_RADIOS[key]
            speed = (device / "speed").read_text().strip() if (device / "speed").is_file() else "0"
            found.append({"name": name, "port": device.name, "speed_mbps": int(float(speed)), "needs_mbps": needs})
    return found


def check_usb(machine: Machine) -> list[Check]:
    """Each attached radio's USB link speed against what it needs at lab sample rates."""
    radios = usb_radios(machine)
    if not radios:
        return [Check("usb radios", "warn", "no USRP B2xx or PlutoSDR on USB (the virtual rung still works)",
                      "plug the radio in; `lsusb` should list 2500:0020 (B2xx) or 0456:b673 (Pluto)")]
    checks = []
    for radio in radios:
        ok = radio["speed_mbps"] >= radio["needs_mbps"]
        detail = f"port {radio['port']}: {radio['speed_mbps']} Mb/s"
        fix = "" if ok else (f"move it to a USB 3 port (needs {radio['needs_mbps']} Mb/s; at USB 2 it "
                             "drops samples above about 8 MS/s) or lower the sample rate")
        checks.append(Check(f"usb {radio['name']}", "ok" if ok else "warn", detail, fix))
    return checks


def check_cpu(machine: Machine) -> list[Check]:
    """Core count and the frequency governor (powersave makes streaming late)."""
    cores = machine.cpu_count
    checks = [Check("cpu cores", "ok" if cores >= MIN_CORES else "fail", f"{cores}",
                    "" if cores >= MIN_CORES else f"the labs need {MIN_CORES} cores or more")]
    governor = machine.read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor is None:
        checks.append(Check("cpu governor", "ok", "not exposed (virtual machine or fixed clock)"))
    elif governor == "performance":
        checks.append(Check("cpu governor", "ok", governor))
    else:
        checks.append(Check("cpu governor", "warn", governor,
                            "for hardware rungs: sudo cpupower frequency-set -g performance"))
    return checks


def check_memory_and_disk(machine: Machine, workdir: Path) -> list[Check]:
    """Total memory (from /proc/meminfo) and free disk where runs are written."""
    meminfo = machine.read("/proc/meminfo") or ""
    kib = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    gib = kib / 2**20
    checks = [Check("memory", "ok" if gib >= MIN_MEMORY_GIB else "warn", f"{gib:.1f} GiB",
                    "" if gib >= MIN_MEMORY_GIB else f"below {MIN_MEMORY_GIB:g} GiB: run one lab at a time")]
    free = shutil.disk_usage(workdir).free / 2**30
    checks.append(Check("disk", "ok" if free >= MIN_DISK_GIB else "fail", f"{free:.1f} GiB free in {workdir}",
                        "" if free >= MIN_DISK_GIB else f"free at least {MIN_DISK_GIB:g} GiB for runs/ and recordings"))
    return checks


def preflight(machine: Machine | None = None, workdir: Path = Path(".")) -> list[Check]:
    """Every lab-machine check, in the order a lab technician would fix them."""
    machine = machine or Machine()
    return [*check_gnuradio(machine), check_qt(machine), *check_iio(machine), *check_uhd(machine),
            *check_usb(machine), *check_cpu(machine), *check_memory_and_disk(machine, workdir)]


def worst(checks: list[Check]) -> str:
    """The worst status of ``checks`` (``fail`` > ``warn`` > ``ok``)."""
    return max((c.status for c in checks), key=STATUSES.index, default="ok")
