"""The three-process chain (TX framer, channel emulator, RX receiver) against a raw gr-zeromq
PUSH/PULL loopback of the same number of samples between two processes, both timed as whole
runs (process start to last sample), so the ratio is what the testbed's blocks cost."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.channels.spec import ChannelSpec
from testbed.radios.virtual import endpoint, free_tcp_port
from testbed.runner.chain import TAIL_SAMPLES, run_chain, stream_samples
from testbed.systems.base import evaluate
from testbed.systems.link import LinkSystem


def _raw_loopback(n_samples: int) -> float:
    """Seconds for n_samples through push_sink -> pull_source in two processes."""
    addr = endpoint(free_tcp_port())
    start = time.perf_counter()
    pull = subprocess.Popen([sys.executable, "-m", "testbed.bench.zmq_raw", "pull", addr, str(n_samples)])
    push = subprocess.Popen([sys.executable, "-m", "testbed.bench.zmq_raw", "push", addr, str(n_samples)])
    if pull.wait(timeout=600) != 0 or push.wait(timeout=60) != 0:
        raise RuntimeError("raw gr-zeromq loopback failed")
    return time.perf_counter() - start


def bench_chain(quick: bool = False) -> dict[str, float]:
    """Samples/s of the three-process chain and of the raw loopback, same sample count."""
    system = LinkSystem({"modulation": "qpsk", "n_frames": 100 if quick else 600, "payload_bytes": 1500})
    encoded = system.encode([])
    jobs = encoded.jobs
    n_samples = stream_samples(jobs) + TAIL_SAMPLES
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        chain = run_chain([jobs], [[ChannelSpec(model="awgn", snr_db=20.0, cfo_hz=1e3)]], Path(tmp))
        chain_s = time.perf_counter() - start
        frames = int(evaluate(system, [], encoded, chain.received(0) or [])["frames_received"])
    raw_s = _raw_loopback(n_samples)
    return {"samples": n_samples, "chain_sps": n_samples / chain_s, "raw_sps": n_samples / raw_s,
            "chain_frames": frames, "frames_sent": len(jobs)}
