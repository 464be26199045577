"""Run a validated scenario over the virtual-radio chain: one chain run per SNR point, one
metrics row per user and SNR, then metrics.json (DESIGN.md contract) and a report.

Results already measured are kept when a later point fails: metrics.json is rewritten
atomically after every point, and a failed point becomes a row with ``error`` set.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from testbed import registry
from testbed.config.scenario import Scenario
from testbed.data.images import default_images, load_folder
from testbed.runner.chain import fading_slot, run_chain
from testbed.runner.files import write_json
from testbed.runner.versions import sha256, versions
from testbed.systems.base import System


@dataclass
class RunOutput:
    """What a scenario run produced: the metrics document, reconstructions per SNR, its folder."""

    out_dir: Path
    document: dict
    images: dict[float, dict[str, np.ndarray]] = field(default_factory=dict)
    originals: list[tuple[str, np.ndarray]] = field(default_factory=list)


def scenario_images(scenario: Scenario) -> list[tuple[str, np.ndarray]]:
    images = default_images() if scenario.images == "default" else load_folder(scenario.images)
    return images[: scenario.max_images] if scenario.max_images else images


def default_out_dir(name: str) -> Path:
    """runs/<time>-<name>: the default output folder of a run."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def run_scenario(scenario: Scenario, out_dir: Path, progress: Callable[[str], None] = lambda s: None) -> RunOutput:
    """Run every SNR point of ``scenario``; write metrics.json after each; return everything."""
    out_dir.mkdir(parents=True, exist_ok=True)
    system: System = registry.create("system", scenario.system, params=scenario.system_params, seed=scenario.seed)
    radio = scenario.radio_config()
    images = scenario_images(scenario)
    doc = {"scenario": scenario.name, "system": scenario.system, "rows": [], "config": scenario.model_dump(),
           "radio": radio.model_dump(), "versions": versions(),
           "models": {_relative(p): sha256(p) for p in system.model_files()}, "problems": []}
    output = RunOutput(out_dir, doc, originals=images)
    for snr_db in scenario.channel.snr_db:
        progress(f"{scenario.name}: {snr_db:g} dB")
        spec = scenario.channel.spec(snr_db, radio.sample_rate_sps)
        jobs = system.make_jobs(images, snr_db)
        slot = 0
        if spec.model != "awgn" and spec.coherence_samples == 0:  # one fading draw per frame
            slot = fading_slot(jobs, spec.delay_samples)
            spec = dataclasses.replace(spec, coherence_samples=slot)
        chain = run_chain([jobs], [[spec]], out_dir / f"snr_{snr_db:g}dB", sample_rate_sps=radio.sample_rate_sps,
                          seed=scenario.seed + int(snr_db * 1000), timeout_s=scenario.timeout_s, slot_samples=slot)
        evaluation = system.evaluate(jobs, chain.received(0))
        row = {"user": 0, "model": system.label(), "channel": scenario.channel.model, "snr_db": snr_db,
               **evaluation.metrics, **_sample_counts(chain.statuses)}
        if chain.problems:
            row["error"] = "; ".join(chain.problems)
            doc["problems"].extend(f"{snr_db:g} dB: {p}" for p in chain.problems)
        doc["rows"].append(row)
        output.images[snr_db] = evaluation.images
        write_json(out_dir / "metrics.json", doc)
    return output


def _sample_counts(statuses: dict[str, dict]) -> dict[str, int]:
    """samples_sent (TX), samples_received (RX), samples_lost between them; -1 when unknown."""
    sent = statuses.get("tx0", {}).get("samples_sent", -1)
    got = statuses.get("rx0", {}).get("samples_received", -1)
    lost = sent - got if sent >= 0 and got >= 0 else -1
    dropped = statuses.get("tx0", {}).get("pdus_dropped", -1)
    return {"samples_sent": sent, "samples_received": got, "samples_lost": lost, "pdus_dropped": dropped}


def _relative(path: Path) -> str:
    """A model path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
