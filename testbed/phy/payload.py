"""Payload formats: how bytes (digital) or complex JSCC symbols (analog) become data symbols.

Digital: bytes + CRC-32 -> bits -> scrambled (whitened, so padding and repeated data do not make
spectral lines) -> LDPC codewords (the last one zero-padded; padding is known to the receiver)
-> Gray QAM. Uncoded (code "none") skips the LDPC step. A repeated code (``REPEATED_CODES``,
e.g. "ldpc_1296_1_2_x2") sends its LDPC code's codeword bits r times, one whole copy after the
other, and the receiver adds the r LLRs of each bit before decoding: 10 log10(r) dB more
robust, for links below the strongest code's threshold. Analog: the complex, power-normalised
symbols of a neural encoder are placed on the data carriers as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from testbed.errors import FrameError
from testbed.phy import crc
from testbed.phy.bits import bits_to_bytes, bytes_to_bits
from testbed.phy.ldpc import CODES, get_code
from testbed.phy.qam import MODULATIONS, get_modem

MODULATION_IDS = {"analog": 0, **{name: i + 1 for i, name in enumerate(MODULATIONS)}}
REPEATED_CODES: dict[str, tuple[str, int]] = {"ldpc_1296_1_2_x2": ("ldpc_1296_1_2", 2),
                                               "ldpc_1296_1_2_x4": ("ldpc_1296_1_2", 4)}
"""Repeated codes: name -> (LDPC code, repetitions). Their ids follow the plain codes' (the
header's 4-bit field), so the ids of the plain codes stay what they were."""
CODE_IDS = {"none": 0, **{name: i + 1 for i, name in enumerate([*sorted(CODES), *REPEATED_CODES])}}
MAX_LENGTH = 0xFFFF
_PAD_LLR = 1e3


@lru_cache(maxsize=1)
def _scrambler(n_bits: int = (MAX_LENGTH + 4) * 8) -> np.ndarray:
    return np.random.default_rng(0x5C4A).integers(0, 2, n_bits, dtype=np.uint8)


def _lookup(table: dict[str, int], field: str, value: str) -> int:
    if value not in table:
        raise FrameError(f"{field} {value!r} is unknown; allowed: {', '.join(table)}")
    return table[value]


def name_of(table: dict[str, int], ident: int) -> str | None:
    """Inverse lookup of a header id; None for ids no format uses."""
    return next((name for name, i in table.items() if i == ident), None)


@dataclass(frozen=True)
class DecodedPayload:
    """A digital payload as decoded: ``payload`` bytes (length,), ``ok`` whether its CRC holds,
    ``bits`` uint8 ((length + 4) * 8,) descrambled hard information bits, ``coded`` uint8
    (n_coded_bits,) the decided code bits (scrambled, parity included: what was modulated)."""

    payload: bytes
    ok: bool
    bits: np.ndarray
    coded: np.ndarray


@dataclass(frozen=True)
class PayloadFormat:
    """A modulation ("analog" or a QAM name) and a code ("none" or an LDPC name)."""

    modulation: str = "qpsk"
    code: str = "none"

    def __post_init__(self) -> None:
        _lookup(MODULATION_IDS, "modulation", self.modulation)
        _lookup(CODE_IDS, "code", self.code)
        if self.analog and self.code != "none":
            raise FrameError(f"code {self.code!r} needs a digital modulation; analog payloads take code 'none'")

    @property
    def analog(self) -> bool:
        return self.modulation == "analog"

    @property
    def ids(self) -> tuple[int, int]:
        """(modulation id, code id) as carried in the header."""
        return MODULATION_IDS[self.modulation], CODE_IDS[self.code]

    @classmethod
    def from_ids(cls, modulation_id: int, code_id: int) -> "PayloadFormat | None":
        mod, code = name_of(MODULATION_IDS, modulation_id), name_of(CODE_IDS, code_id)
        if mod is None or code is None or (mod == "analog" and code != "none"):
            return None
        return cls(mod, code)

    def n_info_bits(self, length: int) -> int:
        return (length + 4) * 8

    @property
    def ldpc(self) -> tuple[str, int]:
        """(LDPC code name or "none", repetitions of its codeword bits)."""
        return REPEATED_CODES.get(self.code, (self.code, 1))

    def n_coded_bits(self, length: int) -> int:
        n_info = self.n_info_bits(length)
        name, repeats = self.ldpc
        if name == "none":
            return n_info
        code = get_code(name)
        return -(-n_info // code.k) * code.n * repeats

    def n_symbols(self, length: int) -> int:
        """Data symbols for a payload of ``length`` bytes (digital) or symbols (analog)."""
        if self.analog:
            return length
        k = MODULATIONS[self.modulation]
        return -(-self.n_coded_bits(length) // k)

    def encode(self, payload: bytes) -> np.ndarray:
        """bytes (<= 65535) -> data symbols complex64 (n_symbols(len(payload)),)."""
        if len(payload) > MAX_LENGTH:
            raise FrameError(f"payload length {len(payload)} bytes exceeds {MAX_LENGTH}")
        data = payload + crc.crc32(payload).to_bytes(4, "big")
        bits = bytes_to_bits(data) ^ _scrambler()[: len(data) * 8]
        return self.modulate(self._ldpc_encode(bits))

    def modulate(self, coded: np.ndarray) -> np.ndarray:
        """Code bits uint8 (n_coded_bits,), zero-padded to whole symbols -> complex64 data symbols."""
        k = MODULATIONS[self.modulation]
        return get_modem(k).modulate(np.concatenate([coded, np.zeros(-coded.size % k, dtype=np.uint8)]))

    def evm_reference(self, decoded: DecodedPayload, symbols: np.ndarray) -> np.ndarray:
        """What the EVM of ``symbols`` complex64 (n,) is measured against: the decided codeword
        remodulated when the CRC holds (no second encoding), else their hard decisions."""
        if decoded.ok:
            return self.modulate(decoded.coded)[: symbols.size]
        modem = get_modem(MODULATIONS[self.modulation])
        return modem.modulate(modem.hard(symbols))

    def _ldpc_encode(self, bits: np.ndarray) -> np.ndarray:
        name, repeats = self.ldpc
        if name == "none":
            return bits
        code = get_code(name)
        blocks = np.zeros((-(-bits.size // code.k), code.k), dtype=np.uint8)
        blocks.reshape(-1)[: bits.size] = bits
        return np.tile(code.encode(blocks).reshape(-1), repeats)

    def decode(self, symbols: np.ndarray, noise_var: np.ndarray, length: int) -> DecodedPayload:
        """Equalised data symbols complex64 (n_symbols(length),) and their per-symbol noise
        variances float32 (same shape, after equalisation) -> ``DecodedPayload``."""
        k = MODULATIONS[self.modulation]
        llr = get_modem(k).demodulate(symbols, noise_var)[: self.n_coded_bits(length)]
        n_info = self.n_info_bits(length)
        info, coded = self._ldpc_decode(llr, n_info)
        bits = info ^ _scrambler()[:n_info]
        data = bits_to_bytes(bits)
        ok = crc.crc32(data[:length]) == int.from_bytes(data[length:], "big")
        return DecodedPayload(data[:length], ok, bits, coded)

    def _ldpc_decode(self, llr: np.ndarray, n_info: int) -> tuple[np.ndarray, np.ndarray]:
        """LLRs -> (scrambled information bits (n_info,), decided code bits (llr.size,))."""
        name, repeats = self.ldpc
        if name == "none":
            hard = (llr < 0).astype(np.uint8)
            return hard, hard
        code = get_code(name)
        words = llr.reshape(repeats, -1, code.n).sum(axis=0)  # the copies' LLRs add
        pad = words.shape[0] * code.k - n_info
        if pad:
            words[-1, code.k - pad : code.k] = _PAD_LLR
        decided, _, _ = code.decode(words, codeword=True)
        return decided[:, : code.k].reshape(-1)[:n_info], np.tile(decided.reshape(-1), repeats)
