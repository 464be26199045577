"""A scenario run driven from Python: start, step or stream, change live, stop (docs/scripting.md).

``Run`` owns one :class:`testbed.runner.session.Session`: entering it starts every node
process, leaving it (normally, on an exception or on Ctrl-C) stops every process it started and
writes ``metrics.json`` with everything measured so far (atomically, also after every point).
The CLI's ``run``, ``sweep`` and ``demo`` go through it too (``run_scenario``).

Between batches a script may change the run live: a link's SNR (``set_snr``) or the IRS phases
(``set_irs``), sent to the emulator over the control plane; a user's system parameters such as
its model (``set_params``), sent to its nodes; over the air a radio's gains or centre frequency
(``set_radio``). Each change lands at the first sample of the next batch (a radio change at
once) and is returned as a :class:`Change` whose ``sample`` is the sample index logged for it
(the emulator's output sample, filled in once that batch has run; a radio change: the node's
own count); the batches after a change get a point index of their own, so their rows are apart
from those before it.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from testbed import registry
from testbed.config.scenario import Scenario, apply_overrides, load_scenario, scenario_from_dict
from testbed.errors import ConfigError
from testbed.runner.files import write_json
from testbed.runner.results import Results
from testbed.runner.session import Session, SessionHooks, mean_images
from testbed.runner.versions import relative_path, sha256, versions

ScenarioLike = str | Path | Scenario | Mapping


class Record(Mapping):
    """One user's result of one batch: the keys of a metrics.json row (docs/architecture.md
    "Results", e.g. ``user``, ``snr_db``, ``status``, ``psnr_db``, ``snr_est_db``) plus ``batch``
    (counted over the run); read as ``record["psnr_db"]`` or ``record.psnr_db`` (None when absent)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = dict(row)

    def __getitem__(self, key: str) -> Any:
        return self._row[key]

    def __iter__(self):
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._row.get(key)

    def __repr__(self) -> str:
        return f"Record({self._row!r})"


@dataclass
class Change:
    """A live change: what (``"snr_db"`` of a link, ``"irs_phases"``, ``"params"`` of users), its
    target and value, the run batch it precedes, and ``sample``: the emulator output sample it
    landed at (None until that batch has run; a parameter change lands at the next batch's first
    sample)."""

    what: str
    target: str
    value: Any
    batch: int
    commands: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sample: int | None = None
    sent_at: int = field(default=0, repr=False)  # the emulator's output samples before the change was sent


def as_scenario(scenario: ScenarioLike, overrides: list[str] | dict[str, Any] | None = None) -> Scenario:
    """A validated Scenario from a shipped name, a YAML path, a mapping or a Scenario, with
    ``overrides`` (``["key.sub=value", ...]`` or ``{"key.sub": value}``) applied; ConfigError
    listing every problem at once."""
    items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()] \
        if isinstance(overrides, Mapping) else list(overrides or [])
    if isinstance(scenario, Scenario):
        scenario = scenario.model_dump(mode="json", exclude_unset=True)
    if isinstance(scenario, Mapping):
        return scenario_from_dict(apply_overrides(dict(scenario), items), str(scenario.get("name", "scenario")))
    return load_scenario(str(scenario), items)


class Run:
    """A scenario's node processes, started with ``with Run(...) as run:`` and stepped batch by batch.

    Parameters: scenario (a shipped name, a YAML path, a mapping or a Scenario); out, the run
    folder (metrics.json, node logs); overrides as for :func:`as_scenario`; progress, a callback
    for status lines, or True for a progress bar (the default when stderr is a terminal); hooks
    for the session (tests: fault injection).
    """

    def __init__(self, scenario: ScenarioLike, out: str | Path, overrides: list[str] | dict | None = None,
                 progress: bool | Callable[[str], None] | None = None, hooks: SessionHooks | None = None,
                 resume: bool = False) -> None:
        from testbed.runner.scenario import scenario_images, user_images

        self.scenario = as_scenario(scenario, overrides)
        self.out_dir = Path(out)
        self.resumed = resumed_points(self.scenario, self.out_dir) if resume else {"points": [], "rows": [], "frames": {}}
        self.images = scenario_images(self.scenario)
        status = progress if callable(progress) else (lambda s: None)
        self.session = Session(self.scenario, self.images, self.out_dir / "nodes", status, hooks or SessionHooks(),
                               user_items=user_images(self.scenario, self.images))
        self.session.on_point = lambda results: self.save()
        self.session.skip_points = set(self.resumed["points"])
        self.changes: list[Change] = []
        self._bar = _bar(len(self.session.plan())) if (progress is True or (progress is None and sys.stderr.isatty())) \
            else None
        self._steps: Iterator | None = None
        self._closed = False
        self.interrupted = False
        self._versions = versions()  # once: it asks git for the revision

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> "Run":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.session.start()
        except BaseException as err:
            self.close(fast=True, interrupted=isinstance(err, KeyboardInterrupt))
            raise
        self._steps = self.session.iterate()
        return self

    def __exit__(self, kind, error, trace) -> None:
        interrupted = kind is not None and issubclass(kind, KeyboardInterrupt)
        self.close(fast=interrupted, interrupted=interrupted)

    def close(self, fast: bool = False, interrupted: bool = False) -> None:
        """Stop every process (``fast``: terminate at once, as after Ctrl-C) and write metrics.json
        (``interrupted`` says the run was stopped by Ctrl-C)."""
        if self._closed:
            return
        self._closed = True
        self.interrupted = interrupted
        self.session.results.processes = self.session.stop(fast=fast)
        if self._bar is not None:
            self._bar.close()
        self.save()

    # -- stepping ---------------------------------------------------------------------------
    def step(self) -> list[Record] | None:
        """Run the next planned batch; its records (one per user), or None when the plan is done."""
        if self._steps is None or self._closed:
            raise ConfigError("run.step(): the run is not started or already closed; allowed: inside `with Run(...)`")
        try:
            index, _, _ = next(self._steps)
        except StopIteration:
            return None
        if self._bar is not None:
            self._bar.update(1)
        self._resolve_changes()
        return self.batch_records(index, self.session.batch_count - 1)

    def step_point(self) -> list[Record] | None:
        """Run the rest of the current planned point; its rows (one per user, the metrics.json
        rows of that point), or None when the plan is done."""
        if self._steps is None or self._closed:
            raise ConfigError("run.step_point(): the run is not started or already closed; "
                              "allowed: inside `with Run(...)`")
        per_point = self.scenario.batches
        while True:
            records = self.step()
            if records is None:
                return None
            if self.session.batch_count % per_point == 0:
                index = records[0]["point"]
                return [Record(self.session.results.row(index, u.name)) for u in self.session.topo.users
                        if (index, u.name) in self.session.results.batches]

    def records(self) -> Iterator[Record]:
        """Every remaining batch's records, as each batch completes."""
        while (records := self.step()) is not None:
            yield from records

    def run(self) -> dict:
        """Run every remaining batch; the metrics.json document."""
        for _ in self.records():
            pass
        return self.document()

    def batch_records(self, index: int, batch: int) -> list[Record]:
        """The records of run batch ``batch`` (at point ``index``)."""
        results = self.session.results
        out = []
        for user in self.session.topo.users:
            one = Results(results.topo, results.labels, tags=results.tags)
            for ub in results.batches.get((index, user.name), [])[-1:]:
                one.add(index, results.points[index], ub)
            if one.batches:
                out.append(Record({**one.row(index, user.name), "batch": batch}))
        return out

    # -- live changes -----------------------------------------------------------------------
    def set_snr(self, link: str, snr_db: float) -> Change:
        """Set link ``"tx->rx"``'s SNR (Es/N0, dB) from the next batch on."""
        commands = self.session.retune({link: snr_db})
        return self._change("snr_db", link, float(snr_db), commands)

    def set_gain(self, link: str, gain_db: float) -> Change:
        """Set link ``"tx->rx"``'s path gain (dB) from the next batch on, for an RX whose
        ``noise_db`` is fixed (the SNR is then gain_db - noise_db)."""
        topo = self.session.topo
        if link not in {lk.key for lk in topo.links}:
            raise ConfigError(f"link {link!r}: not in the topology; allowed: {[lk.key for lk in topo.links]}")
        if link not in self.session.point:
            raise ConfigError(f"set_gain {link}: the link is given by gain_db (its SNR is not tracked); allowed: "
                              "links given by snr_db")
        rx = topo.node(link.split("->")[1])
        noise = rx.noise_per_antenna()
        if noise is None:
            raise ConfigError(f"set_gain {link}: node {rx.name} has no noise_db (its noise follows its strongest "
                              "link, so a gain fixes no SNR); allowed: set_snr, or a topology with noise_db")
        commands = self.session.retune({link: float(gain_db) - noise[0]})
        return self._change("gain_db", link, float(gain_db), commands)

    def set_irs(self, phases_rad: np.ndarray) -> Change:
        """Set the software IRS's element phases (radians, float (n_elements,)) from the next batch on."""
        if self.session.topo.irs is None:
            raise ConfigError("set_irs: the scenario has no topology.irs; allowed: a scenario with an IRS")
        phases = np.asarray(phases_rad, float).tolist()
        commands = [{"cmd": "set_irs", "phases": phases}]
        self.session.control_channel(commands)
        self.session.new_point(dict(self.session.point))
        self.session.irs_state = "custom"
        return self._change("irs_phases", "irs", phases, commands)

    def set_params(self, users: str | list[str], **params: Any) -> Change:
        """System parameters (e.g. ``model="adjscc-r6"``) of ``users`` from the next batch on: their
        decoders, and the encoder of every TX node all of whose users are listed."""
        names = [users] if isinstance(users, str) else list(users)
        self.session.set_params(names, params)
        change = self._change("params", ",".join(names), params, [])
        return change

    def set_radio(self, node: str, **changes: float) -> Change:
        """Over the air: ``center_freq_hz``, ``tx_gain_db`` or ``rx_gain_db`` of ``node``'s radio, now
        (checked against the device's limits); ``sample`` is the node's own sample count when it
        took effect (samples sent by its TX or processed by its RX). Virtual radios: RadioError."""
        sample = self.session.set_radio(node, changes)
        self.session.new_point(dict(self.session.point))
        change = self._change("radio", node, changes, [])
        change.sample = sample
        return change

    def irs_phases(self, kind: str = "optimal", link: str | None = None, draw: int = 0) -> np.ndarray:
        """IRS phases (radians) to try: ``"zero"``, ``"random"`` (draw ``draw``) or ``"optimal"``
        (co-phasing ``link`` from the emulator's own IRS channel, quantised to its phase bits)."""
        return self.session.irs_phases(kind, link, draw)

    def _change(self, what: str, target: str, value: Any, commands: list[dict]) -> Change:
        change = Change(what, target, value, self.session.batch_count, commands, sent_at=self.session.sample)
        if not commands:  # the value was in force already: nothing was sent
            change.sample = self.session.sample
        self.changes.append(change)
        return change

    def _resolve_changes(self) -> None:
        """Fill in the sample of every change sent before the batch that just ran, from the
        emulator's change log (entries of the same kind and link, logged after it was sent)."""
        pending = [c for c in self.changes if c.sample is None and c.batch < self.session.batch_count]
        if not pending or "channel" in self.session.dead:
            return
        reply = self.session._ask("channel", "status", 30.0)
        log = reply[0].get("changes", []) if reply else []
        for change in pending:
            samples = [entry["sample"] for command in change.commands for entry in log
                       if entry.get("sample", -1) >= change.sent_at and _matches(entry, command)]
            change.sample = min(samples) if samples else None

    # -- results ----------------------------------------------------------------------------
    def document(self) -> dict:
        """The metrics.json document of what has been measured so far."""
        doc = document(self.session, self.session.results, self._versions)
        if self.resumed["points"]:  # the rows and frames of the points an earlier run completed
            order = {u.name: i for i, u in enumerate(self.session.topo.users)}
            doc["rows"] = sorted(self.resumed["rows"] + doc["rows"], key=lambda r: (r["point"], order[r["user"]]))
            doc["frames"] = {u: self.resumed["frames"].get(u, []) + doc["frames"].get(u, [])
                             for u in {*self.resumed["frames"], *doc["frames"]}}
        doc["resumed_points"] = self.resumed["points"]
        doc["live_changes"] = [{"what": c.what, "target": c.target, "value": c.value, "batch": c.batch,
                                "sample": c.sample} for c in self.changes]
        doc["interrupted"] = self.interrupted
        return doc

    def save(self) -> Path:
        """Write metrics.json (atomically); its path."""
        path = self.out_dir / "metrics.json"
        write_json(path, self.document())
        return path

    def output(self):
        """The RunOutput of this run (document, reconstructions per first-user SNR, originals)."""
        from testbed.runner.scenario import RunOutput

        results, topo = self.session.results, self.session.topo
        out = RunOutput(self.out_dir, self.document(), originals=self.images)
        first = topo.users[0]
        key = f"{first.tx}->{first.rx}"
        for (index, user), batches in results.batches.items():
            if user == first.name:
                out.images[results.points[index].get(key, float(index))] = mean_images(batches)
        return out

    def report(self) -> Path:
        """Write report.md (a table of the rows, PNG plots and image grids) of what has been measured; its path."""
        from testbed.runner.report import write_report

        out = self.output()
        return write_report(self.out_dir, out.document, out.originals, out.images)


def resumed_points(scenario: Scenario, out_dir: Path) -> dict:
    """What an earlier run of the same configuration left in ``out_dir/metrics.json``: the
    planned points every user completed (status ok, every batch), their rows and frames. No
    file: nothing. A file of another configuration: ConfigError (resume needs the same one)."""
    from testbed.runner.files import json_default, read_json

    path = Path(out_dir) / "metrics.json"
    if not path.is_file():
        return {"points": [], "rows": [], "frames": {}}
    old = read_json(path)
    mine = json.loads(json.dumps(scenario.model_dump(), default=json_default))
    if old.get("config") != mine:
        raise ConfigError(f"resume: {path} was written by another configuration; allowed: the same scenario and "
                          "overrides, or another output folder")
    users = [u.name for u in scenario.network().users]
    planned = range(len(scenario.network().points()))
    done = [i for i in planned if sorted(r["user"] for r in old["rows"] if r["point"] == i and r["status"] == "ok"
                                         and r["batches"] == scenario.batches) == sorted(users)]
    batches = {i * scenario.batches + b for i in done for b in range(scenario.batches)}  # run batch numbers
    frames = {user: [f for f in log if f[0] in batches] for user, log in old.get("frames", {}).items()}
    return {"points": done, "rows": [r for r in old["rows"] if r["point"] in done], "frames": frames}


def _matches(entry: dict, command: dict) -> bool:
    what = {"set_link": "set_link", "set_noise": "set_noise_var", "set_irs": "set_irs_phases"}[command["cmd"]]
    return entry.get("what") == what and all(entry.get(k) == command[k] for k in ("rx", "tx") if k in command)


def _bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", desc="batches")


def document(session: Session, results, versions_info: dict) -> dict:
    """The metrics.json document (docs/architecture.md "Results") of what has been measured."""
    scenario = session.scenario
    files = {p for system in session.systems.values() for p in system.model_files()}
    problems = [reason for reason in session.dead.values()]
    if session.plane_stopped and session.plane_stopped not in problems:
        problems.append(session.plane_stopped)
    rows = results.rows()
    return {"scenario": scenario.name, "system": scenario.system, "rows": rows,
            "summary": registry.get("system", scenario.system).summary(rows),
            "config": scenario.model_dump(), "radio": session.radio.model_dump(), "versions": versions_info,
            "models": {relative_path(p): sha256(p) for p in sorted(files)}, "problems": problems,
            "processes": results.processes, "slot_samples": session.slot, "frames": results.frame_logs(),
            "channel_changes": results.processes.get("channel", {}).get("changes", [])}
