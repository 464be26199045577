"""RX block: samples in; deframed frames out as PDUs on ``frames`` and to an optional callback.

PDU metadata: system, user, seq, length, modulation, code, payload_ok, snr_est_db, evm_db,
cfo_hz, start; the vector is the payload bytes (u8) or the equalised symbols (c32, analog).
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import pmt
from gnuradio import gr

from testbed.phy.receiver import FrameReceiver, ReceivedFrame


def frame_to_pdu(frame: ReceivedFrame, sample_rate_sps: float) -> pmt.pmt_t:
    """PDU for a received frame (see module docstring)."""
    h = frame.header
    meta = dict(system=h.system, user=h.user, seq=h.seq, length=h.length, modulation=frame.fmt.modulation,
                code=frame.fmt.code, payload_ok=bool(frame.payload_ok), snr_est_db=float(frame.snr_est_db),
                evm_db=float(frame.evm_db), cfo_hz=float(frame.cfo * sample_rate_sps), start=int(frame.start))
    if frame.fmt.analog:
        vec = pmt.init_c32vector(frame.payload.size, frame.payload.tolist())
    else:
        vec = pmt.init_u8vector(len(frame.payload), list(frame.payload))
    return pmt.cons(pmt.to_pmt(meta), vec)


RX_TIME = pmt.intern("rx_time")


def count_overflows(block, n: int) -> None:
    """gr-uhd's usrp_source tags ``rx_time`` on its first sample and again after every overflow
    (samples lost in the device or its transport): each later tag adds one to
    ``block.radio_overflows``. Streams without such tags (virtual radios, Pluto) count none."""
    block.rx_time_tags += len(block.get_tags_in_window(0, 0, n, RX_TIME))
    block.radio_overflows = max(0, block.rx_time_tags - 1)


POWER_BLOCK = 4096
"""Samples per noise-floor measurement: means over fewer are too noisy to take the minimum of."""


def log_power(block, samples, n: int) -> None:
    """Over the air (``block.power_log`` a list): append (last sample index, mean power of
    antenna 0) for every ``POWER_BLOCK`` samples; the noise floor is the quietest block of a batch."""
    if block.power_log is None or not n:
        return
    x = samples[0] if isinstance(samples, list) else samples
    full = n // POWER_BLOCK * POWER_BLOCK  # a chunk's remainder (and chunks below a block) are skipped
    means = np.mean(np.abs(x[:full].reshape(-1, POWER_BLOCK)) ** 2, axis=1) if full else ()
    for i, mean in enumerate(means):
        block.power_log.append((block.samples_processed + (i + 1) * POWER_BLOCK, float(mean)))


def receive(block, samples, n: int, publish: Callable[[ReceivedFrame], None] | None = None) -> None:
    """The work of a receiving block (``ReceiverSink``, ``MimoReceiverSink``): push ``samples``
    (``n`` per stream) into ``block.receiver``, hand each frame to ``block.on_frame`` and
    ``publish``, then count the samples in ``samples_processed``. ``busy`` is set meanwhile (a
    long push, e.g. numba compiling on first use, is not an idle input). An exception in the
    receiver is counted in ``block.errors`` and the burst skipped, never fatal to the run."""
    block.busy = True
    count_overflows(block, n)
    log_power(block, samples, n)
    try:
        frames = block.receiver.push(samples)
    except Exception:  # counted and skipped
        block.errors += 1
        block.receiver.flush()
        frames = []
    for frame in frames:
        if block.on_frame is not None:
            block.on_frame(frame)
        if publish is not None:
            publish(frame)
    block.samples_processed += n
    block.busy = False


class ReceiverSink(gr.sync_block):
    """Stream sink running ``FrameReceiver``; ``done`` is set after ``stop_after_samples``.

    ``samples_processed`` grows only after every frame completed in a work() call has been
    delivered, so a reader that waits on it sees all frames up to that sample (the receiver's
    own ``counters.samples`` grows when a chunk arrives, before it is processed)."""

    def __init__(self, sample_rate_sps: float = 1e6, on_frame: Callable[[ReceivedFrame], None] | None = None,
                 stop_after_samples: int = 0, receiver: FrameReceiver | None = None) -> None:
        gr.sync_block.__init__(self, name="testbed_receiver_sink", in_sig=[np.complex64], out_sig=None)
        self.receiver = receiver or FrameReceiver()
        self.sample_rate_sps = sample_rate_sps
        self.on_frame = on_frame
        self.stop_after_samples = stop_after_samples
        self.done = threading.Event()
        self.errors = 0
        self.samples_processed = 0  # counted after the frames of a work() call are delivered
        self.busy = False
        self.rx_time_tags = self.radio_overflows = 0
        self.power_log: list[tuple[int, float]] | None = None
        self.message_port_register_out(pmt.intern("frames"))

    def work(self, input_items, output_items):
        x = input_items[0]
        receive(self, x, len(x), lambda f: self.message_port_pub(pmt.intern("frames"),
                                                                 frame_to_pdu(f, self.sample_rate_sps)))
        if self.stop_after_samples and self.receiver.counters.samples >= self.stop_after_samples:
            self.receiver.flush()
            self.done.set()
        return len(x)
