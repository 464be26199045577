"""The whole-image ADJSCC: any size that is a multiple of 8, bandwidth ratio exact, unit power
per image, SNR-adaptive, per-frame Rayleigh in the evaluation, and a resumable training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.data.images import default_images
from testbed.errors import ConfigError
from testbed.systems.deepjscc import train as train_module
from testbed.systems.deepjscc.evaluate import evaluate, transmit_whole
from testbed.systems.deepjscc.whole_image import WholeImageJSCC

torch.set_num_threads(1)


@pytest.mark.parametrize("ratio", ["1/6", "1/12"])
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_any_size_and_the_exact_bandwidth_ratio(ratio: str, channel: str) -> None:
    model = WholeImageJSCC(ratio, width=8)
    for height, width in ((32, 48), (64, 16)):
        images = torch.rand(2, 3, height, width)
        out = model(images, torch.tensor([0.0, 20.0]), channel, torch.Generator().manual_seed(0))
        k = out["symbols"].shape[1]
        assert k / (3 * height * width) == pytest.approx(1 / int(ratio.split("/")[1]))
        assert out["recon"].shape == images.shape and torch.isfinite(out["recon"]).all()
        power = out["symbols"].pow(2).sum(dim=2).mean(dim=1)
        torch.testing.assert_close(power, torch.ones(2), atol=1e-5, rtol=0)


def test_encoder_adapts_to_the_snr_and_bad_ratio_is_refused() -> None:
    model = WholeImageJSCC("1/6", width=8)
    images = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(model.encode(images, torch.zeros(1, 1)), model.encode(images, torch.full((1, 1), 20.0)))
    with pytest.raises(ConfigError, match="bandwidth_ratio"):
        WholeImageJSCC("1/3")


def test_rayleigh_evaluation_fades_each_frame_and_pads_odd_sizes() -> None:
    model = WholeImageJSCC("1/6", width=8).eval()
    img = np.random.default_rng(0).random((3, 100, 70), dtype=np.float32)
    clean = transmit_whole(model, img, 60.0, "awgn", torch.Generator().manual_seed(0))
    faded = transmit_whole(model, img, 60.0, "rayleigh", torch.Generator().manual_seed(0), frame_symbols=256)
    assert clean.shape == faded.shape == img.shape
    assert np.abs(clean - faded).max() < 0.05  # perfect CSI per frame at 60 dB undoes the fading


def test_whole_image_training_resumes_and_evaluates(tmp_path, monkeypatch) -> None:
    photos = [img for _, img in default_images()]
    monkeypatch.setattr(train_module, "photo_corpus", lambda split: photos)
    args = dict(bandwidth_ratio="1/12", variant="adjscc-wide", minutes=0.02, seed=1, out_dir=tmp_path,
                width=8, crop=64, batch_size=2, progress=False)
    path = train_module.train(**args)
    state = torch.load(path, weights_only=False)
    assert state["step"] > 0 and state["run_config"]["crop"] == 64 and state["variant"] == "adjscc-wide"
    model = train_module.load_checkpoint_model(path)
    assert isinstance(model, WholeImageJSCC) and not model.training
    result = evaluate(model, [10], "rayleigh", "default")
    assert result["n_images"] == 4 and np.isfinite(result["psnr_db"][0])
    assert train_module.command_line("1/6", "adjscc-wide", 145, 0, "models/deepjscc") == (
        "testbed train deepjscc --ratio 1/6 --variant adjscc-wide --minutes 145 --seed 0 --out models/deepjscc")


def test_a_finished_run_can_be_warm_restarted(tmp_path, monkeypatch) -> None:
    photos = [img for _, img in default_images()]
    monkeypatch.setattr(train_module, "photo_corpus", lambda split: photos)
    args = dict(bandwidth_ratio="1/12", variant="adjscc-wide", seed=2, out_dir=tmp_path, width=8, crop=32,
                batch_size=2, progress=False)
    first = train_module.train(minutes=0.01, **args)
    second = train_module.train(minutes=0.01, init=first, **args)
    assert second != first
    state = torch.load(second, weights_only=False)
    assert state["run_config"]["init"]["file"] == first.name and state["run_config"]["init"]["minutes_total"] == 0.01
    with pytest.raises(ConfigError, match="init"):
        train_module.train(minutes=0.01, init=first, **{**args, "width": 16})
