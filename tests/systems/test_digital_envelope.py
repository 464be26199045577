"""The digital envelope: measured codeword error rates (the shipped table agrees with a fresh
measurement of the PHY), their interpolation and Rayleigh average, the choice per SNR, and a
chosen configuration received whole at a high SNR with the PSNR it predicted."""
import math

import numpy as np
import pytest

from testbed.channels.spec import ChannelSpec
from testbed.data.images import default_images
from testbed.errors import ConfigError
from testbed.runner.loopback import run_loopback
from testbed.systems.base import evaluate
from testbed.systems.digital.bler import BlerTable, mcs_names, measure_point, spectral_efficiency
from testbed.systems.digital.envelope import EnvelopeSystem, capacity_bits

SYNTHETIC = BlerTable({"ldpc_648_1_2/qpsk": [
    {"snr_db": 0.0, "codewords": 1000, "errors": 1000}, {"snr_db": 1.0, "codewords": 1000, "errors": 300},
    {"snr_db": 2.0, "codewords": 1000, "errors": 30}, {"snr_db": 3.0, "codewords": 1000, "errors": 0}]})


def test_error_rate_follows_the_measured_points_and_extends_the_waterfall():
    p = SYNTHETIC.codeword_error_rate("ldpc_648_1_2/qpsk", np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]))
    assert p[0] == 1.0 and p[1] == 1.0
    assert p[2] == pytest.approx(0.3) and p[3] == pytest.approx(0.03)
    assert 0 < p[5] < p[4] < 0.03  # below the last error the slope of the waterfall continues
    assert np.all(np.diff(p) <= 0)


def test_rayleigh_frames_fail_more_often_than_awgn_frames_at_the_same_mean_snr():
    awgn = SYNTHETIC.frame_error_rate("ldpc_648_1_2/qpsk", 6.0, 20, "awgn")
    rayleigh = SYNTHETIC.frame_error_rate("ldpc_648_1_2/qpsk", 6.0, 20, "rayleigh")
    assert awgn < 1e-3 < rayleigh < 1.0
    assert SYNTHETIC.frame_error_rate("ldpc_648_1_2/qpsk", 6.0, 40, "awgn") > awgn
    with pytest.raises(ConfigError, match="channel"):
        SYNTHETIC.frame_error_rate("ldpc_648_1_2/qpsk", 6.0, 20, "rician")


def test_measurement_counts_codeword_errors():
    clean = measure_point("ldpc_648_1_2/qpsk", 8.0, 5, seed=1)
    noisy = measure_point("ldpc_648_1_2/qpsk", -3.0, 5, seed=1)
    assert clean["errors"] == 0 and clean["codewords"] == 100
    assert noisy["errors"] > 90
    assert clean["bit_errors"] == clean["bits_lost"] == 0 and clean["bits"] == noisy["bits"] > 100 * 300
    assert 0.05 * noisy["bits"] < noisy["bit_errors"] + noisy["bits_lost"] < 0.5 * noisy["bits"]


def test_bit_error_rate_interpolates_counts_lost_bits_half_and_zeros_as_half_an_error():
    rows = [{"snr_db": 0.0, "codewords": 10, "errors": 10, "bits": 1000, "bit_errors": 100, "bits_lost": 200},
            {"snr_db": 1.0, "codewords": 10, "errors": 1, "bits": 1000, "bit_errors": 1, "bits_lost": 0},
            {"snr_db": 2.0, "codewords": 10, "errors": 0, "bits": 1000, "bit_errors": 0, "bits_lost": 0}]
    table = BlerTable({"ldpc_648_1_2/qpsk": rows})
    ber = table.bit_error_rate("ldpc_648_1_2/qpsk", np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 9.0]))
    np.testing.assert_allclose(ber, [0.2, 0.2, np.sqrt(0.2 * 0.001), 0.001, 0.0005, 0.0005])
    with pytest.raises(ConfigError, match="no bit counts"):
        SYNTHETIC.bit_error_rate("ldpc_648_1_2/qpsk", 1.0)


def test_shipped_table_covers_every_scheme_and_agrees_with_a_fresh_measurement():
    table = BlerTable.load()
    assert sorted(table.curves) == sorted(mcs_names())
    for name in ("ldpc_648_1_2/qpsk", "ldpc_1296_3_4/qam64"):
        rows = [r for r in table.curves[name] if 0.02 <= r["errors"] / r["codewords"] <= 0.5]
        row = rows[len(rows) // 2]
        fresh = measure_point(name, row["snr_db"], 50, seed=7)  # another seed than the table's
        shipped, now = row["errors"] / row["codewords"], fresh["errors"] / fresh["codewords"]
        sigma = math.sqrt(shipped * (1 - shipped) / fresh["codewords"])
        assert abs(now - shipped) < 5 * sigma + 0.3 * shipped, (name, row, fresh)
    for code in ("ldpc_648_1_2", "ldpc_1296_5_6"):  # more bits per symbol need more SNR
        thresholds = [table.threshold_db(f"{code}/{m}", 1e-2) for m in ("qpsk", "qam16", "qam64", "qam256")]
        assert thresholds == sorted(thresholds)


def test_capacity_of_awgn_and_rayleigh():
    assert capacity_bits(0.0, "awgn") == pytest.approx(1.0)
    assert 0 < capacity_bits(10.0, "rayleigh") < capacity_bits(10.0, "awgn") == pytest.approx(math.log2(11))


def test_envelope_climbs_with_snr_and_is_more_careful_under_fading():
    images = default_images()[:2]
    awgn = EnvelopeSystem({"codecs": ["jpeg2000"]})
    rayleigh = EnvelopeSystem({"codecs": ["jpeg2000"], "channel": "rayleigh"})
    low, _ = awgn.choose(images, 4.0)
    high, predicted = awgn.choose(images, 20.0)
    faded, _ = rayleigh.choose(images, 20.0)
    rate = {c: spectral_efficiency(f"{c.code}/{c.modulation}") for c in (low, high, faded)}
    assert rate[low] < rate[high] and rate[faded] < rate[high]
    assert awgn.ideal_psnr(images, 20.0) > predicted


def test_chosen_configuration_arrives_whole_with_the_predicted_quality():
    images = default_images()[:2]
    system = EnvelopeSystem({"codecs": ["jpeg2000"]})
    encoded = system.encode(images, 12.0)
    frames = run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=12.0, cfo_hz=2e3))
    got = evaluate(system, images, encoded, frames)
    assert got["frames_lost"] == 0 and got["images_lost"] == 0
    assert got["choice"]["codec"] == "jpeg2000"
    assert abs(got["psnr_db"] - got["choice"]["predicted_psnr_db"]) < 1.0
    assert got["psnr_db"] < got["ideal_psnr_db"]


def test_bad_parameters_name_the_field():
    with pytest.raises(ConfigError, match="modulations"):
        EnvelopeSystem.validate_params({"modulations": ["qam1024"]}, "test")
    with pytest.raises(ConfigError, match="frame_bytes"):
        EnvelopeSystem.validate_params({"frame_bytes": [10]}, "test")


def test_a_scenario_whose_link_fades_otherwise_than_the_choice_assumes_is_refused():
    from testbed.config.scenario import load_scenario

    assert load_scenario("digital-envelope-rayleigh").system_params["channel"] == "rayleigh"
    with pytest.raises(ConfigError, match="system_params.channel = 'awgn' differs from the link's model 'rayleigh'"):
        load_scenario("digital-envelope-awgn", ["channel.model=rayleigh"])
