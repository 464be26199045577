"""DeepJSCC models against the digital envelope and its ideal on the same held-out photographs.

The comparison of the model cards and docs/results/deepjscc_vs_envelope.md: mean PSNR and MS-SSIM
of each model (torch, the testbed's channel; :mod:`testbed.systems.deepjscc.evaluate`) and of the
digital envelope (real PHY in one process; :mod:`testbed.systems.digital.evaluate`) on the
held-out photos (short side 512 px) at 0, 5, 10, 15, 20 dB, AWGN and Rayleigh, with the
capacity-achieving ideal.

    python -m testbed.systems.deepjscc.compare --models adjscc-wide-r6 adjscc-r6 deepjscc-r6 --out docs/results
    python -m testbed.systems.deepjscc.compare --ratio 1/12 --models adjscc-wide-r12 adjscc-r12 deepjscc-r12 \
        --out docs/results --card adjscc-wide-r12          # -> deepjscc_vs_envelope_r12.*
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from testbed import registry  # noqa: E402
from testbed.runner.files import atomic_write_bytes, write_json  # noqa: E402
from testbed.systems.deepjscc.evaluate import evaluate, held_out_images  # noqa: E402
from testbed.systems.deepjscc.model import CHANNELS  # noqa: E402

SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0)
ENVELOPE = "digital-envelope"
RAYLEIGH_REPEATS = 8  # fading draws per photo for the envelope (a photo fits one or a few frames)


def compare(models: list[str], snr_db_list=SNRS_DB, seed: int = 0, envelope: dict | None = None,
            ratio: str = "1/6") -> dict:
    """{channel: {model or "digital-envelope": evaluation}} on the held-out photos, the envelope
    at the models' bandwidth ``ratio`` ("1/6" or "1/12").

    ``envelope`` reuses an earlier envelope evaluation ({channel: evaluation}) instead of coding
    the photos again.
    """
    from testbed.systems.digital.evaluate import evaluate_envelope

    photos = held_out_images("photos")
    doc = {"data": "photos", "n_images": len(photos), "snr_db": list(snr_db_list), "bandwidth_ratio": ratio}
    num, den = (int(v) for v in ratio.split("/"))
    for channel in CHANNELS:
        part = {name: evaluate(registry.get("model", name).torch_model(), snr_db_list, channel, "photos", seed,
                               images=photos) for name in models}
        part[ENVELOPE] = (envelope or {}).get(channel) or evaluate_envelope(
            photos, snr_db_list, channel, seed, repeats=RAYLEIGH_REPEATS if channel == "rayleigh" else 1,
            bandwidth_ratio=num / den)
        doc[channel] = part
    return doc


def markdown(doc: dict) -> str:
    """Tables of PSNR (dB) per SNR, one per channel, models and the envelope as rows."""
    snrs = doc["snr_db"]
    lines = [f"Mean over {doc['n_images']} held-out photographs (short side 512 px); Es/N0 per data "
             f"symbol. DeepJSCC: torch model through the testbed's channel; digital envelope: the best "
             f"configuration per SNR through the real PHY in one process (Rayleigh: {RAYLEIGH_REPEATS} "
             f"transmissions of each photo); ideal: the best codec at the capacity rate. Rayleigh "
             f"is block fading with one draw per frame (DeepJSCC: frames of 12288 symbols).", ""]
    for channel in CHANNELS:
        part = doc[channel]
        lines += [f"### {channel.upper()}", "", "| system | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
                  "|---|" + "---|" * len(snrs)]
        for name, ev in part.items():
            cells = [f"{p:.2f} / {m:.3f}" for p, m in zip(ev["psnr_db"], ev["ms_ssim"])]
            lines.append(f"| {name} (PSNR / MS-SSIM) | " + " | ".join(cells) + " |")
        env = part[ENVELOPE]
        lines.append("| ideal (capacity-achieving code) PSNR | " + " | ".join(f"{p:.2f}" for p in env["ideal_psnr_db"]) + " |")
        lines.append("| envelope's choice | " + " | ".join(
            f"{c['codec']} {c['code'].removeprefix('ldpc_')} {c['modulation']}" for c in env["choice"]) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(CHANNELS), figsize=(10, 3.8), sharey=True)
    for ax, channel in zip(axes, CHANNELS):
        for name, ev in doc[channel].items():
            line, = ax.plot(ev["snr_db"], ev["psnr_db"], marker="o", label=name)
        env = doc[channel][ENVELOPE]
        ax.plot(env["snr_db"], env["ideal_psnr_db"], ls="--", color=line.get_color(), label="ideal (capacity)")
        ax.set_title(f"{channel}, held-out photos", fontsize=9)
        ax.set_xlabel("Es/N0 per data symbol (dB)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("PSNR (dB)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.deepjscc.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["deepjscc-r6"])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--card", default=None, help="a model whose cards get the comparison (metrics.comparison)")
    parser.add_argument("--ratio", default="1/6", choices=["1/6", "1/12"], help="the models' bandwidth ratio")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    doc = compare(args.models, seed=args.seed, ratio=args.ratio)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "deepjscc_vs_envelope" + ("" if args.ratio == "1/6" else "_r12")
    write_json(args.out / f"{stem}.json", doc)
    atomic_write_bytes(args.out / f"{stem}.md", (f"# DeepJSCC against the digital envelope, ratio {args.ratio}\n\n"
                                                 + markdown(doc)).encode())
    plot(doc, args.out / f"{stem}.png")
    if args.card:
        add_to_cards(args.card, doc)
    return doc


def add_to_cards(model: str, doc: dict) -> None:
    """Put the comparison into both cards of ``model`` (the sha256 of the ONNX files is unchanged)."""
    from testbed.onnx.card import read_card, write_card

    entry = registry.get("model", model)
    for path in entry.paths:
        card = read_card(path)
        card["metrics"]["comparison"] = doc
        write_card(path, card)


if __name__ == "__main__":
    main()
