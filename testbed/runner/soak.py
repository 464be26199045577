"""Soak: one scenario run kept going for minutes or hours, its processes' memory and its metrics
sampled at a fixed interval, to show that nothing grows or drifts (``testbed soak``).

Every ``sample_s`` seconds the soak writes a sample to ``soak.json`` (atomically): the run time,
the batches done, each node process's resident memory (VmRSS from /proc, MiB) and the mean of
the quality metrics of the batches since the last sample. The summary compares the last sample
with the first one after the warm-up (the first quarter of the run): the memory growth of every
process in percent, and the drift of each metric. The run's own results keep only the window
since the last sample (metrics.json ends with the last window's rows), so the runner does not
grow with the batches it has run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from testbed.runner.files import write_json
from testbed.runner.run import Record, Run

METRICS = ("psnr_db", "snr_est_db", "evm_db", "ber", "bler")
MAX_BATCHES = 100000


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _means(records: list[Record]) -> dict[str, float | None]:
    out = {}
    for key in METRICS:
        values = [r[key] for r in records if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def summarise(samples: list[dict]) -> dict:
    """Memory growth (%) per process and metric drift, last sample against the first after the
    warm-up (the first quarter of the samples)."""
    if len(samples) < 3:
        return {"samples": len(samples)}
    first, last = samples[max(1, len(samples) // 4)], samples[-1]
    growth = {name: round(100.0 * (last["rss_mib"][name] - mib) / mib, 2)
              for name, mib in first["rss_mib"].items() if mib and last["rss_mib"].get(name)}
    drift = {key: round(last["metrics"][key] - first["metrics"][key], 4) for key in METRICS
             if first["metrics"].get(key) is not None and last["metrics"].get(key) is not None}
    return {"samples": len(samples), "from_s": first["t_s"], "to_s": last["t_s"],
            "rss_growth_pct": growth, "max_rss_growth_pct": max(growth.values()) if growth else None,
            "metric_drift": drift}


def soak(scenario, out_dir: Path, minutes: float, sample_s: float = 60.0, overrides: dict | list | None = None,
         progress: Callable[[str], None] = lambda s: None) -> dict:
    """Run ``scenario`` (a name, path, mapping or Scenario) for ``minutes``; the soak document
    {"scenario", "minutes", "sample_s", "samples": [...], "summary": {...}}, also in soak.json."""
    out_dir = Path(out_dir)
    doc: dict = {"scenario": str(scenario), "minutes": minutes, "sample_s": sample_s, "samples": []}
    more = [*overrides, f"batches={MAX_BATCHES}"] if isinstance(overrides, list) \
        else {**(overrides or {}), "batches": MAX_BATCHES}
    with Run(scenario, out_dir, overrides=more, progress=False) as run:
        doc["scenario"] = run.scenario.name
        pids = {"runner": os.getpid(), **{name: proc.pid for name, proc in run.session.launcher.procs.items()}}
        start = next_sample = time.monotonic()
        window: list[Record] = []
        while True:
            now = time.monotonic()
            if now >= next_sample:
                doc["samples"].append({"t_s": round(now - start, 1), "batches": run.session.batch_count,
                                       "rss_mib": {n: rss_mib(p) for n, p in pids.items()},
                                       "metrics": _means(window)})
                window = []
                doc["summary"] = summarise(doc["samples"])
                write_json(out_dir / "soak.json", doc)
                progress(f"{now - start:.0f} s, {run.session.batch_count} batches")
                next_sample += sample_s
                if now - start >= minutes * 60.0:
                    break
                run.session.results.forget()  # metrics.json ends with the last window's rows
            records = run.step()
            if records is None:
                break
            window += records
    write_json(out_dir / "soak.json", doc)
    return doc
