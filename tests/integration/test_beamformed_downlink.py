"""The beamformed MU-MISO downlink through real node processes: a system with encode_precoded
sends two users different payloads (different counts and sizes) on leaky regularised-ZF beams over
the paper's fixed channel; each user decodes its own stream error-free and measures the SINR
that the channel, the beams and the noise predict."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from testbed import registry
from testbed.config.scenario import Scenario
from testbed.config.yaml_io import validate
from testbed.recordings.replay import replay
from testbed.runner.scenario import run_scenario

pytestmark = pytest.mark.integration
PLUGIN = Path(__file__).parent / "plugin_beams"
H_BAR = np.array([[-0.4199 - 1.2885j, -0.4546 + 1.0362j], [0.2092 + 1.0851j, -0.5603 + 0.7316j]])
SNR_DB = 25.0  # noise 10**(-2.5) at each user, unit link gain: the emulator's H is H_BAR
PARAMS = {"n_frames": [6, 3], "payload_bytes": [400, 900], "alpha": 4.0, "power": 2.0}


@pytest.fixture
def beams_system(monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, str(PLUGIN))
    registry.load_plugins(PLUGIN)
    return registry.get("system", "beams")


def _scenario(images_u1: str, record: Path) -> Scenario:
    links = [{"tx": "bs", "rx": f"ue{k}", "model": "fixed", "snr_db": SNR_DB,
              "coefficients": [[h.real, h.imag] for h in H_BAR[k]]} for k in range(2)]
    return validate(Scenario, {
        "name": "beamformed-test", "system": "beams", "system_params": PARAMS, "max_images": 1, "record": str(record),
        "topology": {"nodes": [{"name": "bs", "role": "tx", "antennas": 2}, {"name": "ue0", "role": "rx", "cfo_hz": 700},
                               {"name": "ue1", "role": "rx", "cfo_hz": -1200}],
                     "users": [{"name": "u0", "tx": "bs", "rx": "ue0"},
                               {"name": "u1", "tx": "bs", "rx": "ue1", "images": images_u1}],
                     "links": links}}, "test")


def _sinr_db(w: np.ndarray, active: list[int]) -> np.ndarray:
    """|h_k w_k|^2 / (sum of the other active streams' |h_k w_j|^2 + noise) per user, in dB."""
    g = np.abs(H_BAR @ w) ** 2
    noise = 10 ** (-SNR_DB / 10)
    return 10 * np.log10([g[k, k] / (sum(g[k, j] for j in active if j != k) + noise) for k in range(2)])


def test_two_users_get_their_own_payloads_on_leaky_beams_and_measure_the_predicted_sinr(tmp_path, beams_system):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / "grey.png")
    out = run_scenario(_scenario(str(folder), tmp_path / "rec"), tmp_path / "run")
    doc = out.document
    rows = {r["user"]: r for r in doc["rows"]}
    for user, sent in (("u0", 6), ("u1", 3)):
        row = rows[user]
        assert row["status"] == "ok", row
        assert (row["frames_sent"], row["frames_lost"], row["ber"], row["bler"]) == (sent, 0, 0.0, 0.0), row
        assert row["images_lost"] == 0  # each user was scored on the items it was encoded from
    (batch,) = json.loads((tmp_path / "rec" / "session.json").read_text())["batches"]
    manifests = batch["encoded"]["bs"]["manifests"]
    assert manifests["1"]["items"] == ["grey"] and manifests["0"]["items"] == [out.originals[0][0]]
    again = replay(tmp_path / "rec", tmp_path / "replay")  # the recording replays through the stream receiver
    assert [(r["user"], r["frames_lost"], r["ber"]) for r in again["rows"]] == [("u0", 0, 0.0), ("u1", 0, 0.0)]
    w = beams_system.beams(H_BAR, PARAMS["alpha"], PARAMS["power"])
    both, alone = _sinr_db(w, [0, 1]), _sinr_db(w, [0])
    assert np.all(both < 10 * np.log10(np.abs(np.diag(H_BAR @ w)) ** 2 / 10 ** (-SNR_DB / 10)) - 5)  # leakage counts
    measured = {user: [snr for _, _, snr, _ in sorted(doc["frames"][user], key=lambda f: f[1])] for user in rows}
    # frames 0-2 carry both streams; u0's frames 3-5 go alone (u1 is silent: no interference)
    np.testing.assert_allclose(measured["u0"][:3], both[0], atol=1.0)
    np.testing.assert_allclose(measured["u0"][3:], alone[0], atol=1.0)
    np.testing.assert_allclose(measured["u1"], both[1], atol=1.0)
    status = doc["processes"]
    # the other user's streams are interference only: neither this user's frames nor errors
    assert (status["ue0"]["rx_other_flows"], status["ue1"]["rx_other_flows"]) == (3, 6), status
    for rx in ("ue0", "ue1"):
        assert status[rx]["rx_header_crc_fail"] == status[rx]["rx_payload_crc_fail"] == 0, status[rx]
        assert status[rx]["rx_header_invalid"] == status[rx]["errors"] == 0, status[rx]
