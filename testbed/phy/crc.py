"""Cyclic redundancy checks for frame headers and payloads.

``crc16`` is CRC-16/CCITT-FALSE (polynomial x^16 + x^12 + x^5 + 1 = 0x1021, initial value 0xFFFF,
no reflection, no final XOR; ITU-T V.41 polynomial, check value 0x29B1 for b"123456789"), computed
by ``binascii.crc_hqx``. ``crc32`` is the IEEE 802.3 CRC-32 of ``zlib.crc32``.

The bit-level helpers compute the same CRC-16 over a bit stream (MSB first, any length, also not a
multiple of 8) and work on a batch of equal-length bit vectors at once.
"""

import binascii
import zlib

import numpy as np

CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF
CRC16_BITS = 16


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` as an int in [0, 65535]."""
    return binascii.crc_hqx(data, CRC16_INIT)


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib) of ``data`` as an int in [0, 2**32 - 1]."""
    return zlib.crc32(data) & 0xFFFFFFFF


def _byte_table() -> np.ndarray:
    """(256,) uint32 table: the CRC-16 register change caused by one input byte."""
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        reg = byte << 8
        for _ in range(8):
            reg = ((reg << 1) ^ CRC16_POLY) if reg & 0x8000 else (reg << 1)
        table[byte] = reg & 0xFFFF
    return table


_TABLE = _byte_table()
_WEIGHTS = (1 << np.arange(7, -1, -1)).astype(np.uint32)


def crc16_bits(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT-FALSE of bit vectors (MSB first), batched over leading axes.

    Inputs: ``bits`` uint8 (..., L) of 0/1.
    Outputs: uint32 (...) CRC values; equal to ``crc16(bits_to_bytes(row))`` when L % 8 == 0.
    """
    bits = np.asarray(bits, dtype=np.uint8)
    head = bits.shape[-1] % 8
    flat = bits.reshape(-1, bits.shape[-1]).astype(np.uint32)
    reg = np.full(flat.shape[0], CRC16_INIT, dtype=np.uint32)
    for j in range(head):
        feedback = ((reg >> 15) ^ flat[:, j]) & 1
        reg = ((reg << 1) & 0xFFFF) ^ (feedback * CRC16_POLY)
    octets = flat[:, head:].reshape(flat.shape[0], -1, 8) @ _WEIGHTS
    for j in range(octets.shape[1]):
        reg = ((reg << 8) & 0xFFFF) ^ _TABLE[((reg >> 8) ^ octets[:, j]) & 0xFF]
    return reg.reshape(bits.shape[:-1])


def _int16_to_bits(values: np.ndarray) -> np.ndarray:
    """uint32 (...) -> uint8 (..., 16) bits, MSB first."""
    shifts = np.arange(CRC16_BITS - 1, -1, -1, dtype=np.uint32)
    return ((values[..., None] >> shifts) & 1).astype(np.uint8)


def append_crc16_bits(bits: np.ndarray) -> np.ndarray:
    """Append the 16 CRC bits (MSB first) to each bit vector.

    Inputs: ``bits`` uint8 (..., L).
    Outputs: uint8 (..., L + 16).
    """
    bits = np.asarray(bits, dtype=np.uint8)
    return np.concatenate([bits, _int16_to_bits(crc16_bits(bits))], axis=-1)


def check_crc16_bits(bits_with_crc: np.ndarray) -> bool | np.ndarray:
    """Check vectors made by ``append_crc16_bits``.

    Inputs: ``bits_with_crc`` uint8 (..., L + 16).
    Outputs: bool for a single vector (1-D input), else bool array (...).
    """
    bits_with_crc = np.asarray(bits_with_crc, dtype=np.uint8)
    if bits_with_crc.shape[-1] < CRC16_BITS:
        raise ValueError(f"need at least {CRC16_BITS} bits, got {bits_with_crc.shape[-1]}")
    expected = _int16_to_bits(crc16_bits(bits_with_crc[..., :-CRC16_BITS]))
    ok = np.all(expected == bits_with_crc[..., -CRC16_BITS:], axis=-1)
    return bool(ok) if ok.ndim == 0 else ok
