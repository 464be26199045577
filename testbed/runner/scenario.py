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
from testbed.runner.session import SessionHooks


@dataclass
class RunOutput:
    """What a scenario run produced: the metrics document, reconstructions per SNR, its folder."""

    out_dir: Path
    document: dict
    images: dict[float, dict[str, np.ndarray]] = field(default_factory=dict)
    originals: list[tuple[str, np.ndarray]] = field(default_factory=list)


def scenario_images(scenario: Scenario, name: str | None = None) -> list[tuple[str, np.ndarray]]:
    """The items of image set ``name`` (default: the scenario's ``images``), the first
    ``max_images`` of them when that is set."""
    images = image_set(name or scenario.images)
    return images[: scenario.max_images] if scenario.max_images else images


def user_images(scenario: Scenario, items: list[tuple[str, np.ndarray]]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Each user's items: its own ``images`` set, or ``items`` (the scenario's set); every set
    is loaded once."""
    sets = {scenario.images: items}
    users = scenario.network().users
    for user in users:
        if user.images is not None and user.images not in sets:
            sets[user.images] = scenario_images(scenario, user.images)
    return {user.name: sets[user.images or scenario.images] for user in users}


def default_out_dir(name: str) -> Path:
    """runs/<time>-<name>: the default output folder of a run."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def run_scenario(scenario: Scenario, out_dir: Path, progress: Callable[[str], None] = lambda s: None,
                 hooks: SessionHooks | None = None, resume: bool = False) -> RunOutput:
    """Run ``scenario`` as one persistent process set through :class:`testbed.runner.run.Run`
    (the scripting API's code path); metrics.json is rewritten after every sweep point, so what
    was measured survives a later failure. A hardware radio that is not attached raises
    RadioError before anything is written or started. ``resume``: skip the points that an earlier
    run of the same configuration completed in ``out_dir`` (their rows are kept)."""
    from testbed.runner.run import Run

    run = Run(scenario, out_dir, progress=progress, hooks=hooks, resume=resume)  # checks radios
    with run:
        run.run()
    return run.output()
