"""Channel emulator block: n_tx sample streams in, n_rx out, through ``ChannelMatrixEmulator``
(the same channel definition as the torch face used for training)."""
from __future__ import annotations

import numpy as np
from gnuradio import gr

from testbed.channels.spec import ChannelSpec
from testbed.channels.stream import ChannelMatrixEmulator


class ChannelBlock(gr.sync_block):
    """``specs[j][i]`` is the link from TX stream i to RX stream j."""

    def __init__(self, specs: list[list[ChannelSpec]], seed: int = 0) -> None:
        n_rx, n_tx = len(specs), len(specs[0])
        gr.sync_block.__init__(self, name="testbed_channel", in_sig=[np.complex64] * n_tx,
                               out_sig=[np.complex64] * n_rx)
        self.emulator = ChannelMatrixEmulator(n_tx, n_rx, specs, seed)

    def work(self, input_items, output_items):
        n = min(len(output_items[0]), *(len(x) for x in input_items))
        ys = self.emulator.process([np.asarray(x[:n]) for x in input_items])
        for out, y in zip(output_items, ys):
            out[:n] = y
        return n
