"""Bit <-> byte <-> integer helpers. Bits are uint8 arrays of 0/1, most significant bit first."""

import numpy as np


def bytes_to_bits(data: bytes | np.ndarray) -> np.ndarray:
    """Unpack bytes into bits, MSB first.

    Inputs: ``data`` bytes, bytearray or uint8 array of shape (n,).
    Outputs: uint8 array of shape (8 n,).
    """
    if isinstance(data, np.ndarray):
        return np.unpackbits(data.astype(np.uint8, copy=False).ravel())
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """Pack bits (MSB first) into bytes.

    Inputs: ``bits`` array of 0/1 of shape (8 n,); a length that is not a multiple of 8 raises.
    Outputs: bytes of length n.
    """
    bits = np.asarray(bits, dtype=np.uint8).ravel()
    if bits.size % 8:
        raise ValueError(f"bit count {bits.size} is not a multiple of 8")
    return np.packbits(bits).tobytes()


def int_to_bits(value: int, width: int) -> np.ndarray:
    """Write a non-negative integer as ``width`` bits, MSB first.

    Outputs: uint8 array of shape (width,). A value that does not fit raises ValueError.
    """
    if value < 0 or value >> width:
        raise ValueError(f"value {value} does not fit in {width} bits")
    return ((value >> np.arange(width - 1, -1, -1, dtype=np.int64)) & 1).astype(np.uint8)


def bits_to_int(bits: np.ndarray) -> int:
    """Read bits (MSB first) of shape (width,) as a non-negative Python int."""
    value = 0
    for bit in np.asarray(bits, dtype=np.uint8).ravel():
        value = (value << 1) | int(bit & 1)
    return value
