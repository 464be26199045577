"""``testbed demo``: the embedded default run. DeepJSCC at bandwidth ratios 1/6 and 1/12 and the
digital baseline (HEVC + LDPC + 16-QAM at the 1/6 budget) over the ZMQ virtual-radio network
(TX, channel and RX processes) at 0, 5, 10, 15 and 20 dB, AWGN and Rayleigh, on the shipped
images; one metrics.json and one report (PSNR against SNR, image grid) for all of them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from testbed.config.scenario import load_scenario
from testbed.runner.files import write_json
from testbed.runner.report import write_report
from testbed.runner.scenario import run_scenario

RUNS = (
    ("deepjscc-awgn", []), ("deepjscc-awgn", ["system_params.model=deepjscc-r12"]), ("digital-awgn", []),
    ("deepjscc-rayleigh", []), ("deepjscc-rayleigh", ["system_params.model=deepjscc-r12"]), ("digital-rayleigh", []),
)


def run_demo(out_dir: Path, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Run every demo scenario into ``out_dir/<n>-<name>`` and merge them into ``out_dir``."""
    scenarios = [load_scenario(name, overrides) for name, overrides in RUNS]  # all validated first
    doc = {"scenario": "demo", "system": "deepjscc+digital", "rows": [], "config": [], "versions": {},
           "models": {}, "problems": []}
    grid_originals, grid = None, {}
    for i, scenario in enumerate(scenarios):
        result = run_scenario(scenario, out_dir / f"{i}-{scenario.name}", progress)
        part = result.document
        for row in part["rows"]:
            row["model"] = f"{row['model']} ({row['channel']})"
        doc["rows"] += part["rows"]
        doc["config"].append(part["config"])
        doc["versions"], doc["models"] = part["versions"], {**doc["models"], **part["models"]}
        doc["problems"] += part["problems"]
        if scenario.channel.model == "awgn" and scenario.name in ("deepjscc-awgn", "digital-awgn"):
            grid_originals = result.originals
            for snr, images in result.images.items():
                label = "DeepJSCC 1/6" if scenario.system == "deepjscc" else "digital"
                if not scenario.system_params.get("model", "").endswith("r12"):
                    grid.setdefault(snr, {}).update({f"{name} {label}": im for name, im in images.items()})
        write_json(out_dir / "metrics.json", doc)
    write_report(out_dir, doc, _grid_rows(grid_originals, grid), grid)
    return doc


def _grid_rows(originals, grid) -> list:
    """Originals repeated per system so the grid shows original | reconstructions per SNR."""
    names = sorted({key for images in grid.values() for key in images})
    lookup = dict(originals or [])
    return [(key, lookup[key.split(" ")[0]]) for key in names if key.split(" ")[0] in lookup]
