"""A throwaway system for the plugin test: one linear encoder and two linear decoders in ONNX,
loaded from this folder only (registered through ``testbed.registry.load_plugins``)."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from testbed import metrics, registry
from testbed.data.images import tile, untile
from testbed.onnx.session import OnnxModel
from testbed.phy.frame import FrameJob
from testbed.phy.payload import PayloadFormat
from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, System, by_seq, frame_len

TILE = 8
K = 3 * TILE * TILE // 2
ANALOG = PayloadFormat("analog", "none")


class ToyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decoder: str = "toy-a"


@register("system", "toy")
class ToySystem(System):
    name = "toy"
    Params = ToyParams
    system_id = 200

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.encoder = OnnxModel(registry.get("model", "toy-a").encoder)
        self.decoder = OnnxModel(registry.get("model", self.params.decoder).decoder)

    def label(self) -> str:
        return self.params.decoder

    def model_files(self):
        return [self.encoder.path, self.decoder.path]

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(np.zeros(K * 384, np.complex64), ANALOG))

    def encode(self, items, snr_db, batch=0):
        jobs, plan = [], []
        for seq, (name, img) in enumerate(items):
            sym = self.encoder.run(image=tile(img, TILE))["symbols"]
            side = np.array(img.shape[1:], ">u2").tobytes()  # the image size travels as side information
            jobs.append(FrameJob((sym[..., 0] + 1j * sym[..., 1]).astype(np.complex64).reshape(-1), ANALOG,
                                 self.system_id, seq=seq, side_info=side))
            plan.append({"name": name, "seq": seq})
        return Encoded(jobs, {"frames": len(jobs), "items": plan})

    def decode(self, frames, manifest):
        index = by_seq(frames)
        images = {}
        for item in manifest["items"]:
            frame = index.get(item["seq"])
            if frame is None or not frame.side_ok:
                images[item["name"]] = None
                continue
            shape = (3, *map(int, np.frombuffer(frame.side_info, ">u2")))
            sym = frame.payload.reshape(-1, K)
            x = np.stack([sym.real, sym.imag], axis=-1).astype(np.float32)
            images[item["name"]] = untile(self.decoder.run(symbols=x)["image"], shape)
        return Decoded(images=images)

    def score(self, items, manifest, decoded):
        recon = [decoded.images[name] for name, _ in items]
        if any(r is None for r in recon):
            return {"psnr_db": None, "images_lost": sum(r is None for r in recon)}
        return {"psnr_db": float(np.mean([metrics.psnr_db(img, r) for (_, img), r in zip(items, recon)]))}
