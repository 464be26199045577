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


def test_doctor_verifies_the_shipped_models():
    report = json.loads(_testbed("doctor", "--json").stdout)
    assert set(report["models"]) >= {"deepjscc-r6", "deepjscc-r12", "adjscc-r6", "adjscc-r12"}
    assert all(v == "ok" for v in report["models"].values()), report["models"]


def test_models_verify_passes():
    out = _testbed("models", "--verify")
    assert out.returncode == 0, out.stdout
    assert out.stdout.count("ok") >= 4


@pytest.mark.parametrize("damage", ["corrupt", "missing", "names"])
def test_broken_model_is_refused_before_any_process_starts(tmp_path, damage):
    import os
    import shutil

    from testbed.models_registry import MODELS_DIR

    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    target = models / "deepjscc" / "deepjscc-r6.decoder.onnx"
    if damage == "corrupt":
        data = bytearray(target.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        target.write_bytes(bytes(data))
        needle = "sha256 mismatch"
    elif damage == "missing":
        target.unlink()
        needle = "missing"
    else:
        card = target.with_suffix(".json")
        card.write_text(card.read_text().replace('"symbols"', '"syms"'))
        needle = "names"
    out = subprocess.run([sys.executable, "-m", "testbed.cli", "run", "deepjscc-awgn", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "TESTBED_MODELS_DIR": str(models)})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "deepjscc-r6.decoder" in out.stdout and needle in out.stdout, out.stdout
    assert not list((tmp_path / "run").rglob("*_spec.json"))  # no process was started


@pytest.mark.integration
def test_sweep_of_a_topology_moves_every_link_together(tmp_path):
    out = _testbed("sweep", "broadcast-4users", "--snr-db", "0:10:10", "--set", "max_images=1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    assert sorted((r["user"], r["snr_db"]) for r in rows) == sorted(
        (f"u{k}", base + offset) for k, base in enumerate((1.0, 4.0, 7.0, 10.0)) for offset in (0.0, 10.0))
