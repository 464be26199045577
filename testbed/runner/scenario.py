"""Run a validated scenario over the virtual-radio network: one persistent process set
(runner.session), one metrics row per user and sweep point, metrics.json (docs/architecture.md
"Results") and a report.

Results already measured are kept when a later point fails: metrics.json is rewritten
atomically after every point, and a failed user is a row with ``status: "failed"``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from testbed.config.scenario import Scenario
from testbed.data.images import image_set
from testbed.runner.files import write_json
from testbed.runner.session import Session, SessionHooks, mean_images
from testbed.runner.versions import sha256, versions


@dataclass
class RunOutput:
    """What a scenario run produced: the metrics document, reconstructions per SNR, its folder."""

    out_dir: Path
    document: dict
    images: dict[float, dict[str, np.ndarray]] = field(default_factory=dict)
    originals: list[tuple[str, np.ndarray]] = field(default_factory=list)


def scenario_images(scenario: Scenario) -> list[tuple[str, np.ndarray]]:
    images = image_set(scenario.images)
    return images[: scenario.max_images] if scenario.max_images else images


def default_out_dir(name: str) -> Path:
    """runs/<time>-<name>: the default output folder of a run."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def run_scenario(scenario: Scenario, out_dir: Path, progress: Callable[[str], None] = lambda s: None,
                 hooks: SessionHooks | None = None) -> RunOutput:
    """Run ``scenario`` as one persistent process set; metrics.json is rewritten after every
    sweep point, so what was measured survives a later failure. A hardware radio that is not
    attached raises RadioError before anything is written or started."""
    images = scenario_images(scenario)
    session = Session(scenario, images, out_dir / "nodes", progress, hooks or SessionHooks())  # checks radios
    out_dir.mkdir(parents=True, exist_ok=True)
    session.on_point = lambda results: write_json(out_dir / "metrics.json", _document(session, results))
    doc = {}
    output = RunOutput(out_dir, doc, originals=images)
    results = session.run()
    doc.update(_document(session, results))
    write_json(out_dir / "metrics.json", doc)
    first = session.topo.users[0]
    key = f"{first.tx}->{first.rx}"
    for (index, user), batches in results.batches.items():
        if user == first.name:
            output.images[results.points[index].get(key, float(index))] = mean_images(batches)
    return output


def _document(session: Session, results) -> dict:
    """The metrics.json document (docs/architecture.md "Results") of what has been measured."""
    scenario = session.scenario
    files = {p for system in session.systems.values() for p in system.model_files()}
    problems = [reason for reason in session.dead.values()]
    if session.plane_stopped and session.plane_stopped not in problems:
        problems.append(session.plane_stopped)
    return {"scenario": scenario.name, "system": scenario.system, "rows": results.rows(),
            "config": scenario.model_dump(), "radio": session.radio.model_dump(), "versions": versions(),
            "models": {_relative(p): sha256(p) for p in sorted(files)}, "problems": problems,
            "processes": results.processes, "slot_samples": session.slot, "frames": results.frame_logs(),
            "channel_changes": results.processes.get("channel", {}).get("changes", [])}


def _relative(path: Path) -> str:
    """A model path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
