"""The anchor-aided broadcast over the testbed: one base-station encoder, heterogeneous users.

TX node: each image padded to a multiple of 4 px -> the set's ONNX encoder at the SNR the node
is told (``adapt``) -> analog symbols in frames of up to ``max_frame_symbols`` on the burst PHY.
RX node, one user each: the equalised symbols of that user's frames (a lost frame's symbols are
erased to 0, their mean) and that receiver's own SNR estimate (the SNR of the received frames'
mean noise variance) -> the ONNX decoder of the user's family (``decoder``) -> the image, cropped
back. A user whose every frame of an image is lost shows it mid-grey (``images_lost``). Each
metrics row carries ``decoder`` and ``scheme``.

Paper: "Anchor-Aided Multi-User Semantic Communication with Adaptive Decoders",
../shared/seeds/002_dc33bc085f1347c9.txt; models: testbed/systems/anchor/export.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed import registry
from testbed.phy.frame import FrameJob
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.registry import register
from testbed.systems.anchor import models as _models_registered  # noqa: F401  (registration)
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len, module_main
from testbed.systems.digital import LOST_FILL, _image_metrics

ANALOG = PayloadFormat("analog", "none")
DEFAULT_MODEL = "anchor-awgn-two-stage"


def model_sets() -> list[str]:
    """Names of the registered anchor model sets."""
    return [n for n in registry.names("system-model") if getattr(registry.get("system-model", n), "scheme", None)]


class AnchorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    decoder: str = "attention"
    max_frame_symbols: int = Field(default=12288, ge=256, le=MAX_LENGTH)
    threads: int = Field(default=1, ge=1, le=64)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return check_choice("model", v, model_sets())

    @model_validator(mode="after")
    def _decoder(self) -> "AnchorParams":
        check_choice("decoder", self.decoder, registry.get("system-model", self.model).decoders)
        return self


@register("system", "anchor")
class AnchorSystem(System):
    """One shipped model set; ``decoder`` picks the user's decoder family (or ``anchor``)."""

    name = "anchor"
    system_id = 8
    Params = AnchorParams

    trainer = staticmethod(module_main("testbed.systems.anchor.train"))

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        from testbed.systems.anchor.codec import AnchorCodec

        self.entry = registry.get("system-model", self.params.model)
        # sessions load on first use: a TX never loads a decoder, the runner neither
        self.codec = AnchorCodec(self.params.model, self.params.decoder, self.params.threads)

    def label(self) -> str:
        return f"{self.params.model}/{self.params.decoder}"

    def row_tags(self) -> dict[str, Any]:
        return {"decoder": self.params.decoder, "scheme": self.entry.scheme}

    def model_files(self) -> list[Path]:
        return [Path(self.entry.files["transmitter"]), Path(self.entry.files[self.params.decoder])]

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(np.zeros(self.params.max_frame_symbols, np.complex64), ANALOG))

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """Each image's symbols in frames of ``max_frame_symbols``; manifest item frames are
        [seq, first symbol, end symbol]."""
        per = self.params.max_frame_symbols
        jobs, plan = [], []
        for name, img in items:
            sym = self.codec.encode(img, snr_db)
            chunks = []
            for first in range(0, sym.size, per):
                chunks.append([len(jobs), first, min(first + per, sym.size)])
                jobs.append(FrameJob(sym[first:first + per], ANALOG, self.system_id, seq=len(jobs)))
            plan.append({"name": name, "shape": list(img.shape), "frames": chunks})
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "snr_db": snr_db, "items": plan})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        """This user's reconstruction of every image; arrays ``lost`` bool (N,) in manifest order."""
        index = by_seq(frames)
        images, lost = {}, []
        for item in manifest["items"]:
            recon = self._reconstruct(item, index)
            lost.append(recon is None)
            images[item["name"]] = np.full(tuple(item["shape"]), LOST_FILL, np.float32) if recon is None else recon
        return Decoded(images=images, arrays={"lost": np.array(lost, bool)})

    def _reconstruct(self, item: dict, index: dict[int, ReceivedFrame]) -> np.ndarray | None:
        symbols = np.zeros(item["frames"][-1][2], np.complex64)
        noise = []
        for seq, first, last in item["frames"]:
            frame = index.get(seq)
            if frame is not None and frame.payload.size == last - first:
                symbols[first:last] = frame.payload
                noise.append(10.0 ** (-frame.snr_est_db / 10.0))
        if not noise:
            return None
        return self.codec.decode(symbols, float(-10.0 * np.log10(np.mean(noise))), tuple(item["shape"]))

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        metrics = _image_metrics([img for _, img in items], [decoded.images[name] for name, _ in items])
        return {**metrics, "images_lost": int(np.sum(decoded.arrays["lost"]))}


def torch_reference(model: str, decoders: list[str], images: Items, snr_db: float, channel: str = "awgn",
                    seed: int = 0, draws: int = 1, encoder_snr_db: float | None = None) -> dict[str, dict[str, float]]:
    """The same set in PyTorch through the torch channel (no PHY, no processes): what the chain
    is held to. The encoder is told ``encoder_snr_db`` (default ``snr_db``), the decoders see
    ``snr_db``. Returns decoder -> mean psnr_db, ssim, ms_ssim over ``draws`` channel draws."""
    import torch

    from testbed.systems.anchor.evaluate import broadcast

    entry = registry.get("system-model", model)
    encoder = entry.torch_module("transmitter")
    nets = {name: entry.torch_module(name) for name in decoders}
    generator = torch.Generator().manual_seed(seed)
    recons = [broadcast(encoder, nets, img, snr_db, channel, generator, encoder_snr_db)
              for _ in range(draws) for _, img in images]
    refs = [img for _ in range(draws) for _, img in images]
    return {name: _image_metrics(refs, [r[name] for r in recons]) for name in decoders}


def reference_rows(rows: list[dict], images: Items, draws: int = 4, seed: int = 0) -> list[dict]:
    """Each ok metrics row of an anchor run beside the torch evaluation of its model set and
    decoder at its SNR on ``images`` (``draws`` channel draws, the encoder told what the row's
    TX was told, ``csi_snr_db``):
    user, decoder, snr_db, network and torch psnr_db / ms_ssim and their differences."""
    out = []
    for row in rows:
        if row.get("status") != "ok":
            continue
        model = row["model"].split("/")[0]
        channel = "awgn" if row["channel"] == "awgn" else "rayleigh"
        told = float(np.mean(row["csi_snr_db"]))
        ref = torch_reference(model, [row["decoder"]], images, row["snr_db"], channel, seed, draws, told)[row["decoder"]]
        out.append({"user": row["user"], "decoder": row["decoder"], "snr_db": row["snr_db"],
                    "psnr_db": row["psnr_db"], "torch_psnr_db": ref["psnr_db"],
                    "delta_psnr_db": row["psnr_db"] - ref["psnr_db"], "ms_ssim": row["ms_ssim"],
                    "torch_ms_ssim": ref["ms_ssim"], "delta_ms_ssim": row["ms_ssim"] - ref["ms_ssim"]})
    return out
