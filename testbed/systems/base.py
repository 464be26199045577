"""What every system offers the network: validated parameters, an encoder that runs in the TX
node, a decoder that runs in the RX node for each of its users, and a scorer in the runner.

A system is registered with ``@register("system", name)``; the runner, the node programs, the
CLI and the parametrised tests find it there. Data passes only through explicit values
(docs/architecture.md "Systems API"):

- ``encode(items, snr_db, batch)`` (TX node) -> :class:`Encoded`: the frames and a JSON
  ``manifest`` saying what the RX and the scorer need to know (frames per item, shapes, ...);
- ``decode(frames, manifest)`` (RX node, one user) -> :class:`Decoded` from that user's frames;
- ``score(items, manifest, decoded)`` (runner) -> metrics (vocabulary of docs/architecture.md);
- optionally ``encode_precoded(items_by_user, csi, snr_db, batch)`` (a TX node with several
  antennas and several users) -> :class:`Precoded`: each user's own frames and manifest, and
  the beams the node sends them on (:func:`precodes`; docs/architecture.md "TX modes");
- optionally ``encode_with_csi(items, csi, snr_db, batch)`` (a TX node of the MU-MIMO uplink
  with ``adapt: closed_loop``) -> :class:`Encoded`, told the channel column the base station
  estimated for it (:func:`uses_csi`).

A system with no images (``link``) ignores ``items``; its payloads are a function of the seed
and the batch index, so the scorer can regenerate what was sent.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from pydantic import BaseModel

from testbed.config.yaml_io import validate
from testbed.phy.frame import FrameJob, FrameLayout
from testbed.phy.receiver import ReceivedFrame

Items = list[tuple[str, np.ndarray]]
"""Named source items: float32 (3, H, W) images in [0, 1]."""


@dataclass
class Encoded:
    """One batch from a TX node: frames (seq = index in the batch) and their JSON manifest."""

    jobs: list[FrameJob]
    manifest: dict[str, Any]


@dataclass
class Precoded:
    """One batch of a multi-antenna TX that chooses its own beams (``encode_precoded``).

    Attributes:
        encoded: user name -> that user's :class:`Encoded` (its own jobs, seq = index in its
            batch, and its manifest); every user of the TX node has an entry.
        weights: complex (Nt, K) beams, column k for the k-th user of the TX (topology order),
            already power-scaled: the node sends ``weights @ s`` for unit-power streams s, so
            the system is responsible for the total power (sum |w|^2 = Nt is what a ZF TX sends).
    """

    encoded: dict[str, Encoded]
    weights: np.ndarray


@dataclass
class Decoded:
    """What one user's decoder made of a batch: reconstructions by item name, other arrays."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def module_main(module: str) -> Callable[[list[str]], object]:
    """A ``System.trainer`` that imports ``module`` (torch and all) only when it is called and
    runs its ``main(argv)``."""

    def main(argv: list[str]) -> object:
        return importlib.import_module(module).main(argv)

    return main


def train_then_export(train: Callable[[], Path], export: Callable[[Path], list[Path]] | None) -> dict:
    """What a trainer's ``main`` does: run (or resume) ``train``, then ``export`` its checkpoint
    unless None; prints and returns {"checkpoint", "minutes", "files"}."""
    started = time.monotonic()
    path = train()
    result: dict[str, Any] = {"checkpoint": str(path), "minutes": (time.monotonic() - started) / 60.0}
    if export is not None:
        result["files"] = [str(p) for p in export(path)]
    print(result)
    return result


class System:
    """Base of the registered systems; subclasses set ``name``, ``Params`` and the three steps."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    system_id: ClassVar[int] = 0
    # The image set (``testbed.data.images.image_set``) its shipped models are made for.
    images: ClassVar[str] = "default"
    # Command-line trainer (``testbed train SYSTEM ...``): a callable taking the argv list,
    # e.g. ``staticmethod(module_main("testbed.systems.x.train"))``.
    trainer: ClassVar[Callable[[list[str]], object] | None] = None

    @classmethod
    def validate_params(cls, params: dict[str, Any], source: str) -> BaseModel:
        return validate(cls.Params, params, f"{source}: system_params")

    @classmethod
    def check_link(cls, params: BaseModel, link: Any) -> list[str]:
        """Problems of validated ``params`` with a user's link (a topology ``Link``); none by default."""
        return []

    def __init__(self, params: dict[str, Any], seed: int = 0) -> None:
        self.params = self.validate_params(params, self.name)
        self.seed = seed

    def label(self) -> str:
        """The ``model`` column of the metrics rows."""
        return self.name

    def row_tags(self) -> dict[str, Any]:
        """Fixed per-user fields every metrics row of this user carries (e.g. the decoder); none by default."""
        return {}

    @classmethod
    def summary(cls, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Figures over every user's metrics rows of a run (metrics.json ``summary``, printed by
        ``testbed run``), e.g. the minimum over links; none by default."""
        return {}

    def idle(self, manifest: dict[str, Any]) -> bool:
        """Whether this user was sent nothing in the batch of ``manifest`` (its TX's): a slot that
        did not schedule it (half duplex). Its batch is counted in ``idle_batches`` and scored
        never; False by default."""
        return False

    def model_files(self) -> list[Path]:
        """Trained model files this system runs (recorded with their sha256 in metrics.json)."""
        return []

    def max_frame_samples(self) -> int:
        """Samples of the longest frame ``encode`` makes (sizes fading slots before any run)."""
        raise NotImplementedError

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """Frames of one batch; SNR-adaptive encoders take ``snr_db`` as CSI."""
        raise NotImplementedError

    def decode(self, frames: list[ReceivedFrame], manifest: dict[str, Any]) -> Decoded:
        """One user's reconstruction from the frames it received of a batch."""
        raise NotImplementedError

    def score(self, items: Items, manifest: dict[str, Any], decoded: Decoded) -> dict[str, float]:
        """Quality metrics of ``decoded`` against the sent ``items``."""
        raise NotImplementedError

    # A system that sends each user of a multi-antenna TX its own content on beams it chooses
    # defines (the base class does not, see ``precodes``):
    #
    #     def encode_precoded(self, items_by_user: dict[str, Items], csi: np.ndarray,
    #                         snr_db: float, batch: int) -> Precoded
    #
    # items_by_user: each user's items (its ``images`` set); csi: complex128 (K, Nt), the genie
    # channel of the TX's K users (topology order) from its Nt antennas when the batch is
    # encoded; snr_db as for ``encode``. Frame i carries the i-th job of every user that has
    # one, each user's stream with a training slot of its own (docs/architecture.md "TX modes").
    #
    # A system that adapts to the channel column the base station fed back (``adapt:
    # closed_loop``, single-antenna TX nodes of a MU-MIMO uplink) defines (see ``uses_csi``):
    #
    #     def encode_with_csi(self, items: Items, csi: np.ndarray | None, snr_db: float,
    #                         batch: int, sinr_db: float | None = None) -> Encoded
    #
    # csi: complex128 (M,), this TX's channel to the M base-station antennas as the base station
    # estimated it from this batch's probe (the channel the batch's frames meet: one fading
    # block per batch), None when the probe did not come through; snr_db: the fed-back SNR of
    # unit-power symbols over the estimated noise, 10 log10(1 / sigma^2) (the column carries the
    # gain; the nominal SNR when there is no csi); sinr_db: the post-LMMSE SINR of this TX's
    # probe stream (None without csi). A system without it gets ``encode(items, snr_db, batch)``.


def uses_csi(system: type[System] | System) -> bool:
    """Whether ``system`` (a class or an instance) takes the fed-back channel column (``encode_with_csi``)."""
    return callable(getattr(system, "encode_with_csi", None))


def precodes(system: type[System] | System) -> bool:
    """Whether ``system`` (a class or an instance) chooses its own beams (``encode_precoded``)."""
    return callable(getattr(system, "encode_precoded", None))


def check_choice(field: str, value: str, allowed) -> str:
    """``value`` when it is one of ``allowed``; else ValueError naming field, value and allowed
    (pydantic validators use it, and the scenario loader reports it with the file name)."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{field} = {value!r} is unknown; allowed: {', '.join(allowed)}")
    return value


def by_seq(frames: list[ReceivedFrame]) -> dict[int, ReceivedFrame]:
    """seq -> the first received copy of that frame."""
    index: dict[int, ReceivedFrame] = {}
    for frame in frames:
        index.setdefault(int(frame.header.seq), frame)
    return index


def frame_stats(frames: list[ReceivedFrame], frames_sent: int) -> dict[str, float]:
    """frames_sent/received/lost, bler (lost or CRC-failed over sent), mean snr_est_db and evm_db."""
    index = by_seq(frames)
    got = [f for seq, f in index.items() if seq < frames_sent]
    ok = sum(bool(f.payload_ok) for f in got)
    out: dict[str, float] = {"frames_sent": frames_sent, "frames_received": len(got),
                             "frames_lost": frames_sent - len(got), "bler": 1.0 - ok / max(frames_sent, 1)}
    if got:
        out["snr_est_db"] = float(np.mean([f.snr_est_db for f in got]))
        out["evm_db"] = float(np.mean([f.evm_db for f in got]))
    return out


def frame_len(job: FrameJob) -> int:
    return job.frame_len(FrameLayout())


def evaluate(system: System, items: Items, encoded: Encoded, frames: list[ReceivedFrame]) -> dict[str, float]:
    """Decode and score in one process (loopback tests, the offline chain): frame counts and metrics."""
    decoded = system.decode(frames, encoded.manifest)
    return {**frame_stats(frames, len(encoded.jobs)), **system.score(items, encoded.manifest, decoded)}
