"""``testbed demo``: the embedded default run, the comparison a newcomer came to see.

The best shipped DeepJSCC models at bandwidth ratios 1/6 and 1/12 against the digital envelope
(the best HEVC/JPEG 2000 + LDPC + QAM configuration per SNR, at the 1/6 budget) and its
capacity-achieving ideal, over the ZMQ virtual-radio network (TX, channel and RX processes) at
0, 5, 10, 15 and 20 dB, AWGN and Rayleigh block fading, on eight 256x256 crops of the held-out
photographs; Rayleigh points run three batches so their curves are means over about a hundred
fading draws. One metrics.json and one report (PSNR against SNR, an image grid whose rows
name the image and the system and whose columns name the SNR) for all of them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from testbed.config.scenario import load_scenario
from testbed.runner.files import write_json
from testbed.runner.report import write_report
from testbed.runner.scenario import run_scenario

MODEL_R6 = "adjscc-r6"  # the best shipped 1/6 model on held-out photos at 10 dB (cards); adjscc-wide-r6 is not yet
MODEL_R12 = "adjscc-r12"
IMAGES = "images=held-out"
RAYLEIGH_BATCHES = "batches=3"
RUNS = (
    ("deepjscc-awgn", [f"system_params.model={MODEL_R6}"], "DeepJSCC 1/6"),
    ("deepjscc-awgn", [f"system_params.model={MODEL_R12}"], "DeepJSCC 1/12"),
    ("digital-envelope-awgn", [], "digital envelope 1/6"),
    ("deepjscc-rayleigh", [f"system_params.model={MODEL_R6}", RAYLEIGH_BATCHES], "DeepJSCC 1/6"),
    ("deepjscc-rayleigh", [f"system_params.model={MODEL_R12}", RAYLEIGH_BATCHES], "DeepJSCC 1/12"),
    ("digital-envelope-rayleigh", [RAYLEIGH_BATCHES], "digital envelope 1/6"),
)
GRID_IMAGES = ("kodim23-a", "chelsea-b")  # grid rows: these images under AWGN, one row per system


def run_demo(out_dir: Path, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Run every demo scenario into ``out_dir/<n>-<name>`` and merge them into ``out_dir``."""
    scenarios = [(load_scenario(name, [IMAGES, *overrides]), label) for name, overrides, label in RUNS]
    doc = {"scenario": "demo", "system": "deepjscc+digital-envelope", "rows": [], "config": [], "versions": {},
           "models": {}, "problems": []}
    originals, grid = {}, {}
    for i, (scenario, label) in enumerate(scenarios):  # all validated above, before any process starts
        result = run_scenario(scenario, out_dir / f"{i}-{scenario.name}", progress)
        part = result.document
        for row in part["rows"]:
            row["model"] = f"{label} ({row['channel']})"
        doc["rows"] += part["rows"]
        doc["config"].append(part["config"])
        doc["versions"], doc["models"] = part["versions"], {**doc["models"], **part["models"]}
        doc["problems"] += part["problems"]
        if scenario.channel.model == "awgn":
            originals.update((name, img) for name, img in result.originals if name in GRID_IMAGES)
            for snr, images in result.images.items():
                grid.setdefault(snr, {}).update({f"{name} {label}": im for name, im in images.items()
                                                 if name in GRID_IMAGES})
        write_json(out_dir / "metrics.json", doc)
    write_report(out_dir, doc, _grid_rows(originals, grid), grid)
    return doc


def _grid_rows(originals: dict, grid: dict) -> list:
    """One grid row per (image, system): the original first, labelled "<image> <system>"."""
    keys = sorted({key for images in grid.values() for key in images})
    return [(key, originals[key.split(" ")[0]]) for key in keys if key.split(" ")[0] in originals]
