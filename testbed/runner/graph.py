"""The process graph of a network run as plain data: which node processes run, their sample
edges (gr-zeromq PUSH/PULL, one per antenna stream) and their control edges (REQ/REP, and the
RX -> TX feedback PUSH/PULL), all on free loopback ports chosen now.

    TX node n, antenna a --push--> channel input (n, a)
    channel output (m, b) --push--> RX node m, antenna b

A ``trx`` node runs as two processes, ``<name>.tx`` and ``<name>.rx``. Over the air
(testbed.runner.air) there is no emulator and no sample address: each TX and RX spec carries
its node's ``radio`` config instead, and the nodes open the hardware themselves.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import registry
from testbed.config.scenario import Scenario
from testbed.config.topology import StreamMatrix, Topology, stream_matrix
from testbed.radios.virtual import endpoint, free_tcp_port
from testbed.systems.base import precodes


@dataclass
class NodeProcess:
    """One process: its name, role (a key of runner.nodes.ROLES) and the spec it is started with
    (TX and RX specs name their topology ``node``: a ``trx`` node has a process of each)."""

    name: str
    role: str
    spec: dict[str, Any]

    @property
    def control(self) -> str:
        return self.spec["control"]


@dataclass
class Graph:
    """All processes of a run, the TX flows (TX process -> its users) and the channel matrix
    of the first sweep point."""

    processes: dict[str, NodeProcess] = field(default_factory=dict)
    users_of: dict[str, list[str]] = field(default_factory=dict)
    matrix: StreamMatrix | None = None

    def tx(self) -> list[NodeProcess]:
        return [p for p in self.processes.values() if p.role == "tx_node"]

    def rx(self) -> list[NodeProcess]:
        return [p for p in self.processes.values() if p.role == "rx_node"]


def _address() -> str:
    return endpoint(free_tcp_port())


def tx_mode(topo: Topology, tx: str, beams: bool = False) -> tuple[str, int, int]:
    """How TX node ``tx`` sends: (mode, stream index, number of streams).

    - ``precoded``: several antennas and several users: one stream per user, zero-forcing
      precoded onto the antennas (users run the ordinary receiver);
    - ``beamformed``: the same TX when its system chooses the beams (``beams``: the system
      defines ``encode_precoded``): each user's own content on its beam, a training slot per
      stream (users run the one-antenna stream receiver for their own flow);
    - ``stream``: one antenna, its RX has several antennas and hears several TX nodes: stream k
      of a K-stream frame (MU-MIMO uplink, time-orthogonal training, LMMSE at the RX); also a
      single-antenna ``trx`` node (device to device) whose RXs hear other TX nodes: stream k of
      its group's K-stream frame (:func:`d2d_group`), so each RX measures every TX's channel;
    - ``single``: one ordinary frame stream from antenna 0 (single link, broadcast).
    """
    node = topo.node(tx)
    users = [u for u in topo.users if u.tx == tx]
    if node.antennas > 1 and len(users) > 1:
        return "beamformed" if beams else "precoded", 0, len(users)
    rx = topo.node(users[0].rx) if users else None
    if rx is not None and rx.antennas > 1:
        group = uplink_group(topo, rx.name)
        if len(group) > 1:
            return "stream", group.index(tx), len(group)
    if node.role == "trx" and node.antennas == 1:
        group = d2d_group(topo, tx)
        if len(group) > 1:
            return "stream", group.index(tx), len(group)
    return "single", 0, 1


def d2d_group(topo: Topology, tx: str) -> list[str]:
    """TX nodes that share an RX with ``tx``, directly or through others (a connected group of
    the users' TX -> RX graph), in topology order: the streams of one device-to-device frame."""
    group, frontier = {tx}, [tx]
    while frontier:
        node = frontier.pop()
        rxs = {u.rx for u in topo.users if u.tx == node}
        for u in topo.users:
            if u.rx in rxs and u.tx not in group:
                group.add(u.tx)
                frontier.append(u.tx)
    return [n.name for n in topo.tx_nodes() if n.name in group]


def uplink_group(topo: Topology, rx: str) -> list[str]:
    """TX nodes whose users are received at ``rx``, in topology order."""
    txs = {u.tx for u in topo.users if u.rx == rx}
    return [n.name for n in topo.tx_nodes() if n.name in txs]


def assign_flows(topo: Topology) -> dict[str, int]:
    """User -> flow id (the header's ``user`` field): one flow per TX node, except that a
    precoded (or beamformed) TX gives each of its users a flow of its own, in user order."""
    flows: dict[str, int] = {}
    nxt = 0
    for node in topo.tx_nodes():
        users = [u.name for u in topo.users if u.tx == node.name]
        if tx_mode(topo, node.name)[0] == "precoded":
            for user in users:
                flows[user], nxt = nxt, nxt + 1
        else:
            flows.update({user: nxt for user in users})
            nxt += 1
    return flows


def process_name(topo: Topology, node: str, side: str) -> str:
    return f"{node}.{side}" if topo.node(node).role == "trx" else node


def build_graph(scenario: Scenario, token: str, slot_samples: int, sample_rate_sps: float,
                air: bool = False) -> Graph:
    """The processes of ``scenario`` with fresh addresses (nothing is started); ``air``: every
    node's radio is hardware (no emulator, no sample addresses, the radio config in each spec)."""
    topo = scenario.network()
    point = topo.points()[0]
    matrix = slotted(stream_matrix(topo, point, sample_rate_sps), slot_samples)
    graph = Graph(matrix=matrix)
    tx_addr = {} if air else {s: _address() for s in matrix.tx_streams}
    rx_addr = {} if air else {s: _address() for s in matrix.rx_streams}
    feedback = {n.name: _address() for n in topo.tx_nodes()}
    common = {"token": token, "system": scenario.system, "seed": scenario.seed}
    params = scenario.system_params
    flows = assign_flows(topo)
    beams = precodes(registry.get("system", scenario.system))
    beamformed = set()  # users of beamformed TXs
    for node in topo.tx_nodes():
        name = process_name(topo, node.name, "tx")
        users = [u.name for u in topo.users if u.tx == node.name]
        graph.users_of[name] = users
        mode, stream, n_streams = tx_mode(topo, node.name, beams)
        beamformed.update(users if mode == "beamformed" else [])
        graph.processes[name] = NodeProcess(name, "tx_node", {
            **common, "name": name, "node": node.name, "role": "tx_node", "control": _address(),
            "params": {**params, **node.params},
            "users": users, "flows": sorted({flows[u] for u in users}), "mode": mode, "stream": stream,
            "n_streams": n_streams,
            "antennas": node.antennas, "outputs": [tx_addr[(node.name, a)] for a in range(node.antennas) if not air],
            "radio": _radio_spec(scenario, node, air),
            "slot_samples": slot_samples, "feedback": feedback[node.name], "adapt": scenario.adapt})
    for node in topo.rx_nodes():
        name = process_name(topo, node.name, "rx")
        users = [{"name": u.name, "flow": flows[u.name], "tx": u.tx, "params": {**params, **topo.user_params(u)}}
                 for u in topo.users if u.rx == node.name]
        graph.processes[name] = NodeProcess(name, "rx_node", {
            **common, "name": name, "node": node.name, "role": "rx_node", "control": _address(),
            "sample_rate_sps": sample_rate_sps, "antennas": node.antennas, "radio": _radio_spec(scenario, node, air),
            "inputs": [rx_addr[(node.name, a)] for a in range(node.antennas) if not air], "users": users,
            "own_flows": any(u["name"] in beamformed for u in users),
            "streams": any(graph.processes[process_name(topo, u["tx"], "tx")].spec["mode"] == "stream" for u in users),
            "feedback": sorted({feedback[u["tx"]] for u in users}), "adapt": scenario.adapt,
            "record": _record_spec(scenario, node, name)})
    if air:
        return graph
    graph.processes["channel"] = NodeProcess("channel", "channel_node", {
        **common, "name": "channel", "role": "channel_node", "control": _address(),
        "inputs": [tx_addr[s] for s in matrix.tx_streams], "outputs": [rx_addr[s] for s in matrix.rx_streams],
        "links": [[s.to_dict() for s in row] for row in matrix.specs], "noise_var": matrix.noise_var,
        "irs": irs_spec(topo, matrix)})
    return graph


def irs_spec(topo: Topology, matrix: StreamMatrix) -> dict[str, Any] | None:
    """The channel node's IRS: its config and the emulator links it realises as
    [[rx stream, tx stream, rx node index, tx node index], ...]."""
    if topo.irs is None:
        return None
    links = []
    for key in topo.irs.links:
        tx, rx = key.split("->")
        r, t = topo.irs_pair(key)
        links.append([matrix.rx_streams.index((rx, 0)), matrix.tx_streams.index((tx, 0)), r, t])
    return {"config": topo.irs_config(), "channel": topo.irs.channel, "links": links}


def _radio_spec(scenario: Scenario, node, air: bool) -> dict | None:
    """The node's radio config (JSON) over the air; None for a virtual radio (the addresses say all)."""
    return scenario.radio_config(node.radio).model_dump(mode="json") if air else None


def _record_spec(scenario: Scenario, node, process: str) -> dict | None:
    """Where and what an RX node records (``scenario.record``, a folder), or None."""
    if not scenario.record:
        return None
    radio = scenario.radio_config(node.radio).model_dump(mode="json")
    return {"prefix": str(Path(scenario.record).resolve() / process), "radio": radio, "scenario": scenario.name}


def slotted(matrix: StreamMatrix, slot_samples: int) -> StreamMatrix:
    """Fading links with ``coherence_samples`` 0 redraw every slot: one draw per frame."""
    def fix(spec):
        if spec.fades and spec.coherence_samples == 0 and slot_samples:
            return dataclasses.replace(spec, coherence_samples=slot_samples)
        return spec

    return dataclasses.replace(matrix, specs=[[fix(s) for s in row] for row in matrix.specs])
