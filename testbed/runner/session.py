"""A persistent network run: one process set per scenario, stepped over the control plane.

The session starts every node once (TX nodes with their encoders, RX nodes with their users'
decoders, the channel emulator), then for every sweep point retunes the emulator's links and
for every batch asks each TX to encode and frame, pads all TX streams to one batch length (the
emulator consumes every TX stream in lockstep), and asks each RX to collect: the RX replies per
user once the batch's last sample has reached it. The runner scores each user against the
sources and writes one row per user and sweep point (docs/architecture.md "Results").

With ``adapt: closed_loop`` (MU-MIMO uplink, virtual radios) each batch is one fading block: the
emulator is moved to block ``batch`` (``set_fading_block``), every TX sends its stream of a
short probe frame, the RX feeds each TX the channel column and SNR it estimated from it, and
only then are the TXs asked to encode (told that CSI) and send the batch, through the same H.

Over the air (testbed.runner.air) there is no emulator: each TX opens its radio's sink, each RX
its radio's source, and an RX collects a batch from the sample it marked just before the batch
was sent.

A node that dies is named; the users it served get ``status: "failed"`` rows with null metrics
and the reason, the others go on. The emulator needs every TX stream, so a dead TX or a dead
emulator stops the sample plane and every row after it fails.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from testbed import registry
from testbed.channels.spec import FADING_MODELS
from testbed.config.scenario import Scenario, check_closed_loop
from testbed.config.topology import build_irs_channel, stream_matrix
from testbed.errors import ConfigError, ProcessError, RadioError
from testbed.phy.frame import FrameLayout
from testbed.phy.mimo_frame import slot_len
from testbed.runner.chain import GAP_SAMPLES, TAIL_SAMPLES
from testbed.runner.air import air_mode, latency_samples
from testbed.runner.control import ControlClient, Drain, new_token
from testbed.runner.decoding import decoded_of
from testbed.runner.files import write_json
from testbed.runner.graph import Graph, NodeProcess, build_graph, slotted, tx_mode
from testbed.runner.launch import Launcher
from testbed.runner.results import Results, UserBatch
from testbed.systems.base import Items, precodes

READY_TIMEOUT_S = 120.0


@dataclass
class SessionHooks:
    """Optional callbacks: after the processes start (monitoring, fault injection in tests),
    and before each batch (live control, e.g. changing a link's SNR mid-run)."""

    on_start: Callable[["Session"], None] | None = None
    before_batch: Callable[["Session", int, int], None] | None = None


@dataclass
class Session:
    """Runs ``scenario`` with its items in ``workdir``; see module docstring."""

    scenario: Scenario
    items: Items
    workdir: Path
    progress: Callable[[str], None] = lambda s: None
    hooks: SessionHooks = field(default_factory=SessionHooks)
    on_point: Callable[[Results], None] = lambda results: None
    user_items: dict[str, Items] | None = None  # each user's items (its ``images``); None: ``items`` for all

    def __post_init__(self) -> None:
        check_closed_loop(self.scenario)
        check_radios(self.scenario)  # both before any model is loaded or process started
        self.air = air_mode(self.scenario)
        self.topo = self.scenario.network()
        self.radio = self.scenario.radio_config(self.topo.nodes[0].radio if self.air else None)
        self.systems = {u.name: registry.create("system", self.scenario.system,
                                                params={**self.scenario.system_params, **self.topo.user_params(u)},
                                                seed=self.scenario.seed) for u in self.topo.users}
        self.token = new_token()
        self.slot = self._slot_samples()
        self.graph: Graph = build_graph(self.scenario, self.token, self.slot, self.radio.sample_rate_sps, self.air)
        self.user_items = self.user_items or {u.name: self.items for u in self.topo.users}
        self.tx_items = {tx.name: union_items([self.user_items[u] for u in self.graph.users_of[tx.name]])
                         for tx in self.graph.tx()}
        self.launcher = Launcher(self.workdir)
        self.clients: dict[str, ControlClient] = {}
        self.dead: dict[str, str] = {}
        self.drains: list[Drain] = []
        self.plane_stopped: str | None = None
        self.sample = 0
        self.batch_count = 0
        self.point_index, self.point = 0, dict(self.topo.points()[0])
        self.irs_state = "zero"  # what the software IRS does now (rows' irs_phases): a schedule kind or "custom"
        self.prefetched = False
        self.skip_points: set[int] = set()  # planned points an earlier run completed (resume)
        self.user_params: dict[str, dict[str, Any]] = {}  # live set_params per user
        self.chain_s: list[float] = []
        self.record_log: list[dict[str, Any]] = []
        self.batch_h: np.ndarray | None = None  # closed loop: the genie H of the batch's fading block
        self.results = Results(self.topo, {n: s.label() for n, s in self.systems.items()},
                               tags={n: s.row_tags() for n, s in self.systems.items()})

    def _slot_samples(self) -> int:
        fading = [lk for lk in self.topo.links if lk.model in FADING_MODELS and lk.coherence_samples == 0]
        if not fading or self.air or self.closed_loop:  # the closed loop holds one fading block per batch
            return 0
        longest = max(s.max_frame_samples() for s in self.systems.values())
        beams = precodes(next(iter(self.systems.values())))
        modes = [tx_mode(self.topo, n.name, beams) for n in self.topo.tx_nodes()]
        streams = max(n_streams if mode in ("stream", "beamformed") else 1 for mode, _, n_streams in modes)
        longest += (streams - 1) * slot_len(FrameLayout())  # the other streams' training slots
        spread = max(math.ceil(lk.delay_samples) + len(lk.taps) for lk in fading)
        return longest + GAP_SAMPLES + spread + 64

    # -- processes -------------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        order = sorted(self.graph.processes.values(), key=lambda p: p.role != "rx_node")
        for node in order:
            self.launcher.start(node)
            self.clients[node.name] = ControlClient(node.name, node.control, self.token)
        for name in self.clients:
            self._ask(name, "hello", READY_TIMEOUT_S)
        if self.hooks.on_start is not None:
            self.hooks.on_start(self)

    def _ask(self, name: str, cmd: str, timeout_s: float, **fields: Any) -> tuple[dict, dict] | None:
        self._send(name, cmd, **fields)
        return self._answer(name, timeout_s)

    def _send(self, name: str, cmd: str, arrays: dict | None = None, **fields: Any) -> None:
        """Send a request to ``name``; a node that takes none is recorded as failed."""
        try:
            self.clients[name].send(cmd, arrays, **fields)
        except ProcessError as err:
            if name not in self.dead:
                self._mark_dead(name, self.launcher.reason(name) if not self.launcher.alive(name) else str(err))

    def _answer(self, name: str, timeout_s: float) -> tuple[dict, dict] | None:
        """The reply of ``name``, or None after recording why it has none."""
        try:
            return self.clients[name].receive(timeout_s, alive=lambda: self.watch(name))
        except ProcessError as err:
            if name not in self.dead:
                self._mark_dead(name, str(err))
            return None

    def watch(self, name: str) -> bool:
        """Record every process that has died since the last look; whether ``name`` is alive."""
        for other in self.launcher.procs:
            if other not in self.dead and not self.launcher.alive(other):
                self._mark_dead(other, self.launcher.reason(other))
        return name not in self.dead

    def _mark_dead(self, name: str, reason: str) -> None:
        """A dead RX is replaced by a drain on the sample plane (the emulator keeps streaming to
        the other receivers); a dead TX or emulator stops the sample plane."""
        self.dead[name] = reason
        node = self.graph.processes[name]
        if node.role == "rx_node":
            if node.spec["inputs"]:  # over the air nothing waits on a dead RX's samples
                self.drains.append(Drain(node.spec["inputs"]))
        else:
            self.plane_stopped = self.plane_stopped or f"sample plane stopped: {reason}"

    def stop(self, fast: bool = False) -> dict[str, dict]:
        """Stop every process: ask each to stop (``fast``: terminate at once, as after Ctrl-C,
        when a node may be busy with a request it will not finish); their final statuses."""
        for name, client in self.clients.items():
            if not fast and name not in self.dead and self.launcher.alive(name):
                try:
                    client.request("stop", 10.0, alive=lambda n=name: self.launcher.alive(n))
                except ProcessError:
                    pass
            client.close()
        statuses = self.launcher.stop_all(terminate=fast)
        for drain in self.drains:
            drain.stop.set()
        return statuses

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Results:
        """Every sweep point and batch; the per-user results (processes stopped at the end)."""
        try:
            self.start()
            for _ in self.iterate():
                pass
        finally:
            self.results.processes = self.stop()
        return self.results

    def plan(self) -> list[tuple[int, dict[str, float], int]]:
        """(point index, point, batch within the point) of every batch the scenario asks for,
        but the points in ``skip_points``."""
        return [(index, point, batch) for index, point in enumerate(self.topo.points())
                if index not in self.skip_points for batch in range(self.scenario.batches)]

    def iterate(self):
        """Run the planned batches of the started session, yielding (point index, point, batch
        within the point) after each. A live change (``retune``) holds until the next planned
        point and gives the batches after it a point index of their own."""
        steps = self.plan()
        for n, (index, point, batch) in enumerate(steps):
            if batch == 0:  # a resumed run numbers its batches as the whole run would
                self.batch_count = max(self.batch_count, index * self.scenario.batches)
                self.progress(f"{self.scenario.name}: point {index} " +
                              ", ".join(f"{k} {v:g} dB" for k, v in point.items()))
                self.set_point(point)
                self.point_index, self.point = index, dict(point)
            self._irs_schedule()
            if self.hooks.before_batch is not None:
                self.hooks.before_batch(self, index, batch)
            following = None
            if n + 1 < len(steps) and self.pipelined:
                following = self.point if steps[n + 1][2] else steps[n + 1][1]
            self.prefetched = self.run_batch(self.point_index, self.point, self.batch_count, self.prefetched,
                                             following)
            self.batch_count += 1
            if batch == self.scenario.batches - 1:
                self.on_point(self.results)
            yield self.point_index, self.point, batch

    def set_point(self, point: dict[str, float]) -> None:
        """Retune every emulator link and noise to ``point`` (applied at the next sample); over
        the air there is nothing to retune (one point, air_mode)."""
        if self.air:
            return
        self.control_channel(self._changes(None, point))

    def retune(self, snr_db: dict[str, float]) -> list[dict[str, Any]]:
        """Live: set links' SNR (``{"tx->rx": dB}``) from the emulator's next sample on, sending
        only the links and noises that change; the batches after it get a new point index.
        Returns the changes sent (the emulator logs the sample each lands at)."""
        if self.air:
            raise RadioError("over the air the SNR is the air's: change the radio gains instead")
        unknown = sorted(set(snr_db) - {lk.key for lk in self.topo.links})
        if unknown:
            raise ConfigError(f"link {unknown}: not in the topology; allowed: {[lk.key for lk in self.topo.links]}")
        point = {**self.point, **{k: float(v) for k, v in snr_db.items()}}
        changes = self._changes(self.point, point)
        self.drop_prefetch()  # the next batch is encoded for the new nominal SNR
        self.control_channel(changes)
        self.new_point(point)
        return changes

    def set_params(self, users: list[str], params: dict[str, Any]) -> None:
        """Live: system parameters (e.g. ``model``) of ``users`` from the next batch on: their
        decoders at their RX nodes and the encoder of every TX node all of whose users are listed
        (a TX serving others keeps its encoder). ConfigError for an unknown user or a bad value."""
        known = {u.name: u for u in self.topo.users}
        unknown = sorted(set(users) - set(known))
        if unknown:
            raise ConfigError(f"user {unknown}: not in the topology; allowed: {sorted(known)}")
        system = registry.get("system", self.scenario.system)
        for name in users:
            merged = {**self.scenario.system_params, **self.topo.user_params(known[name]),
                      **self.user_params.get(name, {}), **params}
            system.validate_params(merged, f"set_params: user {name}")
        self.drop_prefetch()  # the next batch is encoded with the new parameters
        for tx in self.graph.tx():
            if set(self.graph.users_of[tx.name]) <= set(users):
                self._ask(tx.name, "params", 30.0, params=params)
        for rx in self.graph.rx():
            for user in rx.spec["users"]:
                if user["name"] in users:
                    self._ask(rx.name, "params", 30.0, user=user["name"], params=params)
        for name in users:
            self.user_params[name] = {**self.user_params.get(name, {}), **params}
            self.systems[name] = registry.create("system", self.scenario.system, seed=self.scenario.seed, params={
                **self.scenario.system_params, **self.topo.user_params(known[name]), **self.user_params[name]})
            self.results.labels[name] = self.systems[name].label()
            self.results.tags[name] = self.systems[name].row_tags()
        self.new_point(dict(self.point))

    def set_radio(self, node: str, changes: dict[str, float]) -> int | None:
        """Live, over the air: new ``center_freq_hz``, ``tx_gain_db`` or ``rx_gain_db`` of ``node``'s
        radio, checked against the device's limits in the node; the node's own sample count
        (samples sent by its TX, processed by its RX) when the first took effect."""
        if not self.air:
            raise RadioError(f"node {node}: a virtual radio has no RF to retune; allowed: over the air "
                             "(on virtual radios set a link's SNR)")
        procs = [p for p in self.graph.processes.values() if p.spec.get("node") == node]
        if not procs:
            raise ConfigError(f"node {node!r}: not in the topology; allowed: {[n.name for n in self.topo.nodes]}")
        sides = {"tx_node": "tx_", "rx_node": "rx_"}
        applies = {k for k in changes for p in procs if k == "center_freq_hz" or k.startswith(sides[p.role])}
        if set(changes) - applies:
            raise ConfigError(f"node {node}: {sorted(set(changes) - applies)} do not apply to its radio side(s); "
                              "allowed: center_freq_hz, tx_gain_db (a TX), rx_gain_db (an RX)")
        samples = []
        for proc in procs:
            mine = {k: v for k, v in changes.items() if k == "center_freq_hz" or k.startswith(sides[proc.role])}
            if not mine:
                continue
            reply = self._ask(proc.name, "radio", 30.0, changes=mine)
            if reply is None:
                raise ProcessError(f"node {node}: process {proc.name} gave no answer to the radio change")
            if "error" in reply[0]:
                raise RadioError(f"node {node}: {reply[0]['error']}")
            proc.spec["radio"] = reply[0]["radio"]
            samples.append(int(reply[0]["sample"]))
        return min(samples) if samples else None

    def new_point(self, point: dict[str, float]) -> None:
        """The batches from the next on belong to a point index of their own."""
        self.point_index, self.point = max([*self.results.points, self.point_index]) + 1, point

    def drop_prefetch(self) -> None:
        """Take the TXs' reply to an encode already asked for the next batch (pipelining), so the
        next batch is encoded anew, after a live change."""
        if self.prefetched:
            self._encoded()
            self.prefetched = False

    def _changes(self, old: dict[str, float] | None, new: dict[str, float]) -> list[dict[str, Any]]:
        """Emulator commands taking every link and noise from point ``old`` (None: unknown) to ``new``."""
        def commands(point):
            matrix = slotted(stream_matrix(self.topo, point, self.radio.sample_rate_sps), self.slot)
            links = [{"cmd": "set_link", "rx": j, "tx": i, "snr_db": s.snr_db, "gain_db": s.gain_db}
                     for j, row in enumerate(matrix.specs) for i, s in enumerate(row)]
            return links + [{"cmd": "set_noise", "rx": j, "noise_var": nv} for j, nv in enumerate(matrix.noise_var)]

        after = commands(new)
        return after if old is None else [c for c, b in zip(after, commands(old)) if c != b]

    def _irs_schedule(self) -> None:
        """Apply the IRS steps due before this batch (phases land at a sample the channel logs).
        A step after the first batch of a point starts a point index of its own (as a live
        ``set_irs`` does), so every row is measured under one surface state, named in its
        ``irs_phases``."""
        if self.topo.irs is None:
            return
        for step in self.topo.irs.schedule:
            if step.batch == self.batch_count:
                self.control_channel([self.irs_command(step.phases, step.link, step.batch)])
                if (self.point_index, self.topo.users[0].name) in self.results.batches:
                    self.new_point(dict(self.point))
                self.irs_state = step.phases
        self.results.irs_at.setdefault(self.point_index, self.irs_state)

    def irs_command(self, kind: str, link: str | None = None, draw: int = 0) -> dict[str, Any]:
        """The emulator's ``set_irs`` for phases of ``kind`` (:meth:`irs_phases`), or for ``"off"``
        the surface taken away (``reflecting`` false: the IRS links keep their direct paths)."""
        if kind == "off":
            return {"cmd": "set_irs", "phases": np.zeros(self.irs_channel[0].n_elements).tolist(),
                    "reflecting": False}
        return {"cmd": "set_irs", "phases": self.irs_phases(kind, link, draw).tolist()}

    @cached_property
    def irs_channel(self) -> tuple[Any, int | None]:
        """(the emulator's IRS channel, built once from the scenario, its phase bits): the
        registered ``topology.irs.channel`` (1-bit) or the testbed's IrsChannel."""
        from testbed.config.irs import IrsConfig

        if self.topo.irs is None:
            raise ConfigError("irs phases: the scenario has no topology.irs; allowed: a scenario with an IRS")
        if self.topo.irs.channel is not None:
            return build_irs_channel(self.topo, self.scenario.seed), 1
        config = IrsConfig.model_validate(self.topo.irs_config())
        return config.channel(self.scenario.seed), config.phase_bits

    def irs_phases(self, kind: str, link: str | None = None, draw: int = 0) -> np.ndarray:
        """IRS phases (radians, float (n_elements,)) of ``kind``: ``"zero"``, ``"random"`` (draw
        ``draw``, uniform, seeded by the scenario's seed), ``"optimal"`` (the quantised
        co-phasing of ``link``, default the IRS's first link, from the same IRS channel as the
        emulator's) or ``"trained"`` (the phases the system's model learned, ``System.irs_phases``)."""
        channel, bits = self.irs_channel
        if kind == "zero":
            return np.zeros(channel.n_elements)
        if kind == "random":
            return np.random.default_rng([self.scenario.seed, draw]).uniform(0, 2 * np.pi, channel.n_elements)
        if kind == "trained":
            return self._trained_phases(channel.n_elements)
        if kind != "optimal":
            raise ConfigError(f"irs phases {kind!r} are unknown; allowed: zero, random, optimal, trained")
        rx, tx = self.topo.irs_pair(link or self.topo.irs.links[0])
        return channel.best_phases(rx, tx, block=0, bits=bits)

    def _trained_phases(self, n_elements: int) -> np.ndarray:
        """The phases of the first user's system that has trained ones; ConfigError otherwise."""
        for system in self.systems.values():
            phases = system.irs_phases() if hasattr(system, "irs_phases") else None
            if phases is not None:
                phases = np.asarray(phases, np.float64)
                if phases.shape != (n_elements,):
                    raise ConfigError(f"irs phases trained: the model's {phases.size} phases do not fit the "
                                      f"surface's {n_elements} elements; allowed: a model trained for this surface")
                return phases
        raise ConfigError(f"irs phases trained: system {self.scenario.system!r} has no trained IRS phases; "
                          "allowed: zero, random, optimal, off")

    def control_channel(self, changes: list[dict[str, Any]]) -> None:
        if "channel" not in self.dead:
            self._ask("channel", "control", 30.0, changes=changes)

    @property
    def pipelined(self) -> bool:
        """Whether the TXs encode the next batch while the RXs decode this one: not when the
        encoder waits for the feedback on this batch."""
        return self.scenario.adapt == "nominal"

    @property
    def closed_loop(self) -> bool:
        """Whether every batch is probed first and encoded for the CSI fed back (``adapt: closed_loop``)."""
        return self.scenario.adapt == "closed_loop"

    def run_batch(self, index: int, point: dict[str, float], batch: int, prefetched: bool = False,
                  following: dict[str, float] | None = None) -> bool:
        """Encode (unless ``prefetched``), frame, send and collect batch number ``batch`` (counted
        over the whole run). With ``following`` (the next batch's point) the TXs are asked to
        encode the next batch right after this one is sent; returns whether they were.
        ``chain_s`` gets the seconds from here to the last RX reply (no scoring)."""
        start = time.perf_counter()
        if self.closed_loop:
            self._probe(batch)
        if not prefetched:
            self._request_encode(point, batch)
        encoded = self._encoded()
        total, asked_next = 0, False
        if self.plane_stopped is None:
            samples = self._frame(encoded)
            if self.plane_stopped is None:
                total = max(samples) + TAIL_SAMPLES
                total = -(-total // self.slot) * self.slot if self.slot else total
                self._mark_receivers()
                for tx in self.graph.tx():
                    self._ask(tx.name, "send", 30.0, total_samples=total)
                if following is not None and self.plane_stopped is None:
                    self._request_encode(following, batch + 1)
                    asked_next = True
        self._collect(index, point, batch, encoded, total, start)
        return asked_next

    def _probe(self, batch: int) -> None:
        """closed_loop: move the emulator's links without a coherence time to fading block
        ``batch``, send every uplink TX's stream of the batch's probe frame (padded as a batch)
        and have the RX feed each TX the channel column and SNR it estimated (``collect`` with
        ``probe``); keeps the genie H of the block in ``batch_h`` (None when the plane stopped)."""
        self.batch_h = None
        self.control_channel([{"cmd": "set_fading_block", "block": batch}])
        if self.plane_stopped is not None:
            return
        for tx in self.graph.tx():
            self._send(tx.name, "probe", batch=batch)
        replies = [self._answer(tx.name, 30.0) for tx in self.graph.tx()]
        if self.plane_stopped is not None:
            return
        total = max(r[0]["samples"] for r in replies) + TAIL_SAMPLES
        for tx in self.graph.tx():
            self._ask(tx.name, "send", 30.0, total_samples=total)
        self.sample += total
        asked = [rx.name for rx in self.graph.rx() if rx.name not in self.dead]
        for name in asked:
            self._send(name, "collect", batch=batch, end_sample=self.sample, probe=True,
                       timeout_s=self.scenario.timeout_s, idle_s=20.0)
        for name in asked:
            self._answer(name, self.scenario.timeout_s + 30.0)
        if self.plane_stopped is None:
            self.batch_h = self._genie_h()

    def _mark_receivers(self) -> None:
        """Over the air: every RX marks the sample from which it collects this batch."""
        if not self.air:
            return
        for rx in self.graph.rx():
            if rx.name not in self.dead:
                self._ask(rx.name, "mark", 30.0)

    def _request_encode(self, point: dict[str, float], batch: int) -> None:
        """Every TX starts encoding the batch of the items its users need; the nominal SNR of its
        weakest user is its CSI. A beamformed TX is also told which items are whose and the genie
        channel of its users in force now (with fixed or slowly fading links, the one its frames
        will meet)."""
        beamformed = any(tx.spec["mode"] == "beamformed" for tx in self.graph.tx())
        h = self._genie_h() if beamformed and self.plane_stopped is None else None
        for tx in self.graph.tx():
            users = self.graph.users_of[tx.name]
            snr = min(point.get(f"{tx.spec['node']}->{u.rx}", 0.0) for u in self.topo.users if u.name in users)
            items = self.tx_items[tx.name]
            fields: dict[str, Any] = {"items": [name for name, _ in items], "snr_db": snr, "batch": batch}
            if tx.spec["mode"] == "beamformed":
                fields.update(items_by_user={u: [name for name, _ in self.user_items[u]] for u in users},
                              csi=self._csi_of(tx, h))
            if self.plane_stopped is None:
                self._send(tx.name, "encode", {f"image/{name}": img for name, img in items}, **fields)

    def _encoded(self) -> dict[str, dict]:
        """The TXs' encode replies."""
        encoded = {}
        for tx in self.graph.tx():
            if self.plane_stopped is None and (reply := self._answer(tx.name, self.scenario.timeout_s)):
                encoded[tx.name] = reply[0]
        return encoded

    def _frame(self, encoded: dict[str, dict]) -> list[int]:
        """Every TX frames its batch: uplink streams get the common payload length per frame,
        precoded TXs the genie CSI of their users; the sample count of each."""
        streams = [encoded[tx.name]["payload_symbols"] for tx in self.graph.tx()
                   if tx.spec["mode"] == "stream" and encoded[tx.name]["payload_symbols"]]  # silent TXs send no frame
        if streams and len({len(s) for s in streams}) > 1:
            raise ProcessError(f"uplink TX nodes made different frame counts {[len(s) for s in streams]}; "
                               "allowed: equal counts (one K-stream frame per frame index)")
        common = [max(col) for col in zip(*streams)] if streams else None
        csi = self._genie_h() if any(tx.spec["mode"] == "precoded" for tx in self.graph.tx()) else None
        for tx in self.graph.tx():
            fields = {"payload_symbols": common if tx.spec["mode"] == "stream" else None}
            if tx.spec["mode"] == "precoded":
                fields["csi"] = self._csi_of(tx, csi)
            self._send(tx.name, "frame", **fields)
        replies = [self._answer(tx.name, self.scenario.timeout_s) for tx in self.graph.tx()]
        return [r[0]["samples"] for r in replies if r is not None]

    def _genie_h(self) -> np.ndarray:
        """The emulator's H in force, complex (n_rx_streams, n_tx_streams) (perfect CSI)."""
        reply = self._ask("channel", "status", 30.0)
        h = np.asarray(reply[0]["realised_h"]) if reply else np.zeros((1, 1, 2))
        return h[..., 0] + 1j * h[..., 1]

    def _csi_of(self, tx, h: np.ndarray) -> list:
        """Rows of ``tx``'s users (antenna 0 of their RX, flow order), columns of its antennas."""
        node = tx.spec["node"]
        matrix = self.graph.matrix
        cols = [i for i, (n, _) in enumerate(matrix.tx_streams) if n == node]
        users = [u for u in self.topo.users if u.tx == node]
        rows = [matrix.rx_streams.index((u.rx, 0)) for u in users]
        sub = h[np.ix_(rows, cols)]
        return np.stack([sub.real, sub.imag], axis=-1).tolist()

    def _collect(self, index: int, point: dict[str, float], batch: int, encoded: dict[str, dict], total: int,
                 start: float) -> None:
        manifests = {flow: m for reply in encoded.values() for flow, m in reply["manifests"].items()}
        asked = []
        if self.plane_stopped is None:
            self.sample += total
            window = {"span_samples": total + latency_samples(self.radio.sample_rate_sps)} if self.air \
                else {"end_sample": self.sample}
            for rx in self.graph.rx():
                if rx.name not in self.dead:
                    self._send(rx.name, "collect", batch=batch, manifests=manifests, **window,
                               timeout_s=self.scenario.timeout_s, idle_s=20.0)
                    asked.append(rx.name)
        replies = {name: self._answer(name, self.scenario.timeout_s + 30.0) for name in asked}
        self.chain_s.append(time.perf_counter() - start)
        if self.scenario.record:
            self._log_batch(index, point, batch, encoded, total, replies)
        for rx in self.graph.rx():
            for user in rx.spec["users"]:
                self.results.add(index, point, self._user_batch(rx.name, user, replies.get(rx.name), encoded, total,
                                                                       batch))

    def _log_batch(self, index: int, point: dict[str, float], batch: int, encoded: dict[str, dict], total: int,
                   replies: dict) -> None:
        """Write ``session.json`` into the recording folder: what the replay needs besides the
        samples (the scenario, the processes' users and flows, every batch's TX replies, sample
        counts and which RX replied)."""
        self.record_log.append({
            "index": index, "point": point, "batch": batch, "total": total, "end_sample": self.sample,
            "irs_phases": self.results.irs_at.get(index),
            "encoded": {tx: {k: enc[k] for k in ("manifests", "csi_snr_db", "csi_from")} for tx, enc in encoded.items()},
            "samples_received": {rx: r[0]["samples_received"] for rx, r in replies.items() if r is not None}})
        write_json(Path(self.scenario.record) / "session.json", {
            "kind": "testbed-recording", "scenario": self.scenario.model_dump(mode="json", exclude_unset=True), "slot_samples": self.slot,
            "rx": {p.name: {"node": p.spec["node"], "antennas": p.spec["antennas"], "users": p.spec["users"],
                            "own_flows": p.spec["own_flows"], "streams": p.spec["streams"]} for p in self.graph.rx()},
            "tx": {p.name: {"flows": p.spec["flows"]} for p in self.graph.tx()},
            "batches": self.record_log})

    def _user_batch(self, rx: str, user: dict, reply: tuple[dict, dict] | None, encoded: dict[str, dict],
                    total: int, batch: int) -> UserBatch:
        name = user["name"]
        tx = next(p for p in self.graph.tx() if user["flow"] in p.spec["flows"])
        failure = self.plane_stopped or self.dead.get(rx) or self.dead.get(tx.name)
        if failure or reply is None:
            return UserBatch(name, failed=failure or f"process {rx} gave no result")
        msg, arrays = reply
        scored = score_user_batch(self.systems[name], self.user_items[name], user, msg, arrays, encoded[tx.name],
                                  total, batch)
        if self.air:  # the measured SNR and noise floor beside the gains that gave them
            scored.metrics.update(tx_gain_db=tx.spec["radio"]["tx_gain_db"],
                                  rx_gain_db=self.graph.processes[rx].spec["radio"]["rx_gain_db"])
        if self.closed_loop:
            scored.metrics["csi_error_db"] = self._csi_error_db(tx, self.graph.processes[rx], encoded[tx.name]["csi"])
        return scored

    def _csi_error_db(self, tx: NodeProcess, rx: NodeProcess, csi: list | None) -> float | None:
        """10 log10(||h_est - h_true||^2 / ||h_true||^2) of the column ``csi`` (M [re, im] pairs)
        that ``tx`` was told against the emulator's genie column from it to ``rx``'s antennas in
        the batch's fading block, h_est turned by the one common phase that aligns it best (the
        phase the oscillators' CFO has turned by the probe, which the genie H leaves out; with
        cfo_hz 0 that phase is the estimation error's alone); None when it was told none."""
        if csi is None or self.batch_h is None:
            return None
        matrix = self.graph.matrix
        rows = [j for j, (node, _) in enumerate(matrix.rx_streams) if node == rx.spec["node"]]
        true = self.batch_h[rows, matrix.tx_streams.index((tx.spec["node"], 0))].astype(np.complex128)
        est = np.asarray(csi, np.float64) @ [1, 1j]
        inner = np.vdot(est, true)  # est^H true: est * exp(j angle(inner)) is the aligned estimate
        error = np.sum(np.abs(est * np.exp(1j * np.angle(inner)) - true) ** 2) / max(np.sum(np.abs(true) ** 2), 1e-30)
        return float(10 * np.log10(max(error, 1e-30)))


def score_user_batch(system, items, user: dict, msg: dict, arrays: dict, enc: dict, total: int,
                     batch: int) -> UserBatch:
    """One user's batch from its RX node's collect reply ``msg`` + ``arrays`` and its TX's encode
    reply ``enc``: frame counts, the system's scores, sample counts (also used by the replay)."""
    name = user["name"]
    manifest = enc["manifests"][str(user["flow"])]
    if system.idle(manifest):  # its TX did not address it in this slot: nothing to score
        return UserBatch(name, idle=True)
    decoded = decoded_of(name, arrays)
    stats = dict(msg["users"][name])
    frame_log = [[batch, *entry] for entry in stats.pop("frame_log")]
    metrics = {**stats, **system.score(items, manifest, decoded)}
    metrics.update(samples_sent=total, samples_received=msg["samples_received"],
                   samples_lost=total - msg["samples_received"], csi_snr_db=enc["csi_snr_db"], csi=enc.get("csi"))
    return UserBatch(name, metrics=metrics, images=decoded.images, csi_from=enc["csi_from"], frame_log=frame_log)


def union_items(sets: list[Items]) -> Items:
    """The items of ``sets`` once each, in order of first appearance (what a TX is sent for its
    users); ConfigError when two sets hold different images of one name."""
    union: dict[str, np.ndarray] = {}
    for items in sets:
        for name, img in items:
            if name in union and union[name] is not img and not np.array_equal(union[name], img):
                raise ConfigError(f"images: item {name!r} differs between the image sets of one TX's users; "
                                  "allowed: sets whose common names hold the same image")
            union.setdefault(name, img)
    return list(union.items())


def check_radios(scenario: Scenario) -> None:
    """RadioError before any process starts when a node's hardware radio is not attached: no
    device of its backend is found, or not the one its ``args`` name (a Pluto URI, a USRP serial)."""
    found: dict[str, list[dict[str, str]]] = {}
    for node in scenario.network().nodes:
        cfg = scenario.radio_config(node.radio)
        if cfg.backend == "zmq":
            continue
        if cfg.backend not in found:
            found[cfg.backend] = registry.create("radio", cfg.backend).discover()
        devices = found[cfg.backend]
        args = cfg.args or cfg.device
        if not devices:
            raise RadioError(f"node {node.name}: radio {cfg.name!r} ({args}) is not attached; "
                             f"no {cfg.backend} device was found")
        wanted = named_device(cfg.args)
        if wanted and not any(wanted in device.values() for device in devices):
            seen = "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in devices)
            raise RadioError(f"node {node.name}: radio {cfg.name!r} ({args}) is not attached; "
                             f"{cfg.backend} devices found: {seen}")


def named_device(args: str) -> str:
    """The device that radio ``args`` pin: a UHD ``serial=`` value or a Pluto URI; "" for any."""
    pairs = dict(item.split("=", 1) for item in args.split(",") if "=" in item)
    if "serial" in pairs:
        return pairs["serial"].strip()
    return args.strip() if ":" in args and "=" not in args else ""


def mean_images(batches: list[UserBatch]) -> dict[str, np.ndarray]:
    """The reconstructions of the first successful batch (for reports)."""
    return next((b.images for b in batches if b.failed is None), {})

