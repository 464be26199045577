"""``testbed replay RECORDING``: the receiver and the decoders run offline on a recorded run.

A recording folder (``testbed run SCENARIO --record DIR``) holds, per RX process, one SigMF
recording per antenna (:mod:`testbed.recordings.sigmf_meta`) and ``session.json``, written by
the runner after every batch: the scenario, each process's users and flows, and per batch the
TX nodes' encode replies (the manifests), the samples sent and the samples each RX had
processed at the batch's end. Replay pushes each RX's samples through a fresh FrameReceiver
(MimoFrameReceiver for several antennas), gives each batch the frames that start within its
samples, decodes and scores every user exactly as the RX node and the runner do
(:func:`testbed.runner.decoding.decode_users`, :func:`testbed.runner.session.score_user_batch`),
and writes the same metrics.json rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from testbed import registry
from testbed.config.scenario import Scenario
from testbed.config.yaml_io import validate
from testbed.errors import ConfigError
from testbed.phy.receiver import FrameReceiver, ReceivedFrame
from testbed.recordings.sigmf_meta import data_path, read_samples
from testbed.runner.chain import TAIL_SAMPLES
from testbed.runner.decoding import decode_users
from testbed.runner.files import read_json, write_json
from testbed.runner.results import Results, UserBatch
from testbed.runner.scenario import scenario_images, user_images
from testbed.runner.session import score_user_batch
from testbed.runner.versions import relative_path, sha256, versions

CHUNK = 1 << 16


def load_session(folder: Path) -> dict:
    path = Path(folder) / "session.json"
    if not path.is_file():
        raise ConfigError(f"recording {str(folder)!r} has no session.json; allowed: a folder written by "
                          f"testbed run SCENARIO --record DIR")
    doc = read_json(path)
    if doc.get("kind") != "testbed-recording":
        raise ConfigError(f"{path} is not a testbed recording (kind {doc.get('kind')!r})")
    return doc


def receive_recording(folder: Path, process: str, antennas: int,
                      flows: frozenset[int] | None = None, multi_stream: bool = False) -> list[ReceivedFrame]:
    """Every frame a fresh receiver finds in one RX process's recorded samples; with ``flows``
    (the users of a beamformed TX) the stream receiver detects these flows only, as live; with
    ``multi_stream`` (a device-to-device RX) the stream receiver runs on its one antenna, as live."""
    streams = []
    for a in range(antennas):
        meta = Path(folder) / f"{process}-ant{a}.sigmf-meta"
        if not meta.is_file() or not data_path(Path(folder) / process, a).is_file():
            raise ConfigError(f"recording {str(folder)!r} lacks {meta.name} or its data file")
        samples = read_samples(meta)
        streams.append(np.concatenate([samples, np.zeros(TAIL_SAMPLES, np.complex64)]))
    n = min(s.size for s in streams)
    if antennas == 1 and flows is None and not multi_stream:
        receiver, frames = FrameReceiver(), []
        for start in range(0, n, CHUNK):
            frames += receiver.push(streams[0][start:start + CHUNK])
        return frames
    from testbed.phy.mimo_receiver import MimoFrameReceiver

    receiver, frames = MimoFrameReceiver(n_antennas=antennas, flows=flows), []
    for start in range(0, n, CHUNK):
        frames += receiver.push([s[start:start + CHUNK] for s in streams])
    return frames


def own_flows(process: dict) -> frozenset[int] | None:
    """The flows a recorded RX process detected alone (its users' when ``own_flows``), or None."""
    return frozenset(u["flow"] for u in process["users"]) if process.get("own_flows") else None


def replay(folder: Path, out_dir: Path) -> dict:
    """Replay a recording into ``out_dir/metrics.json``; returns the document."""
    folder = Path(folder)
    session = load_session(folder)
    scenario = validate(Scenario, session["scenario"], f"{folder / 'session.json'}: scenario")
    topo = scenario.network()
    items = user_images(scenario, scenario_images(scenario))
    users = {u["name"]: (rx, u) for rx, p in session["rx"].items() for u in p["users"]}
    systems = {name: registry.create("system", scenario.system, params=u["params"], seed=scenario.seed)
               for name, (_, u) in users.items()}
    frames = {rx: receive_recording(folder, rx, p["antennas"], own_flows(p), bool(p.get("streams")))
              for rx, p in session["rx"].items()}
    results = Results(topo, {name: s.label() for name, s in systems.items()},
                      tags={name: s.row_tags() for name, s in systems.items()})
    begin = 0
    for entry in session["batches"]:
        if entry.get("irs_phases") is not None:  # the software IRS's state the batch met
            results.irs_at[entry["index"]] = entry["irs_phases"]
        manifests = {flow: m for enc in entry["encoded"].values() for flow, m in enc["manifests"].items()}
        for rx, p in session["rx"].items():
            mine = [f for f in frames[rx] if begin <= f.start < entry["end_sample"]]
            decoded, arrays = decode_users({u["name"]: systems[u["name"]] for u in p["users"]}, p["users"], mine,
                                           manifests)
            received = entry["samples_received"].get(rx)
            for user in p["users"]:
                tx = next(t for t, q in session["tx"].items() if user["flow"] in q["flows"])
                if received is None:
                    outcome = UserBatch(user["name"], failed=f"process {rx} gave no result when recorded")
                else:
                    msg = {"users": decoded, "samples_received": received}
                    outcome = score_user_batch(systems[user["name"]], items[user["name"]], user, msg, arrays,
                                               entry["encoded"][tx], entry["total"], entry["batch"])
                results.add(entry["index"], entry["point"], outcome)
        begin = entry["end_sample"]
    rows = results.rows()
    doc = {"scenario": scenario.name, "system": scenario.system, "rows": rows,
           "summary": registry.get("system", scenario.system).summary(rows),
           "config": scenario.model_dump(), "radio": scenario.radio_config().model_dump(), "versions": versions(),
           "models": {relative_path(p): sha256(p) for p in sorted({f for s in systems.values() for f in s.model_files()})},
           "problems": [], "processes": {}, "slot_samples": session["slot_samples"],
           "frames": results.frame_logs(), "channel_changes": [], "replayed_from": str(folder)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", doc)
    return doc
