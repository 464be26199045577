"""IRS-assisted multi-user JSCE over the testbed: K device-to-device users through a software IRS.

Paper: "Learning Joint Source-Channel Encoding in IRS-assisted Multi-User Semantic
Communications", ../shared/seeds/000_5c86833aa1606c01.txt (Sec. II, eqs. (5)-(7), (13), (14)).

Topology (scenario ``irs-jsce-5users``): one ``trx`` node per user of the geometry
(``params: {user: user1}``, standing at that user's position), a user (link) per ordered pair, and
the emulator's IRS links realised by this folder's channel (``topology.irs.channel: irs_jsce``).
A batch is one slot of ``schedule`` (slot ``batch mod T``): its transmitters (half duplex, (14c))
each address every user that is not one.

TX node of user r (``encode``): idle when r is not a transmitter of the slot (an empty batch: its
stream is silent). Otherwise destination k gets item ``(batch + k) mod n`` of the TX's items,
centre-cropped to ``crop_px`` and cut into ``tile_px`` tiles (the size the networks were
trained on); the shipped transmitter graph encodes every tile for its link (positions of RX and
TX) and the slot's schedule; the TX sums its destinations' symbols tile by tile and normalises
each tile to unit power (eq. (6)); frames carry ``max_frame_symbols`` at most, whole tiles.
Each frame is stream r of the slot's K-stream frame (``runner/graph.py`` ``tx_mode``: time-
orthogonal training slots, then every TX's payload superposed), so every RX measures the
channel of every TX.

RX node of user k, one user per TX r (``decode``): idle unless the manifest of r's batch
addresses k. Stream r's detected payload (the one-antenna MMSE row, y / h_r) and its LS channel
h_r and noise estimate sigma^2 give the decoder input of the paper, y h_r^* / (|h_r|^2 + sigma^2)
= z |h_r|^2 / (|h_r|^2 + sigma^2); the receiver graph decodes the tiles. A lost frame leaves
mid-grey tiles.

Without ``user`` (a point-to-point run: one TX node, one RX node, e.g. two radios over the air)
the TX stands in for the slot's first transmitter, sending its whole superposition on ordinary
frames, and the RX decodes the slot's first link from the equalised symbols and their noise.

Score: PSNR, SSIM and MS-SSIM on the cropped image, and ``semantic_throughput`` = (S/L) xi (eq.
(13), xi the SSIM) of the slot; :meth:`IrsJsceSystem.summary` adds per IRS state the minimum over
links of the throughput over the T slots (idle slots count 0: the max-min objective (14)).
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed import registry
from testbed.data.images import tile, untile
from testbed.errors import ConfigError
from testbed.phy.frame import FrameJob
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len
from testbed.systems.digital import LOST_FILL, _image_metrics
from testbed.systems.irs_jsce import models as _models_registered  # noqa: F401  (registration)
from testbed.systems.irs_jsce.channel import load_geometry
from testbed.systems.irs_jsce.evaluate import TILE_PX, semantic_throughput

ANALOG = PayloadFormat("analog", "none")
DEFAULT_MODEL = "irs-jsce-irs8x8-8000steps"


def shipped_models() -> list[str]:
    """Names of the registered IRS-JSCE models."""
    return [n for n in registry.names("system-model") if n.startswith("irs-jsce-")]


class IrsJsceParams(BaseModel):
    """``model``: a shipped model; ``user``: the geometry user this node is (node params; empty:
    a point-to-point run of one link, module docstring);
    ``schedule``: the transmitters of each slot (geometry user names), T = its length; ``crop_px``:
    centre crop of every image (smaller images: their largest square of whole tiles; 0: whole
    images, which must then share one shape);
    ``max_frame_symbols``: analog symbols per frame at most (whole tiles)."""

    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    user: str = ""
    schedule: list[list[str]] = Field(default_factory=lambda: [[f"user{k + 1}"] for k in range(5)], min_length=1)
    crop_px: int = Field(default=256, ge=0, le=4096)
    max_frame_symbols: int = Field(default=8192, ge=512, le=MAX_LENGTH)
    threads: int = Field(default=1, ge=1, le=64)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return check_choice("model", v, shipped_models())

    @field_validator("crop_px")
    @classmethod
    def _crop(cls, v: int) -> int:
        if v % TILE_PX:
            raise ValueError(f"crop_px = {v} is invalid; allowed: 0 or a multiple of {TILE_PX}")
        return v

    @model_validator(mode="after")
    def _users(self) -> "IrsJsceParams":
        names = load_geometry().user_names
        if self.user:
            check_choice("user", self.user, names)
        for t, slot in enumerate(self.schedule):
            for name in slot:
                check_choice(f"schedule.{t}", name, names)
            if not slot or len(set(slot)) != len(slot) or len(slot) == len(names):
                raise ValueError(f"schedule.{t} = {slot!r} is invalid; allowed: 1 to {len(names) - 1} distinct "
                                 f"users of {', '.join(names)} (half duplex: someone must receive)")
        return self


@register("system", "irs_jsce")
class IrsJsceSystem(System):
    """One shipped model: the user-independent encoder and decoder, on a half-duplex schedule."""

    name = "irs_jsce"
    system_id = 9
    Params = IrsJsceParams

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.entry = registry.get("system-model", self.params.model)
        self.users = load_geometry().user_names
        card = self.entry.card()
        self.positions_m = np.asarray(card["users_m"], np.float32)  # (K, 2): the users' (x, y)
        self.schedule = [sorted(self.users.index(n) for n in slot) for slot in self.params.schedule]

    @cached_property
    def transmitter(self):
        return self.entry.session("transmitter", self.params.threads)

    @cached_property
    def receiver(self):
        return self.entry.session("receiver", self.params.threads)

    def label(self) -> str:
        return self.params.model

    def model_files(self) -> list[Path]:
        return [Path(self.entry.files[role]) for role in ("transmitter", "receiver")]

    def irs_phases(self) -> np.ndarray | None:
        """The model's trained 1-bit IRS phases (the scenario's ``phases: trained``)."""
        return self.entry.phases()

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(np.zeros(self.params.max_frame_symbols, np.complex64), ANALOG))

    def me(self, transmitters: list[int]) -> int:
        """This node's user index; without ``user`` (a point-to-point run of one link) the slot's
        first transmitter."""
        return self.users.index(self.params.user) if self.params.user else transmitters[0]

    def slot_of(self, batch: int) -> list[int]:
        return self.schedule[batch % len(self.schedule)]

    def _inputs(self, rx: int, tx: int, transmitters: list[int], n: int) -> dict[str, np.ndarray]:
        """The link and slot inputs of the graphs for ``n`` tiles of link tx -> rx."""
        link = np.concatenate([self.positions_m[rx], self.positions_m[tx]]).astype(np.float32)
        slot = np.zeros(len(self.users), np.float32)
        slot[transmitters] = 1.0
        return {"link": np.repeat(link[None], n, axis=0), "slot": np.repeat(slot[None], n, axis=0)}

    def crop_side(self, images: list[np.ndarray]) -> int:
        """The slot's square side: ``crop_px`` or, when an image is smaller, its short side
        rounded down to whole tiles; 0 (whole images) with ``crop_px`` 0."""
        if not self.params.crop_px:
            return 0
        side = min([self.params.crop_px] + [min(img.shape[1:]) // TILE_PX * TILE_PX for img in images])
        if side < TILE_PX:
            raise ConfigError(f"irs_jsce: an image of {[i.shape[1:] for i in images]} px has no {TILE_PX} px tile; "
                              f"allowed: images of at least {TILE_PX} x {TILE_PX}")
        return side

    @staticmethod
    def crop(img: np.ndarray, side: int) -> np.ndarray:
        """The centre ``side`` x ``side`` crop of float32 (3, H, W) (``side`` 0: the image)."""
        if not side:
            return img
        _, height, width = img.shape
        top, left = (height - side) // 2, (width - side) // 2
        return np.ascontiguousarray(img[:, top:top + side, left:left + side])

    # -- TX -------------------------------------------------------------------------------------

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """This user's stream of the slot of ``batch`` (module docstring); manifest: batch, tx,
        transmitters, shape, tiles, links [{rx, item}], chunks [[seq, first tile, end tile]]."""
        transmitters = self.slot_of(batch)
        me = self.me(transmitters)
        manifest: dict[str, Any] = {"batch": batch, "tx": me, "transmitters": transmitters, "links": [],
                                    "chunks": [], "frames": 0}
        if me not in transmitters:
            return Encoded([], manifest)
        destinations = [k for k in range(len(self.users)) if k not in transmitters]
        chosen = [items[(batch + k) % len(items)] for k in destinations]
        side = self.crop_side([img for _, img in chosen])
        images = [self.crop(img, side) for _, img in chosen]
        if len({img.shape for img in images}) > 1:
            raise ConfigError(f"irs_jsce: a slot's images differ in shape {[i.shape for i in images]}; allowed: "
                              "one shape (set system_params.crop_px)")
        symbols = self._superposed(me, transmitters, destinations, images)
        per = max(1, self.params.max_frame_symbols // symbols.shape[1])
        jobs = []
        for first in range(0, len(symbols), per):
            end = min(first + per, len(symbols))
            manifest["chunks"].append([len(jobs), first, end])
            jobs.append(FrameJob(symbols[first:end].reshape(-1), ANALOG, self.system_id, seq=len(jobs)))
        manifest.update(shape=list(images[0].shape), side=side, tiles=len(symbols), frames=len(jobs),
                        links=[{"rx": k, "item": name} for k, (name, _) in zip(destinations, chosen)])
        return Encoded(jobs, manifest)

    def _superposed(self, me: int, transmitters: list[int], destinations: list[int],
                    images: list[np.ndarray]) -> np.ndarray:
        """Eq. (6): the destinations' encoded tiles summed tile by tile, each tile normalised to
        unit power; complex64 (tiles, L)."""
        summed = None
        for k, img in zip(destinations, images):
            tiles = tile(img, TILE_PX)
            out = self.transmitter.run(image=tiles, **self._inputs(k, me, transmitters, len(tiles)))["symbols"]
            sym = out[..., 0] + 1j * out[..., 1]
            summed = sym if summed is None else summed + sym
        power = np.mean(np.abs(summed) ** 2, axis=1, keepdims=True)
        return (summed / np.sqrt(power + 1e-12)).astype(np.complex64)

    # -- RX -------------------------------------------------------------------------------------

    def _my_link(self, manifest: dict) -> dict | None:
        """The manifest's link to this user (without ``user``: its first link), or None."""
        if not self.params.user:
            return manifest["links"][0] if manifest["links"] else None
        return next((lk for lk in manifest["links"] if lk["rx"] == self.users.index(self.params.user)), None)

    def idle(self, manifest: dict) -> bool:
        return self._my_link(manifest) is None

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        """This user's image from its TX's stream (module docstring); none when idle. Arrays:
        ``lost_frames`` (count), ``link_snr_db`` (mean |h_r|^2 / sigma^2 of the frames received)."""
        link = self._my_link(manifest)
        if link is None:
            return Decoded(images={}, arrays={})
        shape, n = tuple(manifest["shape"]), int(manifest["tiles"])
        tiles = np.full((n, 3, TILE_PX, TILE_PX), LOST_FILL, np.float32)
        index, lost, snrs = by_seq(frames), 0, []
        length = TILE_PX * TILE_PX // 2
        for seq, first, end in manifest["chunks"]:
            frame, count = index.get(int(seq)), (int(end) - int(first)) * length
            if frame is None or frame.payload.size < count:
                lost += 1
                continue
            z, relative_noise = _equalised(frame, count)
            snrs.append(1.0 / float(np.mean(relative_noise)))
            z = (z / (1.0 + relative_noise)).reshape(end - first, length)   # y h* / (|h|^2 + sigma^2)
            grid = np.stack([z.real, z.imag], axis=-1).astype(np.float32).reshape(
                end - first, TILE_PX // 4, TILE_PX // 4, -1, 2)
            out = self.receiver.run(symbols=grid, **self._inputs(link["rx"], manifest["tx"], manifest["transmitters"],
                                                                 end - first))["image"]
            tiles[first:end] = np.clip(out, 0.0, 1.0)
        snr_db = 10 * np.log10(np.mean(snrs)) if snrs else np.nan
        return Decoded(images={link["item"]: untile(tiles, shape)},
                       arrays={"lost_frames": np.asarray(lost), "link_snr_db": np.asarray(snr_db)})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        link = self._my_link(manifest)
        reference = self.crop(dict(items)[link["item"]], manifest["side"])
        metrics = _image_metrics([reference], [decoded.images[link["item"]]])
        snr = float(decoded.arrays["link_snr_db"])
        return {**metrics, "semantic_throughput": float(semantic_throughput(metrics["ssim"])),
                "snr_est_db": None if np.isnan(snr) else snr}

    @classmethod
    def summary(cls, rows: list[dict]) -> dict[str, Any]:
        """Per IRS state: the minimum over links of the semantic throughput over the T slots
        (eq. (14): a link's mean over the slots, an idle slot 0), the link that has it and the
        links left out because a batch of theirs failed."""
        out: dict[str, Any] = {}
        for state in dict.fromkeys(r.get("irs_phases", "") for r in rows):
            per_link, failed = {}, 0
            for r in rows:
                if r.get("irs_phases", "") != state:
                    continue
                if r["status"] == "failed":
                    failed += 1
                    continue
                scheduled, idle = r["batches"], r.get("idle_batches", 0)
                value = (r.get("semantic_throughput") or 0.0) * scheduled / max(scheduled + idle, 1)
                per_link[r["user"]] = value
            if per_link:
                worst = min(per_link, key=per_link.get)
                out[state or "irs"] = {"value": round(per_link[worst], 4), "link": worst, "links": len(per_link),
                                       "links_failed": failed}
        return {"min_semantic_throughput": out} if out else {}


def _equalised(frame: ReceivedFrame, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(z complex (count,), sigma^2 / |h|^2 float (count,) or (1,)): a stream receiver's frame gives
    z = y / h_r (its one-antenna MMSE row) with its LS h_r and noise estimate, so the other streams
    of the slot stay in z, as in eq. (7); an ordinary frame (a point-to-point link) gives the
    equalised symbols and their per-symbol noise variance."""
    h = getattr(frame, "h_est", None)
    if h is not None:
        gain = float(np.sum(np.abs(h) ** 2))
        return frame.payload[:count], np.asarray([float(frame.noise_var_est) / max(gain, 1e-30)])
    return frame.payload[:count], np.asarray(frame.noise_var[:count], np.float64)
