"""Virtual radio: complex64 sample streams over ZeroMQ PUSH/PULL (gr-zeromq).

A TX side is a ``zeromq.push_sink`` that binds its endpoint; an RX side is a
``zeromq.pull_source`` that connects to it (that is how gr-zeromq 3.10.5 fixes the roles; its
blocks have no ``bind`` argument). PUSH/PULL never drops at the high-water mark, it blocks, and a
PULL that connects late still gets every sample the PUSH queued, so no handshake or sleep is
needed. Endpoints are chosen at run time with :func:`free_tcp_port` and :func:`endpoint`.

gr-zeromq 3.10.5 signatures (``help(zeromq.pull_source)``)::

    pull_source(itemsize, vlen, address, timeout=100, pass_tags=False, hwm=-1)
    push_sink(itemsize, vlen, address, timeout=100, pass_tags=False, hwm=-1)
"""
from __future__ import annotations

import random
import socket
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from testbed.config.radio import RadioConfig
from testbed.errors import RadioError
from testbed.radios.base import RadioBackend
from testbed.registry import register


LOWEST_PORT = 10000
_HANDED_OUT: set[int] = set()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago, below the OS's ephemeral range.

    A port is chosen now and bound later by another process; one from the ephemeral range (what
    ``bind(0)`` gives) can meanwhile be taken as the source port of an outgoing connection (every
    ZeroMQ connect makes one), and the later bind then fails. Ports below the range are never
    handed out that way, and this process never hands out one port twice. Falls back to the
    OS's choice when none below is free.
    """
    low = _ephemeral_low()
    for port in random.Random().sample(range(LOWEST_PORT, low), k=min(64, max(low - LOWEST_PORT, 0))):
        if port in _HANDED_OUT:  # chosen before and perhaps not bound yet: never twice
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    """First port of the OS's ephemeral range (Linux: ip_local_port_range; else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def endpoint(port: int, host: str = "127.0.0.1") -> str:
    """The ZeroMQ address ``tcp://host:port``."""
    return f"tcp://{host}:{port}"


def _bundle(blocks: list[Any], outputs: bool) -> Any:
    """One block for several single-stream blocks: the block itself, or a hier block around them."""
    from gnuradio import gr

    if len(blocks) == 1:
        return blocks[0]
    n = len(blocks)
    none, streams = gr.io_signature(0, 0, 0), gr.io_signature(n, n, gr.sizeof_gr_complex)
    hier = gr.hier_block2("zmq_radio_" + ("source" if outputs else "sink"),
                          none if outputs else streams, streams if outputs else none)
    hier.blocks = blocks  # keep Python references to the children
    for port, block in enumerate(blocks):
        if outputs:
            hier.connect(block, (hier, port))
        else:
            hier.connect((hier, port), block)
    return hier


@register("radio", "zmq")
class VirtualRadio(RadioBackend):
    """ZMQ virtual radio: one PUSH (TX) or PULL (RX) socket per channel."""

    name = "zmq"

    def available(self) -> tuple[bool, str]:
        """gr-zeromq importable?"""
        try:
            from gnuradio import gr, zeromq  # noqa: F401
        except ImportError as err:
            return False, f"gnuradio.zeromq does not import: {err}"
        return True, f"gr-zeromq {gr.version()}"

    def discover(self) -> list[dict[str, str]]:
        """Always []: virtual radios are made on demand, not found."""
        return []

    def _addresses(self, cfg: RadioConfig, addresses: Sequence[str], channels: list[int]) -> list[str]:
        self.check_config(cfg)
        addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if len(addresses) != len(channels):
            raise RadioError(f"radio {cfg.name!r} has {len(channels)} channel(s) {channels} "
                             f"but {len(addresses)} ZMQ address(es) were given")
        return addresses

    def make_source(self, cfg: RadioConfig, addresses: Sequence[str] | str = (),
                    timeout_ms: int = 100, hwm: int = -1) -> Any:
        """PULL sources connecting to ``addresses`` (one per RX channel), complex64 out.

        Parameters
        ----------
        cfg: radio config with backend ``zmq``.
        addresses: ``tcp://host:port`` of the PUSH sinks feeding each RX channel.
        timeout_ms: receive poll timeout; the source returns no items when it expires.
        hwm: ZeroMQ high-water mark in messages (-1: ZeroMQ's default).
        """
        from gnuradio import gr, zeromq

        blocks = [zeromq.pull_source(gr.sizeof_gr_complex, 1, address, timeout_ms, False, hwm)
                  for address in self._addresses(cfg, addresses, cfg.rx_channels)]
        return _bundle(blocks, outputs=True)

    def make_sink(self, cfg: RadioConfig, addresses: Sequence[str] | str = (),
                  timeout_ms: int = 100, hwm: int = -1) -> Any:
        """PUSH sinks binding ``addresses`` (one per TX channel), complex64 in.

        Parameters
        ----------
        cfg: radio config with backend ``zmq``.
        addresses: ``tcp://host:port`` each sink binds; use ``endpoint(free_tcp_port())``.
        timeout_ms: send timeout of the socket.
        hwm: ZeroMQ high-water mark in messages (-1: ZeroMQ's default).
        """
        from gnuradio import gr, zeromq

        blocks = [zeromq.push_sink(gr.sizeof_gr_complex, 1, address, timeout_ms, False, hwm)
                  for address in self._addresses(cfg, addresses, cfg.tx_channels)]
        return _bundle(blocks, outputs=False)
