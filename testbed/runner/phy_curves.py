"""PHY reference curves measured through the three-process virtual-radio chain:
uncoded BER of QPSK and 16-QAM against the closed form (AWGN, CFO, random timing offset), and
LDPC-coded BLER of the 802.11n n=648 code at rates 1/2 and 3/4 with 16-QAM. Writes PNG plots and
the numbers (JSON) into a folder, e.g. docs/results/."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from testbed.channels.spec import ChannelSpec  # noqa: E402
from testbed.phy.ldpc import get_code  # noqa: E402
from testbed.phy.theory import ber_awgn  # noqa: E402
from testbed.runner.chain import run_chain  # noqa: E402
from testbed.runner.files import write_json  # noqa: E402
from testbed.systems.base import evaluate  # noqa: E402
from testbed.systems.link import LinkSystem  # noqa: E402


def measure(params: dict, snr_db: float, cfo_hz: float, seed: int) -> dict:
    """One chain run of the link system; its metrics row."""
    system = LinkSystem(params, seed=seed)
    encoded = system.encode([], snr_db)
    rng = np.random.default_rng(seed)
    spec = ChannelSpec(model="awgn", snr_db=snr_db, cfo_hz=cfo_hz, delay_samples=float(rng.uniform(0, 500)))
    with tempfile.TemporaryDirectory() as tmp:
        chain = run_chain([encoded.jobs], [[spec]], Path(tmp), seed=seed)
        metrics = evaluate(system, [], encoded, chain.received(0) or [])
    metrics["problems"] = chain.problems
    return metrics


def ber_curves(snrs: list[float], n_frames: int, progress: Callable[[str], None]) -> dict:
    out = {}
    for mod in ("qpsk", "qam16"):
        rows = []
        for i, snr in enumerate(snrs):
            progress(f"BER {mod} {snr:g} dB")
            cfo = 20e3 if i % 2 == 0 else -20e3
            m = measure({"modulation": mod, "code": "none", "n_frames": n_frames, "payload_bytes": 1500}, snr, cfo, i)
            rows.append({"snr_db": snr, "cfo_hz": cfo, "ber": m["ber"], "bits": m["bits_compared"],
                         "theory": float(ber_awgn(snr, mod)), "frames_lost": m["frames_lost"]})
        out[mod] = rows
    return out


def bler_curves(snrs: list[float], n_frames: int, progress: Callable[[str], None]) -> dict:
    out = {}
    for code in ("ldpc_648_1_2", "ldpc_648_3_4"):
        payload = get_code(code).k // 8 - 4  # one codeword per frame: BLER per frame = per codeword
        rows = []
        for i, snr in enumerate(snrs):
            progress(f"BLER {code} {snr:g} dB")
            m = measure({"modulation": "qam16", "code": code, "n_frames": n_frames, "payload_bytes": payload},
                        snr, 20e3, 100 + i)
            rows.append({"snr_db": snr, "bler": m["bler"], "frames": n_frames, "frames_lost": m["frames_lost"]})
        out[code] = rows
    return out


def plot_ber(curves: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    fine = np.linspace(0, 14, 141)
    for mod, color in (("qpsk", "C0"), ("qam16", "C1")):
        ax.semilogy(fine, ber_awgn(fine, mod), color=color, lw=1, label=f"{mod} closed form")
        pts = [(r["snr_db"], r["ber"]) for r in curves[mod] if r["ber"] > 0]
        ax.semilogy(*zip(*pts), "o", color=color, label=f"{mod} three-process ZMQ chain")
    ax.set_ylim(1e-6, 0.5)
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("BER")
    ax.set_title("Uncoded BER, AWGN, CFO ±20 kHz at 1 MS/s, random timing", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bler(curves: dict, path: Path) -> None:
    """Measured BLER; points with no block error are drawn as triangles at 1/frames (a bound)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (code, rows) in enumerate(curves.items()):
        hit = [(r["snr_db"], r["bler"]) for r in rows if r["bler"] > 0]
        clean = [(r["snr_db"], 1.0 / r["frames"]) for r in rows if r["bler"] == 0]
        ax.semilogy(*zip(*hit), "o-", color=f"C{i}", label=f"{code}, 16-QAM")
        if clean:
            ax.semilogy(*zip(*clean), "v", color=f"C{i}", alpha=0.5, label=f"{code}: no error in {rows[0]['frames']} frames")
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("BLER")
    ax.set_title("LDPC-coded BLER through the three-process ZMQ chain", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_curves(out_dir: Path, quick: bool = False, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Measure both families of curves, plot them and write phy_curves.json into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ber_snrs = [0.0, 4.0, 8.0] if quick else [float(s) for s in range(0, 15)]
    bler_snrs = [6.0, 10.0] if quick else [float(s) for s in np.arange(5.0, 13.01, 0.5)]
    ber = ber_curves(ber_snrs, 20 if quick else 80, progress)
    bler = bler_curves(bler_snrs, 100 if quick else 400, progress)
    plot_ber(ber, out_dir / "ber_uncoded.png")
    plot_bler(bler, out_dir / "bler_ldpc648_qam16.png")
    doc = {"ber": ber, "bler": bler}
    write_json(out_dir / "phy_curves.json", doc)
    return doc
