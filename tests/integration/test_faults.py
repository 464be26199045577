"""Faults: a runner killed by SIGKILL takes its node processes with it, and `testbed sweep
--resume` goes on from the last complete point of the killed sweep without redoing it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["sweep", "link-awgn", "--snr-db", "0:8:4", "--set", "system_params.n_frames=8", "--set", "batches=3"]


def _complete_points(path: Path) -> list[int]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return sorted({r["point"] for r in doc["rows"] if r["status"] == "ok"})


def _node_pids(out: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "testbed.runner.proc" in cmd and str(out) in cmd:
                pids.append(int(proc.name))
    return pids


@pytest.mark.timeout(400)
def test_a_killed_sweep_resumes_at_its_last_complete_point(tmp_path):
    out = tmp_path / "sweep"
    runner = subprocess.Popen([sys.executable, "-m", "testbed.cli", *SWEEP, "--out", str(out)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not _complete_points(out / "metrics.json") and time.monotonic() < deadline:
        time.sleep(0.2)
    nodes = _node_pids(out)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    first = json.loads((out / "metrics.json").read_text())
    done = _complete_points(out / "metrics.json")
    assert done and len(done) < 3 and len(nodes) == 3
    time.sleep(3.0)
    assert not [pid for pid in nodes if Path(f"/proc/{pid}").exists()
                and (Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z")]  # they ended with their runner
    again = subprocess.run([sys.executable, "-m", "testbed.cli", *SWEEP, "--out", str(out), "--resume"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["resumed_points"] == done
    assert [r["point"] for r in doc["rows"]] == [0, 1, 2] and all(r["status"] == "ok" for r in doc["rows"])
    kept = {r["point"]: r for r in first["rows"] if r["point"] in done}
    assert all(doc["rows"][i] == kept[i] for i in done)  # not redone: the same rows, bit for bit
    assert all(r["batches"] == 3 for r in doc["rows"])


def test_resume_refuses_a_folder_of_another_configuration(tmp_path):
    from testbed.config.scenario import load_scenario
    from testbed.errors import ConfigError
    from testbed.runner.files import write_json
    from testbed.runner.run import resumed_points

    write_json(tmp_path / "metrics.json", {"config": {"name": "other"}, "rows": []})
    with pytest.raises(ConfigError, match="another configuration"):
        resumed_points(load_scenario("link-awgn"), tmp_path)
    assert resumed_points(load_scenario("link-awgn"), tmp_path / "none")["points"] == []
