"""docs/results for the anchor-aided broadcast: the paper's Tables III (AWGN) and IV (Rayleigh),
three training schemes x the user decoder families x the five SNRs, PSNR and MS-SSIM on the
held-out full-size photographs, the check of its claim (two-stage >= iterative >= simultaneous
in most cells), and the forgetting experiment of its Fig. 5.

Reference: ../shared/seeds/002_dc33bc085f1347c9.txt (Sec. V-C). Torch through the torch channel
(:mod:`testbed.systems.anchor.evaluate`), on the modules rebuilt from the shipped ONNX files; the
network's own figures come from ``testbed run anchor-broadcast``.

Forgetting: decoder d (the i-th family of the iterative order) is scored with the encoder it
was last trained with (``turn<i>``), then after 1, 2 and 3 other decoders' turns
(``turn<i+1>`` ... ``turn<i+3>``; ``turn3`` is the shipped ``transmitter``), its own weights fixed.

    python -m testbed.systems.anchor.results --out docs/results
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from testbed import registry
from testbed.data.images import photo_corpus
from testbed.errors import ConfigError
from testbed.runner.files import atomic_save_figure, atomic_write_bytes, write_json
from testbed.systems.anchor.evaluate import evaluate
from testbed.systems.anchor.export import FINAL_TURN, TRANSMITTER
from testbed.systems.anchor.train import SCHEMES, TRAIN_SNRS_DB
from testbed.systems.deepjscc.model import CHANNELS

TABLES = {"awgn": "Table III (AWGN)", "rayleigh": "Table IV (Rayleigh fading)"}
DRAWS = {"awgn": 1, "rayleigh": 4}  # channel draws per photo: one fading draw per frame is noisy


def set_name(channel: str, scheme: str) -> str:
    return f"anchor-{channel}-{scheme.replace('_', '-')}"


def entry(channel: str, scheme: str):
    name = set_name(channel, scheme)
    if name not in registry.names("system-model"):
        raise ConfigError(f"model set {name!r} is not shipped; train it: testbed train anchor --scheme {scheme} "
                          f"--channel {channel}")
    return registry.get("system-model", name)


def variants(channel: str) -> list[str]:
    """Extra two-stage sets of ``channel`` (e.g. a longer self-reflective stage, ``...-anchor4800``),
    scored beside the three schemes; their table key is the part of the name after the scheme."""
    base = set_name(channel, "two_stage") + "-"
    return sorted(n[len(base):] for n in registry.names("system-model") if n.startswith(base))


def families(channel: str) -> list[str]:
    """The user families every scheme of ``channel`` ships (the anchor decoder is not a user)."""
    sets = [entry(channel, s) for s in SCHEMES]
    return [f for f in sets[0].decoders if f != "anchor" and all(f in e.decoders for e in sets)]


def table(channel: str, images: list[np.ndarray], seed: int) -> dict:
    """{scheme (or ``two_stage-<variant>``): {family: {"snr_db", "psnr_db", "ms_ssim"}}} for one channel."""
    out = {}
    for scheme in [*SCHEMES, *(f"two_stage-{v}" for v in variants(channel))]:
        e = registry.get("system-model", set_name(channel, scheme)) if scheme not in SCHEMES else entry(channel, scheme)
        decoders = {f: e.torch_module(f) for f in families(channel)}
        out[scheme] = evaluate(e.torch_module(TRANSMITTER), decoders, TRAIN_SNRS_DB, channel, images, seed,
                               DRAWS[channel])
    return out


def forgetting(channel: str, images: list[np.ndarray], seed: int) -> dict:
    """{family: {"after 0" ... "after 3": {"snr_db", "psnr_db", "ms_ssim"}}} of the iterative set."""
    e = entry(channel, "iterative")
    order = families(channel)
    out = {}
    for i, family in enumerate(order):
        decoder = e.torch_module(family)
        out[family] = {}
        for after in range(len(order)):
            tag = f"turn{i + after}"
            role = TRANSMITTER if tag == FINAL_TURN else f"{TRANSMITTER}-{tag}"
            if role not in e.files:
                raise ConfigError(f"{e.name}: the forgetting encoder {role} is missing; allowed: a set trained by "
                                  "testbed train anchor --scheme iterative")
            out[family][f"after {after}"] = evaluate(e.torch_module(role), {family: decoder}, TRAIN_SNRS_DB,
                                                     channel, images, seed, DRAWS[channel])[family]
    return out


def claim(tab: dict, first: str = "two_stage") -> dict:
    """Cells (family, SNR, metric) where ``first`` (the two-stage set or a variant of it) >=
    iterative, iterative >= simultaneous, and both (the keys keep the name two_stage)."""
    counts = {"two_stage>=iterative": 0, "iterative>=simultaneous": 0, "two_stage>=iterative>=simultaneous": 0,
              "two_stage>=simultaneous": 0, "cells": 0}
    for family in tab[first]:
        for metric in ("psnr_db", "ms_ssim"):
            for a, b, c in zip(*(tab[s][family][metric] for s in (first, "iterative", "simultaneous"))):
                counts["cells"] += 1
                counts["two_stage>=iterative"] += a >= b
                counts["iterative>=simultaneous"] += b >= c
                counts["two_stage>=simultaneous"] += a >= c
                counts["two_stage>=iterative>=simultaneous"] += a >= b >= c
    counts["holds_in_most_cells"] = counts["two_stage>=iterative>=simultaneous"] > counts["cells"] / 2
    return counts


def markdown(result: dict) -> str:
    lines = ["# Anchor-aided broadcast: training schemes x decoder families", "",
             "Held-out full-size photographs (kodim23, astronaut, coffee, chelsea), ratio 1/6, torch channel "
             f"({result['draws']['rayleigh']} fading draws per photo and frame under Rayleigh, the same draws for "
             "every scheme); PSNR dB / MS-SSIM. `python -m testbed.systems.anchor.results --out docs/results`.", ""]
    for channel, tab in result["tables"].items():
        snrs = tab["two_stage"][next(iter(tab["two_stage"]))]["snr_db"]
        lines += [f"## {TABLES[channel]}", "", "| decoder | scheme | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
                  "|---|---|" + "---|" * len(snrs)]
        for family in tab["two_stage"]:
            for scheme in tab:
                row = tab[scheme][family]
                cells = " | ".join(f"{p:.2f} / {m:.4f}" for p, m in zip(row["psnr_db"], row["ms_ssim"]))
                lines.append(f"| {family} | {scheme} | {cells} |")
        lines.append("")
        for first, c in result["claims"][channel].items():
            lines += [f"Claim {first} >= iterative >= simultaneous: {c['two_stage>=iterative>=simultaneous']} of "
                      f"{c['cells']} cells (PSNR and MS-SSIM); {first} >= iterative in {c['two_stage>=iterative']}, "
                      f"iterative >= simultaneous in {c['iterative>=simultaneous']}, {first} >= simultaneous in "
                      f"{c['two_stage>=simultaneous']}: {'holds' if c['holds_in_most_cells'] else 'does not hold'} "
                      "in most cells.", ""]
    for channel, forget in result["forgetting"].items():
        lines += [f"## Forgetting ({channel}, iterative set, Fig. 5): PSNR dB at each SNR", "",
                  "| decoder | encoder | " + " | ".join(f"{s:g} dB" for s in TRAIN_SNRS_DB) + " |",
                  "|---|---|" + "---|" * len(TRAIN_SNRS_DB)]
        for family, rows in forget.items():
            for after, row in rows.items():
                label = "last trained with it" if after == "after 0" else f"{after} other decoder(s)"
                lines.append(f"| {family} | {label} | " + " | ".join(f"{p:.2f}" for p in row["psnr_db"]) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(forget: dict, path: Path, channel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(forget), figsize=(3.2 * len(forget), 3.0), sharey=True)
    for ax, (family, rows) in zip(np.atleast_1d(axes), forget.items()):
        for after, row in rows.items():
            ax.plot(row["snr_db"], row["psnr_db"], marker="o", label="targeted" if after == "after 0" else after)
        ax.set_title(f"{family} decoder")
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("PSNR (dB)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"Encoder forgetting, iterative training, {channel}")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.anchor.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--channels", nargs="+", default=list(CHANNELS), choices=CHANNELS)
    parser.add_argument("--forgetting", nargs="*", default=["awgn"], choices=CHANNELS,
                        help="channels of the forgetting experiment (Fig. 5 of the paper is one channel)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = photo_corpus("test")
    result: dict = {"images": len(images), "draws": DRAWS, "snr_db": list(TRAIN_SNRS_DB), "tables": {}, "claims": {}, "forgetting": {}}
    for channel in args.channels:
        result["tables"][channel] = table(channel, images, args.seed)
        tab = result["tables"][channel]
        result["claims"][channel] = {first: claim(tab, first) for first in tab if first.startswith("two_stage")}
    args.out.mkdir(parents=True, exist_ok=True)
    for channel in args.forgetting:
        result["forgetting"][channel] = forgetting(channel, images, args.seed)
        plot(result["forgetting"][channel], args.out / f"anchor_forgetting_{channel}.png", channel)
    write_json(args.out / "anchor.json", result)
    atomic_write_bytes(args.out / "anchor.md", (markdown(result) + "\n").encode())
    return result


if __name__ == "__main__":
    main()
