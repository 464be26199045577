"""TX framer: PDUs or queued jobs in, burst samples out (stream, paced by the scheduler).

Message ports have no backpressure, so PDUs wait in a bounded queue and every PDU refused by a
full queue is counted (``pdus_dropped``). A run that knows its payloads in advance passes them
as ``jobs``: they are framed on demand, paced by the stream, and nothing can be dropped.
"""
from __future__ import annotations

import collections
import threading
from typing import Iterable, Iterator

import numpy as np
import pmt
from gnuradio import gr

from testbed.phy.frame import Framer, FrameJob, slot_padding
from testbed.phy.payload import PayloadFormat


def job_from_pdu(msg: pmt.pmt_t, default: PayloadFormat) -> FrameJob:
    """PDU (meta dict with optional modulation, code, system, user, seq; u8 or c32 vector) -> job."""
    meta = pmt.to_python(pmt.car(msg)) or {}
    vec = pmt.cdr(msg)
    fmt = PayloadFormat(meta.get("modulation", default.modulation), meta.get("code", default.code))
    payload = np.asarray(pmt.c32vector_elements(vec), np.complex64) if fmt.analog else bytes(pmt.u8vector_elements(vec))
    return FrameJob(payload, fmt, int(meta.get("system", 0)), int(meta.get("user", 0)), int(meta.get("seq", 0)))


class FramerSource(gr.sync_block):
    """Stream source of frames separated by ``gap_samples`` zeros.

    With ``jobs`` given, the block ends the stream (after ``tail_samples`` zeros) once they are
    sent. Without, it frames PDUs from the ``pdu`` port and, when idle, either waits
    (``idle_zeros=False``, for virtual radios) or emits zeros (for hardware sinks that must be
    fed continuously). Tags ``tx_sob``/``tx_eob`` mark bursts when ``burst_tags`` is set.
    With ``slot_samples`` every frame starts on a multiple of it (a slotted TX): an emulator whose
    block fading is redrawn every slot then gives each frame exactly one fading draw.
    """

    def __init__(self, jobs: Iterable[FrameJob] | None = None, fmt: PayloadFormat | None = None,
                 gap_samples: int = 400, tail_samples: int = 4096, idle_zeros: bool = False,
                 burst_tags: bool = False, max_queue: int = 64, slot_samples: int = 0) -> None:
        gr.sync_block.__init__(self, name="testbed_framer_source", in_sig=None, out_sig=[np.complex64])
        self._framer = Framer()
        self._jobs: Iterator[FrameJob] | None = iter(jobs) if jobs is not None else None
        self._default = fmt or PayloadFormat()
        self._queue: collections.deque[FrameJob] = collections.deque()
        self._wake = threading.Event()
        self._pending = np.zeros(0, np.complex64)
        self._burst: tuple[int, int] | None = None
        self.gap_samples, self.tail_samples = gap_samples, tail_samples
        self.idle_zeros, self.burst_tags, self.max_queue = idle_zeros, burst_tags, max_queue
        self.slot_samples = slot_samples
        self.frames_sent = self.samples_sent = self.pdus_received = self.pdus_dropped = self.pdus_bad = 0
        self.message_port_register_in(pmt.intern("pdu"))
        self.set_msg_handler(pmt.intern("pdu"), self._on_pdu)

    def _on_pdu(self, msg: pmt.pmt_t) -> None:
        self.pdus_received += 1
        try:
            job = job_from_pdu(msg, self._default)
        except Exception:  # a malformed PDU is counted, never fatal
            self.pdus_bad += 1
            return
        if len(self._queue) >= self.max_queue:
            self.pdus_dropped += 1
            return
        self._queue.append(job)
        self._wake.set()

    def _next_job(self) -> FrameJob | None:
        if self._jobs is not None:
            return next(self._jobs, None)
        return self._queue.popleft() if self._queue else None

    def _load(self) -> bool:
        """Put the next frame (plus its gap) in the pending buffer; False when none is ready."""
        job = self._next_job()
        if job is None:
            return False
        frame = self._framer.frame(job.payload, job.fmt, system=job.system, user=job.user, seq=job.seq)
        self._burst = (self.nitems_written(0), frame.size)
        self._pending = np.concatenate([frame, np.zeros(slot_padding(frame.size, self.gap_samples, self.slot_samples),
                                                        np.complex64)])
        self.frames_sent += 1
        return True

    def work(self, input_items, output_items):
        out = output_items[0]
        if self._pending.size == 0 and not self._load():
            if self._jobs is not None:
                if self.tail_samples == 0:
                    return -1
                self._pending, self.tail_samples = np.zeros(self.tail_samples, np.complex64), 0
            elif self.idle_zeros:
                out[:] = 0
                self.samples_sent += out.size
                return out.size
            else:
                self._wake.wait(0.01)
                self._wake.clear()
                return 0
        n = min(out.size, self._pending.size)
        out[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._tag_burst(n)
        self.samples_sent += n
        return n

    def _tag_burst(self, n: int) -> None:
        if not self.burst_tags or self._burst is None:
            return
        start, length = self._burst
        here = self.nitems_written(0)
        if here <= start < here + n:
            self.add_item_tag(0, start, pmt.intern("tx_sob"), pmt.PMT_T)
        if here <= start + length - 1 < here + n:
            self.add_item_tag(0, start + length - 1, pmt.intern("tx_eob"), pmt.PMT_T)
            self._burst = None
