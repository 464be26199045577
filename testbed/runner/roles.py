"""The three processes of a virtual-radio run, each a GNU Radio flowgraph joined by gr-zeromq
PUSH/PULL (sinks bind, sources connect, so start order does not matter and no sleep stands in
for a handshake). Each role stops on a count, never on end of stream, and returns a status dict.

- tx:      jobs (npz) -> FramerSource -> push_sink(out)
- channel: pull_source(in_i) -> ChannelBlock -> push_sink(out_j); stops after ``total_samples``
           have left every output
- rx:      pull_source(in) -> ReceiverSink; stops after ``total_samples`` or ``idle_timeout_s``
"""
from __future__ import annotations

import time
from typing import Any, Callable

from gnuradio import gr, zeromq

from testbed.channels.spec import ChannelSpec
from testbed.gr import ChannelBlock, FramerSource, ReceiverSink
from testbed.runner.jobs import load_jobs, save_results

BUFFER_ITEMS = 1 << 16
POLL_S = 0.02


def _wait(done: Callable[[], bool], progress: Callable[[], int], idle_timeout_s: float, timeout_s: float) -> str:
    """Wait until done(); 'idle' when progress() stalls, 'timeout' at timeout_s. Returns why."""
    start = last_change = time.monotonic()
    last = progress()
    while not done():
        now = time.monotonic()
        if progress() != last:
            last, last_change = progress(), now
        if now - last_change > idle_timeout_s:
            return "idle"
        if now - start > timeout_s:
            return "timeout"
        time.sleep(POLL_S)
    return "done"


def run_tx(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: jobs (path), out (ZMQ address), gap_samples, tail_samples."""
    tb = gr.top_block("testbed_tx")
    src = FramerSource(load_jobs(spec["jobs"]), gap_samples=spec["gap_samples"], tail_samples=spec["tail_samples"],
                       slot_samples=spec.get("slot_samples", 0))
    src.set_min_output_buffer(BUFFER_ITEMS)
    sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, spec["out"], 100, False, -1)
    tb.connect(src, sink)
    tb.start()
    how = _wait(lambda: sink.nitems_read(0) >= src.samples_sent and src.samples_sent >= spec["total_samples"],
                lambda: src.samples_sent, spec.get("idle_timeout_s", 20.0), spec.get("timeout_s", 600.0))
    tb.stop()
    tb.wait()
    return {"role": "tx", "stopped": how, "frames_sent": src.frames_sent, "samples_sent": int(sink.nitems_read(0)),
            "pdus_dropped": src.pdus_dropped}


def run_channel(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: inputs, outputs (ZMQ addresses), links (n_rx x n_tx ChannelSpec dicts), seed, total_samples."""
    tb = gr.top_block("testbed_channel")
    links = [[ChannelSpec(**link) for link in row] for row in spec["links"]]
    chan = ChannelBlock(links, seed=spec["seed"])
    chan.set_min_output_buffer(BUFFER_ITEMS)
    sources = [zeromq.pull_source(gr.sizeof_gr_complex, 1, a, 100, False, -1) for a in spec["inputs"]]
    sinks = [zeromq.push_sink(gr.sizeof_gr_complex, 1, a, 100, False, -1) for a in spec["outputs"]]
    for i, src in enumerate(sources):
        tb.connect(src, (chan, i))
    for j, sink in enumerate(sinks):
        tb.connect((chan, j), sink)
    total = spec["total_samples"]
    tb.start()
    how = _wait(lambda: all(s.nitems_read(0) >= total for s in sinks), lambda: int(chan.nitems_written(0)),
                spec.get("idle_timeout_s", 20.0), spec.get("timeout_s", 600.0))
    tb.stop()
    tb.wait()
    return {"role": "channel", "stopped": how, "samples_in": [int(chan.nitems_read(i)) for i in range(len(sources))],
            "samples_out": [int(s.nitems_read(0)) for s in sinks]}


def run_rx(spec: dict[str, Any]) -> dict[str, Any]:
    """spec: input (ZMQ address), results (npz path), sample_rate_sps, total_samples, idle_timeout_s."""
    tb = gr.top_block("testbed_rx")
    frames: list = []
    src = zeromq.pull_source(gr.sizeof_gr_complex, 1, spec["input"], 100, False, -1)
    rx = ReceiverSink(spec["sample_rate_sps"], on_frame=frames.append, stop_after_samples=spec["total_samples"])
    tb.connect(src, rx)
    tb.start()
    how = _wait(rx.done.is_set, lambda: rx.receiver.counters.samples, spec.get("idle_timeout_s", 20.0),
                spec.get("timeout_s", 600.0))
    tb.stop()
    tb.wait()
    rx.receiver.flush()
    save_results(spec["results"], frames, spec["sample_rate_sps"])
    return {"role": "rx", "stopped": how, "samples_received": rx.receiver.counters.samples,
            "errors": rx.errors, **{f"rx_{k}": v for k, v in rx.receiver.counters.as_dict().items()}}


ROLES = {"tx": run_tx, "channel": run_channel, "rx": run_rx}
