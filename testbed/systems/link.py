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
from testbed.systems.base import Evaluation, System, check_choice, digital_payload, frame_counts, received_index


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
    Params = LinkParams

    def label(self) -> str:
        return f"{self.params.modulation}+{self.params.code}"

    def make_jobs(self, images: list, snr_db: float = 0.0) -> list[FrameJob]:
        rng = np.random.default_rng(self.seed)
        fmt = PayloadFormat(self.params.modulation, self.params.code)
        size = self.params.payload_bytes
        return [FrameJob(rng.integers(0, 256, size, dtype=np.uint8).tobytes(), fmt, seq=i)
                for i in range(self.params.n_frames)]

    def evaluate(self, jobs: list[FrameJob], received: dict[str, np.ndarray] | None) -> Evaluation:
        index = received_index(jobs, received)
        errors = bits = 0
        for job in jobs:
            if job.seq in index:
                _, rx_bits = digital_payload(received, index[job.seq])
                tx_bits = bytes_to_bits(job.payload + crc.crc32(job.payload).to_bytes(4, "big"))
                errors += int(np.count_nonzero(tx_bits != rx_bits))
                bits += tx_bits.size
        metrics = frame_counts(jobs, index, received)
        metrics["ber"] = errors / bits if bits else float("nan")
        metrics["bits_compared"] = bits
        return Evaluation(metrics)
