"""RX side of a virtual radio: a PULL socket (pyzmq) that receives what a gr-zeromq
``push_sink`` sends (raw complex64 items per message, ``pass_tags=False``) and streams it out.

Written here because gr-zeromq 3.10.5's ``pull_source`` was measured too slow for a persistent
run: after its poll times out with nothing to read, GNU Radio does not call it again for about
200 ms (timeout 1 ms) or until its full timeout has passed (timeout 100-1000 ms), so every idle
gap between batches added 150-1000 ms per hop. This block waits inside ``work`` until data
arrives, for up to ``IDLE_RETURN_S`` (``halt`` ends the wait at once before a stop), so a sample
that reaches the socket during a run leaves the block at once.
The sending side stays gr-zeromq's ``push_sink``; PUSH/PULL never drops at the high-water mark.
"""
from __future__ import annotations

import numpy as np
import zmq
from gnuradio import gr

POLL_MS = 20
IDLE_RETURN_S = 2.0
"""Longest wait inside one work call: a flowgraph stopped without ``halt`` still stops."""


class ZmqPullSource(gr.sync_block):
    """complex64 stream from the gr-zeromq push_sink bound at ``address``; ``samples_received``."""

    def __init__(self, address: str, hwm: int = -1) -> None:
        gr.sync_block.__init__(self, name="testbed_zmq_pull_source", in_sig=None, out_sig=[np.complex64])
        self.address = address
        self._sock = zmq.Context.instance().socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        if hwm >= 0:
            self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.connect(address)
        self._pending = np.zeros(0, np.complex64)
        self._stopping = False
        self.samples_received = 0

    def halt(self) -> None:
        """Let ``work`` return so the flowgraph can stop; call it before ``top_block.stop()``."""
        self._stopping = True

    def last_endpoint(self) -> str:
        """The address this source connects to (as gr-zeromq's blocks report theirs)."""
        return self.address

    def _receive(self) -> bool:
        """Wait up to IDLE_RETURN_S for the next message; False when none came or halted."""
        for _ in range(int(IDLE_RETURN_S * 1000 / POLL_MS)):
            if self._stopping:
                return False
            if self._sock.poll(POLL_MS):
                self._pending = np.frombuffer(self._sock.recv(copy=True), np.complex64)
                return True
        return False

    def work(self, input_items, output_items):
        if self._pending.size == 0 and not self._receive():
            return -1 if self._stopping else 0
        out = output_items[0]
        n = min(len(out), self._pending.size)
        out[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.samples_received += n
        return n
