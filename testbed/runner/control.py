"""The control plane beside the sample plane: JSON messages with optional numpy arrays over
ZeroMQ (pyzmq), never through the sample sockets.

A message is a multipart ZeroMQ message: part 0 is UTF-8 JSON (a dict with ``cmd`` and a
per-run ``token``), part 1 (optional) an ``.npz`` of named arrays (images, decoded outputs).
Runner -> node commands go over REQ/REP (one request, one reply: every command is
acknowledged, so nothing is lost silently); RX -> TX feedback goes over PUSH/PULL (see
docs/architecture.md "Control messages"). Every socket binds to loopback; a message whose token
is not this run's is refused with an error reply and counted.
"""
from __future__ import annotations

import io
import json
import secrets
import threading
import time
from typing import Any, Callable

import numpy as np
import zmq

from testbed.errors import ProcessError
from testbed.runner.files import json_default

Arrays = dict[str, np.ndarray]
Handler = Callable[[dict[str, Any], Arrays], tuple[dict[str, Any], Arrays]]
POLL_MS = 50
SEND_TIMEOUT_S = 60.0


def new_token() -> str:
    """A per-run secret that every control message carries."""
    return secrets.token_hex(16)


def pack(msg: dict[str, Any], arrays: Arrays | None = None) -> list[bytes]:
    """A multipart message: JSON, then the arrays as one npz when there are any."""
    parts = [json.dumps(msg, default=json_default).encode()]
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        parts.append(buf.getvalue())
    return parts


def unpack(parts: list[bytes]) -> tuple[dict[str, Any], Arrays]:
    msg = json.loads(parts[0].decode())
    arrays = dict(np.load(io.BytesIO(parts[1]))) if len(parts) > 1 else {}
    return msg, arrays


class ControlServer:
    """A node's REP socket: ``serve`` answers requests with ``handler`` until ``stop`` is set.

    A handler exception becomes an ``{"error": ...}`` reply; the node keeps serving.
    """

    def __init__(self, address: str, token: str) -> None:
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(address)
        self.token = token
        self.stop = threading.Event()
        self.refused = 0

    def serve(self, handler: Handler) -> None:
        while not self.stop.is_set():
            if not self._sock.poll(POLL_MS):
                continue
            msg, arrays = unpack(self._sock.recv_multipart())
            if msg.get("token") != self.token:
                self.refused += 1
                self._sock.send_multipart(pack({"error": "refused: wrong or missing run token"}))
                continue
            try:
                reply, out = handler(msg, arrays)
            except Exception as exc:  # reported to the runner, never fatal to the node
                reply, out = {"error": f"{type(exc).__name__}: {exc}"}, {}
            self._sock.send_multipart(pack(reply, out))
        self._sock.close()


class ControlClient:
    """The runner's REQ socket to one node. ``send`` then ``receive`` (so requests to several
    nodes run in parallel); a reply that does not come within the timeout raises ProcessError
    and the socket is rebuilt (a REQ socket cannot send twice without a reply)."""

    def __init__(self, name: str, address: str, token: str) -> None:
        self.name, self.address, self.token = name, address, token
        self._ctx = zmq.Context.instance()
        self._sock = self._connect()
        self._waiting = False

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        return sock

    def send(self, cmd: str, arrays: Arrays | None = None, send_timeout_s: float = SEND_TIMEOUT_S,
             **fields: Any) -> None:
        """Queue a request; ProcessError when the socket takes none within ``send_timeout_s``."""
        if self._waiting:  # the previous request never got its reply
            self._sock.close()
            self._sock = self._connect()
        if not self._sock.poll(int(send_timeout_s * 1000), zmq.POLLOUT):
            raise ProcessError(f"node {self.name} takes no request at {self.address} within {send_timeout_s:g} s")
        self._sock.send_multipart(pack({"cmd": cmd, "token": self.token, **fields}, arrays), flags=zmq.NOBLOCK)
        self._waiting = True

    def receive(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> tuple[dict[str, Any], Arrays]:
        """The reply; ProcessError when ``alive()`` turns false or ``timeout_s`` passes first."""
        deadline = time.monotonic() + timeout_s
        while not self._sock.poll(POLL_MS):
            if not alive():
                raise ProcessError(f"node {self.name} died before answering")
            if time.monotonic() > deadline:
                raise ProcessError(f"node {self.name} did not answer within {timeout_s:g} s")
        self._waiting = False
        msg, arrays = unpack(self._sock.recv_multipart())
        if "error" in msg:
            raise ProcessError(f"node {self.name}: {msg['error']}")
        return msg, arrays

    def request(self, cmd: str, timeout_s: float, arrays: Arrays | None = None,
                alive: Callable[[], bool] = lambda: True, **fields: Any) -> tuple[dict[str, Any], Arrays]:
        self.send(cmd, arrays, **fields)
        return self.receive(timeout_s, alive)

    def close(self) -> None:
        self._sock.close()


class FeedbackSender:
    """RX -> TX feedback: PUSH to every TX's feedback PULL (non-blocking; a full queue is counted)."""

    def __init__(self, addresses: list[str], token: str) -> None:
        ctx = zmq.Context.instance()
        self.token = token
        self.dropped = 0
        self._socks = []
        for address in addresses:
            sock = ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100)
            sock.connect(address)
            self._socks.append(sock)

    def send(self, msg: dict[str, Any]) -> None:
        for sock in self._socks:
            try:
                sock.send_multipart(pack({**msg, "token": self.token}), flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1


class FeedbackReceiver:
    """A TX's feedback PULL: a thread keeps the latest message per sender."""

    def __init__(self, address: str, token: str) -> None:
        self._sock = zmq.Context.instance().socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(address)
        self.token = token
        self.latest: dict[str, dict[str, Any]] = {}
        self.received = self.refused = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self._sock.poll(POLL_MS):
                continue
            msg, _ = unpack(self._sock.recv_multipart())
            if msg.pop("token", None) != self.token:
                self.refused += 1
                continue
            self.received += 1
            self.latest[str(msg.get("from", ""))] = msg
        self._sock.close()


class Drain:
    """Takes the place of a dead RX node on the sample plane: a thread with a PULL socket on
    each of its sample addresses that discards what arrives (and counts the bytes), so the
    emulator's PUSH to it does not block and the other receivers keep their streams."""

    def __init__(self, addresses: list[str]) -> None:
        ctx = zmq.Context.instance()
        self._socks = []
        for address in addresses:
            sock = ctx.socket(zmq.PULL)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(address)
            self._socks.append(sock)
        self.bytes_discarded = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        for sock in self._socks:
            poller.register(sock, zmq.POLLIN)
        while not self.stop.is_set():
            for sock, _ in poller.poll(POLL_MS):
                self.bytes_discarded += sum(len(p) for p in sock.recv_multipart())
        for sock in self._socks:
            sock.close()
