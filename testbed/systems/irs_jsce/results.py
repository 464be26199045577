"""IRS-JSCE results in torch: the IRS trained vs random vs off, quality per number of
transmitters, the DDPG scheduler against the exhaustive optimum, random schedules and TDMA, and
the model size per user. One command writes docs/results/irs_jsce.md and irs_jsce.json::

    python -m testbed.systems.irs_jsce.results --out docs/results

Reference: ../shared/seeds/000_5c86833aa1606c01.txt (Sec. IV, Figs. 3 and 5).

Quality is measured on the held-out photographs (256 px centre crops); the scheduler's table is
measured on training crops (it is what the scheduler may learn from) and every schedule is then
scored on the held-out photographs. Throughput is eq. (13) (:func:`evaluate.semantic_throughput`,
12 SSIM suts per channel use at ratio 1/6) and a schedule's figure is eq. (14) over T slots.
Semantic-TDMA serves one ordered pair at a time with the same networks: the K (K - 1) pairs take
K (K - 1) slot-times, so its max-min throughput per slot-time is the worst single-link Gamma over
K (K - 1). Bit-TDMA (:mod:`bit_tdma`) does the same with raw bits on LDPC and 16-QAM.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from testbed import registry
from testbed.errors import ConfigError
from testbed.runner.files import atomic_write_bytes, write_json
from testbed.systems.irs_jsce import bit_tdma, scheduling
from testbed.systems.irs_jsce.evaluate import (EVAL_MODES, FIG3_LINKS, eval_phases, evaluate_slot, held_out_images,
                                               measure_table, quality_by_transmitters, semantic_throughput,
                                               training_crops)
from testbed.systems.irs_jsce.models import IrsJsceEntry
from testbed.systems.irs_jsce.train import TrainConfig, geometry_for

SLOTS = 5  # T of Sec. IV
FLOAT_BYTES = 4


def shipped(irs: str) -> str:
    """The name of the shipped model trained with ``irs`` (trained, fixed, off), the longest run."""
    entries = [registry.get("system-model", n) for n in registry.names("system-model")]
    names = [e.name for e in entries if isinstance(e, IrsJsceEntry) and e.irs == irs]
    if not names:
        raise ConfigError(f"no shipped irs_jsce model trained with irs = {irs!r}; allowed: "
                          f"run python -m testbed.systems.irs_jsce.train --irs {irs}")
    return max(names, key=lambda n: registry.get("system-model", n).card()["training_steps"])


def load(name: str):
    entry = registry.get("system-model", name)
    card = entry.card()
    cfg = TrainConfig(irs_side=card["irs"]["rows"], noise_var=card["noise_var"], irs=card["irs"]["training"])
    return entry, entry.torch_module("transmitter"), entry.torch_module("receiver"), geometry_for(cfg), card


def irs_modes(images: list[np.ndarray], model: tuple) -> list[dict]:
    """Fig. 3's slot on the held-out photos: the trained model under every IRS mode, the no-IRS model."""
    rows = []
    entry, encoder, decoder, geometry, card = model
    for mode in EVAL_MODES:
        r = evaluate_slot(encoder, decoder, geometry, eval_phases(mode, entry.phases()), FIG3_LINKS, images,
                          4, card["noise_var"])
        rows.append({"model": entry.name, "irs": mode, **r})
    try:
        entry, encoder, decoder, geometry, card = load(shipped("off"))
    except ConfigError:  # no model trained without the IRS is shipped: the row is left out
        return rows
    r = evaluate_slot(encoder, decoder, geometry, None, FIG3_LINKS, images, 4, card["noise_var"])
    rows.append({"model": entry.name, "irs": "off (trained without IRS)", **r})
    return rows


def schedules(images: list[np.ndarray], model: tuple, ddpg_steps: int, seed: int) -> dict:
    """The schedulers on the training-crop table, each scored on the held-out photos."""
    entry, encoder, decoder, geometry, card = model
    phases, n_users = eval_phases("trained", entry.phases()), geometry.n_users
    train_table = measure_table(encoder, decoder, geometry, phases, training_crops(8, 64, seed), 4, card["noise_var"])
    test_table = measure_table(encoder, decoder, geometry, phases, images, 2, card["noise_var"])
    started = time.monotonic()
    _, ddpg = scheduling.train_ddpg(train_table, n_users, SLOTS, ddpg_steps, seed)
    ddpg_minutes = (time.monotonic() - started) / 60
    best, _ = scheduling.best_schedule(train_table, n_users, SLOTS)
    randoms = scheduling.random_schedules(n_users, SLOTS, 100, seed)
    out = {}
    for name, sched in (("exhaustive optimum", best), ("DDPG", ddpg), ("round robin (one TX per slot)",
                                                                      scheduling.round_robin(n_users, SLOTS))):
        out[name] = {"schedule": [list(s) for s in sched],
                     "train_objective_ssim": round(scheduling.objective(sched, train_table, n_users), 4),
                     "test_objective_ssim": round(scheduling.objective(sched, test_table, n_users), 4)}
    out["random (mean of 100)"] = {"schedule": None,
                                   "train_objective_ssim": round(scheduling.mean_objective(randoms, train_table, n_users), 4),
                                   "test_objective_ssim": round(scheduling.mean_objective(randoms, test_table, n_users), 4)}
    singles = [evaluate_slot(encoder, decoder, geometry, phases, [link], images, 2, card["noise_var"])["ssim"][0]
               for link in scheduling.all_links(n_users)]
    out["semantic TDMA (one pair per slot-time)"] = {
        "schedule": None, "train_objective_ssim": None,
        "test_objective_ssim": round(min(singles) / len(singles), 4), "worst_single_link_ssim": round(min(singles), 4)}
    for row in out.values():
        row["test_throughput"] = round(float(semantic_throughput(row["test_objective_ssim"])), 4)
    bits = bit_tdma.evaluate(geometry, images, card["noise_var"], 2, seed)
    out["Bit-TDMA (LDPC 1296 R 2/3, 16-QAM, IRS co-phased per pair)"] = {
        "schedule": None, "train_objective_ssim": None,
        "test_objective_ssim": round(min(p["ssim"] for p in bits["pairs"]) / len(bits["pairs"]), 4),
        "test_throughput": bits["tdma_max_min_throughput"], "worst_pair_snr_db": min(p["snr_db"] for p in bits["pairs"])}
    return {"slots": SLOTS, "ddpg_timesteps": ddpg_steps, "ddpg_minutes": round(ddpg_minutes, 2), "rows": out}


def by_transmitters(images: list[np.ndarray], model: tuple) -> list[dict]:
    entry, encoder, decoder, geometry, card = model
    rows = quality_by_transmitters(encoder, decoder, geometry, eval_phases("trained", entry.phases()), images, 2,
                                   card["noise_var"])
    return [{**row, "psnr_db": round(row["psnr_db"], 2), "ssim": round(row["ssim"], 4)} for row in rows]


def model_sizes(model: tuple) -> dict:
    """MB per user: JSCE keeps one encoder and one decoder; a per-pair design such as DeepMA's
    keeps K - 1 encoders and K - 1 decoders of the same size (computed, not trained here)."""
    _, encoder, decoder, geometry, _ = model
    params = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in decoder.parameters())
    jsce_mb = params * FLOAT_BYTES / 1e6
    return {"parameters_per_user": params, "jsce_mb_per_user": round(jsce_mb, 3),
            "per_pair_models_mb_per_user": round(jsce_mb * (geometry.n_users - 1), 3), "users": geometry.n_users}


def markdown(result: dict) -> str:
    lines = ["# IRS-JSCE: the IRS, the schedulers and the model size", "",
             "Torch channel of the paper's geometry (K = 5, 8 x 8 1-bit IRS, sigma^2 = 0.1), held-out photographs "
             "(256 px centre crops of kodim23, astronaut, coffee, chelsea). "
             "`python -m testbed.systems.irs_jsce.results --out docs/results`.", "",
             "## The IRS on Fig. 3's slot (user1 -> user2, user3, user4)", "",
             "| model | IRS | mean PSNR dB | mean SSIM | PSNR per link |", "|---|---|---|---|---|"]
    for row in result["irs_modes"]:
        lines.append(f"| {row['model']} | {row['irs']} | {np.mean(row['psnr_db']):.2f} | {np.mean(row['ssim']):.4f} | "
                     + ", ".join(f"{v:.2f}" for v in row["psnr_db"]) + " |")
    lines += ["", "## Quality by number of transmitters in the slot (trained IRS)", "",
              "| transmitters | sets | links per slot | mean PSNR dB | mean SSIM |", "|---|---|---|---|---|"]
    for row in result["by_transmitters"]:
        lines.append(f"| {row['transmitters']} | {row['sets']} | {row['links']} | {row['psnr_db']:.2f} | {row['ssim']:.4f} |")
    sched = result["schedules"]
    lines += ["", f"## Scheduling over T = {sched['slots']} slots (eq. (14), min over the 20 ordered pairs)", "",
              f"DDPG: {sched['ddpg_timesteps']} environment steps ({sched['ddpg_minutes']} min). Objective in SSIM "
              "per slot; throughput = 12 x that (suts per channel use).", "",
              "| scheduler | schedule (TX sets) | objective, training table | objective, held-out | throughput, held-out |",
              "|---|---|---|---|---|"]
    for name, row in sched["rows"].items():
        shown = " ".join("{" + ",".join(str(u + 1) for u in s) + "}" for s in row["schedule"]) if row["schedule"] else "-"
        train = "-" if row["train_objective_ssim"] is None else f"{row['train_objective_ssim']:.4f}"
        lines.append(f"| {name} | {shown} | {train} | {row['test_objective_ssim']:.4f} | {row['test_throughput']:.3f} |")
    size = result["model_sizes"]
    lines += ["", "## Model size per user", "",
              f"JSCE: {size['parameters_per_user']} parameters, {size['jsce_mb_per_user']} MB (float32) per user; "
              f"per-pair models (DeepMA-style, K - 1 = {size['users'] - 1} encoders and decoders of the same size): "
              f"{size['per_pair_models_mb_per_user']} MB per user (computed from the parameter count).", ""]
    return "\n".join(lines)


def write_outputs(out_dir: Path, stem: str, result: dict, text: str) -> None:
    """``<stem>.json`` (``result``) and ``<stem>.md`` (``text``) in ``out_dir``, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{stem}.json", result)
    atomic_write_bytes(out_dir / f"{stem}.md", text.encode())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.irs_jsce.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--ddpg-steps", type=int, default=20000, help="DDPG environment steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images, model = held_out_images(256), load(shipped("trained"))
    result = {"irs_modes": irs_modes(images, model), "by_transmitters": by_transmitters(images, model),
              "schedules": schedules(images, model, args.ddpg_steps, args.seed), "model_sizes": model_sizes(model)}
    write_outputs(args.out, "irs_jsce", result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
