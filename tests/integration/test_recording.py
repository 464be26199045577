"""A virtual-radio run recorded as SigMF: the samples the RX node received and one annotation
per frame it found, enough to receive the same frames again offline."""
import numpy as np
import pytest
import sigmf

from testbed.config.scenario import load_scenario
from testbed.phy.receiver import FrameReceiver
from testbed.runner.scenario import run_scenario

pytestmark = pytest.mark.integration


def test_a_recorded_run_holds_the_frames_the_receiver_found(tmp_path):
    scenario = load_scenario("digital-awgn", ["channel.snr_db=[12]", "max_images=2", f"record={tmp_path / 'rec'}"])
    doc = run_scenario(scenario, tmp_path / "run").document
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["frames_received"] == row["frames_sent"] > 0
    recording = sigmf.sigmffile.fromfile(str(tmp_path / "rec" / "rx0-ant0.sigmf-meta"))
    assert recording.get_global_field("core:sample_rate") == 1e6
    assert recording.get_global_field("testbed:system") == "digital"
    assert recording.get_global_field("testbed:radio")["name"] == "zmq"
    annotations = recording.get_annotations()
    assert len(annotations) == row["frames_received"]
    samples = recording.read_samples()
    assert samples.dtype == np.complex64 and samples.size >= max(a["core:sample_start"] + a["core:sample_count"]
                                                                  for a in annotations)
    again = FrameReceiver().push(np.concatenate([samples, np.zeros(4000, np.complex64)]))
    assert [f.start for f in again] == [a["core:sample_start"] for a in annotations]
    assert [f.header.seq for f in again] == [a["testbed:seq"] for a in annotations]
    assert all(f.payload_ok for f in again)


@pytest.mark.parametrize("name,overrides", [
    ("digital-awgn", ["channel.snr_db=[4,12]", "max_images=2", "batches=2"]),
    ("deepjscc-rayleigh", ["channel.snr_db=[5]", "max_images=2"]),
    ("mumimo-uplink", ["max_images=1"]),
    ("irs-jsce-5users", ["max_images=1", "system_params.crop_px=64", "batches=5"]),  # 5-stream frames, idle users
])
def test_a_replayed_recording_gives_the_metrics_of_the_run(tmp_path, name, overrides):
    from testbed.recordings.replay import replay

    scenario = load_scenario(name, [*overrides, f"record={tmp_path / 'rec'}"])
    live = run_scenario(scenario, tmp_path / "run").document
    again = replay(tmp_path / "rec", tmp_path / "replay")
    assert again["rows"] == live["rows"] and again["summary"] == live["summary"]
    assert again["frames"] == live["frames"] and again["models"] == live["models"]


def test_replay_of_a_folder_that_is_not_a_recording_names_it(tmp_path):
    from testbed.errors import ConfigError
    from testbed.recordings.replay import replay

    with pytest.raises(ConfigError, match="session.json"):
        replay(tmp_path, tmp_path / "out")
