"""The digital envelope measured on held-out photographs through the PHY in one process.

For the model cards and docs/results/: the same images and SNRs as the DeepJSCC evaluation
(:mod:`testbed.systems.deepjscc.evaluate`), with the real PHY but no processes (the chain's
numbers come from the ``digital-envelope-*`` scenarios). Every frame of the chosen
configuration is built by the Framer, passes AWGN (Es/N0 per data subcarrier, a 5 kHz CFO at
1 MS/s) or Rayleigh block fading with one draw per frame, and is received by the FrameReceiver;
an image with a lost frame is scored mid-grey, as in the chain.
"""
from __future__ import annotations

import numpy as np

from testbed.channels.spec import ChannelSpec
from testbed.channels.realization import draw_block
from testbed.phy.frame import Framer
from testbed.phy.receiver import FrameReceiver, ReceivedFrame
from testbed.systems.base import evaluate as score_frames
from testbed.systems.digital.bler import CFO_NORMALISED
from testbed.systems.digital.envelope import EnvelopeSystem

GAP_SAMPLES = 400
TAIL_SAMPLES = 4000  # lets the receiver's look-ahead pass the last frame


def through_phy(jobs, snr_db: float, channel: str, seed: int) -> list[ReceivedFrame]:
    """Frames of ``jobs`` through the channel (one fading draw per frame) into a FrameReceiver."""
    rng = np.random.default_rng([seed, int(round(snr_db * 100)) + 10_000])
    spec = ChannelSpec(model=channel, snr_db=0.0)
    framer, parts = Framer(), [np.zeros(GAP_SAMPLES, np.complex64)]
    for i, job in enumerate(jobs):
        frame = framer.frame(job.payload, job.fmt, system=job.system, seq=job.seq)
        h = draw_block(spec, seed, 0, 0, i) if channel != "awgn" else 1.0
        parts += [frame * h, np.zeros(GAP_SAMPLES, np.complex64)]
    x = np.concatenate([*parts, np.zeros(TAIL_SAMPLES, np.complex64)])
    x = x * np.exp(2j * np.pi * CFO_NORMALISED * np.arange(x.size))
    noise = np.sqrt(10.0 ** (-snr_db / 10.0) / 2.0) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
    receiver, frames = FrameReceiver(), []
    y = (x + noise).astype(np.complex64)
    for start in range(0, y.size, 1 << 16):
        frames += receiver.push(y[start:start + (1 << 16)])
    return frames


def evaluate_envelope(images: list[np.ndarray], snr_db_list, channel: str = "awgn", seed: int = 0,
                      codecs: tuple[str, ...] = ("hevc", "jpeg2000"), repeats: int = 1,
                      bandwidth_ratio: float = 1 / 6) -> dict:
    """Mean PSNR / MS-SSIM of the envelope's choice at each SNR, its ideal reference and its choices.

    Parameters: images float32 (3, H, W) each; snr_db_list (Es/N0, dB); channel "awgn" or
        "rayleigh" (also what the choice assumes); seed of noise and fading; codecs to choose from;
        repeats, transmissions of every image per SNR with fresh noise and fading (a few photos
        in one frame each see only a few fading draws otherwise), metrics are means over all;
        bandwidth_ratio, channel uses per source value (real), the budget the envelope fills.
    Returns: {"channel", "n_images", "snr_db", "psnr_db", "ms_ssim", "ideal_psnr_db",
        "predicted_psnr_db", "choice", "images_lost"} with one entry per SNR.
    """
    system = EnvelopeSystem({"channel": channel, "codecs": list(codecs), "bandwidth_ratio": bandwidth_ratio}, seed=seed)
    items = [(f"image{i}", img) for i, img in enumerate(images)]
    out = {"channel": channel, "n_images": len(items), "snr_db": [], "psnr_db": [], "ms_ssim": [],
           "ideal_psnr_db": [], "predicted_psnr_db": [], "choice": [], "images_lost": []}
    for snr in snr_db_list:
        encoded = system.encode(items, float(snr))
        runs = [score_frames(system, items, encoded, through_phy(encoded.jobs, float(snr), channel, seed + 1000 * r))
                for r in range(repeats)]
        got = runs[0]
        choice = dict(got["choice"])
        out["snr_db"].append(float(snr))
        out["psnr_db"].append(round(float(np.mean([g["psnr_db"] for g in runs])), 3))
        out["ms_ssim"].append(round(float(np.mean([g["ms_ssim"] for g in runs])), 4))
        out["ideal_psnr_db"].append(round(got["ideal_psnr_db"], 3))
        out["predicted_psnr_db"].append(choice.pop("predicted_psnr_db"))
        out["choice"].append(choice)
        out["images_lost"].append(int(sum(g["images_lost"] for g in runs)))
    out["transmissions_per_image"] = repeats
    return out


def chain_markdown(documents: list[dict]) -> str:
    """A table per run (its metrics.json document) of the envelope's choice, PSNR and ideal per SNR."""
    lines = []
    for doc in documents:
        rows = sorted((r for r in doc["rows"] if r.get("choice")), key=lambda r: r["snr_db"])
        lines += [f"### {doc['scenario']} ({rows[0]['channel'] if rows else '?'}, {rows[0]['batches'] if rows else 0} "
                  f"batch(es) per point)", "",
                  "| SNR (dB) | codec | LDPC code | QAM | frame bytes | predicted PSNR | PSNR (chain) | MS-SSIM | "
                  "images lost | frames lost / sent | ideal PSNR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            c = r["choice"] if isinstance(r["choice"], dict) else r["choice"][0]
            lines.append(f"| {r['snr_db']:g} | {c['codec']} | {c['code']} | {c['modulation']} | {c['frame_bytes']} | "
                         f"{c['predicted_psnr_db']:.2f} | {r['psnr_db']:.2f} | {r['ms_ssim']:.3f} | "
                         f"{r.get('images_lost', 0)} | {r['frames_lost']} / {r['frames_sent']} | "
                         f"{r['ideal_psnr_db']:.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse
    from pathlib import Path

    from testbed.runner.files import atomic_write_bytes, read_json

    parser = argparse.ArgumentParser(prog="python -m testbed.systems.digital.evaluate",
                                     description="Tables of digital-envelope runs (their metrics.json) in Markdown.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of digital-envelope scenarios")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    text = chain_markdown([read_json(run / "metrics.json") for run in args.runs])
    if args.out.exists():  # keep a hand-written introduction above the first table
        intro = args.out.read_text().split("### ", 1)[0]
        text = intro + text
    atomic_write_bytes(args.out, text.encode())


if __name__ == "__main__":
    main()
