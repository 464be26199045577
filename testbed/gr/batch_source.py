"""TX node source: batches of precomputed antenna waveforms out, paced by the scheduler.

The TX node's control thread frames a batch (the system's encoder ran in the node) and queues
its waveform, complex64 (n_outputs, n); ``work`` copies it out and produces nothing while the
queue is empty, so a virtual radio's stream pauses between batches instead of streaming zeros.
Nothing is dropped: the queue is unbounded and every queued sample is counted out.

For hardware sinks (``idle``, testbed.radios.base.RadioBackend.tx_idle): ``"burst"`` tags the
first sample of every pushed waveform ``tx_sob`` and its last ``tx_eob`` (gr-uhd's usrp_sink
sends each as one burst and idles between them); ``"zeros"`` streams zeros while the queue is
empty (the device's clock paces them; counted in ``idle_samples``).
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

IDLE_MODES = ("pause", "burst", "zeros")
IDLE_RETURN_S = 2.0
"""Longest wait inside one work call: a flowgraph stopped without ``halt`` still stops."""


class BatchSource(gr.sync_block):
    """``push(waveform)`` queues complex64 (n_outputs, n); ``samples_sent`` counts samples out;
    ``idle`` is ``"pause"``, ``"burst"`` or ``"zeros"`` (module docstring)."""

    def __init__(self, n_outputs: int = 1, idle: str = "pause") -> None:
        gr.sync_block.__init__(self, name="testbed_batch_source", in_sig=None, out_sig=[np.complex64] * n_outputs)
        if idle not in IDLE_MODES:
            raise ValueError(f"idle {idle!r} is unknown; allowed: {', '.join(IDLE_MODES)}")
        self.n_outputs, self.idle = n_outputs, idle
        self.idle_samples = 0
        self._burst_end = -1  # absolute index of the current burst's last sample
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._head = np.zeros((n_outputs, 0), np.complex64)
        self.samples_queued = self.samples_sent = 0
        self._halted = False

    def push(self, waveform: np.ndarray) -> None:
        wave = np.asarray(waveform, np.complex64)
        if wave.ndim != 2 or wave.shape[0] != self.n_outputs:
            raise ValueError(f"waveform shape {wave.shape}; expected ({self.n_outputs}, n)")
        if wave.shape[1] == 0:
            return
        with self._lock:
            self._queue.append(wave)
            self.samples_queued += wave.shape[1]
        self._wake.set()

    def halt(self) -> None:
        """Let ``work`` return so the flowgraph can stop; call it before ``top_block.stop()``."""
        self._halted = True
        self._wake.set()

    def work(self, input_items, output_items):
        deadline = time.monotonic() + IDLE_RETURN_S
        while self._head.shape[1] == 0:
            with self._lock:
                if self._queue:
                    self._head = self._queue.popleft()
                    self._tag_burst()
                    break
                self._wake.clear()
            if self._halted:
                return -1
            if self.idle == "zeros":
                return self._zeros(output_items)
            if time.monotonic() > deadline:
                return 0
            self._wake.wait(0.05)
        n = min(len(output_items[0]), self._head.shape[1])
        for out, row in zip(output_items, self._head):
            out[:n] = row[:n]
        self._head = self._head[:, n:]
        here = self.nitems_written(0)
        if here <= self._burst_end < here + n:
            for port in range(self.n_outputs):
                self.add_item_tag(port, self._burst_end, pmt.intern("tx_eob"), pmt.PMT_T)
        self.samples_sent += n
        return n

    def _tag_burst(self) -> None:
        """A new waveform became the head: tag its first sample tx_sob (burst mode)."""
        if self.idle != "burst":
            return
        start = self.nitems_written(0)
        for port in range(self.n_outputs):
            self.add_item_tag(port, start, pmt.intern("tx_sob"), pmt.PMT_T)
        self._burst_end = start + self._head.shape[1] - 1

    def _zeros(self, output_items) -> int:
        n = len(output_items[0])
        for out in output_items:
            out[:n] = 0
        self.idle_samples += n
        return n
