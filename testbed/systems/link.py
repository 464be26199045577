"""Link-level measurement: random payloads through the PHY, measuring BER, BLER and EVM.

This is the system behind the PHY regression sweeps (uncoded BER against the closed-form
curves, LDPC-coded BLER): no source coding, just bits.
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed.phy import crc
from testbed.phy.bits import bytes_to_bits
from testbed.phy.frame import FrameJob
from testbed.phy.payload import CODE_IDS, MODULATIONS, PayloadFormat
from testbed.registry import register
from testbed.phy.receiver import ReceivedFrame
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len


class LinkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modulation: str = "qpsk"
    code: str = "none"
    n_frames: int = Field(default=50, ge=1, le=100000)
    payload_bytes: int = Field(default=1000, ge=1, le=65535)

    _mod = field_validator("modulation")(lambda cls, v: check_choice("modulation", v, MODULATIONS))
    _code = field_validator("code")(lambda cls, v: check_choice("code", v, CODE_IDS))


@register("system", "link")
class LinkSystem(System):
    """Random payloads of ``payload_bytes`` in ``n_frames`` frames (data images are ignored)."""

    name = "link"
    system_id = 1
    Params = LinkParams

    def label(self) -> str:
        return f"{self.params.modulation}+{self.params.code}"

    def max_frame_samples(self) -> int:
        return frame_len(self._job(b"\0" * self.params.payload_bytes, 0))

    def _job(self, payload: bytes, seq: int) -> FrameJob:
        return FrameJob(payload, PayloadFormat(self.params.modulation, self.params.code), self.system_id, seq=seq)

    def payloads(self, batch: int) -> list[bytes]:
        """The random payloads of ``batch`` (a function of the seed and the batch only)."""
        rng = np.random.default_rng([self.seed, batch])
        size = self.params.payload_bytes
        return [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(self.params.n_frames)]

    def encode(self, items: Items, snr_db: float = 0.0, batch: int = 0) -> Encoded:
        jobs = [self._job(payload, seq) for seq, payload in enumerate(self.payloads(batch))]
        return Encoded(jobs, {"batch": batch, "frames": len(jobs)})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        """Hard information bits (payload + CRC-32) of every frame received, by seq."""
        index = sorted(by_seq(frames).items())
        bits = [f.bits for _, f in index if f.bits is not None]
        seqs = [seq for seq, f in index if f.bits is not None]
        return Decoded(arrays={"seq": np.array(seqs, np.int64),
                               "bits": np.concatenate(bits) if bits else np.zeros(0, np.uint8),
                               "lengths": np.array([b.size for b in bits], np.int64)})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        sent = self.payloads(int(manifest["batch"]))
        errors = bits = 0
        rx_bits = np.split(decoded.arrays["bits"], np.cumsum(decoded.arrays["lengths"])[:-1])
        for seq, got in zip(decoded.arrays["seq"], rx_bits):
            payload = sent[int(seq)]
            tx_bits = bytes_to_bits(payload + crc.crc32(payload).to_bytes(4, "big"))
            if got.size == tx_bits.size:
                errors += int(np.count_nonzero(tx_bits != got))
                bits += tx_bits.size
        return {"ber": errors / bits if bits else float("nan"), "bits_compared": bits}
