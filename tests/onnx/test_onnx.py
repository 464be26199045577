"""Shipped ONNX models: parity with torch, cards, integrity checks, round trip (registry-parametrised)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import onnx
import pytest
import torch

import testbed.models_registry  # noqa: F401  (registers the shipped models)
from testbed.data.images import default_images
from testbed.errors import ModelError
from testbed.metrics import psnr_db
from testbed.onnx.card import REQUIRED_FIELDS, card_path, read_card, sha256_file
from testbed.onnx.export import export_model, state_dict_from_onnx
from testbed.onnx.session import OnnxModel
from testbed.onnx.verify import PARITY_TOLERANCE, parity, verify_model
from testbed.registry import create, get, names
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.deepjscc.model import DeepJSCC
from testbed.systems.deepjscc.whole_image import WholeImageJSCC

torch.set_num_threads(1)
MODELS = names("model")


def test_the_four_models_are_registered() -> None:
    assert {"deepjscc-r6", "deepjscc-r12", "adjscc-r6", "adjscc-r12"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_torch(name: str) -> None:
    assert parity(get("model", name), n=8, seed=1) <= PARITY_TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_card_complete_and_verified(name: str) -> None:
    entry = get("model", name)
    assert verify_model(entry) == []
    for role, path in (("encoder", entry.encoder), ("decoder", entry.decoder)):
        card = read_card(path)
        assert set(REQUIRED_FIELDS) <= set(card)
        assert card["sha256"] == sha256_file(path)
        assert card["role"] == role and card["name"] == name and card["opset"] == 17
        assert card["command"].startswith("testbed train deepjscc --ratio ")
        assert {"photos_awgn", "photos_rayleigh", "cifar10_awgn"} <= set(card["metrics"])
        assert {0.0, 10.0, 20.0} <= set(card["metrics"]["photos_awgn"]["snr_db"])
        assert path.stat().st_size < 4e6


@pytest.mark.parametrize("name", MODELS)
def test_high_snr_round_trip_above_floor(name: str) -> None:
    codec = NeuralImageCodec(name)
    image = dict(default_images())["kodim23"]
    symbols = codec.encode(image, 20.0)
    rng = np.random.default_rng(0)
    noise = np.sqrt(0.5 * 10 ** -2) * (rng.standard_normal(symbols.size) + 1j * rng.standard_normal(symbols.size))
    recon = codec.decode((symbols + noise).astype(np.complex64), 20.0, image.shape)
    assert recon.shape == image.shape and psnr_db(image, recon) > 20.0


def _copy(entry, tmp_path):
    """Encoder .onnx + card copied into tmp_path; returns the copied .onnx path."""
    target = tmp_path / entry.encoder.name
    shutil.copy(entry.encoder, target)
    shutil.copy(card_path(entry.encoder), card_path(target))
    return target


@pytest.fixture
def entry():
    return get("model", "adjscc-r6")


def test_corrupted_copy_is_refused(entry, tmp_path) -> None:
    path = _copy(entry, tmp_path)
    data = bytearray(path.read_bytes())
    data[100:140] = bytes(b ^ 0xFF for b in data[100:140])
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=rf"{path.name}: sha256 mismatch \(card [0-9a-f]+…, file [0-9a-f]+…\)"):
        OnnxModel(path)
    # the card updated to the corrupt bytes: ONNX Runtime's refusal is a ModelError too
    card = json.loads(card_path(path).read_text())
    card_path(path).write_text(json.dumps(dict(card, sha256=sha256_file(path))))
    path.write_bytes(bytes(data[: len(data) // 2]))
    card_path(path).write_text(json.dumps(dict(card, sha256=sha256_file(path))))
    with pytest.raises(ModelError, match=rf"{path.name}: ONNX Runtime cannot load it"):
        OnnxModel(path)


def test_missing_file_and_card_are_refused(entry, tmp_path) -> None:
    with pytest.raises(ModelError, match=rf"{tmp_path / 'absent.onnx'}: model file is missing"):
        OnnxModel(tmp_path / "absent.onnx")
    path = _copy(entry, tmp_path)
    card_path(path).unlink()
    with pytest.raises(ModelError, match=rf"{path.name}: model card .* is missing"):
        OnnxModel(path)
    missing = dataclasses.replace(entry, decoder=tmp_path / "gone.decoder.onnx")
    assert any("gone.decoder.onnx: model file is missing" in p for p in verify_model(missing))


def test_card_with_wrong_input_names_is_refused(entry, tmp_path) -> None:
    path = _copy(entry, tmp_path)
    card = json.loads(card_path(path).read_text())
    card["inputs"][0]["name"] = "img"
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=rf"{path.name}: input names \['image', 'snr_db'\] differ from "
                                         rf"the card's \['img', 'snr_db'\]"):
        OnnxModel(path)
    card["inputs"][0]["name"] = "image"
    card["outputs"][0]["shape"] = ["N", 99, 2]
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=rf"{path.name}: output shapes .* differ from the card's"):
        OnnxModel(path)


def test_run_checks_inputs_and_splits_batches(entry) -> None:
    model = OnnxModel(entry.encoder, batch_size=3)
    images = np.random.default_rng(0).random((7, 3, 32, 32), dtype=np.float32)
    snr = np.full((7, 1), 10.0, np.float32)
    whole = OnnxModel(entry.encoder).run(image=images, snr_db=snr)["symbols"]
    np.testing.assert_allclose(model.run(image=images, snr_db=snr)["symbols"], whole, atol=1e-6)
    with pytest.raises(ModelError, match="the model takes"):
        model.run(image=images)
    with pytest.raises(ModelError, match="batch"):
        model.run(image=images, snr_db=snr[:3])


@pytest.mark.parametrize("variant", ["deepjscc", "adjscc"])
def test_export_keeps_snr_input_and_weight_names(variant: str, tmp_path) -> None:
    model = DeepJSCC("1/12", variant, width=8).eval()
    encoder, decoder = export_model(model, tmp_path, "tiny")
    for path, inputs, output in ((encoder, ["image", "snr_db"], "symbols"), (decoder, ["symbols", "snr_db"], "image")):
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == inputs and [o.name for o in graph.output] == [output]
    rebuilt = DeepJSCC("1/12", variant, width=8)
    rebuilt.load_state_dict(state_dict_from_onnx(rebuilt, encoder, decoder))
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_whole_image_export_takes_any_size_and_keeps_weight_names(tmp_path) -> None:
    model = WholeImageJSCC("1/12", width=8).eval()
    encoder, decoder = export_model(model, tmp_path, "tiny-whole")
    enc, dec = onnx.load(str(encoder)).graph, onnx.load(str(decoder)).graph
    assert [i.name for i in enc.input] == ["image", "snr_db"] and [i.name for i in dec.input] == ["symbols", "snr_db"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"])
    for height, width in ((16, 24), (40, 8)):
        image = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        (symbols,) = session.run(None, {"image": image, "snr_db": np.full((1, 1), 5.0, np.float32)})
        assert symbols.shape == (1, height * width * 32 // 128, 2)
    rebuilt = WholeImageJSCC("1/12", width=8)
    rebuilt.load_state_dict(state_dict_from_onnx(rebuilt, encoder, decoder))
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_create_returns_the_torch_model() -> None:
    model = create("model", "deepjscc-r12")
    assert isinstance(model, DeepJSCC) and model.k == 256 and model.variant == "deepjscc"
