"""Radio backends behind one interface: ``zmq`` (virtual), ``uhd`` (USRP), ``pluto`` (PlutoSDR).

Importing this package registers the backends (``registry.names("radio")``) without importing
any hardware library; those load inside the backends' methods.

    cfg = load_radio_config("firmware_configs/zmq.yaml")
    radio = backend_for(cfg)
    src = radio.make_source(cfg, addresses=[endpoint(port)])
"""
from __future__ import annotations

from testbed.config.radio import RadioConfig
from testbed.radios.base import RadioBackend
from testbed.radios.pluto import PlutoRadio
from testbed.radios.uhd import UhdRadio
from testbed.radios.virtual import VirtualRadio, endpoint, free_tcp_port
from testbed.registry import create


def backend_for(cfg: RadioConfig) -> RadioBackend:
    """The registered backend that drives ``cfg`` (``cfg.backend``)."""
    return create("radio", cfg.backend)


__all__ = ["RadioBackend", "VirtualRadio", "UhdRadio", "PlutoRadio", "backend_for",
           "endpoint", "free_tcp_port"]
