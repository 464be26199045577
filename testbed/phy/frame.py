"""Burst frame: preamble, coded header, payload OFDM symbols with pilots.

    | STF 10x16 | LTF GI 32 + 4x64 | header: HEADER_SYMBOLS x 80 | payload: n x 80 |

Every OFDM symbol after the preamble carries 4 BPSK pilots for phase tracking. The frame is
what the TX framer block emits for one PDU and what ``receiver.FrameReceiver`` looks for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from testbed.errors import FrameError
from testbed.phy.header import Header, encode_header, n_coded_bits
from testbed.phy.ofdm import OfdmParams, build_grid, to_time
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.phy.preamble import Preamble
from testbed.phy.qam import get_modem
from testbed.phy.side_info import SIDE_INFO_FLAG, SIDE_SYMBOLS, encode_side_info


@dataclass(frozen=True)
class FrameLayout:
    """Lengths of the parts of a frame, in samples and OFDM symbols."""

    preamble: Preamble = field(default_factory=Preamble)

    @property
    def params(self) -> OfdmParams:
        return self.preamble.params

    @property
    def header_symbols(self) -> int:
        return -(-n_coded_bits() // self.params.n_data)

    @property
    def header_start(self) -> int:
        """Offset of the first header OFDM symbol from the frame start."""
        return self.preamble.length

    @property
    def payload_start(self) -> int:
        return self.header_start + self.header_symbols * self.params.sym_len

    def payload_symbols(self, n_data_symbols: int) -> int:
        """OFDM symbols needed for ``n_data_symbols`` complex data symbols."""
        return -(-n_data_symbols // self.params.n_data)

    def frame_len(self, fmt: PayloadFormat, length: int, side_info: bool = False) -> int:
        """Total samples of a frame whose header says ``length`` with format ``fmt`` (and a side
        block when ``side_info``, testbed.phy.side_info)."""
        n = fmt.n_symbols(length) + (SIDE_SYMBOLS if side_info else 0)
        return self.payload_start + self.payload_symbols(n) * self.params.sym_len


def slot_padding(frame_len: int, gap_samples: int, slot_samples: int = 0) -> int:
    """Zeros after a frame: ``gap_samples``, extended so the next frame starts on a slot boundary."""
    used = frame_len + gap_samples
    return gap_samples + (-used % slot_samples if slot_samples else 0)


@dataclass(frozen=True)
class FrameJob:
    """One frame to send: bytes (digital) or complex64 (n,) symbols (analog), and optional
    digital side information (at most testbed.phy.side_info.MAX_SIDE_BYTES bytes)."""

    payload: bytes | np.ndarray
    fmt: PayloadFormat
    system: int = 0
    user: int = 0
    seq: int = 0
    side_info: bytes = b""

    def frame_len(self, layout: FrameLayout) -> int:
        n = self.payload.size if self.fmt.analog else len(self.payload)
        return layout.frame_len(self.fmt, n, bool(self.side_info))


class Framer:
    """Builds frame waveforms (complex64) from headers and payloads."""

    def __init__(self, layout: FrameLayout | None = None) -> None:
        self.layout = layout or FrameLayout()

    def header_samples(self, header: Header) -> np.ndarray:
        """complex64 (header_symbols * 80,): BPSK-coded header on the data carriers."""
        lay = self.layout
        bits = encode_header(header)
        bits = np.concatenate([bits, np.zeros(lay.header_symbols * lay.params.n_data - bits.size, np.uint8)])
        data = get_modem(1).modulate(bits).reshape(lay.header_symbols, lay.params.n_data)
        return to_time(build_grid(data, lay.params, 0), lay.params)

    def payload_samples(self, symbols: np.ndarray) -> np.ndarray:
        """complex64: data symbols (n,) on OFDM symbols after the header, zero-padded."""
        lay = self.layout
        n_sym = lay.payload_symbols(symbols.size)
        data = np.zeros(n_sym * lay.params.n_data, dtype=np.complex64)
        data[: symbols.size] = symbols
        grid = build_grid(data.reshape(n_sym, lay.params.n_data), lay.params, lay.header_symbols)
        return to_time(grid, lay.params)

    def build(self, header: Header, symbols: np.ndarray) -> np.ndarray:
        """Whole frame (complex64 (frame_len,)) for a header and its payload data symbols."""
        return np.concatenate([self.layout.preamble.waveform, self.header_samples(header), self.payload_samples(symbols)])

    def frame(self, payload: bytes | np.ndarray, fmt: PayloadFormat, *, system: int = 0, user: int = 0,
              seq: int = 0, flags: int = 0, side_info: bytes = b"") -> np.ndarray:
        """Frame for a digital payload (bytes) or an analog one (complex64 (n,) unit-power symbols);
        non-empty ``side_info`` goes in a side block before the payload (header flag set)."""
        if fmt.analog:
            symbols = np.asarray(payload, dtype=np.complex64).reshape(-1)
            if symbols.size > MAX_LENGTH:
                raise FrameError(f"analog payload of {symbols.size} symbols exceeds {MAX_LENGTH}")
            length = symbols.size
        else:
            if not isinstance(payload, (bytes, bytearray)):
                raise FrameError(f"a {fmt.modulation} payload must be bytes, got {type(payload).__name__}")
            symbols, length = fmt.encode(bytes(payload)), len(payload)
        if side_info:
            symbols, flags = np.concatenate([encode_side_info(side_info), symbols]), flags | SIDE_INFO_FLAG
        mod_id, code_id = fmt.ids
        header = Header(system=system, user=user, seq=seq % 65536, length=length,
                        modulation=mod_id, code=code_id, flags=flags)
        return self.build(header, symbols)
