"""MU-ASCC's ONNX export: the codec's three graphs and entropy tables against CompressAI (graph
parity, byte-equal streams, cross-decoding, corrupted payloads), the classifier's logits, the
errors of a broken export, and the export command."""
import json
import shutil

import numpy as np
import pytest
import torch

from testbed.data.images import held_out_crops
from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError, ModelError
from testbed.onnx.card import sha256_file
from testbed.onnx.session import OnnxModel
from testbed.onnx.verify import PARITY_TOLERANCE
from testbed.systems.mu_ascc import export, train_codec
from testbed.systems.mu_ascc.codec import ALIGN_PX, HyperpriorCodec, flip_bits
from testbed.systems.mu_ascc.onnx_codec import OnnxHyperpriorCodec, gaussian_indexes

CONFIG = train_codec.CodecConfig(lmbda=0.01, n=16, m=24, steps=30, batch=2, crop_px=64)


def _tiny_model():
    """ScaleHyperprior(16, 24) after a few steps on random images (quantiles moved by the aux loss)."""
    from compressai.losses import RateDistortionLoss
    from compressai.models import ScaleHyperprior

    torch.manual_seed(0)
    model = ScaleHyperprior(CONFIG.n, CONFIG.m)
    main_opt, aux_opt = train_codec.optimisers(model, CONFIG)
    criterion = RateDistortionLoss(lmbda=CONFIG.lmbda)
    for _ in range(CONFIG.steps):
        x = torch.rand(CONFIG.batch, 3, 64, 64)
        loss = criterion(model(x), x)["loss"]
        main_opt.zero_grad()
        loss.backward()
        main_opt.step()
        aux_opt.zero_grad()
        model.aux_loss().backward()
        aux_opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def codec():
    torch.set_num_threads(1)
    return HyperpriorCodec(_tiny_model(), name="tiny")


@pytest.fixture(scope="module")
def exported(codec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    export.export_codec(codec, folder, config={"seed": 0, "steps": CONFIG.steps, "data": "photos"},
                        command="test", minutes=0.0, training_log=[], metrics={})
    return folder


@pytest.fixture(scope="module")
def onnx_codec(exported):
    return OnnxHyperpriorCodec(exported, "tiny")


@pytest.fixture(scope="module")
def images():
    """The 8 held-out photo crops (cut to 128 x 192 and 100 x 150 px) and 8 Fashion-MNIST test images."""
    photos = [img[:, :128, :192] if i % 2 else img[:, :100, :150] for i, (_, img) in enumerate(held_out_crops())]
    grey, _ = load_fashion_mnist(split="test")
    return [np.ascontiguousarray(img) for img in photos] + list(np.repeat(grey[:8], 3, axis=1))


def _close(onnx_out: np.ndarray, torch_out: np.ndarray) -> float:
    """Max abs difference relative to the output's scale (at least 1)."""
    return float(np.abs(onnx_out - torch_out).max() / max(1.0, np.abs(torch_out).max()))


@torch.no_grad()
def test_the_graphs_match_the_torch_transforms(codec, onnx_codec, images):
    model, sessions = codec.model, onnx_codec.sessions
    worst = 0.0
    for img in images[::3]:
        pad = ALIGN_PX
        x = np.pad(img, ((0, 0), (0, -img.shape[1] % pad), (0, -img.shape[2] % pad)), mode="edge")[None]
        y = model.g_a(torch.from_numpy(x))
        z = model.h_a(torch.abs(y))
        got = sessions["analysis"].run(x=x)
        z_hat = torch.round(z)
        scales = sessions["hyper_synthesis"].run(z_hat=z_hat.numpy())["scales_hat"]
        x_hat = sessions["synthesis"].run(y_hat=torch.round(y).numpy())["x_hat"]
        worst = max(worst, _close(got["y"], y.numpy()), _close(got["z"], z.numpy()),
                    _close(scales, model.h_s(z_hat).numpy()), _close(x_hat, model.g_s(torch.round(y)).numpy()))
    assert worst < PARITY_TOLERANCE


def test_streams_equal_compressais_and_decode_across(codec, onnx_codec, images):
    equal = 0
    for img in images:
        ours, theirs = onnx_codec.encode(img), codec.encode(img)
        equal += ours == theirs
        for stream in (ours, theirs):  # each decoder reads each coder's stream
            rec = onnx_codec.decode(stream)
            assert rec.shape == img.shape and rec.dtype == np.float32
            assert np.abs(rec - codec.decode(stream)).max() < PARITY_TOLERANCE
    assert equal >= 0.75 * len(images), f"{equal} of {len(images)} streams byte-equal"


@torch.no_grad()
def test_given_torchs_latents_the_streams_are_compressais_bit_for_bit(codec, onnx_codec, images):
    for img in images:
        theirs = codec.encode(img)
        x = torch.nn.functional.pad(torch.from_numpy(img)[None], (0, -img.shape[2] % 64, 0, -img.shape[1] % 64),
                                    mode="replicate")
        y = codec.model.g_a(x)
        z = codec.model.h_a(torch.abs(y))
        assert onnx_codec.encode_latents(y[0].numpy(), z[0].numpy(), *img.shape[1:]) == theirs


def test_cdf_indexes_follow_build_indexes_at_the_edges(codec, onnx_codec):
    gc = codec.model.gaussian_conditional
    table = gc.scale_table.numpy()
    edges = np.concatenate([table, np.nextafter(table, np.float32(0)), np.nextafter(table, np.float32(1e9)),
                            [0.0, -1.0, 0.05, 0.11, 1e9, np.inf, -np.inf, np.nan]]).astype(np.float32)
    scales = np.concatenate([edges, np.random.default_rng(0).lognormal(0, 2, 500).astype(np.float32)])
    expected = gc.build_indexes(torch.from_numpy(scales)).numpy()
    assert np.array_equal(gaussian_indexes(scales, onnx_codec.scale_table, onnx_codec.scale_bound), expected)


@torch.no_grad()
def _compressai_latents(codec, stream):
    """y_hat float32 (M, h, w) as ``ScaleHyperprior.decompress`` reads ``stream``."""
    model = codec.model
    z_hat = model.entropy_bottleneck.decompress([stream.z], (-(-stream.height // 64), -(-stream.width // 64)))
    indexes = model.gaussian_conditional.build_indexes(model.h_s(z_hat))
    return model.gaussian_conditional.decompress([stream.y], indexes, z_hat.dtype)[0].numpy()


@pytest.mark.parametrize("flips", [1, 8, "quarter", "all"])
def test_a_flipped_payload_decodes_without_an_exception(onnx_codec, images, flips):
    rng = np.random.default_rng(5)
    for img in images[::2]:
        stream = onnx_codec.encode(img)
        count = {"quarter": stream.bits // 4, "all": stream.bits}.get(flips, flips)
        rec = onnx_codec.decode(stream.with_payload(flip_bits(stream.payload, count, rng)))
        assert rec.shape == img.shape and rec.dtype == np.float32
        assert np.isfinite(rec).all() and rec.min() >= 0 and rec.max() <= 1


def test_the_decoded_latents_are_compressais_for_clean_and_y_corrupted_streams(codec, onnx_codec, images):
    """With z intact the CDF indexes of y are those of CompressAI, so even a corrupted y decodes to
    the same latents. (A corrupted z can give latents of 1e8 and more, where the graphs' and torch's
    float rounding differ enough to pick another CDF and the two decoders part ways.)"""
    rng = np.random.default_rng(6)
    for img in images:
        stream = onnx_codec.encode(img)
        assert np.array_equal(onnx_codec.decode_latents(stream), _compressai_latents(codec, stream))
        bad = stream.with_payload(stream.z + flip_bits(stream.y, 8, rng))
        assert np.array_equal(onnx_codec.decode_latents(bad), _compressai_latents(codec, bad))


def _copy(exported, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exported, folder)
    return folder


def test_a_missing_or_changed_table_file_is_named(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    tables = export.table_path(folder, "tiny")
    tables.unlink()
    with pytest.raises(ModelError, match=r"tiny\.entropy\.npz: entropy table file is missing"):
        OnnxHyperpriorCodec(folder, "tiny")
    np.savez_compressed(tables, eb_medians=np.zeros(16, np.float32))
    with pytest.raises(ModelError, match=r"tiny\.entropy\.npz: sha256 mismatch"):
        OnnxHyperpriorCodec(folder, "tiny")
    for role in export.CODEC_ROLES:  # cards that vouch for the truncated file
        card_file = folder / f"tiny.{role}.json"
        card = json.loads(card_file.read_text())
        card["entropy_tables"]["sha256"] = sha256_file(tables)
        card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"tiny\.entropy\.npz: entropy table file lacks eb_quantized_cdf"):
        OnnxHyperpriorCodec(folder, "tiny")


def test_tables_of_another_codec_are_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    tables = dict(np.load(export.table_path(folder, "tiny")))
    tables["eb_medians"] = tables["eb_medians"][:8]
    np.savez_compressed(export.table_path(folder, "tiny"), **tables)
    for role in export.CODEC_ROLES:
        card_file = folder / f"tiny.{role}.json"
        card = json.loads(card_file.read_text())
        card["entropy_tables"]["sha256"] = sha256_file(export.table_path(folder, "tiny"))
        card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"tiny\.entropy\.npz: eb_quantized_cdf \(16, \d+\)"):
        OnnxHyperpriorCodec(folder, "tiny")


def test_the_cards_hold_the_training_facts_and_the_table_hash(codec, exported):
    assert not codec.model.training  # the export leaves the codec in eval mode
    card = OnnxModel(exported / "tiny.analysis.onnx").card
    assert card["system"] == "mu_ascc" and card["role"] == "analysis" and card["opset"] == 17
    assert card["architecture"]["N"] == 16 and card["architecture"]["M"] == 24
    assert card["entropy_tables"]["sha256"] == sha256_file(export.table_path(exported, "tiny"))
    assert [o["shape"] for o in card["outputs"]] == [[1, 24, "H/16", "W/16"], [1, 16, "H/64", "W/64"]]


@torch.no_grad()
def test_classifier_logits_match_torch(tmp_path):
    semantic = pytest.importorskip("testbed.systems.mu_ascc.semantic")
    torch.manual_seed(1)
    model = semantic.FashionClassifier()
    grey, _ = load_fashion_mnist(split="test")
    images = np.repeat(grey[:64], 3, axis=1)
    model.train()
    model(torch.from_numpy(images))  # batch-norm statistics away from their initial values
    path = export.export_classifier(model, tmp_path, "clf", config={"seed": 1, "clean_steps": 1, "finetune_steps": 0},
                                    command="test", minutes=0.0, metrics={}, codecs=[])
    assert not model.training  # the export leaves it in eval mode
    logits = OnnxModel(path).run(image=images)["logits"]
    assert logits.shape == (64, 10)
    assert _close(logits, model(torch.from_numpy(images)).numpy()) < PARITY_TOLERANCE


def test_the_command_exports_every_codec_file(codec, tmp_path):
    train_codec.write_codec(codec.model, CONFIG, tmp_path / "codecs", minutes=0.1, log=[{"step": 30, "loss": 1.0}],
                            command="python -m testbed.systems.mu_ascc.train_codec --n 16")
    written = export.main(["--codecs", str(tmp_path / "codecs"), "--out", str(tmp_path / "out")])
    name = CONFIG.name()
    assert written["codecs"] == [str(tmp_path / "out" / f"{name}.analysis.onnx")]
    card = OnnxModel(tmp_path / "out" / f"{name}.synthesis.onnx").card
    assert card["command"] == "python -m testbed.systems.mu_ascc.train_codec --n 16" and card["seed"] == 0
    assert card["metrics"]["images"] == 8 and card["metrics"]["rate_bpp"] > 0
    assert card["metrics"]["final_training"] == {"step": 30, "loss": 1.0}
    rec = OnnxHyperpriorCodec(tmp_path / "out", name).decode(codec.encode(np.full((3, 64, 64), 0.5, np.float32)))
    assert rec.shape == (3, 64, 64)
    with pytest.raises(ConfigError, match="holds no"):
        export.main(["--codecs", str(tmp_path / "out"), "--out", str(tmp_path / "out")])


def test_the_command_exports_the_classifier_file(codec, tmp_path):
    semantic = pytest.importorskip("testbed.systems.mu_ascc.semantic")
    train_codec.write_codec(codec.model, CONFIG, tmp_path / "codecs", minutes=0.1, log=[], command="train")
    cfg = semantic.ClassifierConfig(clean_steps=2, finetune_steps=1, seed=4)
    torch.manual_seed(4)
    model = semantic.FashionClassifier().eval()
    pt = semantic.write_classifier(model, cfg, [codec], tmp_path, {"minutes": 0.2, "log": []},
                                   {"clean_test_accuracy": 0.5})
    written = export.main(["--codecs", str(tmp_path / "codecs"), "--classifier", str(pt),
                           "--out", str(tmp_path / "out")])
    card = OnnxModel(written["classifier"][0]).card
    assert card["role"] == "classifier" and card["seed"] == 4 and card["codecs"] == ["tiny"]
    assert "--clean-steps 2 --finetune-steps 1 --seed 4" in card["command"]
    assert card["metrics"] == {"clean_test_accuracy": 0.5} and card["training_steps"] == 3
    with pytest.raises(ConfigError, match="is not a file"):
        export.main(["--codecs", str(tmp_path / "codecs"), "--classifier", str(tmp_path / "none.pt"),
                     "--out", str(tmp_path / "out")])
