"""adaptive-rate-mumimo through the processes: K users' TX nodes, the emulator, the 4-antenna base
station; the closed loop tells each TX its channel, every frame arrives, the decisions travel in
the side-information frames, and each user's PSNR is within 0.3 dB of the torch reference at the
same channel draws told what the TXs were told, within 0.5 dB of it with perfect CSI
(testbed.systems.adaptive_rate.reference)."""
import pytest

from testbed.config.scenario import load_scenario
from testbed.runner.scenario import run_scenario
from testbed.systems.adaptive_rate import reference
from testbed.systems.adaptive_rate.export import user_from_onnx
from testbed.systems.adaptive_rate.system import AdaptiveRateSystem

OVERRIDES = ["batches=2", "max_images=1", "images=default", "topology.sweep=[{axis: snr_offset_db, values: [15]}]"]


@pytest.mark.parametrize("scenario_name", ["adaptive-rate-mumimo", "adaptive-rate-mumimo-k4"])
def test_the_network_run_is_the_torch_reference_at_the_same_channels(tmp_path, scenario_name):
    scenario = load_scenario(scenario_name, OVERRIDES)
    doc = run_scenario(scenario, tmp_path).document
    system = AdaptiveRateSystem(scenario.system_params)
    model = user_from_onnx(*system.model_files()).eval()
    genie = reference.compare(reference.reference_run(scenario, model), doc)
    told = reference.compare(reference.reference_run(scenario, model, metrics=doc), doc)
    assert len(genie) == len(told) == len(scenario.network().users)
    for ideal, row in zip(genie, told):
        net = row["network"]
        assert net is not None, row
        assert net["side_info_ok"] == 1.0 and net["csi_error_db"] < -15, row
        # told what the TX was told, torch makes the network's decisions; the PHY costs < 0.3 dB
        assert net["cpp"] == pytest.approx(row["torch"]["cpp"], abs=1e-6), row
        assert abs(row["psnr_gap_db"]) < 0.3, row
        assert abs(ideal["psnr_gap_db"]) < 0.5, ideal  # against perfect CSI at the nominal SNR
    assert {r["csi_from"] for r in doc["rows"]} == {"probe"}
    assert all(r["frames_lost"] == 0 for r in doc["rows"])
