"""What every system offers the runner: validated parameters, frame jobs, and an evaluation.

A system is registered with ``@register("system", name)``; the runner, the CLI and the
parametrised tests find it there. ``make_jobs`` turns the scenario's data into frames for the
TX, ``evaluate`` turns what the RX delivered (the arrays of ``runner.jobs.save_results``, or
None when the RX wrote nothing) into one metrics row for one SNR point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from pydantic import BaseModel

from testbed.config.yaml_io import validate
from testbed.phy.frame import FrameJob


@dataclass
class Evaluation:
    """One SNR point: the metrics row (vocabulary of DESIGN.md) and optional reconstructions."""

    metrics: dict[str, float]
    images: dict[str, np.ndarray] = field(default_factory=dict)


class System:
    """Base of the registered systems; subclasses set ``name``, ``Params`` and the two methods."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    # Command-line trainer (``testbed train SYSTEM ...``): a callable taking the argv list.
    trainer: ClassVar[Callable[[list[str]], object] | None] = None

    @classmethod
    def validate_params(cls, params: dict[str, Any], source: str) -> BaseModel:
        return validate(cls.Params, params, f"{source}: system_params")

    def __init__(self, params: dict[str, Any], seed: int = 0) -> None:
        self.params = self.validate_params(params, self.name)
        self.seed = seed

    def label(self) -> str:
        """The ``model`` column of the metrics rows."""
        return self.name

    def model_files(self) -> list[Path]:
        """Trained model files this system runs (recorded with their sha256 in metrics.json)."""
        return []

    def make_jobs(self, images: list[tuple[str, np.ndarray]], snr_db: float) -> list[FrameJob]:
        """Frames for one SNR point (SNR-adaptive encoders use the nominal SNR as CSI)."""
        raise NotImplementedError

    def evaluate(self, jobs: list[FrameJob], received: dict[str, np.ndarray] | None) -> Evaluation:
        raise NotImplementedError


def check_choice(field: str, value: str, allowed) -> str:
    """``value`` when it is one of ``allowed``; else ValueError naming field, value and allowed
    (pydantic validators use it, and the scenario loader reports it with the file name)."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{field} = {value!r} is unknown; allowed: {', '.join(allowed)}")
    return value


def received_index(jobs: list[FrameJob], received: dict[str, np.ndarray] | None) -> dict[int, int]:
    """seq of each sent job -> row of ``received`` holding it (first copy; other users' ignored)."""
    if received is None:
        return {}
    wanted = {(j.system, j.user, j.seq) for j in jobs}
    index: dict[int, int] = {}
    for row, key in enumerate(zip(received["system"], received["user"], received["seq"])):
        key = tuple(int(k) for k in key)
        if key in wanted and key[2] not in index:
            index[key[2]] = row
    return index


def digital_payload(received: dict[str, np.ndarray], row: int) -> tuple[bytes, np.ndarray]:
    """(payload bytes, hard information bits) of digital result row ``row``."""
    off, boff = received["offsets_u8"], received["bit_offsets"]
    return received["payload_u8"][off[row] : off[row + 1]].tobytes(), received["bits"][boff[row] : boff[row + 1]]


def frame_counts(jobs: list[FrameJob], index: dict[int, int], received: dict[str, np.ndarray] | None) -> dict[str, float]:
    """frames_sent/received/lost, bler (lost or CRC-failed over sent), mean snr_est_db and evm_db."""
    rows = list(index.values())
    ok = sum(bool(received["payload_ok"][r]) for r in rows) if rows else 0
    out = {"frames_sent": len(jobs), "frames_received": len(rows), "frames_lost": len(jobs) - len(rows),
           "bler": 1.0 - ok / max(len(jobs), 1)}
    if rows:
        out["snr_est_db"] = float(np.mean(received["snr_est_db"][rows]))
        out["evm_db"] = float(np.mean(received["evm_db"][rows]))
    return out
