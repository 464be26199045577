"""USRP backend (B200/B210, X310, N210) through gr-uhd, discovery through python3-uhd.

Debian's ``python3-uhd`` (``import uhd``) and ``gnuradio.uhd`` bind the same C++ types, and
whichever is imported second fails ("type ... is already registered"). So flowgraph blocks come
from ``gnuradio.uhd`` in this process, and discovery runs ``uhd.find("")`` in a child process.

gr-uhd 3.10 signatures used::

    usrp_source(device_addr: str, stream_args: stream_args_t, issue_stream_cmd_on_start=True)
    usrp_sink(device_addr: str, stream_args: stream_args_t, tsb_tag_name="")
    stream_args(cpu_format="", otw_format="", args=device_addr_t(), channels=[])
    set_samp_rate(rate), set_center_freq(freq, chan), set_gain(gain, chan),
    set_antenna(ant, chan), set_bandwidth(bw, chan), set_clock_source(src, mboard=0),
    set_time_source(src, mboard=0)
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from testbed.config.radio import UHD_TYPES, RadioConfig
from testbed.errors import RadioError
from testbed.radios.base import RadioBackend
from testbed.registry import register

_FIND = "import json, uhd; print(json.dumps([a.to_dict() for a in uhd.find('')]))"
DISCOVERY_TIMEOUT_S = 30.0
TX_ANTENNA = "TX/RX"


def device_args(cfg: RadioConfig) -> str:
    """UHD device address of ``cfg``: its ``args`` with ``type=`` added when it names none."""
    pairs = [item for item in cfg.args.split(",") if item.strip()]
    if not any(item.split("=", 1)[0].strip() == "type" for item in pairs):
        pairs.insert(0, f"type={UHD_TYPES[cfg.device]}")
    return ",".join(pairs)


@register("radio", "uhd")
class UhdRadio(RadioBackend):
    """Ettus USRPs through UHD."""

    name = "uhd"
    tx_idle = "burst"

    def available(self) -> tuple[bool, str]:
        """gr-uhd importable? Reports the UHD version."""
        try:
            from gnuradio import uhd
        except ImportError as err:
            return False, f"gnuradio.uhd does not import: {err}"
        return True, f"UHD {uhd.get_version_string()}"

    def discover(self) -> list[dict[str, str]]:
        """USRPs UHD finds on USB and the network (``uhd.find("")`` in a child process)."""
        try:
            done = subprocess.run([sys.executable, "-c", _FIND], capture_output=True, text=True,
                                  timeout=DISCOVERY_TIMEOUT_S, check=False)
            found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            return []
        return [{"backend": "uhd", **device} for device in found]

    def watch_sink(self, tb: Any, sink: Any) -> Any:
        """A RadioEventCounter on the usrp_sink's ``async_msgs`` (underflows, late packets)."""
        from testbed.gr.radio_events import RadioEventCounter

        counter = RadioEventCounter()
        tb.msg_connect((sink, "async_msgs"), (counter, "in"))
        return counter

    def retune(self, block: Any, cfg: RadioConfig, side: str) -> None:
        """``set_center_freq`` and ``set_gain`` on every channel of a usrp_sink/usrp_source."""
        channels = cfg.tx_channels if side == "tx" else cfg.rx_channels
        for chan in range(len(channels)):
            block.set_center_freq(cfg.center_freq_hz, chan)
            block.set_gain(cfg.tx_gain_db if side == "tx" else cfg.rx_gain_db, chan)

    def _open(self, cfg: RadioConfig, block: str, channels: list[int], otw_format: str) -> Any:
        from gnuradio import uhd

        self.check_config(cfg)
        args = device_args(cfg)
        stream_args = uhd.stream_args(cpu_format="fc32", otw_format=otw_format, channels=channels)
        try:
            usrp = getattr(uhd, block)(args, stream_args)
            usrp.set_clock_source(cfg.clock_source, 0)
            usrp.set_time_source(cfg.time_source, 0)
            usrp.set_samp_rate(cfg.sample_rate_sps)
        except RuntimeError as err:
            reason = " ".join(str(err).split())
            raise RadioError(f"radio {cfg.name!r}: UHD cannot open {args!r}: {reason}") from None
        return usrp

    def make_source(self, cfg: RadioConfig, otw_format: str = "sc16") -> Any:
        """``uhd.usrp_source`` streaming ``cfg.rx_channels`` as complex64.

        Parameters
        ----------
        cfg: radio config with backend ``uhd``.
        otw_format: over-the-wire sample format, ``sc16`` or ``sc8`` (double rate on N210).
        """
        usrp = self._open(cfg, "usrp_source", cfg.rx_channels, otw_format)
        for chan in range(len(cfg.rx_channels)):
            usrp.set_center_freq(cfg.center_freq_hz, chan)
            usrp.set_gain(cfg.rx_gain_db, chan)
            if cfg.antenna is not None:
                usrp.set_antenna(cfg.antenna, chan)
            if cfg.bandwidth_hz is not None:
                usrp.set_bandwidth(cfg.bandwidth_hz, chan)
        return usrp

    def make_sink(self, cfg: RadioConfig, otw_format: str = "sc16") -> Any:
        """``uhd.usrp_sink`` transmitting ``cfg.tx_channels`` from complex64 (antenna TX/RX).

        Parameters
        ----------
        cfg: radio config with backend ``uhd``.
        otw_format: over-the-wire sample format, ``sc16`` or ``sc8``.
        """
        usrp = self._open(cfg, "usrp_sink", cfg.tx_channels, otw_format)
        for chan in range(len(cfg.tx_channels)):
            usrp.set_center_freq(cfg.center_freq_hz, chan)
            usrp.set_gain(cfg.tx_gain_db, chan)
            usrp.set_antenna(TX_ANTENNA, chan)
            if cfg.bandwidth_hz is not None:
                usrp.set_bandwidth(cfg.bandwidth_hz, chan)
        return usrp
