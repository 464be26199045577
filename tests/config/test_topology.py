"""Topologies as data: every problem of a scenario's topology is reported at once, before
anything starts; sweep points, per-node CFO and per-antenna noise mean what the docs say."""
import math

import pytest

from testbed.config.scenario import load_scenario
from testbed.config.topology import Topology, stream_matrix
from testbed.errors import ConfigError, RadioError


def _topology(**changes) -> dict:
    topo = {
        "nodes": [{"name": "bs", "role": "tx", "cfo_hz": 2000.0}, {"name": "ue0", "role": "rx"},
                  {"name": "ue1", "role": "rx", "antennas": 2, "cfo_hz": -1000.0, "noise_db": [-5.0, -7.0]}],
        "users": [{"name": "u0", "tx": "bs", "rx": "ue0"}, {"name": "u1", "tx": "bs", "rx": "ue1"}],
        "links": [{"tx": "bs", "rx": "ue0", "snr_db": 3.0}, {"tx": "bs", "rx": "ue1", "snr_db": 9.0}],
    }
    topo.update(changes)
    return topo


def test_every_problem_is_reported_at_once(tmp_path):
    bad = _topology(
        users=[{"name": "u0", "tx": "ue0", "rx": "nobody"}, {"name": "u0", "tx": "bs", "rx": "ue1"}],
        links=[{"tx": "bs", "rx": "ue0", "snr_db": 3.0, "model": "ricean"},
               {"tx": "bs", "rx": "ue1", "snr_db": 3.0, "gain_db": -80.0}],
        sweep=[{"axis": "snr_db", "link": "bs->ue7", "values": [1.0]}])
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"name": "bad", "system": "link", "topology": bad}))
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path))
    text = str(err.value)
    for needle in ["users.0.tx = 'ue0' is not a transmitting node; allowed: bs",
                   "users.0.rx = 'nobody' is not a receiving node; allowed: ue0, ue1",
                   "name 'u0' is used twice", "links.0.model = 'ricean' is unknown; allowed: awgn, rayleigh, rician",
                   "links.1: snr_db = 3.0, gain_db = -80.0; allowed: exactly one of them",
                   "sweep.0.link = 'bs->ue7' is unknown; allowed: bs->ue0, bs->ue1"]:
        assert needle in text, (needle, text)
    assert text.count("\n") >= 5 and all(line.startswith("bad.yaml") for line in text.splitlines())


def test_sweep_points_are_a_grid_of_offsets_and_single_link_values():
    topo = Topology.model_validate(_topology(sweep=[
        {"axis": "snr_offset_db", "values": [0.0, 10.0]}, {"axis": "snr_db", "link": "bs->ue0", "values": [-2.0, 5.0]}]))
    points = topo.points()
    assert points == [{"bs->ue0": -2.0, "bs->ue1": 9.0}, {"bs->ue0": 5.0, "bs->ue1": 9.0},
                      {"bs->ue0": -2.0, "bs->ue1": 19.0}, {"bs->ue0": 5.0, "bs->ue1": 19.0}]


def test_stream_matrix_gives_snr_per_antenna_node_cfo_and_noise():
    topo = Topology.model_validate(_topology())
    m = stream_matrix(topo, topo.points()[0], 1e6)
    assert m.tx_streams == [("bs", 0)] and m.rx_streams == [("ue0", 0), ("ue1", 0), ("ue1", 1)]
    # ue0 has no noise_db: its strongest link has unit gain and noise 10**(-snr/10)
    assert m.specs[0][0].gain_db == 0.0 and math.isclose(m.noise_var[0], 10 ** -0.3)
    # ue1 has noise per antenna; the gain makes snr_db = 9 dB at its first antenna
    assert math.isclose(m.noise_var[2], 10 ** -0.7)
    assert math.isclose(m.specs[1][0].gain_db, 9.0 - 5.0)
    assert m.specs[1][0].cfo_hz == 2000.0 - (-1000.0)  # cfo(tx) - cfo(rx)


def test_legacy_channel_section_becomes_one_link_with_its_snr_sweep():
    scenario = load_scenario("deepjscc-awgn")
    topo = scenario.network()
    assert [n.name for n in topo.nodes] == ["tx0", "rx0"] and topo.users[0].name == "u0"
    assert [p["tx0->rx0"] for p in topo.points()] == scenario.channel.snr_db
    m = stream_matrix(topo, topo.points()[0], 1e6)
    assert m.specs[0][0].cfo_hz == scenario.channel.cfo_hz and m.specs[0][0].gain_db == 0.0


def test_an_over_the_air_scenario_fails_before_any_process_starts(tmp_path):
    from testbed.runner.session import check_radios

    scenario = load_scenario("deepjscc-awgn", ["radio=pluto-1r1t"])
    with pytest.raises(RadioError) as err:
        check_radios(scenario)
    assert "pluto-1r1t" in str(err.value) and "not attached" in str(err.value)


def test_cli_run_of_an_ota_scenario_exits_2_without_starting(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "testbed.cli", "run", "deepjscc-awgn", "--set", "radio=b210",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "b210" in out.stdout and "not attached" in out.stdout
    assert not (tmp_path / "run" / "nodes").exists()
