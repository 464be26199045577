"""The torch reference of an ``adaptive-rate-mumimo`` network run: the same model (rebuilt from its
ONNX files), the same items, the same nominal SNR and the same channel draws, without OFDM,
synchronisation, estimation or processes (../shared/seeds/004_04072a72b64c0519.txt, Fig. 1).

In a closed-loop run batch b meets fading block b of every link (docs/architecture.md "closed
loop"), and the emulator's draws are counter-based, so :func:`batch_channels` regenerates the H
of every batch (``testbed.channels.realization.generate_matrix``). In model units (training's
convention: H with CN(0, 1) entries and noise variance 10^(-snr/10)) that H is the emulator's
divided by sqrt(noise variance x nominal SNR). Each user is told its column of that H (perfect
CSI, or H + dH with ``imperfect``) and the nominal SNR; LMMSE detection as in training. With a
run's metrics (``told``), each user is told instead what its TX was told in that batch (the
column the base station estimated from the probe and the fed-back SNR, the rows' ``csi`` and
``csi_snr_db``), and the base station decodes with the same context, as the network's does from
the side information; detection stays on the true H. Then the decisions are the network's, and
what differs is the PHY alone.

    python -m testbed.systems.adaptive_rate.reference adaptive-rate-mumimo --metrics RUN/metrics.json [--told]

prints, per user and point, the torch figures beside the network's and their PSNR difference.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from testbed.channels.realization import generate_matrix
from testbed.config.scenario import Scenario, load_scenario
from testbed.config.topology import stream_matrix
from testbed.data.images import tile, untile
from testbed.metrics import psnr_db
from testbed.errors import ConfigError
from testbed.runner.scenario import scenario_images
from testbed.systems.adaptive_rate import channel as uplink_channel
from testbed.systems.adaptive_rate.export import user_from_onnx
from testbed.systems.adaptive_rate.system import TILE, AdaptiveRateSystem
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser, run_users


def batch_channels(scenario: Scenario, point: dict[str, float], batches: list[int]) -> tuple[np.ndarray, float]:
    """(H complex128 (len(batches), M, K) in model units, nominal SNR in dB) of the uplink at
    ``point`` for run batches ``batches``; every link must have the same nominal SNR."""
    topo = scenario.network()
    matrix = stream_matrix(topo, point, 1e6)
    snrs = {round(spec.gain_db - 10.0 * np.log10(nv), 6) for row, nv in zip(matrix.specs, matrix.noise_var)
            for spec in row}
    if len(snrs) != 1:
        raise ConfigError(f"links of SNR {sorted(snrs)} dB; allowed: one nominal SNR for every user and antenna "
                          "(the reference tells every user the same SNR, as training did)")
    snr_db = snrs.pop()
    h = generate_matrix(matrix.specs, scenario.seed, batches).astype(np.complex128)
    noise = np.asarray(matrix.noise_var, np.float64)[None, :, None]
    return h / np.sqrt(noise * 10.0 ** (snr_db / 10.0)), snr_db


@torch.no_grad()
def reference_batch(model: AdaptiveRateUser, items: list[tuple[str, np.ndarray]], h: np.ndarray, snr_db: float,
                    imperfect: bool = False, seed: int = 0) -> list[dict[str, float]]:
    """Every user sends every item (as in the network run) through H complex (M, K) at ``snr_db``:
    per user {"psnr_db" (mean over items), "cpp", "selected_maps", "pruning_ratio" (means over tiles)}."""
    tiles = [tile(img, TILE) for _, img in items]
    stack = torch.from_numpy(np.concatenate(tiles))
    antennas, users = h.shape
    n = len(stack)
    generator = torch.Generator().manual_seed(seed)
    h_t = torch.from_numpy(h.astype(np.complex64)).expand(n, antennas, users)
    noise = torch.full((n,), 10.0 ** (-snr_db / 10.0))
    h_hat = h_t + uplink_channel._complex_normal(h_t.shape, noise[:, None, None], generator) if imperfect else h_t
    recon, decisions = run_users(model, stack.expand(users, *stack.shape), torch.full((n,), snr_db), antennas,
                                 imperfect, 0.0, generator, channel=uplink_channel.UplinkDraw(h_t, h_hat, noise))
    return _rows(items, tiles, recon, decisions)


def told_context(metrics: dict, users: list[str], point: int, batch: int) -> list[tuple[np.ndarray, float]] | None:
    """Per user (csi complex (M,), snr_db) its TX was told in batch ``batch`` of ``point`` of a
    run (metrics.json rows), or None when a user's row has no column for it."""
    rows = {r["user"]: r for r in metrics["rows"] if r["point"] == point}
    out = []
    for user in users:
        row = rows.get(user)
        csi = (row or {}).get("csi") or []
        if batch >= len(csi) or csi[batch] is None:
            return None
        out.append((np.asarray(csi[batch], np.float64) @ np.array([1, 1j]), float(row["csi_snr_db"][batch])))
    return out


@torch.no_grad()
def told_batch(model: AdaptiveRateUser, items: list[tuple[str, np.ndarray]], h: np.ndarray, snr_db: float,
               told: list[tuple[np.ndarray, float]], seed: int = 0) -> list[dict[str, float]]:
    """:func:`reference_batch` with each user told ``told[k]`` = (csi (M,), snr_db) and decoded
    with the same context; detection on the true H complex (M, K) at the nominal ``snr_db``."""
    tiles = [tile(img, TILE) for _, img in items]
    stack = torch.from_numpy(np.concatenate(tiles))
    n, users = len(stack), len(told)
    contexts = [(torch.from_numpy(np.asarray(csi, np.complex64)).expand(n, -1), torch.full((n,), told_db))
                for csi, told_db in told]
    h_t = torch.from_numpy(h.astype(np.complex64)).expand(n, *h.shape)
    noise = torch.full((n,), 10.0 ** (-snr_db / 10.0))
    recon, decisions = run_users(model, stack.expand(users, *stack.shape), torch.full((n,), snr_db), h.shape[0],
                                 False, 0.0, torch.Generator().manual_seed(seed),
                                 channel=uplink_channel.UplinkDraw(h_t, h_t, noise), contexts=contexts)
    return _rows(items, tiles, recon, decisions)


def _rows(items, tiles, recon: torch.Tensor, decisions) -> list[dict[str, float]]:
    """Per user the PSNR (mean over items, untiled) and the decisions' means."""
    edges = np.cumsum([0] + [len(t) for t in tiles])
    rows = []
    for k, d in enumerate(decisions):
        images = [untile(recon[k, a:b].numpy(), img.shape) for (a, b), (_, img) in zip(zip(edges, edges[1:]), items)]
        rows.append({"psnr_db": float(np.mean([psnr_db(img, out) for (_, img), out in zip(items, images)])),
                     "cpp": float(d.cpp().mean()), "selected_maps": float(d.selected.mean()),
                     "pruning_ratio": float(d.ratio.mean())})
    return rows


def reference_run(scenario: Scenario, model: AdaptiveRateUser, imperfect: bool = False,
                  metrics: dict | None = None) -> list[dict]:
    """One row per user and point of ``scenario`` (batches numbered as a fresh run numbers them):
    the means over the point's batches; with a run's ``metrics`` each user is told what its TX
    was told (:func:`told_batch`)."""
    items = scenario_images(scenario)
    users = [u.name for u in scenario.network().users]
    rows = []
    for index, point in enumerate(scenario.network().points()):
        batches = list(range(index * scenario.batches, (index + 1) * scenario.batches))
        h, snr_db = batch_channels(scenario, point, batches)
        per_batch = []
        for i, b in enumerate(batches):
            told = told_context(metrics, users, index, i) if metrics is not None else None
            per_batch.append(reference_batch(model, items, h[i], snr_db, imperfect, seed=b) if told is None
                             else told_batch(model, items, h[i], snr_db, told, seed=b))
        for k, user in enumerate(users):
            mean = {key: float(np.mean([r[k][key] for r in per_batch])) for key in per_batch[0][k]}
            rows.append({"user": user, "point": index, "snr_db": snr_db, **mean})
    return rows


def compare(reference: list[dict], metrics: dict) -> list[dict]:
    """The reference rows beside a run's metrics.json rows (same user and point): network and
    torch PSNR, CPP and selected maps, and ``psnr_gap_db`` = network - torch."""
    network = {(r["user"], r["point"]): r for r in metrics["rows"]}
    out = []
    for ref in reference:
        row = network.get((ref["user"], ref["point"]))
        ok = row is not None and row.get("status") == "ok"
        out.append({"user": ref["user"], "point": ref["point"], "snr_db": ref["snr_db"],
                    "torch": {k: ref[k] for k in ("psnr_db", "cpp", "selected_maps", "pruning_ratio")},
                    "network": {k: row.get(k) for k in ("psnr_db", "cpp", "selected_maps", "pruning_ratio",
                                                        "csi_snr_db", "csi_error_db", "side_info_ok")} if ok else None,
                    "psnr_gap_db": row["psnr_db"] - ref["psnr_db"] if ok else None})
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.adaptive_rate.reference",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--metrics", type=Path, help="a run's metrics.json to compare with")
    parser.add_argument("--told", action="store_true", help="with --metrics: tell each user what its TX was told")
    parser.add_argument("--imperfect-csi", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="scenario override, as for testbed run")
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario, args.set)
    system = AdaptiveRateSystem(scenario.system_params, scenario.seed)
    paths = system.model_files()
    torch.set_num_threads(1)
    metrics = json.loads(args.metrics.read_text()) if args.metrics is not None else None
    rows = reference_run(scenario, user_from_onnx(*paths).eval(), args.imperfect_csi, metrics if args.told else None)
    if metrics is not None:
        rows = compare(rows, metrics)
    print(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
