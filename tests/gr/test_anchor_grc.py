"""The anchor-aided broadcast as a GNU Radio Companion flowgraph: anchor_broadcast.grc compiles
headless with grcc, and in one process carries the default images from the base-station encoder
through the framer, a 1 -> 4 channel and four receivers to the four decoder families, each
within 1 dB of the same decoder on the same image through the torch channel at its SNR; the
anchor blocks' YAMLs list the registered sets and families."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gnuradio.gr")
pytest.importorskip("onnxruntime")

from grc_helpers import load_script as _load  # noqa: E402
from grc_helpers import wait_for as _wait_for  # noqa: E402
from testbed import registry  # noqa: E402
from testbed.errors import ConfigError  # noqa: E402
from testbed.gr import grc  # noqa: E402
from testbed.metrics import psnr_db  # noqa: E402
from testbed.systems.anchor.model import DECODERS  # noqa: E402
from testbed.systems.anchor.system import torch_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FLOWGRAPHS = ROOT / "flowgraphs"
GRCC = shutil.which("grcc") or ("/usr/bin/grcc" if os.path.exists("/usr/bin/grcc") else None)
FAMILIES = ("attention", "conv", "resnet", "vgg")
SNRS_DB = (4.0, 7.0, 10.0, 13.0)
MODEL = "anchor-awgn-two-stage"


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    if GRCC is None:
        pytest.skip("grcc (GNU Radio Companion compiler) is not installed")
    target = tmp_path_factory.mktemp("anchor_flowgraph")
    env = {**os.environ, "GRC_BLOCKS_PATH": str(FLOWGRAPHS / "blocks"), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([GRCC, "-o", str(target), str(FLOWGRAPHS / "anchor_broadcast.grc")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"grcc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return target / "testbed_anchor_broadcast.py"


@pytest.mark.parametrize("block", ["testbed_anchor_encoder", "testbed_anchor_decoder"])
def test_anchor_block_yaml_lists_the_registered_sets_and_families(block):
    doc = yaml.safe_load((FLOWGRAPHS / "blocks" / f"{block}.block.yml").read_text())
    params = {p["id"]: p for p in doc["parameters"]}
    sets = [n for n in registry.names("system-model") if n.startswith("anchor-")]
    assert set(params["model"]["options"]) == set(sets) and params["model"]["default"] == MODEL
    if "decoder" in params:
        assert params["decoder"]["options"] == [*DECODERS, "anchor"]
    assert callable(getattr(grc, doc["templates"]["make"].split("(")[0].split(".")[1]))


def test_an_unknown_set_or_family_is_refused_with_the_allowed_names():
    with pytest.raises(ConfigError, match="anchor-awgn-two-stage"):
        grc.anchor_encoder("anchor-awgn-greedy")
    with pytest.raises(ConfigError, match="allowed: .*vgg"):
        grc.anchor_decoder(MODEL, "mlp")


@pytest.mark.timeout(120)
def test_the_broadcast_flowgraph_delivers_every_family_its_images(script):
    module = _load(script)
    tb = module.testbed_anchor_broadcast(model=MODEL, snr0_db=SNRS_DB[0], snr1_db=SNRS_DB[1], snr2_db=SNRS_DB[2],
                                         snr3_db=SNRS_DB[3], image_size=128, period_ms=250)
    sinks = [tb.sink0, tb.sink1, tb.sink2, tb.sink3]
    tb.start()
    try:
        arrived = _wait_for(lambda: all(s.images_received >= 3 for s in sinks), 60.0)
    finally:
        tb.stop()
        tb.wait()
    assert arrived, [s.images_received for s in sinks]
    assert tb.encoder.images_bad == 0 and tb.framer.pdus_dropped == 0
    originals = [img for _, img in tb.source.images]
    for k, (family, sink) in enumerate(zip(FAMILIES, sinks)):
        decoder = getattr(tb, f"decoder{k}")
        assert decoder.frames_bad == 0 and getattr(tb, f"rx{k}").errors == 0
        for img, meta in zip(sink.images, sink.metas):
            original = originals[int(meta["seq"]) % len(originals)]
            assert abs(meta["snr_est_db"] - SNRS_DB[k]) < 1.0, (family, meta)
            ref = torch_reference(MODEL, [family], [("x", original)], SNRS_DB[k], draws=2,
                                  encoder_snr_db=min(SNRS_DB))[family]["psnr_db"]
            got = float(psnr_db(original, img))
            assert got > ref - 1.0, f"{family}: {got:.2f} dB over the flowgraph, {ref:.2f} dB in torch"
