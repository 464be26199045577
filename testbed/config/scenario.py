"""Scenario YAML: which system runs over which radios and channel, at which SNRs, on what data.

    name: digital-awgn
    system: digital          # a registered system (testbed.registry names("system"))
    radio: zmq               # a file of firmware_configs/ (without .yaml) or a path
    channel: {model: awgn, snr_db: [0, 5, 10], cfo_hz: 0, delay_samples: 0}
    system_params: {modulation: qam16, code: ldpc_648_1_2}   # validated by the system
    images: default          # the embedded images, held-out (256-px crops of held-out photos) or a folder

A scenario is validated completely (the system's own parameters and the radio file included)
before any process starts; ``--set key=value`` overrides use dotted keys (``channel.snr_db``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed import registry
from testbed.channels.spec import MODELS, ChannelSpec
from testbed.config.radio import RadioConfig, load_radio_config
from testbed.config.topology import Topology, stream_matrix
from testbed.config.yaml_io import load_yaml, validate
from testbed.data.images import IMAGE_SETS
from testbed.errors import ConfigError
from testbed.systems.base import precodes

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware_configs"
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"


class ChannelConfig(BaseModel):
    """The emulated channel of every link (virtual radios); SNR is Es/N0 in dB.

    ``coherence_samples`` 0 with a fading model means block fading with one draw per frame: the
    runner slots the TX so every frame starts on a boundary of the emulator's fading blocks.
    A positive value redraws every that many samples regardless of frames (time-varying).
    """

    model_config = ConfigDict(extra="forbid")
    model: str = "awgn"
    snr_db: list[float] = Field(default_factory=lambda: [10.0], min_length=1)
    cfo_hz: float = 0.0
    delay_samples: float = 0.0
    k_factor_db: float = 10.0
    taps: list[str | float] = Field(default_factory=lambda: [1.0])
    coherence_samples: int = 0

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"channel.model = {value!r} is unknown; allowed: {', '.join(MODELS)}")
        return value

    @field_validator("snr_db")
    @classmethod
    def _snr_range(cls, value: list[float]) -> list[float]:
        for snr in value:
            if not -30.0 <= snr <= 60.0:
                raise ValueError(f"channel.snr_db = {snr:g} is outside -30..60 dB")
        return value

    def spec(self, snr_db: float, sample_rate_sps: float) -> ChannelSpec:
        """The ChannelSpec of one SNR point (raises ConfigError on bad impairments)."""
        return ChannelSpec(model=self.model, snr_db=snr_db, k_factor_db=self.k_factor_db, cfo_hz=self.cfo_hz,
                           sample_rate_sps=sample_rate_sps, delay_samples=self.delay_samples,
                           taps=tuple(complex(t) for t in self.taps), coherence_samples=self.coherence_samples)


class Scenario(BaseModel):
    """A validated scenario (see module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    system: str
    radio: str = "zmq"
    seed: int = 0
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    system_params: dict[str, Any] = Field(default_factory=dict)
    topology: Topology | None = None
    images: str = "default"
    max_images: int = Field(default=0, ge=0)
    batches: int = Field(default=1, ge=1, le=100000)
    adapt: Literal["nominal", "feedback", "closed_loop"] = "nominal"
    timeout_s: float = Field(default=300.0, gt=0)
    record: str = ""  # a folder: every RX node records its samples there as SigMF (testbed.recordings)

    @model_validator(mode="after")
    def _one_channel_description(self) -> "Scenario":
        if self.topology is not None and "channel" in self.model_fields_set:
            raise ValueError("channel and topology are both given; allowed: channel (one link) or topology "
                             "(links, nodes, users)")
        return self

    def network(self) -> Topology:
        """The topology that runs: ``topology``, or the one link that ``channel`` describes
        (nodes tx0 -> rx0, user u0, the SNR list as a sweep axis)."""
        if self.topology is not None:
            return self.topology
        ch = self.channel
        link = {"tx": "tx0", "rx": "rx0", "model": ch.model, "snr_db": ch.snr_db[0], "k_factor_db": ch.k_factor_db,
                "delay_samples": ch.delay_samples, "taps": ch.taps, "coherence_samples": ch.coherence_samples}
        return Topology.model_validate({
            "nodes": [{"name": "tx0", "role": "tx", "radio": self.radio, "cfo_hz": ch.cfo_hz},
                      {"name": "rx0", "role": "rx", "radio": self.radio}],
            "users": [{"name": "u0", "tx": "tx0", "rx": "rx0"}], "links": [link],
            "sweep": [{"axis": "snr_db", "link": "tx0->rx0", "values": ch.snr_db}]})

    @field_validator("system")
    @classmethod
    def _known_system(cls, value: str) -> str:
        allowed = registry.names("system")
        if value not in allowed:
            raise ValueError(f"system = {value!r} is unknown; allowed: {', '.join(allowed)}")
        return value

    def radio_config(self, name: str | None = None) -> RadioConfig:
        """The radio file ``name`` (a node's ``radio``; default the scenario's ``radio``)."""
        return radio_config(name or self.radio)


def radio_config(name: str, field: str = "radio") -> RadioConfig:
    """A radio YAML by path or shipped name; ConfigError naming ``field`` when there is none."""
    path = Path(name)
    if not path.suffix:
        path = FIRMWARE_DIR / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in FIRMWARE_DIR.glob("*.yaml"))
        raise ConfigError(f"{field} = {name!r}: no such file; allowed: a path or one of {', '.join(names)}")
    return load_radio_config(path)


def shipped_scenarios() -> dict[str, Path]:
    """Shipped scenario names -> YAML paths."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. channel.snr_db=[0,10] or images=DIR")
    key, raw = item.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a scenario mapping."""
    for item in overrides:
        keys, value = _parse_override(item)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {key} is not a mapping")
        if keys == ["channel", "snr_db"] and not isinstance(value, list):
            value = [value]
        node[keys[-1]] = value
    return data


def load_scenario(name_or_path: str, overrides: list[str] | None = None) -> Scenario:
    """Load, override and validate a scenario; also validates its radio file and system parameters."""
    shipped = shipped_scenarios()
    path = shipped.get(name_or_path, Path(name_or_path))
    if not path.exists():
        raise ConfigError(f"scenario {name_or_path!r}: no such file; allowed: a YAML path or one of {', '.join(shipped)}")
    return scenario_from_dict(apply_overrides(load_yaml(path), overrides or []), path.name)


def scenario_from_dict(data: dict[str, Any], source: str = "scenario") -> Scenario:
    """Validate a scenario mapping (as a YAML file holds it) completely, every problem at once;
    ``source`` names it in the messages. The radio files, the network at every sweep point, the
    images and the system's parameters for every user are checked too."""
    scenario = validate(Scenario, data, source)
    radio = scenario.radio_config()
    for snr_db in scenario.channel.snr_db:
        scenario.channel.spec(snr_db, radio.sample_rate_sps)
    _check_network(scenario.network(), source)
    problem = _image_set_problem("images", scenario.images)
    if problem:
        raise ConfigError(problem)
    system = registry.get("system", scenario.system)
    system.validate_params(scenario.system_params, source)
    topo = scenario.network()
    problems = [f"{source}: {p}" for p in
                _user_image_problems(scenario, precodes(system)) + closed_loop_problems(scenario)]
    for node in topo.tx_nodes():
        system.validate_params({**scenario.system_params, **node.params}, f"{source}: node {node.name}")
    for user in topo.users:
        params = system.validate_params({**scenario.system_params, **topo.user_params(user)},
                                        f"{source}: user {user.name}")
        problems += [f"{source}: user {user.name}: {p}" for p in system.check_link(params, topo.link(user.tx, user.rx))]
    if problems:
        raise ConfigError("\n".join(problems))
    return scenario


CLOSED_LOOP_ALLOWED = ("allowed: adapt nominal or feedback, or closed_loop on a MU-MIMO uplink (two or more "
                       "single-antenna TX nodes, every user received at one RX node with several antennas) "
                       "over virtual radios (zmq)")


def closed_loop_problems(scenario: Scenario) -> list[str]:
    """Why ``adapt: closed_loop`` cannot run ``scenario`` (none for another ``adapt``): it needs
    the MU-MIMO uplink (every TX node single-antenna, in stream mode towards one multi-antenna
    RX node), virtual radios (over the air it is not supported yet) and no ``record`` (a replay
    would take the probe frames for data)."""
    if scenario.adapt != "closed_loop":
        return []
    topo = scenario.network()
    field = "adapt = 'closed_loop'"
    problems = []
    rxs = sorted({u.rx for u in topo.users})
    if len(rxs) != 1:
        problems.append(f"{field}: the users are received at RX nodes {rxs}; {CLOSED_LOOP_ALLOWED}")
    elif topo.node(rxs[0]).antennas < 2:
        problems.append(f"{field}: RX node {rxs[0]} has 1 antenna; {CLOSED_LOOP_ALLOWED}")
    senders = {u.tx for u in topo.users}
    if len(senders) < 2:
        problems.append(f"{field}: {len(senders)} TX node sends; {CLOSED_LOOP_ALLOWED}")
    for node in topo.tx_nodes():
        if node.antennas != 1:
            problems.append(f"{field}: TX node {node.name} has {node.antennas} antennas; {CLOSED_LOOP_ALLOWED}")
        if node.name not in senders:
            problems.append(f"{field}: TX node {node.name} has no user; {CLOSED_LOOP_ALLOWED}")
    for node in topo.nodes:
        try:
            backend = radio_config(node.radio).backend
        except ConfigError:  # reported by _check_network
            continue
        if backend != "zmq":
            problems.append(f"{field}: node {node.name} has radio {node.radio!r} ({backend}); over the air the "
                            f"closed loop is not supported yet; allowed: virtual radios (zmq)")
    if scenario.record:
        problems.append(f"record = {scenario.record!r} with {field}: a replay would take the probe frames for "
                        "data; allowed: record with adapt nominal or feedback")
    return problems


def check_closed_loop(scenario: Scenario) -> None:
    """ConfigError with every :func:`closed_loop_problems` of ``scenario``, one a line."""
    problems = closed_loop_problems(scenario)
    if problems:
        raise ConfigError("\n".join(f"{scenario.name}: {p}" for p in problems))


def _image_set_problem(field: str, name: str) -> str | None:
    """Why ``name`` is no image set (``testbed.data.images.image_set``), or None."""
    if name in IMAGE_SETS or Path(name).is_dir():
        return None
    return f"{field} = {name!r} is not a folder; allowed: {', '.join(repr(s) for s in IMAGE_SETS)} or a folder of images"


def _user_image_problems(scenario: Scenario, beams: bool) -> list[str]:
    """Problems of the users' ``images``: each an image set, and the users of one TX sharing
    one set unless the TX sends each its own content (several antennas and a system with
    ``encode_precoded``, ``beams``)."""
    topo = scenario.network()
    problems = []
    for i, user in enumerate(topo.users):
        if user.images is not None and (problem := _image_set_problem(f"topology.users.{i}.images", user.images)):
            problems.append(problem)
    for node in topo.tx_nodes():
        sets = {u.name: u.images or scenario.images for u in topo.users if u.tx == node.name}
        if len(set(sets.values())) > 1 and not (beams and node.antennas > 1):
            problems.append(f"topology.users: the users of {node.name} have the image sets {sets}; allowed: one set "
                            f"for all (only a multi-antenna TX whose system defines encode_precoded sends each user "
                            f"its own items)")
    return problems


def _check_network(topo: Topology, source: str) -> None:
    """Radio files of every node, and every link's channel at every sweep point; all problems at once."""
    problems = []
    rates = {}
    for i, node in enumerate(topo.nodes):
        try:
            rates[node.name] = radio_config(node.radio, f"topology.nodes.{i}.radio").sample_rate_sps
        except ConfigError as err:
            problems.append(str(err))
    for point in topo.points():
        for key, snr in point.items():
            if not -30.0 <= snr <= 60.0:
                problems.append(f"topology.sweep: link {key} reaches snr_db = {snr:g}; allowed: -30..60 dB")
        if not problems:
            try:
                stream_matrix(topo, point, rates[topo.nodes[0].name])
            except ConfigError as err:
                problems.append(str(err))
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in dict.fromkeys(problems)))
