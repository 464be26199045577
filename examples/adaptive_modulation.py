"""Closed-loop adaptive modulation: the TX picks its code and QAM from the SNR its RX feeds back.

The digital envelope (HEVC/JPEG 2000 + 802.11n LDPC + QAM, the configuration with the best
predicted PSNR at the SNR it is told) runs with ``adapt: feedback``: each batch is encoded for
the SNR the receiver measured on the batch before. The script walks the link's SNR down and up
live; the chosen configuration follows one batch later.

    python examples/adaptive_modulation.py --out runs/amc --snr-db 20 12 5 12 20
"""
import argparse
from pathlib import Path

from testbed.api import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/adaptive-modulation"))
    parser.add_argument("--snr-db", type=float, nargs="+", default=[20, 12, 5, 12, 20])
    parser.add_argument("--images", type=int, default=1, help="images per batch")
    args = parser.parse_args()

    overrides = {"channel.snr_db": [args.snr_db[0]], "batches": len(args.snr_db), "adapt": "feedback",
                 "max_images": args.images}
    with Run("digital-envelope-awgn", args.out, overrides=overrides) as run:
        print(" link SNR   told (fed back)       measured   choice                         PSNR")
        for snr_db in args.snr_db:
            run.set_snr("tx0->rx0", snr_db)
            (r,) = run.step()
            choice = "+".join(str(r.choice[k]) for k in ("codec", "code", "modulation"))
            print(f"{snr_db:6.1f} dB   {r.csi_snr_db[-1]:6.1f} dB ({r.csi_from:8s})  {r.snr_est_db or 0:6.2f} dB   "
                  f"{choice:30s} {r.psnr_db:6.2f} dB")
    print(f"metrics: {args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
