"""Frame header: what the receiver must know to decode the payload, robustly coded.

64 header bits + CRC-16 = 80 bits, carried as the information part of the 802.11n LDPC code
n = 648, rate 1/2, shortened: the other 244 information bits are known zeros and not sent. The
80 + 324 parity bits go out as BPSK on the data carriers of ``HEADER_SYMBOLS`` OFDM symbols, so
the header decodes well below 0 dB Es/N0, where no payload does.

Fields (bits): system 8, user 8, seq 16, length 16, modulation 4, code 4, flags 8.
``length`` counts payload bytes (digital payloads) or complex symbols (analog payloads).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.errors import FrameError
from testbed.phy import crc
from testbed.phy.bits import int_to_bits
from testbed.phy.ldpc import get_code

FIELDS = (("system", 8), ("user", 8), ("seq", 16), ("length", 16), ("modulation", 4), ("code", 4), ("flags", 8))
FIELD_BYTES = sum(w for _, w in FIELDS) // 8
HEADER_BITS = 8 * FIELD_BYTES + 16
HEADER_CODE = "ldpc_648_1_2"
SHORTENED_LLR = 1e3


@dataclass(frozen=True)
class Header:
    """Decoded or to-be-sent frame header; every field is an unsigned integer of its width."""

    system: int = 0
    user: int = 0
    seq: int = 0
    length: int = 0
    modulation: int = 0
    code: int = 0
    flags: int = 0

    def __post_init__(self) -> None:
        for name, width in FIELDS:
            value = getattr(self, name)
            if not 0 <= int(value) < (1 << width):
                raise FrameError(f"header.{name} = {value} is outside 0..{(1 << width) - 1}")

    def to_bits(self) -> np.ndarray:
        """uint8 (80,): fields MSB first, then CRC-16 over them."""
        bits = np.concatenate([int_to_bits(getattr(self, n), w) for n, w in FIELDS])
        return crc.append_crc16_bits(bits)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Header | None":
        """Parse uint8 (80,) bits; None when the CRC fails; FrameError for another shape."""
        bits = np.asarray(bits)
        if bits.shape != (HEADER_BITS,):
            raise FrameError(f"header bits of shape {bits.shape}; expected ({HEADER_BITS},)")
        # one packbits and the bytes CRC: the bit-level helpers cost about 0.15 ms a header,
        # a tenth of a QPSK frame's receive time (testbed bench)
        packed = np.packbits(bits.astype(np.uint8)).tobytes()  # the fields (FIELD_BYTES), then the CRC
        if crc.crc16(packed[:FIELD_BYTES]) != int.from_bytes(packed[FIELD_BYTES:], "big"):
            return None
        word, values, shift = int.from_bytes(packed[:FIELD_BYTES], "big"), {}, 8 * FIELD_BYTES
        for name, width in FIELDS:
            shift -= width
            values[name] = (word >> shift) & ((1 << width) - 1)
        return cls(**values)


def n_coded_bits() -> int:
    """Coded header bits sent: the 80 information bits plus the parity bits."""
    code = get_code(HEADER_CODE)
    return HEADER_BITS + code.n - code.k


def encode_header(header: Header) -> np.ndarray:
    """uint8 (n_coded_bits(),): systematic header bits then LDPC parity (shortened code)."""
    code = get_code(HEADER_CODE)
    info = np.zeros(code.k, dtype=np.uint8)
    info[:HEADER_BITS] = header.to_bits()
    word = code.encode(info)
    return np.concatenate([word[:HEADER_BITS], word[code.k :]])


def decode_header(llr: np.ndarray) -> Header | None:
    """LLRs float32 (n_coded_bits(),) (positive = 0) -> Header, or None (decoder or CRC failure)."""
    code = get_code(HEADER_CODE)
    llr = np.asarray(llr, dtype=np.float32)
    if llr.shape != (n_coded_bits(),):
        raise FrameError(f"header LLRs of shape {llr.shape}; expected ({n_coded_bits()},)")
    full = np.full(code.n, SHORTENED_LLR, dtype=np.float32)
    full[:HEADER_BITS] = llr[:HEADER_BITS]
    full[code.k :] = llr[HEADER_BITS:]
    bits, ok, _ = code.decode(full[None, :], max_iter=20)
    if not ok[0]:
        return None
    return Header.from_bits(bits[0, :HEADER_BITS])
