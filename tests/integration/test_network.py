"""Persistent multi-user runs through real node processes: a 1 -> 4 broadcast with per-user
rows, a node killed mid-run, RX -> TX feedback closing the loop, and an out-of-tree system with
one encoder and two decoders registered from a temporary folder."""
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from testbed.config.scenario import Scenario
from testbed.config.yaml_io import validate
from testbed.onnx.card import write_card
from testbed.runner.scenario import run_scenario
from testbed.runner.session import SessionHooks

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _broadcast(snrs, model="awgn", system="deepjscc", params=None, **extra) -> Scenario:
    users = [f"ue{k}" for k in range(len(snrs))]
    data = {"name": "broadcast-test", "system": system, "max_images": 2, "system_params": params or {},
            "topology": {
                "nodes": [{"name": "bs", "role": "tx", "cfo_hz": 2000.0}] + [{"name": u, "role": "rx"} for u in users],
                "users": [{"name": f"u{k}", "tx": "bs", "rx": u} for k, u in enumerate(users)],
                "links": [{"tx": "bs", "rx": u, "model": model, "snr_db": s} for u, s in zip(users, snrs)]},
            **extra}
    return validate(Scenario, data, "test")


def test_broadcast_gives_one_row_per_user_and_point_ordered_by_snr(tmp_path):
    out = run_scenario(_broadcast([1.0, 4.0, 7.0, 10.0]), tmp_path)
    rows = out.document["rows"]
    assert [(r["user"], r["node"], r["status"]) for r in rows] == [(f"u{k}", f"ue{k}", "ok") for k in range(4)]
    for row in rows:
        assert row["frames_lost"] == 0 and row["samples_lost"] == 0 and row["frames_sent"] == 2
    psnr = [r["psnr_db"] for r in rows]
    assert all(b > a - 0.3 for a, b in zip(psnr, psnr[1:])) and psnr[3] - psnr[0] > 1.0, psnr
    est = [r["snr_est_db"] for r in rows]
    assert all(abs(e - s) < 1.5 for e, s in zip(est, [1.0, 4.0, 7.0, 10.0])), est
    statuses = out.document["processes"]
    assert set(statuses) == {"bs", "ue0", "ue1", "ue2", "ue3", "channel"}
    assert all(s["returncode"] == 0 for s in statuses.values()), statuses


def test_a_killed_receiver_is_named_and_only_its_user_fails(tmp_path):
    scenario = _broadcast([20.0, 20.0, 20.0], batches=3)

    def kill_ue1(session, point, batch):
        if batch == 1:
            session.launcher.procs["ue1"].send_signal(signal.SIGKILL)

    out = run_scenario(scenario, tmp_path, hooks=SessionHooks(before_batch=kill_ue1))
    rows = {r["user"]: r for r in out.document["rows"]}
    assert rows["u1"]["status"] == "failed" and "ue1" in rows["u1"]["reason"] and "-9" in rows["u1"]["reason"]
    assert rows["u1"]["psnr_db"] is None and rows["u1"]["frames_received"] is None
    for user in ("u0", "u2"):
        assert rows[user]["status"] == "ok" and rows[user]["frames_lost"] == 0 and rows[user]["batches"] == 3, rows
        assert rows[user]["psnr_db"] > 20
    assert any("ue1" in p for p in out.document["problems"])
    assert out.document["processes"]["ue1"]["returncode"] == -signal.SIGKILL


def test_the_tx_follows_the_snr_its_receiver_feeds_back(tmp_path):
    scenario = _broadcast([5.0], params={"model": "adjscc-r6"}, batches=4, adapt="feedback")

    def raise_snr(session, point, batch):
        if batch == 2:  # before batch 2 the link goes from 5 to 15 dB (noise down 10 dB)
            session.control_channel([{"cmd": "set_noise", "rx": 0, "noise_var": 10 ** -1.5},
                                     {"cmd": "set_link", "rx": 0, "tx": 0, "snr_db": 15.0, "gain_db": 0.0}])

    out = run_scenario(scenario, tmp_path, hooks=SessionHooks(before_batch=raise_snr))
    (row,) = out.document["rows"]
    csi = row["csi_snr_db"]
    assert csi[0] == 5.0  # no feedback yet: the nominal SNR
    assert abs(csi[1] - 5.0) < 1.0 and abs(csi[2] - 5.0) < 1.0  # the RX measured about 5 dB
    assert abs(csi[3] - 15.0) < 1.0  # one batch after the change the TX uses about 15 dB
    assert row["csi_from"] == "feedback"


def _linear_onnx(path: Path, name: str, matrix: np.ndarray, scale: float, offset: float, encoder: bool) -> None:
    """image (N,3,8,8) -> symbols (N,96,2) = (x - 0.5) A scale, or back: A^T / scale + offset."""
    a = numpy_helper.from_array(matrix.astype(np.float32), "a")
    if encoder:
        io = ("image", [None, 3, 8, 8], "symbols", [None, 96, 2], [-1, 192], [-1, 96, 2])
    else:
        io = ("symbols", [None, 96, 2], "image", [None, 3, 8, 8], [-1, 192], [-1, 3, 8, 8])
    inp, in_shape, out, out_shape, flat, back = io
    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in ((flat, "flat"), (back, "back"))]
    consts += [numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((scale, "scale"), (offset, "offset"))]
    nodes = [helper.make_node("Reshape", [inp, "flat"], ["f"]), helper.make_node("Sub", ["f", "offset"], ["c"]),
             helper.make_node("MatMul", ["c", "a"], ["m"]), helper.make_node("Mul", ["m", "scale"], ["s"]),
             helper.make_node("Reshape", ["s", "back"], [out])]
    if not encoder:  # y = (x A^T) / scale + offset
        nodes = [helper.make_node("Reshape", [inp, "flat"], ["f"]), helper.make_node("MatMul", ["f", "a"], ["m"]),
                 helper.make_node("Mul", ["m", "scale"], ["s"]), helper.make_node("Add", ["s", "offset"], ["c"]),
                 helper.make_node("Reshape", ["c", "back"], [out])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(inp, TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], [a, *consts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    n = lambda shape: ["N" if d is None else d for d in shape]  # noqa: E731
    write_card(path, {"name": name, "system": "toy", "role": "encoder" if encoder else "decoder",
                      "bandwidth_ratio": "1/2", "variant": "linear", "architecture": {}, "data": "none (untrained)",
                      "command": "test fixture", "seed": 0, "snr_range_db": [], "channels": [],
                      "training_minutes": 0, "machine": {}, "metrics": {}, "opset": 17,
                      "inputs": [{"name": inp, "shape": n(in_shape), "dtype": "float32"}],
                      "outputs": [{"name": out, "shape": n(out_shape), "dtype": "float32"}]})


def _git_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True).stdout


def test_an_out_of_tree_system_with_two_decoders_runs_over_the_broadcast(tmp_path, monkeypatch):
    from testbed import registry

    before = _git_state()
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    shutil.copy(Path(__file__).parent / "plugin_toy" / "toy_system.py", plugin / "toy_system.py")
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((192, 192)))
    _linear_onnx(plugin / "toy-a.encoder.onnx", "toy-a", q, 2.5, 0.5, encoder=True)
    _linear_onnx(plugin / "toy-a.decoder.onnx", "toy-a", q.T, 1 / 2.5, 0.5, encoder=False)
    _linear_onnx(plugin / "toy-b.decoder.onnx", "toy-b", 0.7 * q.T, 1 / 2.5, 0.5, encoder=False)
    monkeypatch.setenv(registry.PLUGINS_ENV, str(plugin))
    # the plugin's system and models must not outlive this test (the GRC tests compare the model list)
    monkeypatch.setattr(registry, "_TABLES", {kind: dict(table) for kind, table in registry._TABLES.items()})
    registry.load_plugins(plugin)
    scenario = _broadcast([25.0, 25.0], system="toy")
    scenario.topology.users[1].params = {"decoder": "toy-b"}
    out = run_scenario(scenario, tmp_path / "run")
    rows = {r["user"]: r for r in out.document["rows"]}
    assert rows["u0"]["model"] == "toy-a" and rows["u1"]["model"] == "toy-b"
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 for r in rows.values()), rows
    assert rows["u0"]["psnr_db"] > 25 and rows["u1"]["psnr_db"] < rows["u0"]["psnr_db"] - 3
    assert set(out.document["models"]) == {str(plugin / f) for f in
                                           ("toy-a.encoder.onnx", "toy-a.decoder.onnx", "toy-b.decoder.onnx")}
    assert _git_state() == before  # nothing outside the temporary folder changed


def test_a_killed_transmitter_fails_every_user_and_the_cli_exits_non_zero(tmp_path):
    import typer

    from testbed.cli import _exit_if_all_failed

    def kill_bs(session, point, batch):
        if batch == 1:
            session.launcher.procs["bs"].send_signal(signal.SIGKILL)

    out = run_scenario(_broadcast([20.0, 20.0], batches=2), tmp_path, hooks=SessionHooks(before_batch=kill_bs))
    rows = out.document["rows"]
    assert all(r["status"] == "failed" and "bs" in r["reason"] and r["psnr_db"] is None for r in rows), rows
    with pytest.raises(typer.Exit) as exit_info:
        _exit_if_all_failed(out.document)
    assert exit_info.value.exit_code == 1
