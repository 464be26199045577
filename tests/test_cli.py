"""The CLI as a user meets it."""
import json
import subprocess
import sys

import pytest


def _testbed(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_doctor_json_reports_versions_and_no_radios():
    out = _testbed("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["gnuradio"]["version"].startswith("3.10")
    assert report["radios"] == []


def test_sweep_rejects_a_bad_range():
    out = _testbed("sweep", "link-awgn", "--snr-db", "10:0:1")
    assert out.returncode == 2 and "--snr-db" in out.stdout


@pytest.mark.integration
def test_run_writes_metrics_contract_and_report(tmp_path):
    out = _testbed("run", "digital-awgn", "--set", "channel.snr_db=[0, 20]", "--set", "max_images=2",
                   "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert {"scenario", "system", "rows", "config", "versions", "models"} <= set(doc)
    assert doc["versions"]["gnuradio"].startswith("3.10") and doc["versions"]["onnxruntime"]
    low, high = doc["rows"]
    for row in doc["rows"]:
        assert {"user", "model", "channel", "snr_db", "psnr_db", "ms_ssim", "frames_sent", "frames_received",
                "frames_lost", "samples_lost"} <= set(row)
        assert row["samples_lost"] == 0 and row["frames_lost"] == 0
    assert high["psnr_db"] > 25 and high["bler"] == 0  # the digital link works above its threshold
    assert low["psnr_db"] < 15 and low["bler"] == 1  # and falls off its cliff below
    assert (tmp_path / "report.md").exists() and (tmp_path / "psnr_db_vs_snr.png").exists()
    assert (tmp_path / "images.png").exists()
