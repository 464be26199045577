"""ChannelSpec validation and registration (testbed.channels.spec)."""
import math

import pytest

from testbed.channels import MODELS, ChannelSpec
from testbed.errors import ConfigError
from testbed.registry import create, names


def test_every_model_is_registered_and_creates_its_spec():
    assert set(MODELS) <= set(names("channel"))
    for model in MODELS:
        spec = create("channel", model, snr_db=7)
        assert spec == ChannelSpec(model=model, snr_db=7.0)


def test_registered_factory_names_unknown_parameters():
    with pytest.raises(ConfigError, match="snr.*allowed"):
        create("channel", "awgn", snr=3)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("model", "foo", "channel.model 'foo' is unknown; allowed: awgn, rayleigh, rician"),
        ("snr_db", math.nan, "channel.snr_db nan"),
        ("snr_db", "loud", "channel.snr_db 'loud'"),
        ("k_factor_db", math.inf, "channel.k_factor_db inf"),
        ("cfo_hz", 6e5, "channel.cfo_hz 600000.0 is out of range"),
        ("sample_rate_sps", 0, "channel.sample_rate_sps 0 is invalid; allowed: > 0"),
        ("delay_samples", -1, "channel.delay_samples -1 is invalid; allowed: >= 0"),
        ("taps", (0, 0), "channel.taps (0, 0) is invalid"),
        ("taps", (), "channel.taps () is invalid"),
        ("taps", "1", "channel.taps '1' is invalid"),
        ("coherence_samples", -5, "channel.coherence_samples -5 is invalid"),
        ("coherence_samples", 2.5, "channel.coherence_samples 2.5 is invalid"),
    ],
)
def test_bad_values_name_field_value_and_allowed(field, value, fragment):
    params = {"model": "awgn", "snr_db": 10.0, field: value}
    with pytest.raises(ConfigError) as error:
        ChannelSpec(**params)
    assert fragment in str(error.value)
    assert "allowed" in str(error.value)


def test_taps_are_normalised_to_unit_energy_and_accept_strings():
    spec = ChannelSpec("rayleigh", 5, taps=[2, "1j"])
    assert sum(abs(t) ** 2 for t in spec.taps) == pytest.approx(1.0)
    assert spec.taps[1] / spec.taps[0] == pytest.approx(0.5j)


def test_derived_quantities():
    spec = ChannelSpec("rician", snr_db=10, k_factor_db=3, cfo_hz=1e3, sample_rate_sps=1e6)
    assert spec.no == pytest.approx(0.1)
    assert spec.k_factor == pytest.approx(10 ** 0.3)
    assert spec.cfo_rad_per_sample == pytest.approx(2 * math.pi * 1e-3)
    assert spec.with_snr(0).no == pytest.approx(1.0)
    assert hash(spec) == hash(ChannelSpec("rician", 10.0, 3.0, 1e3, 1e6))
