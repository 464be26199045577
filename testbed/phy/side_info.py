"""Digital side information beside a frame's payload: a few LDPC-coded bytes (lengths,
selections, indices) that a semantic system sends next to its analog symbols.

A frame whose header has ``flags`` bit ``SIDE_INFO_FLAG`` starts its payload with one side
block: a length byte and up to ``MAX_SIDE_BYTES`` bytes, zero-padded to ``BLOCK_BYTES``, with
CRC-32, scrambled, in one 802.11n LDPC n=648 R=1/2 codeword, QPSK: ``SIDE_SYMBOLS`` data
symbols before the payload's own. It is decoded with its own CRC, so a corrupted side block is
reported (``side_ok``) whatever happens to the payload. The flag bit is free in every frame
kind (multi-stream frames use bits 7 and 5..0, testbed.phy.mimo_frame).
"""
from __future__ import annotations

import numpy as np

from testbed.errors import FrameError
from testbed.phy.payload import PayloadFormat

SIDE_INFO_FLAG = 0x40
BLOCK_BYTES = 36
"""Bytes of the side block (36 + CRC-32 = 320 bits fill one 324-bit LDPC information word)."""
MAX_SIDE_BYTES = BLOCK_BYTES - 1
SIDE_FORMAT = PayloadFormat("qpsk", "ldpc_648_1_2")
SIDE_SYMBOLS = SIDE_FORMAT.n_symbols(BLOCK_BYTES)


def has_side_info(flags: int) -> bool:
    return bool(flags & SIDE_INFO_FLAG)


def encode_side_info(side_info: bytes) -> np.ndarray:
    """``side_info`` (<= MAX_SIDE_BYTES bytes) -> complex64 (SIDE_SYMBOLS,) QPSK symbols."""
    if len(side_info) > MAX_SIDE_BYTES:
        raise FrameError(f"side_info of {len(side_info)} bytes exceeds {MAX_SIDE_BYTES}")
    block = bytes([len(side_info)]) + bytes(side_info) + bytes(MAX_SIDE_BYTES - len(side_info))
    return SIDE_FORMAT.encode(block)


def decode_side_info(symbols: np.ndarray, noise_var: np.ndarray) -> tuple[bytes, bool]:
    """Equalised complex (SIDE_SYMBOLS,) and their noise variances -> (side bytes, CRC ok)."""
    decoded = SIDE_FORMAT.decode(symbols, noise_var, BLOCK_BYTES)
    block = decoded.payload
    if not decoded.ok or block[0] > MAX_SIDE_BYTES:
        return b"", False
    return bytes(block[1 : 1 + block[0]]), True
