"""TX node source: batches of precomputed antenna waveforms out, paced by the scheduler.

The TX node's control thread frames a batch (the system's encoder ran in the node) and queues
its waveform, complex64 (n_outputs, n); ``work`` copies it out and produces nothing while the
queue is empty, so a virtual radio's stream pauses between batches instead of streaming zeros.
Nothing is dropped: the queue is unbounded and every queued sample is counted out.
"""
from __future__ import annotations

import collections
import threading

import numpy as np
from gnuradio import gr


class BatchSource(gr.sync_block):
    """``push(waveform)`` queues complex64 (n_outputs, n); ``samples_sent`` counts samples out."""

    def __init__(self, n_outputs: int = 1) -> None:
        gr.sync_block.__init__(self, name="testbed_batch_source", in_sig=None, out_sig=[np.complex64] * n_outputs)
        self.n_outputs = n_outputs
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._head = np.zeros((n_outputs, 0), np.complex64)
        self.samples_queued = self.samples_sent = 0

    def push(self, waveform: np.ndarray) -> None:
        wave = np.asarray(waveform, np.complex64)
        if wave.ndim != 2 or wave.shape[0] != self.n_outputs:
            raise ValueError(f"waveform shape {wave.shape}; expected ({self.n_outputs}, n)")
        with self._lock:
            self._queue.append(wave)
            self.samples_queued += wave.shape[1]
        self._wake.set()

    def work(self, input_items, output_items):
        if self._head.shape[1] == 0:
            with self._lock:
                if self._queue:
                    self._head = self._queue.popleft()
            if self._head.shape[1] == 0:
                self._wake.wait(0.01)
                self._wake.clear()
                return 0
        n = min(len(output_items[0]), self._head.shape[1])
        for out, row in zip(output_items, self._head):
            out[:n] = row[:n]
        self._head = self._head[:, n:]
        self.samples_sent += n
        return n
