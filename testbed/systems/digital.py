"""Classical separate source-channel coding baseline: an image codec (HEVC intra through
pillow-heif, the codec inside BPG, or JPEG 2000) + LDPC + QAM over the same PHY chain.

The source rate is chosen to fit a channel-use budget: ``bandwidth_ratio`` complex channel
uses per source value (3 H W), the budget every semantic system gets. Whole images are coded
and the container header counts as payload. An image with any frame lost or failing its CRC is
lost (the digital cliff) and scored as a mid-grey image, as a receiver would display nothing.
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed import metrics, registry
from testbed.phy.frame import FrameJob
from testbed.phy.payload import CODE_IDS, MODULATIONS, PayloadFormat
from testbed.registry import register
from testbed.systems.base import Evaluation, System, check_choice, digital_payload, frame_counts, received_index

LOST_FILL = 0.5


class DigitalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codec: str = "hevc"
    modulation: str = "qam16"
    code: str = "ldpc_648_1_2"
    bandwidth_ratio: float = Field(default=1 / 6, gt=0, le=4)
    max_frame_bytes: int = Field(default=4000, ge=64, le=65535)

    _codec = field_validator("codec")(lambda cls, v: check_choice("codec", v, registry.names("codec")))
    _mod = field_validator("modulation")(lambda cls, v: check_choice("modulation", v, MODULATIONS))
    _code = field_validator("code")(lambda cls, v: check_choice("code", v, [c for c in CODE_IDS if c != "none"]))


@register("system", "digital")
class DigitalSystem(System):
    """Image codec + LDPC + QAM at the channel-use budget of ``bandwidth_ratio``."""

    name = "digital"
    Params = DigitalParams

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.codec = registry.create("codec", self.params.codec)
        self.fmt = PayloadFormat(self.params.modulation, self.params.code)
        self._plan: list[tuple[str, np.ndarray, list[int]]] = []
        self._fitted: dict[str, bytes] = {}  # the source coding does not depend on the SNR

    def label(self) -> str:
        return f"{self.params.codec}+{self.params.code}+{self.params.modulation}"

    def _symbols(self, n_bytes: int) -> int:
        """Data symbols that ``n_bytes`` of source data take, split into frames."""
        full, rest = divmod(n_bytes, self.params.max_frame_bytes)
        sizes = [self.params.max_frame_bytes] * full + ([rest] if rest else [])
        return sum(self.fmt.n_symbols(size) for size in sizes)

    def image_budget(self, img: np.ndarray) -> int:
        """Largest source size (bytes) whose frames fit the channel uses of ``img`` (3, H, W)."""
        n_cu = int(self.params.bandwidth_ratio * img.size)
        lo, hi = 0, n_cu * MODULATIONS[self.params.modulation] // 8
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self._symbols(mid) <= n_cu else (lo, mid - 1)
        return lo

    def make_jobs(self, images: list[tuple[str, np.ndarray]], snr_db: float = 0.0) -> list[FrameJob]:
        jobs, self._plan = [], []
        for name, img in images:
            if name not in self._fitted:
                fitted = self.codec.fit_budget(img, self.image_budget(img))
                self._fitted[name] = fitted[0] if fitted is not None else b""
            data = self._fitted[name]
            seqs = []
            for start in range(0, len(data), self.params.max_frame_bytes):
                seqs.append(len(jobs))
                jobs.append(FrameJob(data[start : start + self.params.max_frame_bytes], self.fmt, seq=len(jobs)))
            self._plan.append((name, img, seqs))
        return jobs

    def evaluate(self, jobs: list[FrameJob], received: dict[str, np.ndarray] | None) -> Evaluation:
        index = received_index(jobs, received)
        refs, recons, shown = [], [], {}
        for name, img, seqs in self._plan:
            recon = self._reconstruct(img, seqs, index, received)
            refs.append(img)
            recons.append(recon)
            shown[name] = recon
        m = frame_counts(jobs, index, received)
        m["images_lost"] = sum(float(np.all(r == LOST_FILL)) for r in recons)
        m.update(_image_metrics(refs, recons))
        return Evaluation(m, shown)

    def _reconstruct(self, img: np.ndarray, seqs: list[int], index: dict[int, int], received) -> np.ndarray:
        lost = np.full_like(img, LOST_FILL)
        if not seqs or any(s not in index or not received["payload_ok"][index[s]] for s in seqs):
            return lost
        data = b"".join(digital_payload(received, index[s])[0] for s in seqs)
        try:
            recon = self.codec.decode(data)
        except Exception:  # CRC-clean but undecodable data: counted as a lost image
            return lost
        return recon if recon.shape == img.shape else lost


def _image_metrics(refs: list[np.ndarray], recons: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and MS-SSIM over images of possibly different sizes."""
    psnr = [min(float(metrics.psnr_db(r, t)), 100.0) for r, t in zip(refs, recons)]
    return {"psnr_db": float(np.mean(psnr)),
            "ssim": float(np.mean([metrics.ssim(r, t) for r, t in zip(refs, recons)])),
            "ms_ssim": float(np.mean([metrics.ms_ssim(r, t) for r, t in zip(refs, recons)]))}
