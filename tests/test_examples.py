"""Every script of examples/ runs on virtual radios at small sizes and prints what it promises."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES} == {"live_snr_sweep.py", "broadcast_ramp.py", "adaptive_modulation.py",
                                          "irs_phase_search.py"}


@pytest.mark.timeout(240)
def test_live_snr_sweep_follows_the_theory(tmp_path):
    out = _run(tmp_path, "live_snr_sweep.py", "--snr-db", "0", "6", "--frames", "10")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = re.findall(r"SNR +([\d.]+) dB .*BER ([\d.e+-]+) \(theory ([\d.e+-]+)\), estimated SNR ([\d.-]+) dB", out.stdout)
    assert [float(r[0]) for r in rows] == [0.0, 6.0]
    for snr, ber, theory, est in rows:
        assert abs(float(est) - float(snr)) < 1.0 and 0.5 < float(ber) / float(theory) < 2.0, rows
    assert (tmp_path / "ber.png").stat().st_size > 5000
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert [c["value"] for c in doc["live_changes"]] == [0.0, 6.0]


@pytest.mark.timeout(240)
def test_broadcast_ramp_raises_one_user_only(tmp_path):
    out = _run(tmp_path, "broadcast_ramp.py", "--batches", "3", "--images", "1", "--step-db", "6")
    assert out.returncode == 0, out.stdout + out.stderr
    table = [line.split() for line in out.stdout.splitlines() if re.match(r"^ +\d+ ", line)]
    snrs = [[float(cells[1 + 4 * u]) for u in range(4)] for cells in table]
    assert snrs == [[1, 4, 7, 10], [1, 10, 7, 10], [1, 16, 7, 10]], out.stdout


def test_broadcast_ramp_over_the_air_says_no_pluto_is_attached(tmp_path):
    out = _run(tmp_path, "broadcast_ramp.py", "--radio", "pluto-1r1t")
    assert out.returncode == 1 and "is not attached" in out.stderr and "pluto-1r1t" in out.stderr, out.stderr
    assert not (tmp_path / "nodes").exists()


@pytest.mark.timeout(240)
def test_adaptive_modulation_follows_the_fed_back_snr(tmp_path):
    out = _run(tmp_path, "adaptive_modulation.py", "--snr-db", "20", "5", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if "(nominal" in line or "(feedback" in line]
    assert len(rows) == 3 and "(nominal" in rows[0] and "(feedback" in rows[2]
    told = [float(re.search(r"dB +([\d.-]+) dB \(", row).group(1)) for row in rows]
    assert told[0] == 20.0 and abs(told[2] - 5.0) < 1.0  # the third batch is told what the second measured
    assert rows[0].split()[-3] != rows[2].split()[-3]  # another configuration for 5 dB than for 20 dB


@pytest.mark.timeout(240)
def test_irs_phase_search_finds_the_optimum_above_random_phases(tmp_path):
    out = _run(tmp_path, "irs_phase_search.py", "--random", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    snrs = [float(v) for v in re.findall(r"measured SNR +([\d.-]+) dB", out.stdout)]
    assert len(snrs) == 4 and snrs[-1] > max(snrs[:-1]) + 5.0, out.stdout
