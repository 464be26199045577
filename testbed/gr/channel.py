"""Channel emulator block: n_tx sample streams in, n_rx out, through ``ChannelMatrixEmulator``
(the same channel definition as the torch face used for training), controllable at run time.

Control (message port ``control``, PMT dicts converted with ``pmt.to_python``, or the Python
method :meth:`ChannelBlock.control` with the same dicts):

    {"cmd": "set_link", "rx": j, "tx": i, "snr_db": x, "gain_db": g, "model": m, ...}
        partial update of link TX i -> RX j: any ChannelSpec field, the others kept
    {"cmd": "set_noise", "rx": j, "noise_var": v}      RX stream j's noise variance per sample
    {"cmd": "set_irs", "phases": [phi_0, ...]}         IRS element phases in radians; with
                                                       "reflecting": false the surface is taken away
    {"cmd": "set_fading_block", "block": b}            links with coherence_samples 0 take fading
                                                       block b (ChannelMatrixEmulator.set_fading_block)

Commands are queued and applied at the start of the next ``work()`` call, in order, so each lands
at an output sample index that ``emulator.changes`` records. A malformed command is counted in
``bad_controls`` and its error kept in ``control_errors`` (the last ``CONTROL_ERRORS_KEPT``); it
never stops the flowgraph.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from testbed.channels.irs import IrsChannel
from testbed.channels.spec import ChannelSpec
from testbed.channels.stream import ChannelMatrixEmulator
from testbed.errors import ConfigError

CONTROL_PORT = "control"
CONTROL_ERRORS_KEPT = 20
COMMANDS = ("set_link", "set_noise", "set_irs", "set_fading_block")
_SPEC_FIELDS = tuple(field.name for field in dataclasses.fields(ChannelSpec))


class ChannelBlock(gr.sync_block):
    """``specs[j][i]`` is the link from TX stream i to RX stream j.

    The other parameters are those of :class:`ChannelMatrixEmulator` (``seed``, ``noise_var``,
    ``irs``, ``irs_links``, ``log_h``).

    Attributes:
        emulator: the emulator (``changes``, ``realised_h()``, ``h_log``).
        bad_controls: number of malformed control commands.
        control_errors: their error messages, the last CONTROL_ERRORS_KEPT.
    """

    def __init__(
        self,
        specs: list[list[ChannelSpec]],
        seed: int = 0,
        noise_var: list[float] | None = None,
        irs: IrsChannel | None = None,
        irs_links: dict[tuple[int, int], tuple[int, int]] | None = None,
        log_h: bool = False,
    ) -> None:
        n_rx, n_tx = len(specs), len(specs[0])
        gr.sync_block.__init__(self, name="testbed_channel", in_sig=[np.complex64] * n_tx,
                               out_sig=[np.complex64] * n_rx)
        self.emulator = ChannelMatrixEmulator(n_tx, n_rx, specs, seed, noise_var=noise_var, irs=irs,
                                              irs_links=irs_links, log_h=log_h)
        self.bad_controls = 0
        self.control_errors: collections.deque[str] = collections.deque(maxlen=CONTROL_ERRORS_KEPT)
        self._pending: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self.message_port_register_in(pmt.intern(CONTROL_PORT))
        self.set_msg_handler(pmt.intern(CONTROL_PORT), self._on_control)

    def control(self, command: dict[str, Any]) -> None:
        """Queue ``command`` (see module docstring); it is applied at the start of the next work()."""
        with self._lock:
            self._pending.append(command)

    def apply_pending(self) -> None:
        """Apply the queued commands in order at the current output sample (work() calls this)."""
        with self._lock:
            commands, self._pending = list(self._pending), collections.deque()
        for command in commands:
            try:
                self._apply(command)
            except (ConfigError, TypeError, ValueError, KeyError) as err:
                self._bad(f"{command!r}: {err}")

    def work(self, input_items, output_items):
        self.apply_pending()
        n = min(len(output_items[0]), *(len(x) for x in input_items))
        ys = self.emulator.process([np.asarray(x[:n]) for x in input_items])
        for out, y in zip(output_items, ys):
            out[:n] = y
        return n

    def _on_control(self, message: Any) -> None:
        """Message handler: convert the PMT and queue it (never raises)."""
        try:
            self.control(pmt.to_python(message))
        except Exception as err:  # a PMT that cannot be converted must not stop the flowgraph
            self._bad(f"{message}: {err}")

    def _bad(self, error: str) -> None:
        with self._lock:
            self.bad_controls += 1
            self.control_errors.append(error)

    def _apply(self, command: Any) -> None:
        """Apply one command dict to the emulator; ConfigError naming what is wrong."""
        if not isinstance(command, dict) or command.get("cmd") not in COMMANDS:
            cmd = command.get("cmd") if isinstance(command, dict) else command
            raise ConfigError(f"channel control cmd {cmd!r} is unknown; allowed: a dict with cmd {', '.join(COMMANDS)}")
        cmd = command["cmd"]
        fields = {key: value for key, value in command.items() if key != "cmd"}
        if cmd == "set_link":
            _require(cmd, fields, ("rx", "tx"), ("rx", "tx", *_SPEC_FIELDS))
            rx, tx = _integer("rx", fields.pop("rx")), _integer("tx", fields.pop("tx"))
            self.emulator.set_link(rx, tx, dataclasses.replace(self.emulator.spec(rx, tx), **fields))
        elif cmd == "set_noise":
            _require(cmd, fields, ("rx", "noise_var"), ("rx", "noise_var"))
            self.emulator.set_noise_var(_integer("rx", fields["rx"]), fields["noise_var"])
        elif cmd == "set_fading_block":
            _require(cmd, fields, ("block",), ("block",))
            self.emulator.set_fading_block(_integer("block", fields["block"]))
        else:
            _require(cmd, fields, ("phases",), ("phases", "reflecting"))
            self.emulator.set_irs_phases(fields["phases"], reflecting=fields.get("reflecting", True))


def _require(cmd: str, fields: dict[str, Any], required: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    """ConfigError unless ``fields`` holds every ``required`` key and only ``allowed`` ones."""
    missing = [key for key in required if key not in fields]
    unknown = sorted(set(fields) - set(allowed))
    if missing or unknown:
        raise ConfigError(
            f"channel control {cmd} has missing {missing} / unknown {unknown} fields; allowed: {', '.join(allowed)}")


def _integer(field: str, value: Any) -> int:
    """An index sent as an int or an integral float (PMT senders differ); ConfigError otherwise."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"channel control {field} {value!r} is invalid; allowed: an integer index")
    return int(value)
