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
from testbed.phy.receiver import ReceivedFrame
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len

LOST_FILL = 0.5


def frame_sizes(n_bytes: int, max_frame_bytes: int) -> list[int]:
    """Payload bytes of each frame when ``n_bytes`` of source data are cut into frames."""
    full, rest = divmod(n_bytes, max_frame_bytes)
    return [max_frame_bytes] * full + ([rest] if rest else [])


def source_budget(n_channel_uses: int, fmt: PayloadFormat, max_frame_bytes: int) -> int:
    """Largest source size (bytes) whose frames' data symbols fit ``n_channel_uses``."""
    def symbols(n_bytes: int) -> int:
        return sum(fmt.n_symbols(size) for size in frame_sizes(n_bytes, max_frame_bytes))

    lo, hi = 0, n_channel_uses * MODULATIONS[fmt.modulation] // 8
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if symbols(mid) <= n_channel_uses else (lo, mid - 1)
    return lo


def channel_uses(bandwidth_ratio: float, img: np.ndarray) -> int:
    """Complex data symbols an image of ``img.size`` source values gets at ``bandwidth_ratio``."""
    return int(bandwidth_ratio * img.size)


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
    system_id = 2
    Params = DigitalParams

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.codec = registry.create("codec", self.params.codec)
        self.fmt = PayloadFormat(self.params.modulation, self.params.code)
        self._fitted: dict[str, bytes] = {}  # the source coding does not depend on the SNR

    def label(self) -> str:
        return f"{self.params.codec}+{self.params.code}+{self.params.modulation}"

    def image_budget(self, img: np.ndarray) -> int:
        """Largest source size (bytes) whose frames fit the channel uses of ``img`` (3, H, W)."""
        return source_budget(channel_uses(self.params.bandwidth_ratio, img), self.fmt, self.params.max_frame_bytes)

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(b"\0" * self.params.max_frame_bytes, self.fmt))

    def _source(self, name: str, img: np.ndarray) -> bytes:
        """The coded image (b"" when no rate fits the budget); the source coding ignores the SNR."""
        if name not in self._fitted:
            fitted = self.codec.fit_budget(img, self.image_budget(img))
            self._fitted[name] = fitted[0] if fitted is not None else b""
        return self._fitted[name]

    def encode(self, items: Items, snr_db: float = 0.0, batch: int = 0) -> Encoded:
        jobs, plan = [], []
        step = self.params.max_frame_bytes
        for name, img in items:
            data = self._source(name, img)
            seqs = list(range(len(jobs), len(jobs) + -(-len(data) // step)))
            jobs += [FrameJob(data[k * step:(k + 1) * step], self.fmt, self.system_id, seq=s)
                     for k, s in enumerate(seqs)]
            plan.append({"name": name, "shape": list(img.shape), "seqs": seqs})
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "items": plan})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        index = by_seq(frames)
        return Decoded(images={item["name"]: reconstruct(self.codec, item, index) for item in manifest["items"]})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        refs = [img for _, img in items]
        recons = [decoded.images[name] for name, _ in items]
        return {"images_lost": sum(float(np.all(r == LOST_FILL)) for r in recons), **_image_metrics(refs, recons)}


def reconstruct(codec, item: dict, index: dict[int, ReceivedFrame]) -> np.ndarray:
    """The image of one manifest item (``shape``, ``seqs``) from received frames; mid-grey when
    any of its frames is missing or fails its CRC, or the file does not decode (the digital cliff)."""
    shape = tuple(item["shape"])
    lost = np.full(shape, LOST_FILL, np.float32)
    seqs = item["seqs"]
    if not seqs or any(s not in index or not index[s].payload_ok for s in seqs):
        return lost
    data = b"".join(index[s].payload for s in seqs)
    try:
        recon = codec.decode(data)
    except Exception:  # CRC-clean but undecodable data: counted as a lost image
        return lost
    return recon if recon.shape == shape else lost


def _image_metrics(refs: list[np.ndarray], recons: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and MS-SSIM over images of possibly different sizes."""
    psnr = [min(float(metrics.psnr_db(r, t)), 100.0) for r, t in zip(refs, recons)]
    return {"psnr_db": float(np.mean(psnr)),
            "ssim": float(np.mean([metrics.ssim(r, t) for r, t in zip(refs, recons)])),
            "ms_ssim": float(np.mean([metrics.ms_ssim(r, t) for r, t in zip(refs, recons)]))}
