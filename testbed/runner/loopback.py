"""In-process loopback flowgraph for quick work: FramerSource -> ChannelBlock -> ReceiverSink in
one GNU Radio top block (no ZMQ, no processes). Same blocks and same result format as the
three-process chain, so a system can be tried in a second and then run for real."""
from __future__ import annotations

import time
from gnuradio import gr

from testbed.channels.spec import ChannelSpec
from testbed.gr import ChannelBlock, FramerSource, ReceiverSink
from testbed.phy.frame import FrameJob
from testbed.phy.receiver import ReceivedFrame
from testbed.runner.chain import TAIL_SAMPLES, stream_samples


def run_loopback(jobs: list[FrameJob], spec: ChannelSpec, seed: int = 0, timeout_s: float = 120.0,
                 ) -> list[ReceivedFrame]:
    """Send ``jobs`` through ``spec``; returns the received frames."""
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
    return frames
