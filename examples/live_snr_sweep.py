"""A live SNR sweep: one run, one link, its SNR stepped between batches; BER against theory.

The QPSK link of the shipped scenario ``link-awgn`` starts once; before every batch the script
sets the link's SNR over the control plane, so the sweep needs no process restart. The plot
shows the measured BER (and the receiver's SNR estimate) against the closed form.

    python examples/live_snr_sweep.py --out runs/live-sweep          # 0..8 dB, 40 frames each
    python examples/live_snr_sweep.py --snr-db 0 4 8 --frames 10     # quicker
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from testbed.api import Run  # noqa: E402
from testbed.phy.theory import ber_awgn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/live-snr-sweep"))
    parser.add_argument("--snr-db", type=float, nargs="+", default=[0, 2, 4, 6, 8])
    parser.add_argument("--frames", type=int, default=40, help="frames per batch (one batch per SNR)")
    args = parser.parse_args()

    overrides = {"channel.snr_db": [args.snr_db[0]], "batches": len(args.snr_db), "system_params.n_frames": args.frames}
    measured = []
    with Run("link-awgn", args.out, overrides=overrides) as run:
        for snr_db in args.snr_db:
            change = run.set_snr("tx0->rx0", snr_db)  # lands at the first sample of the next batch
            (record,) = run.step()
            measured.append((snr_db, record.ber, record.snr_est_db))
            print(f"SNR {snr_db:5.1f} dB (from sample {change.sample}): BER {record.ber:.2e} "
                  f"(theory {float(ber_awgn(snr_db, 'qpsk')):.2e}), estimated SNR {record.snr_est_db:.2f} dB")
    snr, ber, est = zip(*measured)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(snr, ber_awgn(list(snr), "qpsk"), "k--", label="theory, QPSK")
    ax.semilogy(snr, [max(b, 1e-6) for b in ber], "o-", label="measured (live sweep)")
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("BER")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "ber.png", dpi=120)
    print(f"plot: {args.out / 'ber.png'}  metrics: {args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
