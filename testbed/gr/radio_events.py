"""Counts a radio's asynchronous TX events: gr-uhd ``usrp_sink`` publishes each one on its
``async_msgs`` port as ``(uhd_async_msg . {channel, time_spec, event_code})``, event_code one of
burst_ack, underflow, underflow_in_packet, seq_error, seq_error_in_burst, time_error (late).
"""
from __future__ import annotations

import threading

import pmt
from gnuradio import gr

EVENT_CODE = pmt.intern("event_code")


class RadioEventCounter(gr.basic_block):
    """Message sink: ``counts`` maps each event code seen on ``in`` to how often it came; a
    message of another shape is counted under ``"unknown"`` (never fatal)."""

    def __init__(self) -> None:
        gr.basic_block.__init__(self, name="testbed_radio_events", in_sig=None, out_sig=None)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg: pmt.pmt_t) -> None:
        info = pmt.cdr(msg) if pmt.is_pair(msg) else msg
        code = pmt.dict_ref(info, EVENT_CODE, pmt.PMT_NIL) if pmt.is_dict(info) else pmt.PMT_NIL
        key = pmt.symbol_to_string(code) if pmt.is_symbol(code) else "unknown"
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
