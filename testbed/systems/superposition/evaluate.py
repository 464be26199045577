"""PyTorch evaluation of DeepSCM and the CM baselines (no PHY, no processes): the reference the
GNU Radio chain is held to, and the numbers of docs/results.

Per receiver i: the transmitter samples its symbols (Gumbel-max, eq. 10), Z_i = Y + AWGN at
Rx i's SNR, the receiver decodes the image and its label (coarse at Rx1, fine at Rx2).
``rx_input="hard"`` first demaps Z to the nearest point of the super-constellation (each real
dimension to the nearest PAM level), as a receiver that only keeps QAM decisions would.
"""
from __future__ import annotations

import numpy as np
import torch

from testbed import metrics
from testbed.systems.superposition.data import Labelled
from testbed.systems.superposition.constellation import super_levels
from testbed.systems.superposition.model import awgn

BATCH = 500
RX_INPUTS = ("soft", "hard")


def demap(z: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Each real value of ``z`` (any shape) replaced by the nearest of ``points`` (L,)."""
    return points[torch.argmin(torch.abs(z.unsqueeze(-1) - points), dim=-1)]


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Labelled, snr_db: tuple[float, float], seed: int = 0,
             ms_ssim: bool = True, rx_input: str = "soft") -> dict[str, float]:
    """Mean per-image PSNR (dB), MS-SSIM (2 scales at 28 px, testbed.metrics) and accuracy of both
    receivers: keys ``rx1_psnr_db``, ``rx1_ms_ssim``, ``rx1_accuracy``, ``rx2_...``."""
    model.eval()
    points = torch.from_numpy(super_levels(model.config()))
    out: dict[str, list[np.ndarray]] = {}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for first in range(0, len(data), BATCH):
            x = torch.from_numpy(data.images[first:first + BATCH])
            y, _ = model.transmit(x)
            for rx, labels in ((1, data.coarse), (2, data.fine)):
                z = awgn(y, snr_db[rx - 1])
                if rx_input == "hard":
                    z = demap(z, points)
                recon, logits = getattr(model, f"rx{rx}")(z)
                ref, rec = x.numpy(), recon.numpy()
                out.setdefault(f"rx{rx}_psnr_db", []).append(np.atleast_1d(metrics.psnr_db(ref, rec)))
                if ms_ssim:
                    out.setdefault(f"rx{rx}_ms_ssim", []).append(np.atleast_1d(metrics.ms_ssim(ref, rec)))
                hit = logits.argmax(1).numpy() == labels[first:first + BATCH]
                out.setdefault(f"rx{rx}_accuracy", []).append(hit.astype(np.float64))
    return {key: float(np.mean(np.concatenate(values))) for key, values in sorted(out.items())}


def reference_rows(rows: list[dict], model_name: str, count: int, seeds: int = 4) -> list[dict]:
    """For each ``ok`` row of a superposition run (metrics.json ``rows``): the torch evaluation
    of the same model, receiver and link SNR on the same images (the first ``count`` items of the
    ``fashion-mnist`` set), averaged over ``seeds`` noise draws, and the differences."""
    from testbed import registry
    from testbed.systems.superposition.data import fashion_mnist

    model = registry.get("system-model", model_name).torch_model()
    test = fashion_mnist("test")
    data = Labelled(test.images[:count], test.coarse[:count], test.fine[:count])
    cache: dict[tuple[int, float], dict[str, float]] = {}
    out = []
    for row in rows:
        if row.get("status") != "ok":
            continue
        rx, snr = int(row["choice"]["receiver"]), float(row["snr_db"])
        if (rx, snr) not in cache:
            runs = [evaluate(model, data, (snr, snr), seed=s) for s in range(seeds)]
            cache[(rx, snr)] = {k[4:]: float(np.mean([r[k] for r in runs])) for k in runs[0] if k.startswith(f"rx{rx}_")}
        ref = cache[(rx, snr)]
        out.append({"user": row["user"], "snr_db": snr, "receiver": rx,
                    **{f"{k}": row[k] for k in ("psnr_db", "ms_ssim", "accuracy")},
                    **{f"torch_{k}": v for k, v in ref.items()},
                    "delta_psnr_db": row["psnr_db"] - ref["psnr_db"],
                    "delta_ms_ssim": row["ms_ssim"] - ref["ms_ssim"],
                    "delta_accuracy": row["accuracy"] - ref["accuracy"]})
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    """``python -m testbed.systems.superposition.evaluate RUN/metrics.json``: each row of a
    ``testbed run superposition-broadcast`` against the torch evaluation (table on stdout)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("metrics", help="metrics.json of a superposition run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from testbed.data.loaders import FASHION_MNIST_ITEMS

    doc = json.loads(open(args.metrics).read())
    count = min(int(doc["config"].get("max_images") or FASHION_MNIST_ITEMS), FASHION_MNIST_ITEMS)
    rows = reference_rows(doc["rows"], doc["rows"][0]["model"], count, seeds=8)
    print(f"{'user':6} {'SNR':>5} {'PSNR':>7} {'torch':>7} {'delta':>6} {'MS-SSIM':>8} {'torch':>7} "
          f"{'acc':>7} {'torch':>7} {'delta':>7}")
    for r in rows:
        print(f"{r['user']:6} {r['snr_db']:5.1f} {r['psnr_db']:7.2f} {r['torch_psnr_db']:7.2f} "
              f"{r['delta_psnr_db']:+6.2f} {r['ms_ssim']:8.4f} {r['torch_ms_ssim']:7.4f} {r['accuracy']:7.4f} "
              f"{r['torch_accuracy']:7.4f} {r['delta_accuracy']:+7.4f}")
    return rows


if __name__ == "__main__":
    main()
