"""Multi-antenna RX block: M sample streams in, through ``testbed.phy.mimo_receiver``
(time-orthogonal training, per-subcarrier LS channel per antenna, LMMSE detection of up to 8
streams, or with ``flows`` only those of these header users); every stream's frame goes to
``on_frame``. The counterpart of ``ReceiverSink``."""
from __future__ import annotations

from typing import Callable

import numpy as np
from gnuradio import gr

from testbed.gr.receiver import receive
from testbed.phy.mimo_receiver import MimoFrameReceiver, MimoReceivedFrame


class MimoReceiverSink(gr.sync_block):
    """Sink of ``n_antennas`` complex64 streams; ``samples_processed`` counts samples whose
    frames have been delivered (see ``ReceiverSink``)."""

    def __init__(self, n_antennas: int, on_frame: Callable[[MimoReceivedFrame], None] | None = None,
                 flows: frozenset[int] | None = None) -> None:
        gr.sync_block.__init__(self, name="testbed_mimo_receiver_sink", in_sig=[np.complex64] * n_antennas,
                               out_sig=None)
        self.receiver = MimoFrameReceiver(n_antennas=n_antennas, flows=flows)
        self.on_frame = on_frame
        self.errors = 0
        self.samples_processed = 0
        self.busy = False
        self.rx_time_tags = self.radio_overflows = 0
        self.power_log: list[tuple[int, float]] | None = None

    def work(self, input_items, output_items):
        n = min(len(x) for x in input_items)
        receive(self, [np.asarray(x[:n]) for x in input_items], n)
        return n
