"""Topology of a multi-user scenario as data: nodes, users, links and sweep axes.

    topology:
      nodes:
        - {name: bs, role: tx, antennas: 1, radio: zmq, cfo_hz: 0}
        - {name: ue0, role: rx, noise_db: -10}
      users:
        - {name: u0, tx: bs, rx: ue0, params: {model: deepjscc-r6}, images: held-out}
      links:
        - {tx: bs, rx: ue0, model: rayleigh, snr_db: 4, coherence_samples: 0}
        - {tx: bs, rx: ue1, model: fixed, snr_db: 4, coefficients: [[-0.42, -1.29]]}  # [re, im] per TX antenna
      sweep:
        - {axis: snr_offset_db, values: [0, 5]}            # every link together
        - {axis: snr_db, link: bs->ue0, values: [0, 10]}   # one link alone

Conventions (docs/architecture.md "SNR axis"): a link's ``snr_db`` is the Es/N0 per data
subcarrier that the link's TX, sending unit average power per antenna, gives at each antenna of
its RX. The emulator realises it as receiver noise of variance ``10**(noise_db/10)`` per RX
antenna and a link amplitude gain of ``10**((snr_db + noise_db)/20)``; ``gain_db`` (path gain)
may be given instead of ``snr_db`` when the RX's ``noise_db`` is given. An RX without
``noise_db`` takes ``-max(snr_db of its links)``, so its strongest link has unit gain. The
oscillator of each node has its own ``cfo_hz``: a link shows ``cfo_hz(tx) - cfo_hz(rx)``.

A ``fixed`` link has no fading: ``coefficients`` gives one complex gain per antenna pair as
[re, im], one per TX antenna (for an RX with several antennas, RX antenna by RX antenna), times
the link's amplitude gain, e.g. a row of the channel matrix of a MU-MISO downlink.

Every problem of a topology is reported at once (one line each), before anything starts.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from testbed.channels.spec import MODELS, ChannelSpec
from testbed.errors import ConfigError

class NodeConfig(BaseModel):
    """One radio node: a TX, an RX or both, with its antennas and its radio."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    role: Literal["tx", "rx", "trx"]
    antennas: int = Field(default=1, ge=1, le=8)
    radio: str = "zmq"
    host: Literal["local"] = "local"
    cfo_hz: float = 0.0
    noise_db: float | list[float] | None = None
    position_m: tuple[float, float, float] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    """System parameters of this node (e.g. which device-to-device user it is): its TX's encoder
    gets them over the scenario's ``system_params``, and each user it receives over those, under
    the user's own ``params``."""

    @property
    def transmits(self) -> bool:
        return self.role in ("tx", "trx")

    @property
    def receives(self) -> bool:
        return self.role in ("rx", "trx")

    def noise_per_antenna(self) -> list[float] | None:
        """noise_db per antenna (a scalar applies to every antenna); None when unset."""
        if self.noise_db is None:
            return None
        return list(self.noise_db) if isinstance(self.noise_db, list) else [self.noise_db] * self.antennas


class UserConfig(BaseModel):
    """One user: a flow from a TX node to an RX node, with its own system parameters
    (e.g. the decoder it runs) on top of the scenario's ``system_params``, and its own image
    set (a name as the scenario's ``images`` takes; None: the scenario's)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    tx: str
    rx: str
    params: dict[str, Any] = Field(default_factory=dict)
    images: str | None = None


class LinkConfig(BaseModel):
    """The channel from one TX node to one RX node (every antenna pair draws its own fading)."""

    model_config = ConfigDict(extra="forbid")
    tx: str
    rx: str
    model: str = "awgn"
    snr_db: float | None = None
    gain_db: float | None = None
    k_factor_db: float = 10.0
    delay_samples: float = 0.0
    taps: list[str | float] = Field(default_factory=lambda: [1.0])
    coherence_samples: int = Field(default=0, ge=0)
    coefficients: list[tuple[float, float]] | None = None

    @property
    def key(self) -> str:
        return f"{self.tx}->{self.rx}"

    def coefficient(self, rx_antenna: int, tx_antenna: int, n_tx: int) -> complex:
        """The ``fixed`` gain from TX antenna ``tx_antenna`` (of ``n_tx``) to RX antenna
        ``rx_antenna``; 1 for the other models."""
        if self.coefficients is None:
            return 1
        re, im = self.coefficients[rx_antenna * n_tx + tx_antenna]
        return complex(re, im)


class SweepAxis(BaseModel):
    """``snr_offset_db`` adds each value to every link's SNR (or to ``link`` alone);
    ``snr_db`` sets ``link``'s SNR to each value. Several axes make a grid."""

    model_config = ConfigDict(extra="forbid")
    axis: Literal["snr_offset_db", "snr_db"]
    link: str | None = None
    values: list[float] = Field(min_length=1)


class IrsStep(BaseModel):
    """Set the surface's phases before run batch ``batch`` (counted over the whole run):
    ``zero`` (all 0), ``random`` (uniform, from the seed), ``optimal`` for ``link``
    (the co-phasing closed form, quantised to the surface's ``phase_bits``), ``trained`` (the
    phases the system's model learned) or ``off`` (the surface taken away: direct paths only).
    A step after a point's first batch starts a point index of its own (rows' ``irs_phases``)."""

    model_config = ConfigDict(extra="forbid")
    batch: int = Field(ge=0)
    phases: Literal["zero", "random", "optimal", "trained", "off"]
    link: str | None = None


class IrsTopology(BaseModel):
    """A software IRS between nodes: ``surface`` holds the fields of testbed.config.irs.IrsConfig
    except the node positions (taken from the nodes' ``position_m``); the links in ``links`` are
    realised by the cascaded channel (their ``model`` is not used; ``gain_db`` scales it).
    ``channel`` names a registered ``irs-channel`` (a system's own channel model, e.g.
    ``irs_jsce``) built from ``surface`` (its own fields) and the node positions instead."""

    model_config = ConfigDict(extra="forbid")
    channel: str | None = None
    surface: dict[str, Any] = Field(default_factory=dict)
    links: list[str] = Field(min_length=1)
    schedule: list[IrsStep] = Field(default_factory=list)


class Topology(BaseModel):
    """Nodes, users, links and sweep axes of a scenario (see module docstring)."""

    model_config = ConfigDict(extra="forbid")
    nodes: list[NodeConfig] = Field(min_length=2)
    users: list[UserConfig] = Field(min_length=1)
    links: list[LinkConfig] = Field(min_length=1)
    sweep: list[SweepAxis] = Field(default_factory=list)
    irs: IrsTopology | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Topology":
        problems = topology_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def irs_config(self) -> dict[str, Any]:
        """The IrsConfig fields: the surface plus the positions of the TX and RX nodes (in
        ``tx_nodes()`` / ``rx_nodes()`` order; nodes without a position sit at the origin)."""
        origin = (0.0, 0.0, 0.0)
        return {**self.irs.surface, "tx_positions_m": [n.position_m or origin for n in self.tx_nodes()],
                "rx_positions_m": [n.position_m or origin for n in self.rx_nodes()]}

    def irs_pair(self, key: str) -> tuple[int, int]:
        """(RX node index, TX node index) of link ``key`` in the IRS channel."""
        link = next(lk for lk in self.links if lk.key == key)
        return ([n.name for n in self.rx_nodes()].index(link.rx), [n.name for n in self.tx_nodes()].index(link.tx))

    def node(self, name: str) -> NodeConfig:
        return next(n for n in self.nodes if n.name == name)

    def user_params(self, user: "UserConfig") -> dict[str, Any]:
        """The system parameters ``user`` adds to the scenario's: its RX node's, then its own."""
        return {**self.node(user.rx).params, **user.params}

    def link(self, tx: str, rx: str) -> LinkConfig | None:
        return next((lk for lk in self.links if lk.tx == tx and lk.rx == rx), None)

    def tx_nodes(self) -> list[NodeConfig]:
        return [n for n in self.nodes if n.transmits]

    def rx_nodes(self) -> list[NodeConfig]:
        return [n for n in self.nodes if n.receives]

    def points(self) -> list[dict[str, float]]:
        """Every sweep point: link key -> SNR (dB) of that point, in grid order."""
        base = {lk.key: lk.snr_db for lk in self.links if lk.snr_db is not None}
        if not self.sweep:
            return [dict(base)]
        points = []
        for combo in itertools.product(*(axis.values for axis in self.sweep)):
            point = dict(base)
            for axis, value in zip(self.sweep, combo):
                keys = [axis.link] if axis.link else list(base)
                for key in keys:
                    point[key] = value if axis.axis == "snr_db" else base.get(key, 0.0) + value
            points.append(point)
        return points

    def noise_db(self, rx: NodeConfig, point: dict[str, float]) -> list[float]:
        """Noise variance (dB) per antenna of ``rx`` at sweep ``point``."""
        given = rx.noise_per_antenna()
        if given is not None:
            return given
        snrs = [point[lk.key] for lk in self.links if lk.rx == rx.name and lk.key in point]
        return [-max(snrs) if snrs else 0.0] * rx.antennas

    def link_gain_db(self, link: LinkConfig, point: dict[str, float]) -> float:
        """Amplitude gain (dB) of ``link`` at sweep ``point``: snr_db + noise_db, or gain_db."""
        if link.key in point:
            return point[link.key] + self.noise_db(self.node(link.rx), point)[0]
        return float(link.gain_db)


@dataclass(frozen=True)
class StreamMatrix:
    """A topology at one sweep point as the emulator's antenna streams.

    Attributes:
        tx_streams: (node, antenna) of every TX stream, TX nodes in topology order.
        rx_streams: (node, antenna) of every RX stream.
        specs: len(rx_streams) rows of len(tx_streams) ChannelSpec; ``specs[j][i]`` is TX stream
            i -> RX stream j (a pair without a link has gain -300 dB, i.e. none).
        noise_var: noise variance per RX stream (linear).
    """

    tx_streams: list[tuple[str, int]]
    rx_streams: list[tuple[str, int]]
    specs: list[list[ChannelSpec]]
    noise_var: list[float]


NO_LINK_GAIN_DB = -300.0


def stream_matrix(topo: Topology, point: dict[str, float], sample_rate_sps: float) -> StreamMatrix:
    """The emulator's view of ``topo`` at sweep ``point`` (raises ConfigError on bad links)."""
    txs = [(n.name, a) for n in topo.tx_nodes() for a in range(n.antennas)]
    rxs = [(n.name, a) for n in topo.rx_nodes() for a in range(n.antennas)]
    specs = [[_spec(topo, topo.link(tx, rx), point, sample_rate_sps, topo.node(tx).cfo_hz - topo.node(rx).cfo_hz,
                    (b, a, topo.node(tx).antennas)) for tx, a in txs] for rx, b in rxs]
    noise = [10.0 ** (topo.noise_db(topo.node(rx), point)[a] / 10.0) for rx, a in rxs]
    return StreamMatrix(txs, rxs, specs, noise)


def _spec(topo: Topology, link: LinkConfig | None, point: dict[str, float], rate: float, cfo_hz: float,
          antennas: tuple[int, int, int]) -> ChannelSpec:
    """The spec of one antenna pair; ``antennas`` = (RX antenna, TX antenna, TX antennas)."""
    if link is None:
        return ChannelSpec(model="awgn", snr_db=0.0, gain_db=NO_LINK_GAIN_DB, sample_rate_sps=rate)
    where = f"topology link {link.key}"
    try:
        return ChannelSpec(model=link.model, snr_db=point.get(link.key, 0.0), gain_db=topo.link_gain_db(link, point),
                           k_factor_db=link.k_factor_db, cfo_hz=cfo_hz, sample_rate_sps=rate,
                           delay_samples=link.delay_samples, taps=tuple(complex(t) for t in link.taps),
                           coherence_samples=link.coherence_samples, coefficient=link.coefficient(*antennas))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def topology_problems(topo: Topology) -> list[str]:
    """Every inconsistency of ``topo``, one line each (field, value, allowed)."""
    problems: list[str] = []
    names = [n.name for n in topo.nodes]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"topology.nodes: name {dup!r} is used twice; allowed: unique names")
    nodes = {n.name: n for n in topo.nodes}
    txs = sorted(n for n, c in nodes.items() if c.transmits)
    rxs = sorted(n for n, c in nodes.items() if c.receives)
    for i, node in enumerate(topo.nodes):
        noise = node.noise_db
        if isinstance(noise, list) and len(noise) != node.antennas:
            problems.append(f"topology.nodes.{i}.noise_db = {noise} has {len(noise)} values; "
                            f"allowed: one value or {node.antennas} (one per antenna)")
    problems += _endpoint_problems("users", topo.users, txs, rxs)
    problems += _endpoint_problems("links", topo.links, txs, rxs)
    problems += _link_problems(topo, nodes)
    keys = [lk.key for lk in topo.links]
    for i, user in enumerate(topo.users):
        if user.tx in nodes and user.rx in nodes and f"{user.tx}->{user.rx}" not in keys:
            problems.append(f"topology.users.{i}: no link {user.tx}->{user.rx}; allowed: a user needs a link "
                            f"between its nodes (links: {', '.join(keys)})")
    unames = [u.name for u in topo.users]
    for dup in sorted({n for n in unames if unames.count(n) > 1}):
        problems.append(f"topology.users: name {dup!r} is used twice; allowed: unique names")
    for i, axis in enumerate(topo.sweep):
        if axis.link is not None and axis.link not in keys:
            problems.append(f"topology.sweep.{i}.link = {axis.link!r} is unknown; allowed: {', '.join(keys)}")
        if axis.axis == "snr_db" and axis.link is None:
            problems.append(f"topology.sweep.{i}: axis snr_db needs a link; allowed: one of {', '.join(keys)}")
    problems += _irs_problems(topo, nodes, keys)
    return problems


def _irs_problems(topo: Topology, nodes: dict[str, NodeConfig], keys: list[str]) -> list[str]:
    if topo.irs is None:
        return []
    from pydantic import ValidationError

    from testbed.config.irs import IrsConfig
    from testbed.config.yaml_io import format_validation_error

    problems = []
    for i, key in enumerate(topo.irs.links):
        if key not in keys:
            problems.append(f"topology.irs.links.{i} = {key!r} is unknown; allowed: {', '.join(keys)}")
            continue
        for name in key.split("->"):
            if nodes[name].antennas != 1 or nodes[name].position_m is None:
                problems.append(f"topology.irs.links.{i} = {key!r}: node {name!r} needs one antenna and a "
                                f"position_m; allowed: single-antenna nodes with positions")
    for i, step in enumerate(topo.irs.schedule):
        if step.link is not None and step.link not in topo.irs.links:
            problems.append(f"topology.irs.schedule.{i}.link = {step.link!r} is not an IRS link; "
                            f"allowed: {', '.join(topo.irs.links)}")
    if topo.irs.channel is not None:
        return problems + _irs_channel_problems(topo)
    try:
        IrsConfig.model_validate(topo.irs_config())
    except ValidationError as err:
        problems += format_validation_error(err, "topology.irs.surface", IrsConfig).splitlines()
    return problems


def _irs_channel_problems(topo: Topology) -> list[str]:
    """Problems building the registered IRS channel ``topology.irs.channel`` (seed 0)."""
    from testbed import registry
    from testbed.errors import ConfigError

    names = registry.names("irs-channel")
    if topo.irs.channel not in names:
        return [f"topology.irs.channel = {topo.irs.channel!r} is unknown; allowed: {', '.join(names) or '(none)'}"]
    try:
        build_irs_channel(topo, 0)
    except ConfigError as err:
        return [f"topology.irs: {err}"]
    return []


def build_irs_channel(topo: Topology, seed: int) -> Any:
    """The registered ``topology.irs.channel`` of ``topo`` keyed by ``seed``."""
    from testbed import registry

    config = topo.irs_config()
    return registry.create("irs-channel", topo.irs.channel, surface=topo.irs.surface,
                           tx_positions_m=config["tx_positions_m"], rx_positions_m=config["rx_positions_m"], seed=seed)


def _endpoint_problems(what: str, items: list, txs: list[str], rxs: list[str]) -> list[str]:
    problems = []
    for i, item in enumerate(items):
        if item.tx not in txs:
            problems.append(f"topology.{what}.{i}.tx = {item.tx!r} is not a transmitting node; "
                            f"allowed: {', '.join(txs) or '(none)'}")
        if item.rx not in rxs:
            problems.append(f"topology.{what}.{i}.rx = {item.rx!r} is not a receiving node; "
                            f"allowed: {', '.join(rxs) or '(none)'}")
    return problems


def _link_problems(topo: Topology, nodes: dict[str, NodeConfig]) -> list[str]:
    problems = []
    keys = [lk.key for lk in topo.links]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"topology.links: {dup} is given twice; allowed: one link per TX->RX pair")
    for i, link in enumerate(topo.links):
        where = f"topology.links.{i}"
        if link.model not in MODELS:
            problems.append(f"{where}.model = {link.model!r} is unknown; allowed: {', '.join(MODELS)}")
        if (link.snr_db is None) == (link.gain_db is None):
            problems.append(f"{where}: snr_db = {link.snr_db}, gain_db = {link.gain_db}; allowed: exactly one of them")
        elif link.gain_db is not None and nodes.get(link.rx) and nodes[link.rx].noise_db is None:
            problems.append(f"{where}.gain_db = {link.gain_db:g} needs noise_db on node {link.rx!r}; "
                            "allowed: give the RX's noise_db, or snr_db instead")
        if link.snr_db is not None and not -30.0 <= link.snr_db <= 60.0:
            problems.append(f"{where}.snr_db = {link.snr_db:g} is outside -30..60 dB")
        problems += _coefficient_problems(where, link, nodes)
    return problems


def _coefficient_problems(where: str, link: LinkConfig, nodes: dict[str, NodeConfig]) -> list[str]:
    """Problems of a link's ``coefficients``: required by model fixed (one finite [re, im] pair
    per antenna pair), refused with any other model."""
    given = link.coefficients
    if link.model != "fixed":
        if given is None:
            return []
        return [f"{where}.coefficients = {given} is given for model {link.model!r}; "
                "allowed: coefficients with model fixed only"]
    if link.tx not in nodes or link.rx not in nodes:
        return []
    n_tx, n_rx = nodes[link.tx].antennas, nodes[link.rx].antennas
    allowed = f"{n_tx * n_rx} [re, im] pairs, one per TX antenna ({n_tx}) of {link.tx!r}" + (
        f" for each of the {n_rx} antennas of {link.rx!r}, RX antenna by RX antenna" if n_rx > 1 else "")
    if given is None or len(given) != n_tx * n_rx:
        count = 0 if given is None else len(given)
        return [f"{where}.coefficients = {given} ({count} given) does not fit model fixed; allowed: {allowed}"]
    return [f"{where}.coefficients.{i} = {list(pair)} is not finite; allowed: finite numbers"
            for i, pair in enumerate(given) if not all(math.isfinite(v) for v in pair)]
