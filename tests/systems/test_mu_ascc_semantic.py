"""MU-ASCC's semantic user: Fashion-MNIST codec training data, the classifier's seeded resumable
training behind the codecs, and its classification error under bit flips (eq. (13))."""
import numpy as np
import pytest
import torch

from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError
from testbed.systems.mu_ascc import semantic, train_codec
from testbed.systems.mu_ascc.codec import HyperpriorCodec


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    from compressai.models import ScaleHyperprior

    return HyperpriorCodec(ScaleHyperprior(8, 8), name="untrained")


@pytest.fixture(scope="module")
def test_split():
    images, labels = load_fashion_mnist(split="test")
    return np.repeat(images[:12], 3, axis=1), labels[:12]


def test_fashion_training_images_are_padded_as_the_codec_pads_them():
    sampler = train_codec.FashionSampler(np.random.default_rng(0))
    x = sampler.batch(4)
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2])  # grey in every channel
    assert torch.equal(x[:, :, 27:, :28], x[:, :, 27:28, :28].expand(-1, -1, 37, -1))  # bottom rows replicated
    assert torch.equal(x[:, :, :, 27:], x[:, :, :, 27:28].expand(-1, -1, -1, 37))


def test_codec_config_refuses_unknown_data_and_names_the_fashion_codecs():
    with pytest.raises(ConfigError, match="data='cifar'.*photos, fashion-mnist"):
        train_codec.CodecConfig(data="cifar")
    assert train_codec.CodecConfig(data="fashion-mnist").name().startswith("hyperprior-fmnist-")
    assert not train_codec.CodecConfig().name().startswith("hyperprior-fmnist")  # photo codec names unchanged
    cfg = train_codec.CodecConfig(data="fashion-mnist")
    assert train_codec.command_line(cfg, "/abs/ckpt/out", 2).endswith("--data fashion-mnist --threads 2 --out DIR")
    assert train_codec.command_line(cfg, "runs/codecs", 2).endswith("--out runs/codecs")


def test_reconstruct_equals_the_entropy_coded_decode(codec, test_split):
    images, _ = test_split
    batch = semantic.reconstruct(codec, torch.from_numpy(images[:3])).numpy()
    for img, rec in zip(images[:3], batch):
        assert np.abs(codec.decode(codec.encode(img)) - rec).max() < 1e-4


class _Stop(Exception):
    pass


def _stop_at_first_checkpoint(_line):
    raise _Stop


def test_classifier_training_resumes_to_the_same_weights(codec, tmp_path, monkeypatch):
    monkeypatch.setattr(semantic, "CHECKPOINT_STEPS", 2)
    cfg = semantic.ClassifierConfig(clean_steps=3, finetune_steps=3, batch=8)
    whole = semantic.train_classifier(cfg, [codec], tmp_path / "a", log=lambda _: None)
    with pytest.raises(_Stop):  # the run dies right after its step-2 checkpoint
        semantic.train_classifier(cfg, [codec], tmp_path / "b", log=_stop_at_first_checkpoint)
    resumed = semantic.train_classifier(cfg, [codec], tmp_path / "b", log=lambda _: None)
    for key, value in whole["model"].state_dict().items():
        assert torch.allclose(value.float(), resumed["model"].state_dict()[key].float(), atol=1e-6), key
    assert [e["step"] for e in resumed["log"]] == [2, 4, 6]
    again = semantic.train_classifier(cfg, [codec], tmp_path / "b", log=_stop_at_first_checkpoint)
    assert again["log"] == resumed["log"]  # a finished run returns at once


def test_classifier_name_depends_on_its_codecs_and_is_stable():
    cfg = semantic.ClassifierConfig()
    assert cfg.name(["a", "b"]) == cfg.name(["b", "a"]) != cfg.name(["a"])
    assert cfg.name([]).endswith("clean")


def test_classifier_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="decoded_fraction=1.5"):
        semantic.ClassifierConfig(decoded_fraction=1.5)
    with pytest.raises(ConfigError, match="batch=0"):
        semantic.ClassifierConfig(batch=0)


def test_semantic_curve_is_exact_where_no_bit_flips_and_fits_eq13(codec, test_split):
    images, labels = test_split
    torch.manual_seed(0)
    model = semantic.FashionClassifier().eval()
    curve = semantic.measure(codec, model, images, labels, bers=(1e-9, 1e-6, 1e-4, 1e-3, 1e-2), draws=2)
    clean = semantic.classify(model, np.stack([codec.decode(codec.encode(i)) for i in images])) != labels
    assert curve.clean_classification_error == pytest.approx(clean.mean())
    assert curve.points[0].p_any_flip < 1e-5
    assert curve.points[0].classification_error == pytest.approx(clean.mean(), abs=1e-4)
    assert [p.p_any_flip for p in curve.points] == sorted(p.p_any_flip for p in curve.points)
    assert curve.bits_per_image == pytest.approx(curve.rate_bpp * 28 * 28)
    assert all(0.0 <= p.classification_error <= 1.0 for p in curve.points)


def test_report_fits_eq13_to_a_logistic_curve():
    ber = np.logspace(-9, -2, 15)
    error = 0.1 + 0.8 / (1 + np.exp(-2.5 * (np.log10(ber) + 4.0)))
    curve = semantic.SemanticCurve("c", 300.0, 300 / 784, 0.1, tuple(
        semantic.SemanticPoint(float(b), float(e), 0.0) for b, e in zip(ber, error)))
    fitted = semantic.report([curve])["codecs"][0]["fit"]
    assert fitted["r_squared"] > 0.9999
    assert fitted["threshold_log10_ber"] == pytest.approx(-4.0, abs=1e-3)


def test_load_codecs_names_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="holds no hyperprior-fmnist"):
        semantic.load_codecs(tmp_path)
