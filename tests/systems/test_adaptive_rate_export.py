"""The adaptive-rate user's ONNX export: each graph against the torch user at temperature 0
(decisions identical), ONNX user end to end against transmit/to_symbols/from_symbols/receive, the
torch user rebuilt from the initializers, the cards, the ablations, the in-graph pruning rank
against rate_control's on ties, input errors, and the shipped models (models/adaptive_rate)."""
import json
import shutil

import numpy as np
import pytest
import torch

from testbed.errors import ConfigError, ModelError
from testbed.models_registry import MODELS_DIR
from testbed.onnx.card import REQUIRED_FIELDS, read_card
from testbed.onnx.export import state_dict_from_onnx
from testbed.onnx.session import OnnxModel
from testbed.systems.adaptive_rate import export as ex
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate import train as tr
from testbed.systems.adaptive_rate import transceiver as t
from testbed.systems.adaptive_rate.onnx_user import OnnxAdaptiveRateUser

TINY = tr.TrainConfig(users=2, antennas=2, steps=4, batch=2)
SHIPPED_DIR = MODELS_DIR / "adaptive_rate"
SHIPPED = sorted(p.name[:-len(".transmitter.onnx")] for p in SHIPPED_DIR.glob("*.transmitter.onnx"))
ATOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint path, user in eval mode) after TINY's 4 training steps."""
    folder = tmp_path_factory.mktemp("ckpt")
    result = tr.train(TINY, folder, log=lambda _: None)
    return folder / f"{TINY.name()}.ckpt", result["model"].eval()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The export command's folder (card metrics on 8 tiles)."""
    folder = tmp_path_factory.mktemp("onnx")
    written = ex.main(["--checkpoint", str(trained[0]), "--out", str(folder), "--tiles", "8", "--batch", "2"])
    assert written == {role: str(folder / f"{TINY.name()}.{role}.onnx") for role in ex.ROLES}
    return folder


def _inputs(n: int, antennas: int, seed: int):
    """Random images (some dark, some flat), complex CSI (n, M) and SNRs over [-5, 30] dB."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    images[0] *= 0.05
    images[1] = 0.5
    csi = torch.complex(torch.randn(n, antennas, generator=g), torch.randn(n, antennas, generator=g))
    return images, csi, torch.linspace(-5, 30, n)


def _iq(csi: torch.Tensor) -> np.ndarray:
    return torch.stack([csi.real, csi.imag], -1).numpy()


@torch.no_grad()
def _graph_parity(model: t.AdaptiveRateUser, folder, name: str, n: int = 12, seed: int = 0) -> None:
    """Both graphs against the torch user: rows to ATOL, the decisions identical."""
    antennas = read_card(folder / f"{name}.transmitter.onnx")["architecture"]["antennas"]
    images, csi, snr = _inputs(n, antennas, seed)
    rows, d = model.transmit(images, csi, snr, 0.0)
    got = OnnxModel(folder / f"{name}.transmitter.onnx").run(image=images.numpy(), csi=_iq(csi), snr_db=snr.numpy())
    np.testing.assert_array_equal(got["mask"], d.mask.numpy())
    np.testing.assert_array_equal(got["kept"], d.kept.numpy())
    np.testing.assert_array_equal(got["ratio"], d.ratio.numpy())
    np.testing.assert_array_equal(np.asarray(rc.PRUNING_RATIOS, np.float32)[got["ratio_index"]], d.ratio.numpy())
    # the un-normalised rows of a trained encoder reach |x| ~ 230; what is sent is each image's rows
    # over their RMS (transceiver.to_symbols), so float32 rounding is compared on that scale
    scale = np.sqrt(np.mean(rows.numpy() ** 2, axis=(1, 2), keepdims=True)).clip(1e-6)
    np.testing.assert_allclose(got["rows"] / scale, rows.numpy() / scale, atol=ATOL, rtol=0)
    detected = rows + 0.1 * torch.randn(rows.shape, generator=torch.Generator().manual_seed(seed + 1))
    image = OnnxModel(folder / f"{name}.receiver.onnx").run(rows=detected.numpy(), kept=d.kept.numpy(),
                                                            csi=_iq(csi), snr_db=snr.numpy())["image"]
    np.testing.assert_allclose(image, model.receive(detected, d, csi, snr).numpy(), atol=ATOL, rtol=0)


def _export(model, cfg, folder):
    return ex.export_user(model, cfg, folder, command=ex.command_line(cfg), minutes=0.0, steps=0, training_log=[],
                          metrics={})


def test_each_graph_matches_the_torch_user_and_its_decisions(trained, exported):
    images, csi, snr = _inputs(12, 2, seed=0)
    with torch.no_grad():
        _, d = trained[1].transmit(images, csi, snr, 0.0)
    assert len(set(d.selected.tolist())) > 1 and len(set(d.ratio.tolist())) > 1  # the inputs vary the decisions
    _graph_parity(trained[1], exported, TINY.name())


@torch.no_grad()
def test_the_onnx_user_through_an_identity_channel_is_the_torch_chain(trained, exported):
    model = trained[1]
    user = OnnxAdaptiveRateUser(exported, TINY.name())
    images, csi, snr = _inputs(6, 2, seed=3)
    rows, d = model.transmit(images, csi, snr, 0.0)
    full, power = t.to_symbols(rows, d.kept)
    reference = model.receive(t.from_symbols(full, power, 8), d, csi, snr).numpy()
    symbols, decision = user.transmit(images.numpy(), csi.numpy(), snr.numpy())
    assert symbols.dtype == np.complex64 and symbols.shape == (int(decision.counts.sum()),)
    np.testing.assert_array_equal(decision.selected, d.selected.numpy())
    np.testing.assert_array_equal(decision.kept, d.kept.numpy() > 0)
    np.testing.assert_allclose(decision.power, power.numpy(), rtol=1e-5)
    sent = decision.sent
    assert np.all(full.numpy()[~sent] == 0)                                       # nothing else is sent
    np.testing.assert_allclose(symbols, full.numpy()[sent], atol=1e-5)
    start = 0
    for count in decision.counts:                                                 # unit power per image
        if count:
            assert np.mean(np.abs(symbols[start:start + count]) ** 2) == pytest.approx(1.0, rel=1e-5)
        start += count
    np.testing.assert_allclose(user.receive(symbols, decision, csi.numpy(), snr.numpy()), reference, atol=ATOL, rtol=0)
    np.testing.assert_allclose(user.cpp(decision), d.cpp().numpy(), rtol=1e-12)
    one, single = user.transmit(images[2].numpy(), csi[2].numpy(), float(snr[2]))  # one image, scalar SNR
    assert not single.batched and one.shape == (int(decision.counts[2]),)
    image = user.receive(one, single, csi[2].numpy(), float(snr[2]))
    assert image.shape == (3, 32, 32)
    np.testing.assert_allclose(image, reference[2], atol=ATOL, rtol=0)


def test_the_torch_user_is_rebuilt_from_the_initializers(trained, exported):
    paths = [exported / f"{TINY.name()}.{role}.onnx" for role in ex.ROLES]
    original = trained[1].state_dict()
    state = state_dict_from_onnx(tr.build(TINY), *paths)
    assert state.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(state[key], value), key
    rebuilt = ex.user_from_onnx(*paths)
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(original[key], value), key


def test_the_cards_are_complete_checked_and_name_no_folder(trained, exported, tmp_path):
    state = torch.load(trained[0], weights_only=False)
    for role in ex.ROLES:
        card = OnnxModel(exported / f"{TINY.name()}.{role}.onnx").card  # sha256, names, shapes checked
        assert set(REQUIRED_FIELDS) <= set(card)
        assert (card["system"], card["role"], card["name"], card["seed"]) == ("adaptive_rate", role, TINY.name(), 0)
        assert card["snr_range_db"] == [0.0, 25.0] and card["channels"] == ["rayleigh-mumimo"]
        assert card["training_steps"] == 4 and card["training_config"]["batch"] == 2
        assert card["training_minutes"] == round(state["seconds"] / 60, 2)
        assert card["command"] == ("python -m testbed.systems.adaptive_rate.train --users 2 --antennas 2 "
                                   "--alpha 0.0002 --beta 1e-05 --steps 4 --batch 2 --seed 0 --ckpt-dir DIR")
        assert not any(word.startswith(("/", "~")) for word in card["command"].split())
        assert tr.parse_args(card["command"].split()[3:]).batch == 2               # the training's own parser
        metrics = card["metrics"]
        assert [m["snr_db"] for m in metrics["mean"]] == [0.0, 10.0, 20.0] and metrics["tiles"] == 8
        assert len(metrics["per_user"]) == 6 and metrics["final_training"] == state["log"][-1]
        assert card["architecture"]["pruning_ratios"] == list(rc.PRUNING_RATIOS)
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    card_file = copy / f"{TINY.name()}.receiver.json"
    card = json.loads(card_file.read_text())
    card["sha256"] = "0" * 64
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        OnnxAdaptiveRateUser(copy, TINY.name())


@pytest.mark.parametrize("flag", ["pruning", "feedback", "entropy", "attention"])
def test_an_ablation_exports_and_matches(flag, tmp_path):
    torch.manual_seed(7)
    cfg = tr.TrainConfig(antennas=2, **{flag: False})
    model = tr.build(cfg).eval()
    _export(model, cfg, tmp_path)
    _graph_parity(model, tmp_path, cfg.name(), seed=5)
    rebuilt = ex.user_from_onnx(*(tmp_path / f"{cfg.name()}.{role}.onnx" for role in ex.ROLES))
    _graph_parity(rebuilt, tmp_path, cfg.name(), seed=6)
    card = read_card(tmp_path / f"{cfg.name()}.transmitter.onnx")
    assert card["variant"] == f"adaptive-no{flag}" and card["architecture"][flag] is False
    if flag == "pruning":
        user = OnnxAdaptiveRateUser(tmp_path, cfg.name())
        images, csi, _ = _inputs(4, 2, seed=8)
        symbols, decision = user.transmit(images.numpy(), csi.numpy(), 10.0)
        assert np.all(decision.ratio == 0) and np.all(decision.counts == 64 * decision.selected)


def test_the_graphs_pruning_rank_is_rate_controls_also_on_ties(tmp_path):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 8, 128, generator=g)
    z[0] = torch.randint(-2, 3, (8, 128), generator=g).float()      # few values, many ties (and -0 / +0)
    z[1] = 0.0
    z[2, :, ::2] = z[2, :, 1::2]                                     # pairs of equal values
    z[3] = -z[3].abs()
    expected = rc.keep_masks(z)
    ratios = torch.tensor(rc.PRUNING_RATIOS)
    assert torch.equal(ex.keep_masks(z, ratios) > 0, expected)

    class Keep(torch.nn.Module):
        def forward(self, x):
            return ex.keep_masks(x, ratios)

    from testbed.onnx.export import export_graph
    spec = {"inputs": [{"name": "z", "shape": ["N", 8, 128], "dtype": "float32"}],
            "outputs": [{"name": "keep", "shape": ["N", 5, 8, 128], "dtype": "float32"}]}
    path = export_graph(Keep(), (z[:2],), tmp_path / "keep.onnx", spec)
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z.numpy()})[0]
    np.testing.assert_array_equal(got > 0, expected.numpy())


def test_bad_inputs_name_the_field_the_value_and_what_is_allowed(exported):
    user = OnnxAdaptiveRateUser(exported, TINY.name())
    image = np.full((3, 32, 32), 0.5, np.float32)
    with pytest.raises(ConfigError, match=r"image of shape \(3, 28, 28\); allowed: \(3, 32, 32\) or \(N, 3, 32, 32\)"):
        user.transmit(np.zeros((3, 28, 28), np.float32), np.ones(2, np.complex64), 10.0)
    with pytest.raises(ConfigError, match=r"image values in \[0.5, 2.0\]; allowed: finite, in \[0, 1\]"):
        user.transmit(np.where(np.arange(32) < 5, 2.0, 0.5).astype(np.float32) * np.ones((3, 32, 1), np.float32),
                      np.ones(2, np.complex64), 10.0)
    with pytest.raises(ConfigError, match=r"csi of shape \(3,\); allowed: \(2,\) or \(1, 2\), complex"):
        user.transmit(image, np.ones(3, np.complex64), 10.0)
    with pytest.raises(ConfigError, match=r"snr_db of shape \(2,\).*allowed: a finite number or \(1,\)"):
        user.transmit(image, np.ones(2, np.complex64), [1.0, 2.0])
    symbols, decision = user.transmit(image, np.ones(2, np.complex64), 10.0)
    with pytest.raises(ConfigError, match=rf"symbols of shape \({len(symbols) - 1},\); allowed: \({len(symbols)},\)"):
        user.receive(symbols[1:], decision, np.ones(2, np.complex64), 10.0)


def test_the_command_refuses_an_unfinished_or_missing_checkpoint_and_reads_names(trained, tmp_path):
    state = torch.load(trained[0], weights_only=False)
    state["step"] = 2
    torch.save(state, tmp_path / trained[0].name)
    with pytest.raises(ConfigError, match="training at step 2 of 4; allowed: a finished training"):
        ex.main(["--checkpoint", str(tmp_path / trained[0].name), "--out", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="is not a file"):
        ex.main(["--checkpoint", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="checkpoint name 'model'; allowed: a TrainConfig name"):
        ex.config_from_name("model")
    for cfg in (TINY, tr.TrainConfig(users=3, antennas=4, alpha=1e-5, imperfect_csi=True, entropy=False,
                                     pruning=False, seed=2)):
        assert ex.config_from_name(cfg.name(), batch=cfg.batch) == cfg


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graphs_match_the_torch_user_rebuilt_from_them(name):
    paths = [SHIPPED_DIR / f"{name}.{role}.onnx" for role in ex.ROLES]
    model = ex.user_from_onnx(*paths)
    _graph_parity(model, SHIPPED_DIR, name, n=32)
    card = read_card(paths[0])
    assert card["name"] == name and set(REQUIRED_FIELDS) <= set(card)
    assert not any(word.startswith(("/", "~")) for word in card["command"].split())


def test_the_shipped_default_adapts_its_rate_to_the_snr():
    """The shape of the paper's Tables I/II that the shipped model must keep: fewer channel uses
    per pixel as the SNR rises from 10 dB, more maps at 0 dB than at 20 dB (a model whose policies
    send one decision at every SNR fails)."""
    from testbed.systems.adaptive_rate import evaluate as ev
    from testbed.systems.adaptive_rate.system import shipped_models

    name = shipped_models(SHIPPED_DIR)[0]
    model = ex.user_from_onnx(*[SHIPPED_DIR / f"{name}.{role}.onnx" for role in ex.ROLES])
    tiles = ev.held_out_tiles(limit=128)
    means = {snr: {k: np.mean([r[k] for r in ev.evaluate(model, tiles, snr, users=2, antennas=4)])
                   for k in ("cpp", "selected_maps", "psnr_db")} for snr in (0.0, 10.0, 20.0)}
    assert means[0.0]["cpp"] > means[10.0]["cpp"] > means[20.0]["cpp"] - 0.005, means
    assert means[0.0]["selected_maps"] > means[20.0]["selected_maps"] + 1.0, means
    assert means[0.0]["psnr_db"] < means[10.0]["psnr_db"] < means[20.0]["psnr_db"], means
