"""The DeepJSCC single-link system over the testbed: images -> ONNX encoder -> analog symbols
on the burst PHY -> three-process chain -> equalised symbols + the receiver's SNR estimate ->
ONNX decoder -> images. Tiles of a lost frame are shown mid-grey and counted.

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
from testbed.systems.base import Evaluation, System, frame_counts, received_index
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


def analog_payload(received: dict[str, np.ndarray], row: int) -> np.ndarray:
    """complex64 symbols of result row ``row`` (analog rows follow the digital ones)."""
    i = row - int(received["n_digital"])
    off = received["offsets_c64"]
    return received["payload_c64"][off[i] : off[i + 1]]


@register("system", "deepjscc")
class DeepJsccSystem(System):
    """One shipped DeepJSCC/ADJSCC model; frames carry up to ``max_frame_symbols`` symbols."""

    name = "deepjscc"
    Params = DeepJsccParams

    @staticmethod
    def trainer(argv: list[str]) -> object:
        from testbed.systems.deepjscc.train import main

        return main(argv)

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        from testbed.systems.deepjscc.codec import NeuralImageCodec

        self.codec = NeuralImageCodec(self.params.model, self.params.threads)
        self._plan: list[tuple[str, np.ndarray, list[tuple[int, int, int]]]] = []

    def label(self) -> str:
        return self.params.model

    def model_files(self) -> list[Path]:
        return [Path(self.codec.entry.encoder), Path(self.codec.entry.decoder)]

    @property
    def tiles_per_frame(self) -> int:
        return max(1, self.params.max_frame_symbols // self.codec.symbols_per_tile)

    def make_jobs(self, images: list[tuple[str, np.ndarray]], snr_db: float) -> list[FrameJob]:
        k, per = self.codec.symbols_per_tile, self.tiles_per_frame
        jobs, self._plan = [], []
        for name, img in images:
            sym = self.codec.encode(img, snr_db).reshape(-1, k)
            chunks = []
            for first in range(0, sym.shape[0], per):
                chunks.append((len(jobs), first, min(first + per, sym.shape[0])))
                jobs.append(FrameJob(sym[first : first + per].reshape(-1), ANALOG, seq=len(jobs)))
            self._plan.append((name, img, chunks))
        return jobs

    def evaluate(self, jobs: list[FrameJob], received: dict[str, np.ndarray] | None) -> Evaluation:
        index = received_index(jobs, received)
        refs, recons, shown = [], [], {}
        for name, img, chunks in self._plan:
            recon = self._reconstruct(img, chunks, index, received)
            refs.append(img)
            recons.append(recon)
            shown[name] = recon
        m = frame_counts(jobs, index, received)
        m.update(_image_metrics(refs, recons))
        return Evaluation(m, shown)

    def _reconstruct(self, img, chunks, index, received) -> np.ndarray:
        n_tiles = chunks[-1][2]
        tiles = np.full((n_tiles, 3, 32, 32), LOST_FILL, dtype=np.float32)
        for seq, first, last in chunks:
            if seq in index:
                sym = analog_payload(received, index[seq]).reshape(last - first, -1)
                snr = np.full(last - first, received["snr_est_db"][index[seq]], np.float32)
                tiles[first:last] = self.codec.decode_tiles(sym, snr)
        return untile(tiles, img.shape)


def torch_reference(model: str, images: list[tuple[str, np.ndarray]], snr_db: float, channel: str = "awgn",
                    seed: int = 0) -> dict[str, float]:
    """The same model in PyTorch through the torch face of the channel (no PHY, no processes):
    the reference the GNU Radio chain is held to. Returns mean psnr_db, ssim, ms_ssim."""
    import torch

    from testbed.data.images import tile

    net = registry.get("model", model).torch_model()
    gen = torch.Generator().manual_seed(seed)
    recons = []
    with torch.no_grad():
        for _, img in images:
            tiles = torch.from_numpy(tile(img, 32))
            out = net(tiles, snr_db, channel=channel, generator=gen)["recon"].clamp(0, 1).numpy()
            recons.append(untile(out, img.shape))
    return _image_metrics([img for _, img in images], recons)
