"""Thin GNU Radio blocks: they convert buffers and PDUs and call the pure-numpy code of
``testbed.phy`` and ``testbed.channels``. Importing this package imports gnuradio."""
from testbed.gr.channel import ChannelBlock
from testbed.gr.framer import FramerSource, FrameJob
from testbed.gr.receiver import ReceiverSink

__all__ = ["ChannelBlock", "FrameJob", "FramerSource", "ReceiverSink"]
