"""Every shipped scenario validates; a bad field is refused before any process starts, with the
field, the value and what is allowed in the message."""
import subprocess
import sys

import pytest

from testbed.config.scenario import Scenario, check_closed_loop, load_scenario, scenario_from_dict, shipped_scenarios
from testbed.config.yaml_io import load_yaml, validate
from testbed.errors import ConfigError


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_shipped_scenario_is_valid(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.channel.snr_db


@pytest.mark.parametrize("override,needles", [
    ("channel.model=ricean", ["channel.model", "ricean", "awgn, rayleigh, rician"]),
    ("channel.snr_db=[5, 99]", ["channel.snr_db", "99", "-30..60"]),
    ("channel.cfo_hz=900000", ["cfo_hz", "900000", "500000"]),
    ("system=jpeg", ["system", "jpeg", "allowed", "digital"]),
    ("system_params.modulation=qam32", ["modulation", "qam32", "qam16"]),
    ("system_params.code=turbo", ["code", "turbo", "ldpc_648_1_2"]),
    ("radio=hackrf", ["radio", "hackrf", "pluto-1r1t"]),
    ("chanel.snr_db=3", ["chanel", "allowed"]),
    ("images=/nonexistent/folder", ["images", "/nonexistent/folder"]),
])
def test_bad_field_is_refused_with_field_value_and_allowed(override, needles):
    with pytest.raises(ConfigError) as err:
        load_scenario("digital-awgn", [override])
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_cli_refuses_bad_field_before_starting_processes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "testbed.cli", "run", "digital-awgn", "--set", "channel.model=foo",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "channel.model" in out.stdout and "foo" in out.stdout and "awgn" in out.stdout
    assert not (tmp_path / "run").exists()  # nothing was started, nothing written


def _uplink(**changes) -> dict:
    data = load_yaml(shipped_scenarios()["mumimo-uplink"])
    return {**data, "adapt": "closed_loop", **changes}


def test_closed_loop_runs_on_the_virtual_uplink_only():
    assert scenario_from_dict(_uplink()).adapt == "closed_loop"
    with pytest.raises(ConfigError) as err:
        load_scenario("digital-awgn", ["adapt=closed_loop"])
    for needle in ("adapt = 'closed_loop'", "RX node rx0 has 1 antenna", "1 TX node sends", "allowed:",
                   "single-antenna TX nodes"):
        assert needle in str(err.value), (needle, str(err.value))
    over_the_air = _uplink()
    over_the_air["topology"]["nodes"] = [{**n, "radio": "pluto-1r1t"} for n in over_the_air["topology"]["nodes"]]
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(over_the_air)
    for needle in ("adapt = 'closed_loop'", "node ue0 has radio 'pluto-1r1t'", "not supported yet",
                   "allowed: virtual radios (zmq)"):
        assert needle in str(err.value), (needle, str(err.value))
    with pytest.raises(ConfigError, match="adapt = 'closed_loop'"):  # a scenario built without the loader
        check_closed_loop(validate(Scenario, {"name": "x", "system": "link", "adapt": "closed_loop"}, "test"))
