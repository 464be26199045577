"""The scripting API (testbed.api): live changes land at their logged sample, Ctrl-C stops every
process and keeps what was measured, and the CLI and the API write the same metrics.json."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from testbed.api import ConfigError, Record, Run

ROOT = Path(__file__).resolve().parents[1]
LINK = {"channel.snr_db": [5.0], "system_params.n_frames": 12, "batches": 4}


@pytest.mark.timeout(300)
def test_a_live_snr_change_lands_at_its_logged_sample(tmp_path):
    with Run("link-awgn", tmp_path, overrides=LINK, progress=False) as run:
        before = run.step() + run.step()
        change = run.set_snr("tx0->rx0", 15.0)
        after = run.step() + run.step()
        assert run.step() is None
    assert change.batch == 2 and change.sample is not None and change.sample > 0
    assert all(isinstance(r, Record) for r in before + after)
    assert [r.snr_db for r in before] == [5.0, 5.0] and [r.snr_db for r in after] == [15.0, 15.0]
    assert before[0].point == 0 and after[0].point == 1 and [r.batch for r in after] == [2, 3]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    frames = doc["frames"]["u0"]  # [run batch, start sample at the RX, snr_est_db, payload_ok]
    old = [snr for _, start, snr, _ in frames if start < change.sample]
    new = [snr for _, start, snr, _ in frames if start >= change.sample]
    assert len(old) == len(new) == 24
    assert abs(np.mean(old) - 5.0) < 0.5 and abs(np.mean(new) - 15.0) < 0.5, (np.mean(old), np.mean(new))
    assert doc["live_changes"] == [{"what": "snr_db", "target": "tx0->rx0", "value": 15.0, "batch": 2,
                                    "sample": change.sample}]
    assert [r["point"] for r in doc["rows"]] == [0, 1] and not doc["interrupted"]


def test_a_bad_live_change_is_refused_naming_the_link(tmp_path):
    with Run("link-awgn", tmp_path, overrides={**LINK, "batches": 1}, progress=False) as run:
        with pytest.raises(ConfigError, match=r"link \['bs->ue9'\]: not in the topology; allowed: \['tx0->rx0'\]"):
            run.set_snr("bs->ue9", 3.0)
        with pytest.raises(ConfigError, match="no topology.irs"):
            run.set_irs(np.zeros(4))
        run.run()
    report = run.report()  # after the processes stopped, from what was measured
    text = report.read_text()
    assert text.startswith("# link-awgn (link)") and "| u0 |" in text


def test_a_scenario_built_in_python_is_validated_like_a_file(tmp_path):
    scenario = {"name": "mine", "system": "link", "channel": {"model": "awgn", "snr_db": [99]},
                "system_params": {"modulation": "qpsk9"}}
    with pytest.raises(ConfigError) as err:
        Run(scenario, tmp_path)
    assert "99" in str(err.value) or "qpsk9" in str(err.value)


SCRIPT = """
import faulthandler, json, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test dumps the stacks of a hung run
from testbed.api import Run
with Run("link-awgn", sys.argv[1], overrides={"batches": 500, "system_params.n_frames": 8}, progress=False) as run:
    run.step()
    procs = run.session.launcher.procs
    ports = [int(p.control.rsplit(":", 1)[1]) for p in run.session.graph.processes.values()]
    print(json.dumps({"pids": [p.pid for p in procs.values()], "ports": ports}), flush=True)
    for _ in run.records():
        pass
"""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(180)
def test_sigint_stops_every_node_and_keeps_the_results(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    # A shell's background job (`make test &`, nohup) ignores SIGINT, and the ignoring is inherited
    # through exec: give the script the default disposition, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    info = json.loads(proc.stdout.readline())
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        proc.kill()
        alive = [pid for pid in info["pids"] if _alive(pid)]
        pytest.fail(f"the run did not stop within 30 s of SIGINT; nodes alive: {alive}; its stacks:\n"
                    + proc.communicate()[1][-6000:])
    deadline = time.monotonic() + 5.0
    while any(_alive(pid) for pid in info["pids"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in info["pids"] if _alive(pid)]
    assert not [port for port in info["ports"] if _listening(port)]
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["interrupted"] and doc["rows"] and doc["rows"][0]["status"] == "ok" and doc["rows"][0]["batches"] >= 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


@pytest.mark.timeout(300)
def test_the_cli_and_the_api_write_the_same_metrics(tmp_path):
    sets = ["--set", "channel.snr_db=[4, 8]", "--set", "system_params.n_frames=10"]
    cli = subprocess.run([sys.executable, "-m", "testbed.cli", "run", "link-awgn", *sets, "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    with Run("link-awgn", tmp_path / "api", overrides={"channel.snr_db": [4, 8], "system_params.n_frames": 10},
             progress=False) as run:
        run.run()
    docs = [json.loads((tmp_path / side / "metrics.json").read_text()) for side in ("cli", "api")]
    # Counts, BER and frame starts are equal; float32 estimates may differ in the 7th digit
    # (the receiver sees the stream in other chunks, so numpy sums in another order).
    assert len(docs[0]["rows"]) == len(docs[1]["rows"]) == 2
    for cli_row, api_row in zip(docs[0]["rows"], docs[1]["rows"]):
        assert set(cli_row) == set(api_row)
        for key, value in cli_row.items():
            same = value == pytest.approx(api_row[key], rel=1e-6) if isinstance(value, float) else value == api_row[key]
            assert same, (key, value, api_row[key])
    assert [f[:2] + f[3:] for f in docs[0]["frames"]["u0"]] == [f[:2] + f[3:] for f in docs[1]["frames"]["u0"]]
    assert docs[0]["config"] == docs[1]["config"]


@pytest.mark.timeout(300)
def test_a_users_model_changes_live_at_the_next_batch(tmp_path):
    overrides = {"channel.snr_db": [15.0], "batches": 2, "max_images": 1}
    with Run("deepjscc-awgn", tmp_path, overrides=overrides, progress=False) as run:
        (first,) = run.step()
        change = run.set_params("u0", model="adjscc-r12")
        (second,) = run.step()
    assert first.model == "deepjscc-r6" and second.model == "adjscc-r12" and second.point == 1
    assert change.sample == first.samples_sent  # the next batch's first sample
    assert second.samples_sent < 0.7 * first.samples_sent  # half the channel uses at 1/12
    assert second.psnr_db > 20.0
    with Run("deepjscc-awgn", tmp_path / "bad", overrides={**overrides, "batches": 1}, progress=False) as run:
        with pytest.raises(ConfigError, match="model"):
            run.set_params("u0", model="no-such-model")
        with pytest.raises(ConfigError, match=r"user \['u7'\]"):
            run.set_params("u7", model="adjscc-r12")
        from testbed.api import RadioError

        with pytest.raises(RadioError, match="virtual radio has no RF"):
            run.set_radio("rx0", rx_gain_db=30.0)
        run.run()


@pytest.mark.timeout(300)
def test_points_step_whole_and_an_exception_stops_every_process(tmp_path):
    overrides = {"channel.snr_db": [4.0, 8.0], "system_params.n_frames": 6, "batches": 2}
    with pytest.raises(RuntimeError, match="the script broke"):
        with Run("link-awgn", tmp_path, overrides=overrides, progress=False) as run:
            procs = list(run.session.launcher.procs.values())
            (row,) = run.step_point()
            assert row.snr_db == 4.0 and row.batches == 2 and row.frames_sent == 12
            raise RuntimeError("the script broke")
    assert all(proc.poll() is not None for proc in procs)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["snr_db"] for r in doc["rows"]] == [4.0] and doc["rows"][0]["batches"] == 2


@pytest.mark.timeout(300)
def test_a_link_gain_sets_the_snr_through_the_receivers_noise(tmp_path):
    overrides = {"batches": 2, "max_images": 1, "topology.sweep": []}
    with Run("broadcast-4users", tmp_path, overrides=overrides, progress=False) as run:
        with pytest.raises(ConfigError, match="has no noise_db"):
            run.set_gain("bs->ue1", -3.0)
        run.run()
    scenario = {"name": "noisy-link", "system": "link", "system_params": {"n_frames": 8},
                "topology": {"nodes": [{"name": "tx0", "role": "tx"}, {"name": "rx0", "role": "rx", "noise_db": -10}],
                             "users": [{"name": "u0", "tx": "tx0", "rx": "rx0"}],
                             "links": [{"tx": "tx0", "rx": "rx0", "snr_db": 5.0}]}, "batches": 2}
    with Run(scenario, tmp_path / "gain", progress=False) as run:
        (before,) = run.step()
        change = run.set_gain("tx0->rx0", -2.0)  # unit TX power, noise -10 dB: SNR 8 dB
        (after,) = run.step()
    assert change.what == "gain_db" and change.sample is not None
    assert abs(before.snr_est_db - 5.0) < 0.7 and abs(after.snr_est_db - 8.0) < 0.7 and after.snr_db == 8.0
