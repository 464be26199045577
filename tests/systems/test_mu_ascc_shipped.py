"""The shipped MU-ASCC models (models/mu_ascc): each ONNX graph against the PyTorch module rebuilt
from its own weights (the exports keep the state-dict names), the classifier's held-out accuracy,
and the codec table's agreement with the cards."""
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from testbed.data.images import held_out_crops
from testbed.data.loaders import load_fashion_mnist
from testbed.onnx.card import read_card
from testbed.onnx.session import OnnxModel
from testbed.systems.mu_ascc.semantic import FashionClassifier, classify
from testbed.systems.mu_ascc.system import MODEL_DIR, TABLES_FILE
from testbed.systems.mu_ascc.tables import load_tables

TABLES = load_tables(str(MODEL_DIR / TABLES_FILE))
CODECS = [(role, entry["name"]) for role, entries in TABLES.items() for entry in entries]
ROLES = {"analysis": ("g_a", "h_a"), "hyper_synthesis": ("h_s",), "synthesis": ("g_s",)}


def _weights(path) -> dict[str, torch.Tensor]:
    """The graph's initializers by state-dict name (the ``model.`` prefix dropped)."""
    return {i.name.removeprefix("model."): torch.from_numpy(numpy_helper.to_array(i).copy())
            for i in onnx.load(str(path)).graph.initializer if i.name.startswith("model.")}


@pytest.fixture(scope="module")
def fashion():
    images, labels = load_fashion_mnist(split="test")
    return np.repeat(images[:500], 3, axis=1), labels[:500]


def _torch_codec(name: str):
    from compressai.models import ScaleHyperprior

    card = read_card(MODEL_DIR / f"{name}.analysis.onnx")
    model = ScaleHyperprior(card["architecture"]["N"], card["architecture"]["M"]).eval()
    state = {}
    for role, parts in ROLES.items():
        weights = _weights(MODEL_DIR / f"{name}.{role}.onnx")
        assert weights and all(k.split(".")[0] in parts for k in weights), (role, sorted(weights)[:3])
        state.update(weights)
    missing = [k for k in model.state_dict() if k.split(".")[0] in ("g_a", "h_a", "h_s", "g_s") and k not in state]
    assert not missing, missing
    model.load_state_dict(state, strict=False)
    return model


@pytest.mark.parametrize("role,name", CODECS)
def test_shipped_codec_graphs_match_their_torch_transforms(role, name, fashion):
    model = _torch_codec(name)
    img = held_out_crops()[0][1][:, :128, :128] if role == "data" else \
        np.pad(fashion[0][0], ((0, 0), (0, 36), (0, 36)), mode="edge")
    x = torch.from_numpy(np.ascontiguousarray(img))[None]
    with torch.no_grad():
        y = model.g_a(x)
        z = model.h_a(torch.abs(y))
        scales = model.h_s(torch.round(z))
        x_hat = model.g_s(torch.round(y))
    sessions = {r: OnnxModel(MODEL_DIR / f"{name}.{r}.onnx") for r in ROLES}
    analysis = sessions["analysis"].run(x=x.numpy())
    for key, ref in (("y", y), ("z", z)):
        np.testing.assert_allclose(analysis[key], ref.numpy(), atol=1e-3 * float(ref.abs().max()))
    got = sessions["hyper_synthesis"].run(z_hat=torch.round(z).numpy())["scales_hat"]
    np.testing.assert_allclose(got, scales.numpy(), atol=1e-3 * float(scales.abs().max()))
    got = sessions["synthesis"].run(y_hat=torch.round(y).numpy())["x_hat"]
    np.testing.assert_allclose(got, x_hat.numpy(), atol=1e-3)


def test_shipped_classifier_matches_torch_and_classifies_held_out_decodes(fashion):
    (path,) = sorted(MODEL_DIR.glob("fmnist-classifier-*.classifier.onnx"))
    model = FashionClassifier().eval()
    model.load_state_dict(_weights(path))
    images, labels = fashion
    logits = OnnxModel(path).run(image=images[:64])["logits"]
    with torch.no_grad():
        reference = model(torch.from_numpy(images[:64])).numpy()
    np.testing.assert_allclose(logits, reference, atol=1e-4)
    accuracy = float(np.mean(classify(model, images) == labels))
    assert accuracy > 0.88, accuracy  # the card: 0.918 on all 10000 test images


def test_the_codec_table_lists_exported_codecs_with_their_card_rates():
    for role, name in CODECS:
        card = read_card(MODEL_DIR / f"{name}.analysis.onnx")
        entry = next(e for e in TABLES[role] if e["name"] == name)
        assert card["training_config"]["data"] == ("photos" if role == "data" else "fashion-mnist")
        assert entry["r_squared"] >= 0.98
        assert entry["rate_bpp"] == pytest.approx(card["metrics"]["rate_bpp"], rel=0.05)
