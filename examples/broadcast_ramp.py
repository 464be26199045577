"""A 4-user broadcast with one user's SNR ramped while the others hold.

The shipped ``broadcast-4users`` scenario (one DeepJSCC TX, four RX processes, Rayleigh block
fading at 1, 4, 7 and 10 dB) runs one point; before each batch the script raises user u1's link
by ``--step-db``. Every user's PSNR comes back per batch, so the table shows u1 climbing while
u0, u2 and u3 stay where they were.

    python examples/broadcast_ramp.py --out runs/ramp --batches 4
    python examples/broadcast_ramp.py --radio pluto-1r1t     # the same over the air: a clear
                                                            # RadioError when no Pluto is attached
"""
import argparse
import sys
from pathlib import Path

from testbed.api import RadioError, Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/broadcast-ramp"))
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--step-db", type=float, default=5.0)
    parser.add_argument("--images", type=int, default=2, help="images per batch")
    parser.add_argument("--radio", default=None, help="a radio file for every node (e.g. pluto-1r1t): over the air")
    args = parser.parse_args()

    overrides = {"batches": args.batches, "max_images": args.images, "topology.sweep": []}
    if args.radio:  # every node on hardware: each needs a radio of its own (its URI in its radio file)
        overrides["topology.nodes"] = [{"name": n, "role": "tx" if n == "bs" else "rx", "radio": args.radio}
                                       for n in ("bs", "ue0", "ue1", "ue2", "ue3")]
    try:
        ramp(args, overrides)
    except RadioError as err:  # no such radio attached: said before any process starts
        sys.exit(f"error: {err}")
    print(f"metrics: {args.out / 'metrics.json'}")


def ramp(args: argparse.Namespace, overrides: dict) -> None:
    with Run("broadcast-4users", args.out, overrides=overrides) as run:
        print("batch  " + "  ".join(f"{u.name:>14}" for u in run.session.topo.users))
        snr_u1 = run.session.point["bs->ue1"]
        for batch in range(args.batches):
            records = {r.user: r for r in run.step()}
            print(f"{batch:5d}  " + "  ".join(f"{r.snr_db:4.0f} dB {r.psnr_db:5.2f} dB" for r in records.values()))
            snr_u1 += args.step_db
            if batch + 1 < args.batches:
                run.set_snr("bs->ue1", snr_u1)


if __name__ == "__main__":
    main()
