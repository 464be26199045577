"""The shipped `mu-ascc-2users` scenario through real node processes: the base station plans
rates, powers and MMSE beams on the paper's channel, sends the data user photographs and the
semantic user Fashion-MNIST items on those beams; each user decodes its own stream, measures the
SINR the plan predicted, and is scored on its own items (MS-SSIM, accuracy)."""
import numpy as np
import pytest

from testbed.config.scenario import load_scenario
from testbed.runner.scenario import run_scenario

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    scenario = load_scenario("mu-ascc-2users", ["max_images=4", "batches=1"])
    scenario.topology.sweep[0].values = [12.0]
    return run_scenario(scenario, tmp_path_factory.mktemp("mu_ascc")).document


def test_both_users_are_served_on_their_planned_beams(run):
    rows = {r["user"]: r for r in run["rows"]}
    assert set(rows) == {"du", "su"} and all(r["status"] == "ok" for r in rows.values()), rows
    for user, role in (("du", "data"), ("su", "semantic")):
        row = rows[user]
        choice = row["choice"]
        assert choice["role"] == role and row["frames_lost"] == 0 and row["bler"] == 0.0, row
        assert np.array(choice["beam"]).shape == (2, 2)  # Nt = 2 complex weights as [re, im]
        assert abs(row["snr_est_db"] - choice["planned_sinr_db"]) < 1.5, (row["snr_est_db"], choice)
    total_w = rows["du"]["choice"]["power_w"] + rows["su"]["choice"]["power_w"]
    assert total_w == pytest.approx(10 ** 1.2, rel=1e-6)  # the whole 12 dBW budget is spent
    assert rows["du"]["ms_ssim"] > 0.8  # error-free codec quality on the held-out photographs
    assert rows["su"]["accuracy"] >= 0.5  # 4 items: the classifier behind the codec, not chance (0.1)
    assert "accuracy" not in rows["du"]
