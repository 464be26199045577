"""ADALM-PLUTO backend: gr-iio streaming blocks, pyadi-iio for control, libiio for discovery.

gr-iio 3.10.5 signatures (``help(iio.fmcomms2_source_fc32)``)::

    fmcomms2_source_fc32(uri: str, ch_en: list[bool], buffer_size: int)
        .set_frequency(longfrequency: float), .set_samplerate(samplerate: int),
        .set_gain_mode(chan: int, mode: str), .set_gain(chan: int, gain_value: float),
        .set_quadrature(bool), .set_rfdc(bool), .set_bbdc(bool), .set_len_tag_key(str),
        .set_filter_params(filter_source: str, filter_filename: str, fpass: float, fstop: float)
    fmcomms2_sink_fc32(uri: str, ch_en: list[bool], buffer_size: int, cyclic: bool)
        .set_frequency, .set_samplerate, .set_bandwidth(longbandwidth: int),
        .set_attenuation(chan: int, attenuation: float), .set_filter_params, .set_len_tag_key

``ch_en`` has one flag per I or Q converter channel (voltage0/1 = channel 0, voltage2/3 =
channel 1); each enabled pair is one complex64 port. The source block has no bandwidth setter in
3.10.5, so the RX RF bandwidth is set through pyadi-iio (``adi.ad9361.rx_rf_bandwidth``).
TX gain in the config is ``-attenuation`` (the driver's ``hardwaregain``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testbed.config.radio import RadioConfig
from testbed.errors import RadioError
from testbed.radios.base import RadioBackend
from testbed.registry import register

BUFFER_SIZE = 32768  # samples per IIO buffer (gr-iio's default 0x8000)


def channel_enables(channels: list[int]) -> list[bool]:
    """gr-iio ``ch_en`` for AD936x channels: an I and a Q flag per channel up to the highest used."""
    return [ch in channels for ch in range(max(channels) + 1) for _ in "IQ"]


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (libiio prints "ERROR: Unable to create Avahi ..." when no mDNS)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _scan(backend: str) -> dict[str, str]:
    """libiio contexts of one scan backend ("usb" or "ip"): {uri: description}; {} on failure.

    pylibiio's public ``scan_contexts()`` scans every backend at once and raises as soon as one
    fails (the "ip" scan needs the Avahi daemon), so each backend is scanned alone here.
    """
    import ctypes

    import iio

    found: dict[str, str] = {}
    infos = ctypes.POINTER(iio._ContextInfoPtr)()
    try:
        scan = iio._create_scan_context(backend.encode("ascii"), 0)
    except OSError:
        return found
    try:
        with _quiet_stderr():
            count = iio._get_context_info_list(scan, ctypes.byref(infos))
        for i in range(count):
            found[iio._context_info_get_uri(infos[i]).decode()] = \
                iio._context_info_get_description(infos[i]).decode()
        iio._context_info_list_free(infos)
    except OSError:
        pass
    finally:
        iio._destroy_scan_context(scan)
    return found


@register("radio", "pluto")
class PlutoRadio(RadioBackend):
    """ADALM-PLUTO (AD9363) in 1r1t or 2r2t mode."""

    name = "pluto"
    tx_idle = "zeros"

    def available(self) -> tuple[bool, str]:
        """gr-iio, pylibiio and pyadi-iio importable? Reports the libiio version."""
        try:
            import adi  # noqa: F401
            import iio
            from gnuradio import iio as gr_iio  # noqa: F401
        except (ImportError, OSError) as err:
            return False, f"gr-iio / pylibiio / pyadi-iio do not import: {err}"
        return True, "libiio {}.{} ({})".format(*iio.version)

    def discover(self) -> list[dict[str, str]]:
        """Plutos libiio finds over USB and the network (mDNS); [] when none or libiio is missing."""
        try:
            contexts = {**_scan("usb"), **_scan("ip")}
        except (ImportError, OSError, AttributeError):
            return []
        return [{"backend": "pluto", "uri": uri, "description": description}
                for uri, description in contexts.items() if "pluto" in description.lower()]

    def _uri(self, cfg: RadioConfig) -> str:
        """``cfg.args``, or the first Pluto libiio finds when it is empty."""
        self.check_config(cfg)
        if cfg.args:
            return cfg.args
        from gnuradio import iio

        try:
            return iio.get_pluto_uri()
        except RuntimeError as err:
            raise RadioError(f"radio {cfg.name!r} names no URI and {err}") from None

    def make_source(self, cfg: RadioConfig, buffer_size: int = BUFFER_SIZE) -> Any:
        """``iio.fmcomms2_source_fc32`` receiving ``cfg.rx_channels`` with manual gain.

        Parameters
        ----------
        cfg: radio config with backend ``pluto``.
        buffer_size: samples per IIO buffer; larger means fewer USB transfers, more latency.
        """
        from gnuradio import iio

        uri = self._uri(cfg)
        try:
            src = iio.fmcomms2_source_fc32(uri, channel_enables(cfg.rx_channels), buffer_size)
            src.set_len_tag_key("")
            src.set_frequency(cfg.center_freq_hz)
            src.set_samplerate(int(cfg.sample_rate_sps))
            for chan in cfg.rx_channels:
                src.set_gain_mode(chan, "manual")
                src.set_gain(chan, cfg.rx_gain_db)
            src.set_quadrature(True)
            src.set_rfdc(True)
            src.set_bbdc(True)
            src.set_filter_params("Auto", "", 0.0, 0.0)
            if cfg.bandwidth_hz is not None:
                self.control(uri).rx_rf_bandwidth = int(cfg.bandwidth_hz)
        except (RuntimeError, OSError) as err:
            raise RadioError(f"radio {cfg.name!r}: Pluto at {uri!r} cannot be opened: {err}") from None
        return src

    def make_sink(self, cfg: RadioConfig, buffer_size: int = BUFFER_SIZE, cyclic: bool = False) -> Any:
        """``iio.fmcomms2_sink_fc32`` transmitting ``cfg.tx_channels``; attenuation = -tx_gain_db.

        Parameters
        ----------
        cfg: radio config with backend ``pluto``.
        buffer_size: samples per IIO buffer.
        cyclic: repeat the first buffer forever (a test tone) instead of streaming.
        """
        from gnuradio import iio

        uri = self._uri(cfg)
        try:
            sink = iio.fmcomms2_sink_fc32(uri, channel_enables(cfg.tx_channels), buffer_size, cyclic)
            sink.set_len_tag_key("")
            sink.set_frequency(cfg.center_freq_hz)
            sink.set_samplerate(int(cfg.sample_rate_sps))
            if cfg.bandwidth_hz is not None:
                sink.set_bandwidth(int(cfg.bandwidth_hz))
            for chan in cfg.tx_channels:
                sink.set_attenuation(chan, -cfg.tx_gain_db)
            sink.set_filter_params("Auto", "", 0.0, 0.0)
        except (RuntimeError, OSError) as err:
            raise RadioError(f"radio {cfg.name!r}: Pluto at {uri!r} cannot be opened: {err}") from None
        return sink

    def retune(self, block: Any, cfg: RadioConfig, side: str) -> None:
        """``set_frequency`` and the TX attenuation (-tx_gain_db) or manual RX gain per channel."""
        block.set_frequency(int(cfg.center_freq_hz))
        for chan in (cfg.tx_channels if side == "tx" else cfg.rx_channels):
            if side == "tx":
                block.set_attenuation(chan, -cfg.tx_gain_db)
            else:
                block.set_gain(chan, cfg.rx_gain_db)

    @staticmethod
    def control(uri: str) -> Any:
        """A pyadi-iio ``adi.ad9361`` handle on the Pluto at ``uri`` for settings gr-iio lacks."""
        import adi

        return adi.ad9361(uri=uri)
