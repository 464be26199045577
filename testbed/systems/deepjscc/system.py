"""The DeepJSCC single-link system over the testbed: images -> ONNX encoder -> analog symbols
on the burst PHY -> three-process chain -> equalised symbols + the receiver's SNR estimate ->
ONNX decoder -> images. Tiled models: tiles of a lost frame are shown mid-grey. Whole-image
models: the symbols of a lost frame are erased to 0 (their mean) and the decoder fills the band
in; the decoder's SNR is that of the mean noise variance of the frames received. Losses are counted.

DeepJSCC: Bourtsoulatze, Kurka, Gunduz, "Deep joint source-channel coding for wireless image
transmission" (the baseline of every paper in ../shared/seeds/); ADJSCC: reference [13] of
000_5c86833aa1606c01.txt.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed import registry
from testbed.data.images import untile
from testbed.phy.frame import FrameJob
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.registry import register
from testbed.phy.receiver import ReceivedFrame
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, frame_len, module_main
from testbed.systems.digital import LOST_FILL, _image_metrics

ANALOG = PayloadFormat("analog", "none")


class DeepJsccParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "deepjscc-r6"
    max_frame_symbols: int = Field(default=12288, ge=256, le=MAX_LENGTH)
    threads: int = Field(default=1, ge=1, le=64)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        allowed = [n for n in registry.names("model") if registry.get("model", n).system == "deepjscc"]
        if v not in allowed:
            raise ValueError(f"model = {v!r} is unknown; allowed: {', '.join(allowed)}")
        return v


@register("system", "deepjscc")
class DeepJsccSystem(System):
    """One shipped DeepJSCC/ADJSCC model; frames carry up to ``max_frame_symbols`` symbols."""

    name = "deepjscc"
    system_id = 3
    Params = DeepJsccParams

    trainer = staticmethod(module_main("testbed.systems.deepjscc.train"))

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        from testbed.systems.deepjscc.codec import NeuralImageCodec

        self.codec = NeuralImageCodec(self.params.model, self.params.threads)

    def label(self) -> str:
        return self.params.model

    def model_files(self) -> list[Path]:
        return [Path(self.codec.entry.encoder), Path(self.codec.entry.decoder)]

    @property
    def unit(self) -> int:
        """Symbols that frames are cut in whole numbers of: a tile's k, or one symbol."""
        return 1 if self.codec.whole_image else self.codec.symbols_per_tile

    @property
    def tiles_per_frame(self) -> int:
        """Units (tiles, or symbols for whole-image models) per frame."""
        return max(1, self.params.max_frame_symbols // self.unit)

    def max_frame_samples(self) -> int:
        symbols = self.tiles_per_frame * self.unit
        return frame_len(FrameJob(np.zeros(symbols, np.complex64), ANALOG))

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """Each image's symbols in frames of ``tiles_per_frame`` units; manifest item frames are
        [seq, first unit, end unit]."""
        k, per = self.unit, self.tiles_per_frame
        jobs, plan = [], []
        for name, img in items:
            sym = self.codec.encode(img, snr_db).reshape(-1, k)
            chunks = []
            for first in range(0, sym.shape[0], per):
                chunks.append([len(jobs), first, min(first + per, sym.shape[0])])
                jobs.append(FrameJob(sym[first:first + per].reshape(-1), ANALOG, self.system_id, seq=len(jobs)))
            plan.append({"name": name, "shape": list(img.shape), "frames": chunks})
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "snr_db": snr_db, "items": plan})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        """Tiles of lost frames are mid-grey (what a receiver would show); frame_stats counts them."""
        index = by_seq(frames)
        return Decoded(images={item["name"]: self._reconstruct(item, index) for item in manifest["items"]})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        return _image_metrics([img for _, img in items], [decoded.images[name] for name, _ in items])

    def _reconstruct(self, item: dict, index: dict[int, ReceivedFrame]) -> np.ndarray:
        if self.codec.whole_image:
            return self._reconstruct_whole(item, index)
        n_tiles = item["frames"][-1][2]
        tiles = np.full((n_tiles, 3, 32, 32), LOST_FILL, dtype=np.float32)
        k = self.codec.symbols_per_tile
        for seq, first, last in item["frames"]:
            frame = index.get(seq)
            if frame is not None and frame.payload.size == (last - first) * k:
                snr = np.full(last - first, frame.snr_est_db, np.float32)
                tiles[first:last] = self.codec.decode_tiles(frame.payload.reshape(last - first, k), snr)
        return untile(tiles, tuple(item["shape"]))

    def _reconstruct_whole(self, item: dict, index: dict[int, ReceivedFrame]) -> np.ndarray:
        shape = tuple(item["shape"])
        symbols = np.zeros(item["frames"][-1][2], np.complex64)
        noise = []
        for seq, first, last in item["frames"]:
            frame = index.get(seq)
            if frame is not None and frame.payload.size == last - first:
                symbols[first:last] = frame.payload
                noise.append(10.0 ** (-frame.snr_est_db / 10.0))
        if not noise:
            return np.full(shape, LOST_FILL, np.float32)
        return self.codec.decode(symbols, -10.0 * np.log10(np.mean(noise)), shape)


def torch_reference(model: str, images: list[tuple[str, np.ndarray]], snr_db: float, channel: str = "awgn",
                    seed: int = 0) -> dict[str, float]:
    """The same model in PyTorch through the torch face of the channel (no PHY, no processes):
    the reference the GNU Radio chain is held to. Returns mean psnr_db, ssim, ms_ssim."""
    import torch

    from testbed.systems.deepjscc.evaluate import reconstruct

    net = registry.get("model", model).torch_model()
    gen = torch.Generator().manual_seed(seed)
    recons = [reconstruct(net, img, snr_db, channel, gen) for _, img in images]
    return _image_metrics([img for _, img in images], recons)
