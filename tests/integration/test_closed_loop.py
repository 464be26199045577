"""The closed CSI loop of the MU-MIMO uplink (``adapt: closed_loop``) through real node
processes: per batch one fading block, a probe, and the channel column the base station
estimated fed back to each TX before it encodes; held to the emulator's own fading draws."""
from pathlib import Path

import numpy as np
import pytest

from testbed import registry
from testbed.channels.realization import generate_matrix
from testbed.config.scenario import Scenario
from testbed.config.topology import stream_matrix
from testbed.config.yaml_io import validate
from testbed.runner.scenario import run_scenario

pytestmark = pytest.mark.integration
PLUGIN = Path(__file__).parent / "plugin_csi"
SNR_DB = 20.0
M = 4


@pytest.fixture
def csi_system(monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, str(PLUGIN))
    registry.load_plugins(PLUGIN)
    return registry.get("system", "csi_link")


def _scenario() -> Scenario:
    txs = ["ue0", "ue1"]
    return validate(Scenario, {
        "name": "closed-loop-test", "system": "csi_link", "adapt": "closed_loop", "batches": 2, "seed": 3,
        "system_params": {"modulation": "qpsk", "code": "ldpc_648_1_2", "n_frames": 2, "payload_bytes": 100},
        "topology": {
            "nodes": [{"name": t, "role": "tx"} for t in txs] + [{"name": "bs", "role": "rx", "antennas": M}],
            "users": [{"name": f"u{k}", "tx": t, "rx": "bs"} for k, t in enumerate(txs)],
            "links": [{"tx": t, "rx": "bs", "model": "rayleigh", "snr_db": SNR_DB} for t in txs]}}, "test")


def _error_db(est: np.ndarray, true: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(np.abs(est - true) ** 2) / np.sum(np.abs(true) ** 2)))


def test_each_tx_is_told_the_column_of_the_fading_block_its_batch_meets(tmp_path, csi_system):
    scenario = _scenario()
    doc = run_scenario(scenario, tmp_path).document
    rows = {r["user"]: r for r in doc["rows"]}
    topo = scenario.network()
    specs = stream_matrix(topo, topo.points()[0], 1e6).specs  # coherence_samples 0: one block per batch
    h = generate_matrix(specs, scenario.seed, [0, 1])  # (batch, M antennas, 2 TXs): the emulator's draws
    assert [c["block"] for c in doc["channel_changes"] if c["what"] == "set_fading_block"] == [0, 1]
    for k, user in enumerate(("u0", "u1")):
        row = rows[user]
        assert row["status"] == "ok" and row["frames_lost"] == 0 and row["ber"] == 0, row
        assert row["csi_from"] == "probe" and row["csi_error_db"] < -10, row
        told = row["choice"]
        assert [t["batch"] for t in told] == [0, 1]
        for batch, t in enumerate(told):
            csi = np.asarray(t["csi"])
            csi = csi[:, 0] + 1j * csi[:, 1]
            assert _error_db(csi, h[batch, :, k]) < -10, (user, batch, csi, h[batch, :, k])
            # the TX is told unit-power symbols over the estimated noise: the link SNR (unit-gain
            # links), the draw's gain being in the column
            assert abs(t["snr_db"] - SNR_DB) < 1.0, (t["snr_db"], SNR_DB)
            assert t["sinr_db"] > SNR_DB - 10  # its probe stream's post-LMMSE SINR
            assert row["csi_snr_db"][batch] == t["snr_db"]
        assert _error_db(h[0, :, k], h[1, :, k]) > -3  # batch 1 meets a fresh channel
