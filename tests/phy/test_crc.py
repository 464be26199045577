"""Tests of testbed.phy.crc and testbed.phy.bits."""

import numpy as np
import pytest

from testbed.phy.bits import bits_to_bytes, bits_to_int, bytes_to_bits, int_to_bits
from testbed.phy.crc import append_crc16_bits, check_crc16_bits, crc16, crc16_bits, crc32


def test_check_values():
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE
    assert crc32(b"123456789") == 0xCBF43926


def test_bits_roundtrip():
    data = bytes(range(256))
    bits = bytes_to_bits(data)
    assert bits.dtype == np.uint8 and bits.shape == (2048,)
    assert bits[:16].tolist() == [0] * 15 + [1]
    assert bits_to_bytes(bits) == data
    np.testing.assert_array_equal(bytes_to_bits(np.frombuffer(data, np.uint8)), bits)
    assert bits_to_int(int_to_bits(0xBEEF, 16)) == 0xBEEF
    assert int_to_bits(5, 4).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError):
        int_to_bits(16, 4)
    with pytest.raises(ValueError):
        bits_to_bytes(np.zeros(7, np.uint8))


def test_bit_crc_equals_byte_crc_and_batches():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (5, 20), dtype=np.uint8)
    bits = np.unpackbits(rows, axis=1)
    expected = [crc16(r.tobytes()) for r in rows]
    assert crc16_bits(bits).tolist() == expected
    framed = append_crc16_bits(bits)
    assert framed.shape == (5, 176)
    assert check_crc16_bits(framed).all()
    assert check_crc16_bits(framed[0]) is True


@pytest.mark.parametrize("length", [1, 13, 50])
def test_unaligned_lengths_detect_every_single_error(length):
    rng = np.random.default_rng(length)
    framed = append_crc16_bits(rng.integers(0, 2, length, dtype=np.uint8))
    assert check_crc16_bits(framed)
    flips = np.eye(framed.size, dtype=np.uint8)
    assert not check_crc16_bits(framed ^ flips).any()


def test_unaligned_crc_depends_on_leading_bits():
    # Prepending a zero bit must change the CRC (non-zero initial value).
    bits = np.array([1, 0, 1, 1, 0], np.uint8)
    assert crc16_bits(bits) != crc16_bits(np.concatenate([[0], bits]).astype(np.uint8))
