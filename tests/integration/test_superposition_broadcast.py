"""The shipped superposition-broadcast scenario through real node processes: one TX node, the
channel emulator and two RX processes; each receiver's rows match the torch evaluation of the
same model on the same images (the issue's 0.3 dB and 1 accuracy point, with a margin for the
600 images used here instead of 1000)."""
import json

import pytest

from testbed.config.scenario import load_scenario
from testbed.runner.scenario import run_scenario
from testbed.systems.superposition.evaluate import reference_rows

pytestmark = pytest.mark.integration
IMAGES = 600


def test_superposition_broadcast_rows_match_the_torch_evaluation(tmp_path):
    scenario = load_scenario("superposition-broadcast", [f"max_images={IMAGES}", "topology.sweep=[]", "batches=1"])
    run_scenario(scenario, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    rows = {row["user"]: row for row in doc["rows"]}
    assert set(rows) == {"rx1", "rx2"} and all(r["status"] == "ok" for r in rows.values())
    assert rows["rx1"]["choice"]["task"] == "coarse" and rows["rx2"]["choice"]["task"] == "fine"
    assert rows["rx1"]["snr_db"] == 1.0 and rows["rx2"]["snr_db"] == 20.0
    for ref in reference_rows(doc["rows"], doc["rows"][0]["model"], IMAGES):
        assert abs(ref["delta_psnr_db"]) < 0.3, ref
        assert abs(ref["delta_accuracy"]) < 0.015, ref
        assert abs(ref["delta_ms_ssim"]) < 0.01, ref
