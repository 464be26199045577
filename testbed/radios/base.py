"""The one interface every radio backend implements (virtual ZMQ, UHD, Pluto).

A backend turns a validated :class:`testbed.config.radio.RadioConfig` into GNU Radio blocks:
``make_source`` gives a block with one complex64 output per entry of ``cfg.rx_channels``,
``make_sink`` a block with one complex64 input per entry of ``cfg.tx_channels``. Hardware
libraries (gnuradio, uhd, iio, adi) are imported inside the methods only, so importing
``testbed.radios`` works on a machine without them and ``available()`` can say what is missing.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from testbed.config.radio import RadioConfig
from testbed.errors import RadioError


class RadioBackend(ABC):
    """A family of radios behind one API; registered as ``register("radio", name)``."""

    name: str
    tx_idle: str = "pause"
    """What a TX stream does between batches: ``"pause"`` (a virtual radio's stream just waits),
    ``"burst"`` (tx_sob/tx_eob tags around every batch, the device idles between bursts: UHD),
    ``"zeros"`` (zeros keep the device's buffers fed: Pluto, whose sink has no burst mode)."""

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether the backend's libraries load, and a one-line reason (versions or what failed)."""

    @abstractmethod
    def discover(self) -> list[dict[str, str]]:
        """Devices attached now, one dict of identifying fields each; [] when none. Never raises."""

    @abstractmethod
    def make_source(self, cfg: RadioConfig, **kwargs: Any) -> Any:
        """A GNU Radio block with one complex64 output per RX channel of ``cfg``."""

    @abstractmethod
    def make_sink(self, cfg: RadioConfig, **kwargs: Any) -> Any:
        """A GNU Radio block with one complex64 input per TX channel of ``cfg``."""

    def watch_sink(self, tb: Any, sink: Any) -> Any | None:
        """A block in ``tb`` counting ``sink``'s device events (underflows, late packets), with
        ``counts`` (dict event -> count); None when the device reports none."""
        return None

    def retune(self, block: Any, cfg: RadioConfig, side: str) -> None:
        """Live: apply ``cfg``'s centre frequency and gain (``side`` "tx" or "rx") to ``block``,
        a sink or source this backend made."""
        raise RadioError(f"radio {cfg.name!r}: the {self.name!r} backend has no RF to retune")

    def check_config(self, cfg: RadioConfig) -> None:
        """RadioError unless ``cfg`` is meant for this backend."""
        if cfg.backend != self.name:
            raise RadioError(f"radio {cfg.name!r} has backend {cfg.backend!r}; "
                             f"the {self.name!r} backend cannot drive it")
