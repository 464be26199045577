"""DeepJSCC / ADJSCC torch model, training loop and evaluation (fast: small widths, tiny budgets)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testbed.data.images import default_images
from testbed.errors import ConfigError
from testbed.systems.deepjscc import train as train_module
from testbed.systems.deepjscc.evaluate import evaluate
from testbed.systems.deepjscc.model import DeepJSCC, symbols_per_tile

torch.set_num_threads(1)
CASES = [(ratio, variant) for ratio in ("1/6", "1/12") for variant in ("deepjscc", "adjscc")]


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((n, 3, 32, 32), dtype=np.float32))


@pytest.mark.parametrize("ratio,variant", CASES)
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_forward_shapes_no_nan(ratio: str, variant: str, channel: str) -> None:
    model = DeepJSCC(ratio, variant, width=16)
    k = symbols_per_tile(ratio)
    assert k / (3 * 32 * 32) == pytest.approx(1 / int(ratio.split("/")[1]))
    out = model(_images(), torch.linspace(0, 20, 6), channel, torch.Generator().manual_seed(0))
    assert out["recon"].shape == (6, 3, 32, 32) and out["symbols"].shape == (6, k, 2)
    assert torch.isfinite(out["recon"]).all() and torch.isfinite(out["symbols"]).all()
    decoded = model.decode(out["received"], out["snr_eff_db"])
    assert decoded.min() >= 0 and decoded.max() <= 1


@pytest.mark.parametrize("ratio,variant", CASES)
def test_power_normalised_per_image(ratio: str, variant: str) -> None:
    model = DeepJSCC(ratio, variant, width=16)
    images = _images()
    images[0] = 0.0  # a flat image still gets unit power
    symbols = model.encode(images, torch.full((6, 1), 5.0))
    power = symbols.pow(2).sum(dim=2).mean(dim=1)
    torch.testing.assert_close(power, torch.ones(6), atol=1e-5, rtol=0)


def test_rayleigh_receiver_equalises_with_perfect_csi() -> None:
    model = DeepJSCC("1/12", "adjscc", width=16)
    out = model(_images(), 200.0, "rayleigh", torch.Generator().manual_seed(1))
    torch.testing.assert_close(out["received"], out["symbols"], atol=1e-4, rtol=0)
    assert not torch.allclose(out["snr_eff_db"], torch.full((6, 1), 200.0))  # |h|^2 enters the SNR


def test_adjscc_uses_snr_and_deepjscc_ignores_it() -> None:
    images = _images()
    for variant, depends in (("adjscc", True), ("deepjscc", False)):
        model = DeepJSCC("1/6", variant, width=16)
        a = model.encode(images, torch.zeros(6, 1))
        b = model.encode(images, torch.full((6, 1), 20.0))
        assert (not torch.allclose(a, b)) == depends


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="bandwidth_ratio"):
        DeepJSCC("1/3", "deepjscc")
    with pytest.raises(ConfigError, match="variant"):
        DeepJSCC("1/6", "bigjscc")
    with pytest.raises(ConfigError, match="channel"):
        DeepJSCC("1/6", "deepjscc", width=8)(_images(2), 10.0, "rician")


def test_tiny_synthetic_fit_decreases_loss() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sampler = train_module.CropSampler([img for _, img in default_images()], rng)
    images = sampler.batch(8)
    model = DeepJSCC("1/6", "adjscc", width=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        out = model(images, 20.0, "awgn", torch.Generator().manual_seed(0))
        return torch.mean((out["recon"] - images) ** 2)

    before = float(loss().detach())
    for _ in range(25):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert float(loss().detach()) < 0.7 * before


def test_crops_uniform_per_photo_with_flips() -> None:
    photos = [np.zeros((3, 40, 40), np.float32), np.ones((3, 600, 900), np.float32)]
    batch = train_module.CropSampler(photos, np.random.default_rng(0)).batch(400)
    assert batch.shape == (400, 3, 32, 32) and batch.dtype == torch.float32
    share_small = float((batch.mean(dim=(1, 2, 3)) == 0).float().mean())
    assert 0.4 < share_small < 0.6  # per photo, not per area


def test_learning_rate_warms_up_and_decays() -> None:
    lr = train_module.learning_rate
    assert lr(0.0) < lr(0.02) == pytest.approx(train_module.LR)
    assert lr(0.5) < lr(0.1) and lr(1.0) == pytest.approx(train_module.LR * train_module.LR_FLOOR)


def test_train_checkpoints_and_resumes(tmp_path, monkeypatch) -> None:
    photos = [img for _, img in default_images()]
    monkeypatch.setattr(train_module, "photo_corpus", lambda split: photos)
    args = dict(bandwidth_ratio="1/12", variant="deepjscc", minutes=0.02, seed=3, out_dir=tmp_path,
                batch_size=4, width=8, progress=False)
    path = train_module.train(**args)
    state = torch.load(path, weights_only=False)
    assert path.exists() and state["step"] > 0 and state["elapsed_s"] >= 1.2
    assert train_module.train(**args) == path  # finished: returns at once
    assert torch.load(path, weights_only=False)["step"] == state["step"]
    model = train_module.load_checkpoint_model(path)
    assert model.k == 256 and not model.training
    with pytest.raises(ConfigError, match="another run"):
        torch.save(dict(state, run_config={**state["run_config"], "batch_size": 8}), path)
        train_module.train(**args)


def test_evaluate_whole_images() -> None:
    model = DeepJSCC("1/6", "deepjscc", width=8)
    result = evaluate(model, [0, 20], "rayleigh", "default")
    assert result["n_images"] == 4 and result["snr_db"] == [0.0, 20.0]
    assert all(np.isfinite(result["psnr_db"])) and all(0 <= v <= 1 for v in result["ms_ssim"])
    with pytest.raises(ConfigError, match="data"):
        evaluate(model, [10], "awgn", "training-crops")


def test_command_line_names_the_model() -> None:
    assert train_module.model_name("1/12", "adjscc") == "adjscc-r12"
    args = train_module.parse_args(["--ratio", "1/12", "--variant", "adjscc", "--minutes", "3"])
    assert (args.ratio, args.variant, args.minutes, args.seed) == ("1/12", "adjscc", 3.0, 0)
    assert train_module.command_line("1/6", "adjscc", 40, 0, "models/deepjscc") == (
        "testbed train deepjscc --ratio 1/6 --variant adjscc --minutes 40 --seed 0 --out models/deepjscc")


def test_a_model_trained_at_one_snr_on_one_channel_says_so_in_its_name_and_command(tmp_path) -> None:
    name = train_module.model_name("1/24", "deepjscc", (10, 10), ("awgn",))
    assert name == "deepjscc-r24-awgn-10db"
    assert train_module.model_name("1/32", "deepjscc", (5, 15), ("awgn", "rayleigh")) == "deepjscc-r32-awgn+rayleigh-5to15db"
    assert train_module.command_line("1/24", "deepjscc", 22, 0, "models/deepjscc", snr_range_db=(10, 10),
                                     channels=("awgn",)).endswith("--out models/deepjscc --snr-db 10 10 --channels awgn")
    args = train_module.parse_args(["--ratio", "1/32", "--snr-db", "10", "10", "--channels", "awgn"])
    assert (args.ratio, args.snr_db, args.channels) == ("1/32", [10.0, 10.0], ["awgn"])
    with pytest.raises(ConfigError, match="channels \\('video',\\) is invalid; allowed: one or more of awgn, rayleigh"):
        train_module.train("1/24", "deepjscc", 0.01, 0, tmp_path, channels=("video",), progress=False)
