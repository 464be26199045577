"""Per-user results of a network run, typed, and their metrics.json rows.

One row per user and sweep point (docs/architecture.md "Results"): counts are summed over the
point's batches, quality metrics averaged. A user with any failed batch at a point gets
``status: "failed"``, its reason, and null quality metrics: never numbers computed from fill
images or from a process that was gone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from testbed.config.topology import Topology

COUNTS = ("frames_sent", "frames_received", "frames_lost", "samples_sent", "samples_received", "samples_lost",
          "bits_compared", "images_lost")
QUALITY = ("psnr_db", "ssim", "ms_ssim", "ber", "bler", "snr_est_db", "evm_db", "accuracy", "ideal_psnr_db",
           "noise_floor_dbfs", "csi_error_db", "cpp", "selected_maps", "pruning_ratio", "channel_uses_per_pixel",
           "side_info_ok", "semantic_throughput")
DETAILS = ("choice", "tx_gain_db", "rx_gain_db")  # what a system or radio used per batch, kept as is


@dataclass
class UserBatch:
    """One user's outcome of one batch: metrics, reconstructions, or why it failed."""

    user: str
    metrics: dict[str, Any] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    failed: str | None = None
    idle: bool = False  # not scheduled in this batch (System.idle): no metrics
    csi_from: str = "nominal"
    frame_log: list[list] = field(default_factory=list)


@dataclass
class Results:
    """Every UserBatch by (point index, user), the sweep points and the processes' statuses."""

    topo: Topology
    labels: dict[str, str]
    batches: dict[tuple[int, str], list[UserBatch]] = field(default_factory=dict)
    points: dict[int, dict[str, float]] = field(default_factory=dict)
    processes: dict[str, dict] = field(default_factory=dict)
    label_at: dict[tuple[int, str], str] = field(default_factory=dict)  # the label a point ran with
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> System.row_tags()
    irs_at: dict[int, str] = field(default_factory=dict)  # point index -> the IRS state its batches met

    def add(self, index: int, point: dict[str, float], outcome: UserBatch) -> None:
        """Keep ``outcome``; its reconstructions only when it is the point's first good batch
        (the reports show those), so a long run does not hold every batch's images."""
        self.points[index] = point
        kept = self.batches.setdefault((index, outcome.user), [])
        if any(b.failed is None and b.images for b in kept):
            outcome.images = {}
        kept.append(outcome)
        self.label_at.setdefault((index, outcome.user), self.labels[outcome.user])

    def forget(self) -> None:
        """Drop every batch kept so far (a soak keeps only its last window, so its runner does
        not grow with the batches it has run; the soak's samples hold the earlier windows)."""
        self.batches.clear()
        self.label_at.clear()

    def frame_logs(self) -> dict[str, list[list]]:
        """Per user, every received frame as [run batch, start sample at its RX, snr_est_db, payload_ok]."""
        logs: dict[str, list[list]] = {}
        for (_, user), batches in self.batches.items():
            logs.setdefault(user, []).extend(entry for b in batches for entry in b.frame_log)
        return logs

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(index, user) for (index, user) in self.batches]

    def row(self, index: int, user: str) -> dict[str, Any]:
        cfg = next(u for u in self.topo.users if u.name == user)
        link = self.topo.link(cfg.tx, cfg.rx)
        point = self.points[index]
        kept = self.batches[(index, user)]
        batches = [b for b in kept if not b.idle]
        row: dict[str, Any] = {"user": user, "node": cfg.rx, "tx": cfg.tx,
                               "model": self.label_at.get((index, user), self.labels[user]),
                               "channel": link.model, "snr_db": point.get(link.key), "point": index,
                               "batches": len(batches), **self.tags.get(user, {})}
        if index in self.irs_at:
            row["irs_phases"] = self.irs_at[index]
        if len(batches) < len(kept):
            row["idle_batches"] = len(kept) - len(batches)
        if not batches:  # never scheduled at this point: nothing was sent to it
            return {**row, "status": "idle", **{k: None for k in QUALITY}, **{k: None for k in COUNTS}}
        failures = [b.failed for b in batches if b.failed]
        if failures:
            sent = [b.metrics.get("frames_sent") for b in batches]
            return {**row, "status": "failed", "reason": failures[0], **{k: None for k in QUALITY},
                    **{k: None for k in COUNTS}, "frames_sent": sum(s for s in sent if s) or None}
        row["status"] = "ok"
        for key in COUNTS:
            values = [b.metrics[key] for b in batches if key in b.metrics]
            if values:
                row[key] = int(sum(values))
        for key in QUALITY:
            values = [b.metrics[key] for b in batches if b.metrics.get(key) is not None]
            if values:
                row[key] = float(np.mean(values))
        for key in DETAILS:
            values = [b.metrics[key] for b in batches if key in b.metrics]
            if values:
                row[key] = values[0] if all(v == values[0] for v in values) else values
        row["csi_snr_db"] = [b.metrics["csi_snr_db"] for b in batches]
        if any(b.metrics.get("csi") is not None for b in batches):  # closed loop: the column each batch was told
            row["csi"] = [b.metrics.get("csi") for b in batches]
        row["csi_from"] = batches[-1].csi_from
        return row
