"""A test system for the beamformed MU-MISO downlink (``encode_precoded``): each user of the TX
gets its own random payloads (its own count and size) on regularised zero-forcing beams that
leak into each other; registered through ``testbed.registry.load_plugins``."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from testbed.phy import crc
from testbed.phy.bits import bytes_to_bits
from testbed.phy.frame import FrameJob
from testbed.phy.payload import PayloadFormat
from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, Precoded, System, by_seq, frame_len

FMT = PayloadFormat("qpsk", "ldpc_648_1_2")


class BeamsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_frames: list[int] = [4, 2]  # per user of the TX, in topology order
    payload_bytes: list[int] = [400, 900]
    alpha: float = 4.0  # regularisation of h^H (h h^H + alpha I)^-1: 0 is ZF, large is MRT
    power: float = 2.0  # ||W||_F^2, the TX's total power in unit-power streams


@register("system", "beams")
class BeamsSystem(System):
    name = "beams"
    Params = BeamsParams
    system_id = 201

    @staticmethod
    def beams(csi: np.ndarray, alpha: float, power: float) -> np.ndarray:
        """Regularised ZF beams complex (Nt, K) for csi complex (K, Nt), ||W||_F^2 = power."""
        w = csi.conj().T @ np.linalg.inv(csi @ csi.conj().T + alpha * np.eye(csi.shape[0]))
        return w * np.sqrt(power / np.sum(np.abs(w) ** 2))

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(bytes(max(self.params.payload_bytes)), FMT))

    def payloads(self, batch: int, user: int) -> list[bytes]:
        rng = np.random.default_rng([self.seed, batch, user])
        size, count = self.params.payload_bytes[user], self.params.n_frames[user]
        return [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(count)]

    def encode(self, items, snr_db, batch=0):
        raise NotImplementedError("the beams system sends on a multi-antenna TX only (encode_precoded)")

    def encode_precoded(self, items_by_user, csi, snr_db, batch):
        encoded = {}
        for k, (user, items) in enumerate(items_by_user.items()):
            jobs = [FrameJob(p, FMT, self.system_id, seq=seq) for seq, p in enumerate(self.payloads(batch, k))]
            encoded[user] = Encoded(jobs, {"batch": batch, "user": k, "frames": len(jobs),
                                           "items": [name for name, _ in items]})
        return Precoded(encoded, self.beams(np.asarray(csi), self.params.alpha, self.params.power))

    def decode(self, frames, manifest):
        index = sorted(by_seq(frames).items())
        return Decoded(arrays={"seq": np.array([s for s, f in index if f.bits is not None], np.int64),
                               "bits": np.concatenate([f.bits for _, f in index if f.bits is not None] or
                                                      [np.zeros(0, np.uint8)])})

    def score(self, items, manifest, decoded):
        sent = self.payloads(int(manifest["batch"]), int(manifest["user"]))
        size = (self.params.payload_bytes[int(manifest["user"])] + 4) * 8
        errors = 0
        for seq, got in zip(decoded.arrays["seq"], decoded.arrays["bits"].reshape(-1, size)):
            payload = sent[int(seq)]
            errors += int(np.count_nonzero(bytes_to_bits(payload + crc.crc32(payload).to_bytes(4, "big")) != got))
        return {"ber": errors / max(decoded.arrays["seq"].size * size, 1),
                "images_lost": sum(name not in manifest["items"] for name, _ in items)}  # scored on others' items
