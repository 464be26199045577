"""`testbed doctor --lab`: every check's branches on a fake machine (sysfs tree, commands,
modules), and the real command on this machine."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from testbed.lab_preflight import Machine, check_cpu, check_gnuradio, check_iio, check_qt, check_uhd, check_usb, \
    check_memory_and_disk, preflight, usb_radios, worst


def _usb(root: Path, port: str, vendor: str, product: str, speed: str) -> None:
    device = root / "sys/bus/usb/devices" / port
    device.mkdir(parents=True)
    (device / "idVendor").write_text(vendor + "\n")
    (device / "idProduct").write_text(product + "\n")
    (device / "speed").write_text(speed + "\n")


def _machine(root: Path, modules: dict | None = None, commands: dict | None = None, **kw) -> Machine:
    modules = modules or {}
    commands = commands or {}

    def import_module(name):
        if name in modules:
            return modules[name]
        raise ImportError(f"No module named {name!r}")

    return Machine(root=root, run=lambda argv: commands.get(argv[0], (127, "not found")),
                   import_module=import_module, environ=kw.pop("environ", {}), **kw)


def test_a_b210_on_usb2_is_flagged_and_a_pluto_on_usb2_is_fine(tmp_path):
    _usb(tmp_path, "2-1", "2500", "0020", "480")
    _usb(tmp_path, "1-4", "0456", "b673", "480")
    _usb(tmp_path, "1-5", "046d", "c52b", "12")  # a mouse: not a radio
    machine = _machine(tmp_path)
    assert [r["name"] for r in usb_radios(machine)] == ["ADALM-PLUTO", "USRP B200/B210"]
    checks = {c.name: c for c in check_usb(machine)}
    assert checks["usb USRP B200/B210"].status == "warn" and "USB 3 port" in checks["usb USRP B200/B210"].fix
    assert checks["usb ADALM-PLUTO"].status == "ok"


def test_a_b210_on_usb3_passes_and_no_radio_is_a_warning(tmp_path):
    _usb(tmp_path, "2-1", "2500", "0020", "5000")
    assert [c.status for c in check_usb(_machine(tmp_path))] == ["ok"]
    empty = check_usb(_machine(tmp_path / "none"))
    assert [c.status for c in empty] == ["warn"] and "lsusb" in empty[0].fix


def test_uhd_images_are_looked_for_where_uhd_looks(tmp_path):
    uhd = {"uhd_config_info": (0, "UHD 4.3.0.0+ds1-5\n")}
    missing = {c.name: c for c in check_uhd(_machine(tmp_path, commands=uhd))}
    assert missing["uhd"].status == "ok" and missing["uhd"].detail == "UHD 4.3.0.0+ds1-5"
    assert missing["uhd fpga images"].status == "warn" and "uhd_images_downloader" in missing["uhd fpga images"].fix
    folder = tmp_path / "opt/images"
    folder.mkdir(parents=True)
    for name in ("usrp_b200_fpga.bin", "usrp_b210_fpga.bin", "usrp_b200_fw.hex"):
        (folder / name).write_bytes(b"x")
    found = check_uhd(_machine(tmp_path, commands=uhd, environ={"UHD_IMAGES_DIR": "/opt/images"}))
    assert [c.status for c in found] == ["ok", "ok"]
    assert check_uhd(_machine(tmp_path))[0].fix.startswith("apt install uhd-host")


def test_gnuradio_too_old_or_missing_modules_fail(tmp_path):
    old = _machine(tmp_path, modules={"gnuradio.gr": SimpleNamespace(version=lambda: "3.8.2.0")})
    checks = check_gnuradio(old)
    assert checks[0].status == "fail" and "older than 3.10" in checks[0].fix
    assert all(c.status == "fail" for c in checks[1:]) and checks[1].name == "gnuradio.zeromq"
    assert check_gnuradio(_machine(tmp_path))[0].detail.startswith("does not import")


def test_qt_cpu_iio_memory_and_disk(tmp_path):
    assert check_qt(_machine(tmp_path)).status == "warn"
    assert check_qt(_machine(tmp_path, environ={"QT_QPA_PLATFORM": "offscreen"})).status == "ok"
    (tmp_path / "sys/devices/system/cpu/cpu0/cpufreq").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").write_text("powersave\n")
    cpu = check_cpu(_machine(tmp_path, cpu_count=1))
    assert [c.status for c in cpu] == ["fail", "warn"] and "cpupower" in cpu[1].fix
    iio = check_iio(_machine(tmp_path, modules={"iio": SimpleNamespace(version=(0, 24, "v0.24"))}))
    assert [(c.name, c.status) for c in iio] == [("libiio", "ok"), ("pyadi-iio", "warn")]
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal:        2097152 kB\nMemFree: 1 kB\n")
    memory, disk = check_memory_and_disk(_machine(tmp_path), tmp_path)
    assert memory.status == "warn" and memory.detail == "2.0 GiB" and disk.name == "disk"


def test_worst_status_orders_fail_over_warn():
    checks = preflight(_machine(Path("/nonexistent")), workdir=Path("."))
    assert worst(checks) == "fail"  # GNU Radio does not import on the fake machine
    assert worst([]) == "ok"


@pytest.mark.timeout(120)
def test_the_command_runs_on_this_machine():
    out = subprocess.run([sys.executable, "-m", "testbed.cli", "doctor", "--lab", "--json"],
                         capture_output=True, text=True, timeout=110)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["gnuradio"]["status"] == "ok" and checks["gnuradio.zeromq"]["status"] == "ok"
    assert out.returncode == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)
