"""Tests of testbed.phy.qam: Gray mapping, energy, hard/soft demapping and AWGN BER."""

import numpy as np
import pytest
from scipy.special import erfc

from testbed.errors import ConfigError
from testbed.phy.qam import MODULATIONS, QamModem

KS = sorted(MODULATIONS.values())


def qfunc(x):
    return 0.5 * erfc(x / np.sqrt(2))


def awgn(symbols, no, rng):
    return symbols + np.sqrt(no / 2) * (rng.standard_normal(symbols.shape)
                                        + 1j * rng.standard_normal(symbols.shape))


@pytest.mark.parametrize("k", KS)
def test_unit_energy_and_size(k):
    points = QamModem(k).constellation
    assert points.dtype == np.complex64 and points.size == 2 ** k
    assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0, abs=1e-5)
    assert np.unique(np.round(points, 5)).size == 2 ** k


@pytest.mark.parametrize("k", KS)
def test_gray_nearest_neighbours_differ_in_one_bit(k):
    points = QamModem(k).constellation
    dist = np.abs(points[:, None] - points[None, :])
    np.fill_diagonal(dist, np.inf)
    d_min = dist.min()
    labels = np.arange(2 ** k)
    for a, b in zip(*np.nonzero(np.isclose(dist, d_min, rtol=1e-4))):
        assert bin(int(labels[a] ^ labels[b])).count("1") == 1


def test_16qam_matches_80211_table():
    # IEEE 802.11-2012 Table 18-11: b0b1 = 00,01,11,10 -> I = -3,-1,1,3 (times 1/sqrt(10)).
    modem = QamModem(4)
    bits = np.array([0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0], dtype=np.uint8)
    expected = np.array([-3 + 3j, -1 + 1j, 1 - 1j, 3 - 3j]) / np.sqrt(10)
    np.testing.assert_allclose(modem.modulate(bits), expected, atol=1e-6)


@pytest.mark.parametrize("k", KS)
def test_hard_inverts_modulate_and_llr_signs(k):
    rng = np.random.default_rng(k)
    modem = QamModem(k)
    bits = rng.integers(0, 2, 600 * k, dtype=np.uint8)
    symbols = modem.modulate(bits)
    assert symbols.shape == (600,) and symbols.dtype == np.complex64
    np.testing.assert_array_equal(modem.hard(symbols), bits)
    noisy = awgn(symbols, 10 ** (-(3 * k + 5) / 10), rng)
    llr = modem.demodulate(noisy, 0.1)
    assert llr.dtype == np.float32 and llr.shape == bits.shape
    np.testing.assert_array_equal((llr < 0).astype(np.uint8), modem.hard(noisy))


@pytest.mark.parametrize("k", [2, 4, 6])
def test_llr_equals_bruteforce_maxlog(k):
    rng = np.random.default_rng(1)
    modem = QamModem(k)
    points = modem.constellation
    labels = (np.arange(2 ** k)[:, None] >> np.arange(k - 1, -1, -1)) & 1
    y = awgn(modem.modulate(rng.integers(0, 2, 50 * k, dtype=np.uint8)), 0.2, rng)
    no = rng.uniform(0.05, 0.5, y.size)
    d = np.abs(y[:, None] - points[None, :]) ** 2 / no[:, None]
    ref = np.stack([d[:, labels[:, j] == 1].min(1) - d[:, labels[:, j] == 0].min(1)
                    for j in range(k)], axis=1).ravel()
    np.testing.assert_allclose(modem.demodulate(y, no), ref, rtol=1e-4, atol=1e-4)


def ber_theory(k, esn0):
    if k == 1:
        return qfunc(np.sqrt(2 * esn0))
    if k == 2:
        return qfunc(np.sqrt(esn0))
    t = np.sqrt(esn0 / 5)  # 16-QAM Gray, exact: (3Q(t) + 2Q(3t) - Q(5t)) / 4
    return (3 * qfunc(t) + 2 * qfunc(3 * t) - qfunc(5 * t)) / 4


@pytest.mark.parametrize("k,snr_db", [(1, 4.0), (2, 4.0), (2, 8.0), (4, 10.0), (4, 14.0)])
def test_awgn_ber_matches_closed_form(k, snr_db):
    rng = np.random.default_rng(int(10 * snr_db) + k)
    modem = QamModem(k)
    bits = rng.integers(0, 2, 400_000, dtype=np.uint8)
    no = 10 ** (-snr_db / 10)
    llr = modem.demodulate(awgn(modem.modulate(bits), no, rng), no)
    ber = np.mean((llr < 0) != bits)
    expected = ber_theory(k, 1 / no)
    # >= ~300 errors expected: a 15 % band is > 2.5 sigma, and a wrong mapping/scale is far outside.
    assert ber == pytest.approx(expected, rel=0.15)


def test_bad_bits_per_symbol_names_field_value_allowed():
    with pytest.raises(ConfigError, match=r"bits_per_symbol.*3.*\[1, 2, 4, 6, 8\]"):
        QamModem(3)


def test_bit_count_must_fit_symbols():
    with pytest.raises(ValueError):
        QamModem(4).modulate(np.zeros(6, dtype=np.uint8))
