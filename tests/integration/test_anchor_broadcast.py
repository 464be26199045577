"""The anchor-aided broadcast through real node processes: the shipped anchor-broadcast scenario
(one TX node, the emulator, four RX processes, four decoder families) gives every user the PSNR
and MS-SSIM of the torch evaluation of the same models within the issue's 0.3 dB; and a fifth
decoder family, defined and trained outside testbed/ (a plugin folder), runs through the same
broadcast beside a shipped one."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from testbed import registry
from testbed.config.scenario import Scenario, load_scenario
from testbed.config.yaml_io import validate
from testbed.data.images import default_images
from testbed.onnx.card import read_card, write_card
from testbed.runner.scenario import run_scenario
from testbed.systems.anchor import model as anchor_model
from testbed.systems.anchor.export import DECODER_SPEC, export_decoder
from testbed.systems.anchor.models import register_folder
from testbed.systems.anchor.system import reference_rows
from testbed.systems.deepjscc.model import through_channel

pytestmark = pytest.mark.integration
PLUGIN = Path(__file__).parent / "plugin_anchor"
SHIPPED = "anchor-awgn-two-stage"


def test_the_broadcast_rows_match_the_torch_evaluation(tmp_path):
    scenario = load_scenario("anchor-broadcast", ["topology.sweep=[{axis: snr_offset_db, values: [4, 13]}]"])
    run_scenario(scenario, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    rows = doc["rows"]
    assert sorted((r["user"], r["snr_db"]) for r in rows) == sorted(
        (u, s) for u in ("attention", "conv", "resnet", "vgg") for s in (4.0, 13.0))
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 and r["scheme"] == "two_stage" for r in rows), rows
    assert all(r["decoder"] == r["user"] for r in rows)
    for ref in reference_rows(rows, default_images()):
        assert abs(ref["delta_psnr_db"]) < 0.3, ref
        assert abs(ref["delta_ms_ssim"]) < 0.01, ref


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A plugin folder with the throwaway family, registered in this process and the nodes; the
    family and the plugin's set do not outlive the test."""
    monkeypatch.setattr(registry, "_TABLES", {kind: dict(table) for kind, table in registry._TABLES.items()})
    families = dict(anchor_model.DECODERS)
    folder = tmp_path / "plugin"
    folder.mkdir()
    shutil.copy(PLUGIN / "throwaway_decoder.py", folder)
    monkeypatch.setenv(registry.PLUGINS_ENV, str(folder))
    registry.load_plugins(folder)
    yield folder
    anchor_model.DECODERS.clear()
    anchor_model.DECODERS.update(families)


def _fit_throwaway(steps: int = 60) -> torch.nn.Module:
    """Stage two of the two-stage scheme for the new family: the shipped encoder frozen."""
    torch.manual_seed(0)
    encoder = registry.get("system-model", SHIPPED).torch_module("transmitter")
    decoder = anchor_model.build_decoder("throwaway")
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    crops = torch.from_numpy(np.stack([img[:, :64, :64] for _, img in default_images()]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        snr = torch.full((len(crops), 1), 10.0)
        with torch.no_grad():
            symbols = encoder(crops, snr)
        received, snr_eff = through_channel(symbols, snr, "awgn", generator)
        loss = torch.mean((decoder(anchor_model.shape_symbols(received, 64, 64), snr_eff) - crops) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return decoder.eval()


def _plugin_set(folder: Path, decoder: torch.nn.Module) -> str:
    """The set ``anchor-plugin``: the shipped transmitter and attention decoder, and the new one."""
    shipped = registry.get("system-model", SHIPPED)
    for role in ("transmitter", "attention"):
        card = read_card(shipped.files[role])
        target = folder / f"anchor-plugin.{role}.onnx"
        shutil.copy(shipped.files[role], target)
        write_card(target, {**card, "name": "anchor-plugin", "file": target.name})
    path = export_decoder(decoder, folder / "anchor-plugin.throwaway.onnx")
    write_card(path, {**read_card(shipped.files["attention"]), "name": "anchor-plugin", "role": "throwaway",
                      "file": path.name, "architecture": {"class": "ThrowawayDecoder", "family": "throwaway",
                                                          **decoder.config()},
                      "command": "tests/integration/test_anchor_broadcast.py", "metrics": {},
                      "inputs": DECODER_SPEC["inputs"], "outputs": DECODER_SPEC["outputs"]})
    register_folder(folder)
    return "anchor-plugin"


def test_a_fifth_decoder_family_from_a_plugin_runs_through_the_broadcast(plugin_folder, tmp_path):
    name = _plugin_set(plugin_folder, _fit_throwaway())
    entry = registry.get("system-model", name)
    assert entry.decoders == ["attention", "throwaway"] and entry.parity() < 1e-4
    scenario = validate(Scenario, {
        "name": "anchor-plugin-test", "system": "anchor", "system_params": {"model": name}, "batches": 2,
        "topology": {"nodes": [{"name": "bs", "role": "tx", "cfo_hz": 1500.0}, {"name": "ue0", "role": "rx"},
                               {"name": "ue1", "role": "rx", "cfo_hz": -700.0}],
                     "users": [{"name": "shipped", "tx": "bs", "rx": "ue0", "params": {"decoder": "attention"}},
                               {"name": "fifth", "tx": "bs", "rx": "ue1", "params": {"decoder": "throwaway"}}],
                     "links": [{"tx": "bs", "rx": u, "model": "awgn", "snr_db": 10.0} for u in ("ue0", "ue1")]}},
        "test")
    out = run_scenario(scenario, tmp_path / "run")
    rows = {r["user"]: r for r in out.document["rows"]}
    assert rows["fifth"]["decoder"] == "throwaway" and rows["fifth"]["model"] == "anchor-plugin/throwaway"
    assert all(r["status"] == "ok" and r["frames_lost"] == 0 for r in rows.values()), rows
    assert str(plugin_folder / "anchor-plugin.throwaway.onnx") in out.document["models"]
    for ref in reference_rows(list(rows.values()), default_images()):
        assert abs(ref["delta_psnr_db"]) < 0.3, ref
    # the throwaway decoder learnt something, and less than the shipped attention decoder
    assert 14.0 < rows["fifth"]["psnr_db"] < rows["shipped"]["psnr_db"], rows
