"""DeepSCM over the testbed: a 1 -> 2 broadcast of discrete super-constellation symbols.

TX node: Fashion-MNIST images -> ONNX transmitter (log transition probabilities of each layer)
-> one Gumbel-max sample per real dimension (eq. 10; seeded by the run seed and the batch) ->
super-constellation symbols sqrt(a) Y1 + sqrt(1-a) Y2, which for the rectangular factors are the
points of an ordinary unit-power 64-QAM (4QAM x 16QAM) or 16-QAM (4QAM x 4QAM) -> frames of
whole images (n symbols each) on the burst PHY. RX node, one user per receiver: the equalised
frame symbols Z (``rx_input: soft``, what the paper's decoders take, eqs. 6-7), or Z demapped to
the nearest super-constellation point (``rx_input: hard``) -> the ONNX receiver of that user
(``receiver: 1`` or ``2``) -> image and label. Rx1 is scored on the coarse label, Rx2 on the fine
one. An image whose frame is lost is shown mid-grey and counted wrong (``images_lost``).

Bo, Shao, Tao, ../shared/seeds/003_75f868b86f184b01.txt.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed import registry
from testbed.errors import ConfigError
from testbed.phy.frame import FrameJob
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len, module_main
from testbed.systems.digital import LOST_FILL, _image_metrics
from testbed.systems.superposition import models as _models_registered  # noqa: F401  (registration)
from testbed.systems.superposition.constellation import demap, layer_levels, super_levels

SYMBOLS = PayloadFormat("analog", "none")  # the QAM points are placed on the carriers as they are
RX_INPUTS = ("soft", "hard")
IMAGE_SHAPE = (3, 28, 28)


def _models() -> list[str]:
    return [n for n in registry.names("system-model") if n.startswith(("deepscm", "cm-"))]


class SuperpositionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "deepscm-4x16-n128-1db-20db"
    receiver: int = Field(default=2, ge=1, le=2)
    rx_input: str = "soft"
    max_frame_symbols: int = Field(default=12288, ge=256, le=MAX_LENGTH)
    threads: int = Field(default=1, ge=1, le=64)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return check_choice("model", v, _models())

    @field_validator("rx_input")
    @classmethod
    def _rx_input(cls, v: str) -> str:
        return check_choice("rx_input", v, RX_INPUTS)


@register("system", "superposition")
class SuperpositionSystem(System):
    """DeepSCM (or a CM baseline) with one shipped model; ``receiver`` picks the user's decoders."""

    name = "superposition"
    system_id = 5
    images = "fashion-mnist"
    Params = SuperpositionParams

    trainer = staticmethod(module_main("testbed.systems.superposition.train"))

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.entry = registry.get("system-model", self.params.model)
        self.architecture = self.entry.card["architecture"]
        self.n = int(self.architecture["n"])
        self._sessions: dict = {}

    def session(self, role: str):
        """The ONNX Runtime session of one role, loaded on first use (a TX never loads a receiver)."""
        from testbed.onnx.session import OnnxModel

        if role not in self._sessions:
            self._sessions[role] = OnnxModel(self.entry.files[role], threads=self.params.threads, batch_size=1024)
        return self._sessions[role]

    def label(self) -> str:
        return self.params.model

    def model_files(self) -> list[Path]:
        return [Path(p) for p in self.entry.files.values()]

    @property
    def images_per_frame(self) -> int:
        return max(1, self.params.max_frame_symbols // self.n)

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(np.zeros(self.images_per_frame * self.n, np.complex64), SYMBOLS))

    def symbols(self, images: np.ndarray, batch: int) -> np.ndarray:
        """Grey images float32 (N, 1, 28, 28) -> sampled super-constellation symbols complex64 (N, n)."""
        logp = self.session("transmitter").run(image=images)
        rng = np.random.default_rng([self.seed, batch, 0x5C])
        values = np.zeros((len(images), 2 * self.n), np.float32)
        for levels, name in zip(layer_levels(self.architecture), self.session("transmitter").output_names):
            scores = logp[name] + rng.gumbel(size=logp[name].shape).astype(np.float32)
            values += levels[np.argmax(scores, axis=-1)]
        pairs = values.reshape(len(images), self.n, 2)
        return (pairs[..., 0] + 1j * pairs[..., 1]).astype(np.complex64)

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """Frames of ``images_per_frame`` whole images; manifest frames are [seq, first, end] item indices."""
        for name, img in items:
            if img.shape != IMAGE_SHAPE:
                raise ConfigError(f"superposition: image {name!r} has shape {list(img.shape)}; allowed: "
                                  f"{list(IMAGE_SHAPE)} (images: fashion-mnist)")
        grey = np.stack([img.mean(axis=0, keepdims=True) for _, img in items]).astype(np.float32)
        sym = self.symbols(grey, batch)
        per = self.images_per_frame
        jobs, plan = [], []
        for first in range(0, len(items), per):
            last = min(first + per, len(items))
            plan.append([len(jobs), first, last])
            jobs.append(FrameJob(sym[first:last].reshape(-1), SYMBOLS, self.system_id, seq=len(jobs)))
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "n": self.n, "plan": plan,
                              "items": [name for name, _ in items]})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        """This user's receiver on every image that arrived; arrays ``labels`` int64 (N,) in
        manifest order (-1 = lost) and ``lost`` bool (N,)."""
        index, n = by_seq(frames), self.n
        count = len(manifest["items"])
        z = np.zeros((count, n, 2), np.float32)
        lost = np.ones(count, bool)
        for seq, first, last in manifest["plan"]:
            frame = index.get(seq)
            if frame is not None and frame.payload.size == (last - first) * n:
                payload = frame.payload.reshape(last - first, n)
                z[first:last] = np.stack([payload.real, payload.imag], axis=-1)
                lost[first:last] = False
        if self.params.rx_input == "hard":
            z = demap(z, super_levels(self.architecture))
        images = np.full((count, 1, 28, 28), LOST_FILL, np.float32)
        labels = np.full(count, -1, np.int64)
        if (~lost).any():
            out = self.session(f"receiver{self.params.receiver}").run(symbols=z[~lost])
            images[~lost] = out["image"]
            labels[~lost] = np.argmax(out["logits"], axis=1)
        recons = {name: np.repeat(images[i], 3, axis=0) for i, name in enumerate(manifest["items"])}
        return Decoded(images=recons, arrays={"labels": labels, "lost": lost})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        from testbed.systems.superposition.data import item_labels

        coarse, fine = item_labels([name for name, _ in items])
        truth = coarse if self.params.receiver == 1 else fine
        predicted = decoded.arrays["labels"]
        order = {name: i for i, name in enumerate(manifest["items"])}
        predicted = np.array([predicted[order[name]] for name, _ in items])
        quality = _image_metrics([img for _, img in items], [decoded.images[name] for name, _ in items])
        task = "coarse" if self.params.receiver == 1 else "fine"
        return {**quality, "accuracy": float(np.mean(predicted == truth)),
                "images_lost": int(np.sum(decoded.arrays["lost"])),
                "choice": {"receiver": self.params.receiver, "task": task, "rx_input": self.params.rx_input}}
