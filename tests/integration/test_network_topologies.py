"""MU-MIMO uplink, ZF-precoded MU-MISO downlink and the software IRS through real node
processes, held to closed forms for the channel the emulator realised."""
import numpy as np
import pytest

from testbed.channels.realization import generate_matrix
from testbed.config.irs import IrsConfig
from testbed.config.scenario import Scenario, load_scenario
from testbed.config.topology import stream_matrix
from testbed.config.yaml_io import validate
from testbed.phy.mimo import lmmse_ber_monte_carlo, lmmse_sinr
from testbed.phy.precoding import zero_forcing
from testbed.runner.graph import slotted
from testbed.runner.scenario import run_scenario

pytestmark = pytest.mark.integration
LINK = {"modulation": "qpsk", "code": "none", "payload_bytes": 600}


def _uplink(snr_db: float, n_frames: int, coherence: int = 0) -> Scenario:
    txs = [f"ue{k}" for k in range(4)]
    return validate(Scenario, {
        "name": "uplink-test", "system": "link", "system_params": {**LINK, "n_frames": n_frames},
        "topology": {
            "nodes": [{"name": t, "role": "tx", "cfo_hz": 800.0 * (k - 1.5)} for k, t in enumerate(txs)]
            + [{"name": "bs", "role": "rx", "antennas": 4}],
            "users": [{"name": f"u{k}", "tx": t, "rx": "bs"} for k, t in enumerate(txs)],
            "links": [{"tx": t, "rx": "bs", "model": "rayleigh", "snr_db": snr_db, "coherence_samples": coherence}
                      for t in txs]}}, "test")


def _summary(rows: list[dict]) -> list[tuple]:
    return [(r["user"], r["status"], r.get("reason"), r.get("frames_lost"), r.get("ber")) for r in rows]


def _realised_h(doc: dict) -> np.ndarray:
    h = np.asarray(doc["processes"]["channel"]["realised_h"])
    return h[..., 0] + 1j * h[..., 1]


def test_uplink_post_lmmse_sinr_is_the_closed_form_of_the_realised_h(tmp_path):
    out = run_scenario(_uplink(20.0, n_frames=6, coherence=10**9), tmp_path)
    rows = out.document["rows"]
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 for r in rows), _summary(rows)
    theory = 10 * np.log10(lmmse_sinr(_realised_h(out.document), 10 ** -2.0))
    measured = np.array([-r["evm_db"] for r in rows])  # data-aided: error vector to the sent symbols
    assert np.all(np.abs(measured - theory) < 0.5), (measured, theory)


@pytest.mark.parametrize("snr_db", [6.0, 12.0])
def test_uplink_qpsk_ber_of_four_streams_within_half_a_db_of_monte_carlo(tmp_path, snr_db):
    scenario = _uplink(snr_db, n_frames=30)
    out = run_scenario(scenario, tmp_path)
    doc = out.document
    rows = doc["rows"]
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 for r in rows), _summary(rows)
    ber = float(np.mean([r["ber"] for r in rows]))
    topo = scenario.network()
    specs = slotted(stream_matrix(topo, topo.points()[0], 1e6), doc["slot_samples"]).specs
    blocks = sorted({start // doc["slot_samples"] for _, start, _, _ in doc["frames"]["u0"]})
    assert len(blocks) == 30
    channels = generate_matrix(specs, scenario.seed, blocks)
    mc = [lmmse_ber_monte_carlo("qpsk", snr_db + d, 4, 4, 0, np.random.default_rng(1), 4096, channels)
          for d in (0.5, -0.5)]
    assert mc[0] < ber < mc[1], (mc, ber)


def test_zero_forcing_downlink_separates_the_two_users(tmp_path):
    scenario = load_scenario("mumiso-downlink", ["system=link", "system_params={}", "max_images=1"])
    scenario.system_params = {**LINK, "n_frames": 4}
    scenario.topology.sweep = []
    for link in scenario.topology.links:
        link.snr_db = 25.0
    out = run_scenario(scenario, tmp_path)
    rows = out.document["rows"]
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 and r["ber"] == 0 for r in rows), _summary(rows)
    h = _realised_h(out.document)  # rows: the users' antennas, columns: the TX's two antennas
    gain = np.abs(np.diag(h @ zero_forcing(h, power=2.0))) ** 2
    expected = 10 * np.log10(gain / 10 ** -2.5)
    measured = np.array([-r["evm_db"] for r in rows])
    # any leak of the other user's stream would show as interference well above the noise
    assert np.all(np.abs(measured - expected) < 1.0), (measured, expected)


def test_irs_phase_change_lands_at_the_logged_sample(tmp_path):
    scenario = load_scenario("irs-link", ["max_images=1"])
    out = run_scenario(scenario, tmp_path)
    doc = out.document
    # the schedule's second step starts a point of its own: one row per surface state
    assert [(r["point"], r["irs_phases"], r["batches"]) for r in doc["rows"]] == [(0, "zero", 2), (1, "optimal", 2)]
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 for r in doc["rows"])
    change = [c for c in doc["channel_changes"] if c["what"] == "set_irs_phases"]
    assert len(change) == 2  # batch 0: zero phases, batch 2: the 1-bit optimum
    at = change[1]["sample"]
    topo = scenario.network()
    config = IrsConfig.model_validate(topo.irs_config())
    channel = config.channel(scenario.seed)
    gain, noise = 10 ** (90 / 10), 10 ** (-14 / 10)
    before = 10 * np.log10(abs(channel.cascaded(np.zeros(64))[0, 0]) ** 2 * gain / noise)
    after = 10 * np.log10(abs(channel.cascaded(channel.best_phases(0, 0, 0, 1))[0, 0]) ** 2 * gain / noise)
    assert after - before > 10
    frames = doc["frames"]["u0"]
    assert {start < at for _, start, _, _ in frames} == {True, False}
    for _, start, snr, _ in frames:
        assert abs(snr - (after if start >= at else before)) < 1.5, (start, at, snr, before, after)
    assert abs(doc["rows"][0]["snr_est_db"] - before) < 1.5 and abs(doc["rows"][1]["snr_est_db"] - after) < 1.5
