"""The torch counterpart of a network run of ``irs_jsce`` (scenario ``irs-jsce-5users``): the same
model, slots, images and emulator channel (the phases the emulator logged), through
:func:`testbed.systems.irs_jsce.model.transmit_slot` with perfect CSI and ``draws`` noise draws.

Paper: ../shared/seeds/000_5c86833aa1606c01.txt. The network's rows differ from these only by
what the PHY adds: frame sync, the per-stream LS channel and noise estimates, pilot phase tracking.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from testbed.data.images import tile, untile
from testbed.metrics import psnr_db, ssim
from testbed.systems.base import Items
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.evaluate import TILE_PX
from testbed.systems.irs_jsce.model import cascaded, transmit_slot
from testbed.systems.irs_jsce.system import IrsJsceSystem


def irs_states(doc: dict) -> list[tuple[str, int, int, np.ndarray | None]]:
    """(state, first batch, end batch, phases or None for no surface) of the run's IRS schedule,
    the phases as the emulator logged them (already 1-bit)."""
    config = doc["config"]
    steps = config["topology"]["irs"]["schedule"]
    logged = [c for c in doc["channel_changes"] if c["what"] == "set_irs_phases"]
    out = []
    for i, (step, change) in enumerate(zip(steps, logged)):
        end = steps[i + 1]["batch"] if i + 1 < len(steps) else config["batches"]
        phases = np.asarray(change["phases"], np.float64) if change.get("reflecting", True) else None
        out.append((step["phases"], step["batch"], end, phases))
    return out


@torch.no_grad()
def reference_rows(doc: dict, items: Items, draws: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Per ok row of ``doc`` (a metrics.json of an irs_jsce run over one sweep point): user, IRS
    state, network and torch psnr_db / ssim and their differences."""
    config = doc["config"]
    system = IrsJsceSystem(config["system_params"], seed=config["seed"])
    entry = system.entry
    encoder, decoder = entry.torch_module("transmitter"), entry.torch_module("receiver")
    geometry = channel.load_geometry()
    draw = channel.draw_channels(geometry, config["seed"], 0)
    noise_var = float(entry.card()["noise_var"])
    positions = torch.from_numpy(system.positions_m)
    generator = torch.Generator().manual_seed(seed)
    names = geometry.user_names
    torch_metrics: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for state, first, end, phases in irs_states(doc):
        g = torch.from_numpy(draw.g.astype(np.complex64))[None]
        h_direct = torch.from_numpy(draw.h_direct.astype(np.complex64))[None]
        h = cascaded(g, h_direct, None if phases is None else torch.from_numpy(phases.astype(np.float32)))
        for batch in range(first, end):
            txs = system.slot_of(batch)
            links = channel.slot_links(txs, len(names))
            chosen = [items[(batch + k) % len(items)][1] for _, k in links]
            side = system.crop_side(chosen)
            sent = [system.crop(img, side) for img in chosen]
            tiles = torch.from_numpy(np.stack([tile(img, TILE_PX) for img in sent], axis=1))
            for _ in range(draws):
                out = transmit_slot(encoder, decoder, tiles, links, h.expand(len(tiles), -1, -1), noise_var,
                                    positions, generator).clamp(0, 1).numpy()
                for j, link in enumerate(links):
                    recon = untile(out[:, j], sent[j].shape)
                    torch_metrics.setdefault((state, link), []).append(
                        (min(float(psnr_db(sent[j], recon)), 100.0), float(ssim(sent[j], recon))))
    topology = config["topology"]
    user_of = {n["name"]: names.index(n["params"]["user"]) for n in topology["nodes"]}
    link_of = {u["name"]: (user_of[u["tx"]], user_of[u["rx"]]) for u in topology["users"]}
    out = []
    for row in doc["rows"]:
        key = (row.get("irs_phases"), link_of[row["user"]])
        if row["status"] != "ok" or key not in torch_metrics:
            continue
        ref = np.mean(torch_metrics[key], axis=0)
        out.append({"user": row["user"], "irs_phases": row.get("irs_phases"), "psnr_db": row["psnr_db"],
                    "torch_psnr_db": float(ref[0]), "delta_psnr_db": row["psnr_db"] - float(ref[0]),
                    "ssim": row["ssim"], "torch_ssim": float(ref[1]), "delta_ssim": row["ssim"] - float(ref[1])})
    return out


def summary(reference: list[dict]) -> dict[str, Any]:
    """Per IRS state: mean network and torch PSNR over links and the largest |difference|."""
    out = {}
    for state in dict.fromkeys(r["irs_phases"] for r in reference):
        mine = [r for r in reference if r["irs_phases"] == state]
        out[state] = {"links": len(mine), "psnr_db": float(np.mean([r["psnr_db"] for r in mine])),
                      "torch_psnr_db": float(np.mean([r["torch_psnr_db"] for r in mine])),
                      "max_abs_delta_psnr_db": float(max(abs(r["delta_psnr_db"]) for r in mine)),
                      "ssim": float(np.mean([r["ssim"] for r in mine])),
                      "torch_ssim": float(np.mean([r["torch_ssim"] for r in mine]))}
    return out



def main(argv: list[str] | None = None) -> dict:
    """``python -m testbed.systems.irs_jsce.reference RUN_DIR``: a run's rows against torch."""
    import argparse
    import json
    from pathlib import Path

    from testbed.data.images import image_set

    parser = argparse.ArgumentParser(prog="python -m testbed.systems.irs_jsce.reference", description=main.__doc__)
    parser.add_argument("run", type=Path, help="the folder of a testbed run of an irs_jsce scenario (metrics.json)")
    parser.add_argument("--draws", type=int, default=2, help="noise draws per slot in torch")
    args = parser.parse_args(argv)
    doc = json.loads((args.run / "metrics.json").read_text())
    config = doc["config"]
    items = image_set(config["images"])[: config["max_images"] or None]  # what the run's TXs were given
    result = summary(reference_rows(doc, items, args.draws))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
