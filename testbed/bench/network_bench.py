"""Persistent network runs against today's per-point restart: 32x32 tiles/s through a running
DeepJSCC broadcast (aggregate over its users and per user, N = 1, 2, 4, 8 RX processes, zero
loss required), and the latency of one tile (one 32x32 image) from the encode request to the
decoded image back in the runner, with the processes already running. Both count the chain
(encode, frame, ZMQ, emulator, sync, decode, reply), not the runner's scoring (Session.chain_s);
the first batch is a warm-up and is left out."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from testbed.config.scenario import Scenario
from testbed.config.yaml_io import validate
from testbed.data.images import default_images, tile
from testbed.runner.session import Session


def _broadcast(n_users: int, batches: int) -> Scenario:
    rx = [f"ue{k}" for k in range(n_users)]
    return validate(Scenario, {
        "name": f"bench-broadcast-{n_users}", "system": "deepjscc", "batches": batches,
        "system_params": {"model": "deepjscc-r6"},
        "topology": {"nodes": [{"name": "bs", "role": "tx"}] + [{"name": u, "role": "rx"} for u in rx],
                     "users": [{"name": f"u{k}", "tx": "bs", "rx": u} for k, u in enumerate(rx)],
                     "links": [{"tx": "bs", "rx": u, "snr_db": 20.0} for u in rx]}}, "bench")


def _timed_session(scenario: Scenario, items) -> tuple[Session, list[float]]:
    """Run ``scenario``; the chain time of every batch (processes already up)."""
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(scenario, items, Path(tmp))
        session.run()
    return session, session.chain_s


def bench_broadcast(n_users: int, batches: int = 4) -> dict[str, float]:
    """Steady-state tiles/s of an N-user broadcast (first batch excluded: warm-up)."""
    items = default_images()
    tiles = sum(tile(img, 32).shape[0] for _, img in items)
    session, times = _timed_session(_broadcast(n_users, batches), items)
    rows = session.results.rows()
    lost = sum((r.get("frames_lost") or 0) + (r.get("samples_lost") or 0) for r in rows)
    failed = [r["reason"] for r in rows if r["status"] != "ok"]
    steady = float(np.mean(times[1:])) if len(times) > 1 else times[0]
    rate = float("nan") if failed else tiles / steady  # no rate from a run that failed
    return {"users": n_users, "per_user_tiles_s": rate, "aggregate_tiles_s": n_users * rate,
            "batch_s": steady, "lost": lost, "failed": len(failed), "reason": failed[0] if failed else ""}


def bench_tile_latency(repeats: int = 10) -> dict[str, float]:
    """Median seconds from encode request to decoded tile in the runner, one 32x32 image per batch."""
    image = default_images()[0][1][:, :32, :32].copy()
    session, times = _timed_session(_broadcast(1, repeats + 1), [("tile", image)])
    return {"latency_s": float(np.median(times[1:])), "samples_per_batch": session.sample / max(session.batch_count, 1)}
