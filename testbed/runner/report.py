"""Run reports: a Markdown page with the metrics table, a metric-against-SNR plot and an image
grid (original and reconstruction per SNR), written next to metrics.json."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from testbed.runner.files import atomic_write_bytes  # noqa: E402

TABLE_KEYS = ("user", "node", "status", "irs_phases", "snr_db", "psnr_db", "ideal_psnr_db", "ssim", "ms_ssim",
              "accuracy", "ber", "bler", "snr_est_db", "evm_db", "semantic_throughput", "choice", "frames_sent",
              "frames_received", "frames_lost", "samples_lost")


GRID_IMAGES = 8  # images shown in images.png


def _fmt(value) -> str:
    if isinstance(value, dict) and "mcs" in value:  # MU-ASCC's plan for one user
        return f"{value['codec']} {value['mcs']} {value['power_w']:.2f} W"
    if isinstance(value, dict) and "codec" in value:  # the digital envelope's choice
        return f"{value['codec']} {value['code']} {value['modulation']} {value['frame_bytes']} B"
    if isinstance(value, list):
        return " / ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.2f}"
    return str(value)


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Column names present in ``rows`` (from TABLE_KEYS, plus model) and formatted cells."""
    keys = ["model"] + [k for k in TABLE_KEYS if any(k in r for r in rows)]
    return keys, [[_fmt(r.get(k, "")) if r.get(k) is not None else "—" for k in keys] for r in rows]


def _series(row: dict) -> str:
    """Plot series of a row: its model, and its user when a run has several."""
    user = row.get("user")
    return f"{row['model']} {user}" if user not in (None, "u0") else row["model"]


def plot_metric(rows: list[dict], path: Path, metric: str) -> None:
    """Metric against SNR, one line per model (log scale for BER/BLER)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for label in dict.fromkeys(_series(r) for r in rows):
        pts = sorted((r["snr_db"], r[metric]) for r in rows
                     if _series(r) == label and r.get(metric) is not None and r.get("snr_db") is not None)
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ideal = sorted((r["snr_db"], r["ideal_psnr_db"]) for r in rows if _series(r) == label
                       and metric == "psnr_db" and r.get("ideal_psnr_db") is not None and r.get("snr_db") is not None)
        if ideal:
            ax.plot(*zip(*ideal), ls="--", color=line.get_color(), label=f"{label}: capacity-achieving ideal")
    if metric in ("ber", "bler"):
        ax.set_yscale("log")
    ax.set_xlabel("SNR (Es/N0, dB)")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def image_grid(originals: list[tuple[str, np.ndarray]], recons: dict[float, dict[str, np.ndarray]], path: Path) -> None:
    """Rows: images (labelled with their name, e.g. "kodim23-a DeepJSCC 1/6"); columns: the
    original, then the reconstruction at each SNR (titled with the SNR)."""
    snrs = sorted(recons)
    fig, axes = plt.subplots(len(originals), 1 + len(snrs), figsize=(1.6 * (1 + len(snrs)), 1.4 * len(originals)),
                             squeeze=False)
    for i, (name, img) in enumerate(originals):
        cells = [("original", img)] + [(f"{s:g} dB", recons[s].get(name, np.zeros_like(img))) for s in snrs]
        for ax, (title, im) in zip(axes[i], cells):
            ax.imshow(np.clip(np.transpose(im, (1, 2, 0)), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
        axes[i][0].set_ylabel(name, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, document: dict, originals=None, recons=None) -> Path:
    """report.md (+ PNGs) in ``out_dir``; returns the report path."""
    rows = document["rows"]
    keys, cells = table_rows(rows)
    lines = [f"# {document['scenario']} ({document['system']})", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    metric = "psnr_db" if any("psnr_db" in r for r in rows) else "ber"
    if any(r.get(metric) is not None for r in rows):
        plot_metric(rows, out_dir / f"{metric}_vs_snr.png", metric)
        lines += ["", f"![{metric} against SNR]({metric}_vs_snr.png)"]
    if originals and recons and any(recons.values()):
        shown = originals[:GRID_IMAGES]  # a figure of every image of a 1000-image set cannot be drawn
        image_grid(shown, recons, out_dir / "images.png")
        caption = "original and reconstructions" + (f", the first {len(shown)} of {len(originals)} images"
                                                     if len(shown) < len(originals) else "")
        lines += ["", f"![{caption}](images.png)"]
    if document.get("problems"):
        lines += ["", "## Problems", *[f"- {p}" for p in document["problems"]]]
    path = out_dir / "report.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
