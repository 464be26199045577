"""MU-ASCC's ZF-WF-DJSCC benchmark: the Fashion-MNIST DeepJSCC (shapes, power, seeded resumable
training, ONNX parity of the export and of the shipped graphs), the curves' interpolation, the
benchmark's ZF-WF resources, and the shipped curves against the shipped models."""
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from testbed.errors import ConfigError
from testbed.onnx.card import read_card
from testbed.onnx.session import OnnxModel
from testbed.optim.mu_ascc import paper_instance
from testbed.systems.mu_ascc import compare, djscc
from testbed.systems.mu_ascc.djscc_benchmark import DU_MODELS, RESULT_FILE, DjsccBenchmark, data_curve
from testbed.systems.mu_ascc.system import MODEL_DIR

torch.set_num_threads(1)
TINY = djscc.JsccConfig(width=8, steps=4, batch=8)


def test_the_ratio_sets_the_latent_and_an_unsendable_one_is_named():
    assert djscc.latent_channels(0.25) == 24
    model = djscc.FashionJSCC(0.25, width=8)
    assert model.k == 588 == 0.25 * 3 * 28 * 28
    with pytest.raises(ConfigError, match=r"bandwidth_ratio 0.3 is not sendable; allowed: a multiple of 0.0104167"):
        djscc.latent_channels(0.3)
    with pytest.raises(ConfigError, match="steps=0; allowed: >= 1"):
        djscc.JsccConfig(steps=0)


def test_symbols_have_unit_power_per_item_and_the_decoder_gives_grey_images():
    model = djscc.FashionJSCC(0.25, width=8).eval()
    with torch.no_grad():
        symbols = model.encode(torch.rand(3, 3, 28, 28))
        image = model.decode(symbols)
    assert symbols.shape == (3, 588, 2)
    np.testing.assert_allclose(symbols.pow(2).sum(dim=(1, 2)).numpy() / 588, 1.0, rtol=1e-5)
    assert image.shape == (3, 3, 28, 28) and float(image.min()) >= 0 and float(image.max()) <= 1
    assert torch.equal(image[:, 0], image[:, 2])


def test_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(djscc, "CHECKPOINT_STEPS", 2)
    whole = djscc.train(TINY, tmp_path / "a", log=lambda _: None)["model"].state_dict()

    def stop(message: str) -> None:
        if "step 2/" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        djscc.train(TINY, tmp_path / "b", log=stop)
    resumed = djscc.train(TINY, tmp_path / "b", log=lambda _: None)
    assert resumed["log"][-1]["step"] == 4
    for key, value in whole.items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key


def _rebuilt(encoder_path) -> djscc.FashionJSCC:
    """The torch module rebuilt from the weights inside both exported graphs."""
    card = read_card(encoder_path)
    arch = card["architecture"]
    model = djscc.FashionJSCC(arch["bandwidth_ratio"], arch["width"]).eval()
    state = {}
    for role in djscc.ROLES:
        path = encoder_path.with_name(encoder_path.name.replace("jscc_encoder", role))
        state.update({i.name.removeprefix("model."): torch.from_numpy(numpy_helper.to_array(i).copy())
                      for i in onnx.load(str(path)).graph.initializer if i.name.startswith("model.")})
    model.load_state_dict(state)
    return model


def _parity(encoder_path) -> None:
    model = _rebuilt(encoder_path)
    x = torch.rand(5, 3, 28, 28)
    with torch.no_grad():
        symbols = model.encode(x)
    got = OnnxModel(encoder_path).run(image=x.numpy())["symbols"]
    np.testing.assert_allclose(got, symbols.numpy(), atol=1e-4)
    decoder = OnnxModel(encoder_path.with_name(encoder_path.name.replace("jscc_encoder", "jscc_decoder")))
    noisy = (symbols + 0.1 * torch.randn_like(symbols)).numpy()
    with torch.no_grad():
        image = model.decode(torch.from_numpy(noisy)).numpy()
    np.testing.assert_allclose(decoder.run(symbols=noisy)["image"], image, atol=1e-4)


def test_the_export_matches_torch_and_its_cards_say_how_it_was_made(tmp_path):
    trained = djscc.train(TINY, tmp_path / "ckpt", log=lambda _: None)
    paths = djscc.export(trained["model"], TINY, tmp_path, minutes=trained["minutes"],
                         training_log=trained["log"], metrics={"note": "tiny"})
    _parity(paths["jscc_encoder"])
    card = read_card(paths["jscc_decoder"])
    assert card["command"] == ("python -m testbed.systems.mu_ascc.djscc --steps 4 --seed 0 --width 8 --batch 8 "
                               "--out DIR")
    assert card["snr_range_db"] == [10.0, 10.0] and card["channels"] == ["awgn"]
    assert card["metrics"]["final_training"]["step"] == 4


def test_the_shipped_fashion_jscc_matches_torch():
    (path,) = sorted(MODEL_DIR.glob("fmnist-deepjscc-*.jscc_encoder.onnx"))
    _parity(path)
    card = read_card(path)
    assert card["bandwidth_ratio"] == 0.25 and card["training_config"]["snr_db"] == 10.0


def _curve(ratio: float, distortion: list[float], name: str = "m") -> dict:
    return {"model": name, "bandwidth_ratio": ratio, "snr_db": [0.0, 10.0, 20.0], "distortion": distortion}


@pytest.fixture
def bench():
    return DjsccBenchmark({"data": [_curve(0.04, [0.2, 0.1, 0.06], "b"), _curve(0.03, [0.3, 0.2, 0.1], "a")],
                           "semantic": [_curve(0.25, [0.5, 0.2, 0.1], "s")]})


def test_curves_are_read_at_their_ratio_between_ratios_and_snrs_and_nowhere_else(bench):
    assert bench.distortion("semantic", 0.25, 10.0) == pytest.approx(0.2)
    assert bench.distortion("semantic", 0.25, 5.0) == pytest.approx(0.35)
    assert bench.distortion("semantic", 0.25, 40.0) == pytest.approx(0.1)  # the end value beyond the grid
    assert bench.distortion("data", 0.035, 10.0) == pytest.approx(0.15)
    assert bench.models("data", 0.035) == ["a", "b"] and bench.models("data", 0.04) == ["b"]
    assert bench.distortion("data", 0.05, 10.0) is None and bench.models("semantic", 0.3) == []
    with pytest.raises(ConfigError, match="role 'video' is unknown; allowed: data, semantic"):
        bench.distortion("video", 0.25, 0.0)


def test_a_missing_curve_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not a file; allowed: the output of python -m "
                                          "testbed.systems.mu_ascc.djscc_benchmark"):
        DjsccBenchmark.load(tmp_path / RESULT_FILE)


def test_the_benchmark_uses_zf_beams_water_filling_and_the_curves_at_each_sinr(bench):
    tables = paper_instance().distortion_models
    base = replace(compare.problem(tables, 10 ** 0.8, 0.035, 256), channel_uses_per_pixel=np.array([3 * 0.035, 3 * 0.25]))
    sol = compare.solve(base, compare.DJSCC, 256, djscc=bench)
    ref = compare.zf_wf_baseline(base)
    np.testing.assert_allclose(sol.powers_w, ref.powers_w)
    np.testing.assert_allclose(sol.sinr_linear, ref.sinr_linear)
    sinr_db = 10 * np.log10(sol.sinr_linear)
    expected = [bench.distortion("data", 0.035, sinr_db[0]), bench.distortion("semantic", 0.25, sinr_db[1])]
    np.testing.assert_allclose(sol.distortion, expected)
    assert sol.weighted_distortion == pytest.approx(float(base.weights @ np.array(expected)))
    row = compare.row(sol)
    assert row["source_rates_bpp"] == [None, None] and row["log10_ber"] == [None, None]
    assert compare.solve(compare.problem(tables, 3.0, 0.1, 256), compare.DJSCC, 256, djscc=bench) is None
    with pytest.raises(ValueError, match="needs the DJSCC curves"):
        compare.solve(base, compare.DJSCC, 256)


def test_the_shipped_curves_are_the_shipped_models():
    shipped = DjsccBenchmark.load(compare.RESULTS / RESULT_FILE)
    assert [c["model"] for c in shipped.curves["data"]] == list(DU_MODELS)
    assert shipped.models("data", compare.PAPER_RATIO) == list(DU_MODELS)
    measured = data_curve(DU_MODELS[1], snrs_db=(0.0, 10.0, 20.0), draws=1)
    for snr, value in zip(measured["snr_db"], measured["distortion"]):
        assert value == pytest.approx(shipped.distortion("data", measured["bandwidth_ratio"], snr), abs=0.01)
    assert measured["distortion"][0] > measured["distortion"][2]
    su = shipped.curves["semantic"][0]
    assert su["distortion"][0] > su["distortion"][-1] and su["distortion"][-1] < 0.2
