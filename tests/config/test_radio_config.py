"""Radio YAML schema: every shipped config validates, bad fields are refused with clear messages."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.config.radio import DEVICE_LIMITS, RadioConfig, load_radio_config
from testbed.config.yaml_io import format_number, load_yaml, validate
from testbed.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "firmware_configs"
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.yaml"))
EXPECTED = {"b200", "b210", "x310", "n210", "pluto-1r1t", "pluto-2r2t", "zmq"}


def test_all_expected_configs_are_shipped() -> None:
    assert EXPECTED <= {path.stem for path in CONFIG_FILES}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_config_validates(path: Path) -> None:
    cfg = load_radio_config(path)
    assert cfg.name == path.stem
    assert cfg.center_freq_hz == 915e6 and cfg.sample_rate_sps == 1e6
    assert cfg.device in DEVICE_LIMITS


def _write(tmp_path: Path, base: str, name: str = "bad.yaml", **changes: object) -> Path:
    data = load_yaml(CONFIG_DIR / f"{base}.yaml")
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        ("pluto-1r1t", {"center_freq_hz": 7e9},
         "pluto-1r1t.yaml: center_freq_hz = 7e9 is outside 325e6..3.8e9 Hz allowed for device 'pluto'"),
        ("pluto-1r1t", {"sample_rate_sps": 100e3},
         "sample_rate_sps = 100e3 is outside 520.833e3..61.44e6 S/s allowed for device 'pluto'"),
        ("pluto-1r1t", {"tx_gain_db": 5.0},
         "tx_gain_db = 5 is outside -89.75..0 dB allowed for device 'pluto'"),
        ("pluto-1r1t", {"rx_gain_db": 80},
         "rx_gain_db = 80 is outside 0..73 dB allowed for device 'pluto'"),
        ("pluto-1r1t", {"rx_channels": [0, 2]},
         "rx_channels = [0, 2] is not a list of distinct channels in 0..1 allowed for device 'pluto'"),
        ("b200", {"tx_channels": [0, 1]},
         "tx_channels = [0, 1] is not a list of distinct channels in 0..0 allowed for device 'b200'"),
        ("b200", {"rx_gain_db": 77},
         "rx_gain_db = 77 is outside 0..76 dB allowed for device 'b200'"),
        ("b210", {"sample_rate_sps": 40e6},
         "sample_rate_sps = 40e6 is above 30.72e6 S/s allowed for device 'b210' with two channels"),
        ("n210", {"center_freq_hz": 2.4e9},
         "center_freq_hz = 2.4e9 is outside 50e6..2.2e9 Hz allowed for device 'n210'"),
        ("x310", {"tx_gain_db": 40},
         "tx_gain_db = 40 is outside 0..31.5 dB allowed for device 'x310'"),
        ("x310", {"backend": "pluto"},
         "backend = 'pluto' cannot drive device 'x310'; allowed: 'uhd'"),
        ("x310", {"args": "type=b200"},
         "args type = 'b200' does not match device 'x310'; allowed: 'x300'"),
        ("pluto-1r1t", {"args": "192.168.2.1"},
         "args = '192.168.2.1' is not an IIO URI"),
        ("pluto-1r1t", {"clock_source": "external"},
         "clock_source = 'external' is not supported by device 'pluto'; allowed: 'internal'"),
        ("b200", {"antenna": "RX1"},
         "antenna = 'RX1' is not a port of device 'b200'; allowed: 'TX/RX', 'RX2'"),
        ("b200", {"device": "b300"},
         "device = 'b300' — Input should be 'b200', 'b210', 'x310', 'n210', 'pluto' or 'zmq'"),
        ("b200", {"clock_source": "gps"},
         "clock_source = 'gps' — Input should be 'internal', 'external' or 'gpsdo'"),
        ("zmq", {"sample_rate_sps": 0},
         "sample_rate_sps = 0 — Input should be greater than 0"),
    ],
)
def test_bad_field_names_field_value_and_range(tmp_path: Path, base: str, changes: dict,
                                               expected: str) -> None:
    path = _write(tmp_path, base, name=f"{base}.yaml", **changes)
    with pytest.raises(ConfigError) as info:
        load_radio_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "pluto-1r1t", center_freq_hz=7e9, rx_gain_db=-5)
    with pytest.raises(ConfigError) as info:
        load_radio_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}: ") for line in lines)


def test_misspelt_key_is_refused_with_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "b200", centre_freq_hz=1e9)
    with pytest.raises(ConfigError, match=r"unknown field 'centre_freq_hz' = 1e9 — allowed: name, "
                                          r"backend, device, args, center_freq_hz"):
        load_radio_config(path)


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = load_yaml(CONFIG_DIR / "zmq.yaml")
    del data["center_freq_hz"]
    with pytest.raises(ConfigError, match="src: center_freq_hz is missing"):
        validate(RadioConfig, data, "src")


def test_yaml_float_without_dot_is_accepted(tmp_path: Path) -> None:
    # YAML 1.1 reads 915e6 as a string; the schema still takes it as a number.
    path = tmp_path / "zmq.yaml"
    path.write_text((CONFIG_DIR / "zmq.yaml").read_text().replace("915.0e+6", "915e6"))
    assert load_radio_config(path).center_freq_hz == 915e6


def test_yaml_syntax_error_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nbackend: [zmq\n")
    with pytest.raises(ConfigError, match=rf"{path}: YAML syntax error at line \d+, column \d+"):
        load_yaml(path)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"{path}: file not found"):
        load_radio_config(path)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=rf"{path}: expected a mapping"):
        load_yaml(path)


@pytest.mark.parametrize(("value", "text"), [(7e9, "7e9"), (325e6, "325e6"), (61.44e6, "61.44e6"),
                                             (-89.75, "-89.75"), (0, "0"), ("x", "'x'")])
def test_format_number(value: object, text: str) -> None:
    assert format_number(value) == text
