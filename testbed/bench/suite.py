"""``testbed bench``: every speed figure side by side with its peer, in one run, as ratios."""
from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from testbed import registry
from testbed.bench.gr_ofdm_bench import PACKET_BYTES, bench_gr_ofdm
from testbed.bench.ldpc_bench import bench_ldpc
from testbed.bench.neural_bench import bench_image_path, bench_onnx_vs_torch, bench_whole_image
from testbed.bench.network_bench import bench_broadcast, bench_tile_latency
from testbed.bench.receiver_bench import bench_receiver
from testbed.bench.zmq_bench import bench_chain

# on one core: uncoded frames at the 10 MS/s a fast radio streams, LDPC-coded 16-QAM frames at 5 MS/s
RECEIVER_TARGETS_SPS = {"noise_sps": 10e6, "qpsk_sps": 10e6, "qam16_ldpc_sps": 5e6}
WHOLE_IMAGE_MODEL = "adjscc-wide-r6"


@dataclass
class Row:
    what: str
    ours: str
    peer: str
    ratio: float
    target: str


def run_suite(quick: bool = False) -> list[Row]:
    rows = []
    rx = bench_receiver(quick)
    for key, label in (("noise_sps", "receiver, noise only"), ("qpsk_sps", "receiver, QPSK frames back to back"),
                       ("qam16_ldpc_sps", "receiver, 16-QAM LDPC 1/2 frames")):
        target = RECEIVER_TARGETS_SPS[key]
        rows.append(Row(label, f"{rx[key] / 1e6:.2f} MS/s", f"{target / 1e6:g} MS/s target", rx[key] / target, ">= 1"))
    chain = bench_chain(quick)
    rows.append(Row(f"three-process chain ({chain['samples']:,} samples)", f"{chain['chain_sps'] / 1e6:.2f} MS/s",
                    f"raw gr-zeromq PUSH/PULL {chain['raw_sps'] / 1e6:.2f} MS/s", chain["chain_sps"] / chain["raw_sps"],
                    "report"))
    peer = bench_gr_ofdm(100 if quick else 400)
    rows.append(Row(f"receiver, QPSK {PACKET_BYTES}-byte packets ({peer['ours_frames']:.0%} received)",
                    f"{peer['ours_sps'] / 1e6:.2f} MS/s",
                    f"gr-digital ofdm_rx {peer['gr_sps'] / 1e6:.2f} MS/s ({peer['gr_delivered']:.0%} delivered)",
                    peer["ours_sps"] / peer["gr_sps"], "report"))
    ldpc = bench_ldpc(n_codewords=500 if quick else 2000)
    rows.append(Row(f"LDPC n=648 R1/2 decoder (BLER {ldpc['ours_bler']:.3f} vs {ldpc['ldpc_pkg_bler']:.3f})",
                    f"{ldpc['ours_mbps']:.2f} Mb/s", f"ldpc.BpDecoder {ldpc['ldpc_pkg_mbps']:.2f} Mb/s",
                    ldpc["speedup"], ">= 10"))
    rows.append(Row(f"LDPC n=648 R1/2 decoder (BLER {ldpc['ours_bler']:.3f} vs {ldpc['gr_fec_bler']:.3f})",
                    f"{ldpc['ours_mbps']:.2f} Mb/s", f"gr-fec ldpc_decoder {ldpc['gr_fec_mbps']:.2f} Mb/s",
                    ldpc["speedup_vs_gr_fec"], "report"))
    nn = bench_onnx_vs_torch(repeats=100 if quick else 500)
    rows.append(Row("deepjscc-r6 encode+decode, one 32x32 image, batch 1", f"{nn['onnx_s'] * 1e3:.3f} ms (ONNX Runtime)",
                    f"torch {nn['torch_s'] * 1e3:.3f} ms", nn["onnx_s"] / nn["torch_s"], "<= 1 ms"))
    if WHOLE_IMAGE_MODEL in registry.names("model"):
        whole = bench_whole_image(WHOLE_IMAGE_MODEL, repeats=2 if quick else 5)
        rows.append(Row(f"{WHOLE_IMAGE_MODEL} encode+decode, one 512x512 image, batch 1",
                        f"{whole['onnx_s'] * 1e3:.0f} ms (ONNX Runtime)", f"torch {whole['torch_s'] * 1e3:.0f} ms",
                        whole["onnx_s"] / whole["torch_s"], "<= 1"))
    path = bench_image_path(copies=1 if quick else 4)
    rows.append(Row(f"image path, {path['pixels']:,}-pixel image (encode, frame, 3 processes, sync, decode)",
                    f"{path['per_image_s'] * 1e3:.0f} ms/image", f"ONNX encode+decode alone "
                    f"{nn['onnx_s'] * 1e3 * path['pixels'] / 1024:.1f} ms/image",
                    path["per_image_s"] / (nn["onnx_s"] * path["pixels"] / 1024), "report"))
    rows += network_rows(path, quick)
    return rows


def network_rows(path: dict[str, float], quick: bool) -> list[Row]:
    """Persistent network runs side by side with the per-point restart of the offline chain."""
    rows = []
    restart_tiles_s = path["tiles"] / (path["per_image_s"] * path["images"])
    for n in (1, 2) if quick else (1, 2, 4, 8):
        b = bench_broadcast(n, batches=3 if quick else 5)
        failed = f"; FAILED: {b['reason']}" if b["failed"] else ""
        rows.append(Row(f"DeepJSCC broadcast to {n} RX process(es), 32x32 tiles/s aggregate "
                        f"(per user {b['per_user_tiles_s']:.0f}; lost {b['lost']}, failed {b['failed']}{failed})",
                        f"{b['aggregate_tiles_s']:.0f} tiles/s", f"per-point restart {restart_tiles_s:.0f} tiles/s",
                        b["aggregate_tiles_s"] / restart_tiles_s, ">= 1000 tiles/s (N=1)"))
    lat = bench_tile_latency(repeats=5 if quick else 20)
    rows.append(Row("one 32x32 tile, encode request to decoded tile in the runner (running nodes, no air time)",
                    f"{lat['latency_s'] * 1e3:.1f} ms", f"per-point restart {path['per_image_s'] * 1e3:.0f} ms/image",
                    lat["latency_s"] / path["per_image_s"], "<= 20 ms"))
    return rows


def print_suite(rows: list[Row], console: Console) -> None:
    table = Table(title="testbed bench (one core per process; ratios are ours / peer)")
    for col in ("what", "ours", "peer", "ratio", "target"):
        table.add_column(col, justify="left" if col in ("what", "peer") else "right")
    for r in rows:
        table.add_row(r.what, r.ours, r.peer, f"{r.ratio:.2f}", r.target)
    console.print(table)
