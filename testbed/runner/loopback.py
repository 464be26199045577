"""In-process loopback flowgraph for quick work: FramerSource -> ChannelBlock -> ReceiverSink in
one GNU Radio top block (no ZMQ, no processes). Same blocks and same result format as the
three-process chain, so a system can be tried in a second and then run for real."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from gnuradio import gr

from testbed.channels.spec import ChannelSpec
from testbed.gr import ChannelBlock, FramerSource, ReceiverSink
from testbed.phy.frame import FrameJob
from testbed.runner.chain import TAIL_SAMPLES, stream_samples
from testbed.runner.jobs import save_results


def run_loopback(jobs: list[FrameJob], spec: ChannelSpec, seed: int = 0, timeout_s: float = 120.0,
                 ) -> dict[str, np.ndarray]:
    """Send ``jobs`` through ``spec``; returns the received-frame arrays (see runner.jobs)."""
    total = stream_samples(jobs) + TAIL_SAMPLES
    frames: list = []
    tb = gr.top_block("testbed_loopback")
    src = FramerSource(jobs, tail_samples=TAIL_SAMPLES)
    chan = ChannelBlock([[spec]], seed=seed)
    rx = ReceiverSink(spec.sample_rate_sps, on_frame=frames.append, stop_after_samples=total)
    tb.connect(src, chan, rx)
    tb.start()
    deadline = time.monotonic() + timeout_s
    while not rx.done.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npz"
        save_results(path, frames, spec.sample_rate_sps)
        return dict(np.load(path))
