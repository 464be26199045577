"""The two-minute soak of CI (testbed soak): node and runner memory stay flat after the warm-up
and the metrics do not drift on a steady link."""
from __future__ import annotations

import json

import pytest

from testbed.runner.soak import soak, summarise


@pytest.mark.timeout(300)
def test_two_minutes_of_a_steady_link_keep_memory_and_metrics_flat(tmp_path):
    doc = soak("link-awgn", tmp_path, minutes=2.0, sample_s=20.0,
               overrides={"channel.snr_db": [6.0], "system_params.n_frames": 10})
    summary = doc["summary"]
    assert summary["samples"] == 7 and doc["samples"][-1]["batches"] > 100
    assert set(summary["rss_growth_pct"]) == {"runner", "tx0", "channel", "rx0"}
    assert summary["max_rss_growth_pct"] <= 5.0, summary
    assert abs(summary["metric_drift"]["snr_est_db"]) < 0.3 and abs(summary["metric_drift"]["ber"]) < 0.01
    assert json.loads((tmp_path / "soak.json").read_text())["summary"] == summary
    assert json.loads((tmp_path / "metrics.json").read_text())["rows"][0]["status"] == "ok"


def test_the_summary_compares_the_last_sample_with_the_first_after_warm_up():
    samples = [{"t_s": t, "rss_mib": {"rx": mib}, "metrics": {"psnr_db": p, "ber": None}}
               for t, mib, p in ((0, 100, None), (10, 200, 30.0), (20, 201, 30.5), (30, 210, 31.0))]
    summary = summarise(samples)
    assert summary["from_s"] == 10 and summary["rss_growth_pct"] == {"rx": 5.0}
    assert summary["metric_drift"] == {"psnr_db": 1.0}
    assert summarise(samples[:2]) == {"samples": 2}
