"""MU-ASCC's learned codecs (CompressAI's scale hyperprior): real bitstreams, bit flips, the
stratified distortion estimate, and seeded resumable training."""
import numpy as np
import pytest
import torch

from testbed.errors import ConfigError
from testbed.systems.mu_ascc import distortion, train_codec
from testbed.systems.mu_ascc.codec import Bitstream, HyperpriorCodec, flip_bits

TINY = dict(n=8, m=8, batch=2, crop_px=64)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    from compressai.models import ScaleHyperprior

    return HyperpriorCodec(ScaleHyperprior(8, 8), name="untrained")


def _image(height=70, width=100, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x), np.cos(5 * y), x * y]) * 0.4 + 0.5
    return np.clip(base + 0.02 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)


def test_a_bitstream_decodes_to_the_model_reconstruction_of_the_same_size(codec):
    img = _image()
    stream = codec.encode(img)
    rec = codec.decode(stream)
    assert rec.shape == img.shape and rec.dtype == np.float32
    assert stream.bits == 8 * len(stream.payload) > 0
    padded = torch.nn.functional.pad(torch.from_numpy(img)[None], (0, 28, 0, 58), mode="replicate")
    with torch.no_grad():
        reference = codec.model(padded)["x_hat"][0, :, :70, :100].clamp(0, 1).numpy()
    assert np.abs(rec - reference).max() < 1e-4  # decompress() == forward() in eval mode


def test_a_flipped_payload_still_decodes_and_changes_the_image(codec):
    img = _image(64, 64)
    stream = codec.encode(img)
    rng = np.random.default_rng(1)
    bad = stream.with_payload(flip_bits(stream.payload, stream.bits // 4, rng))
    assert bad.payload != stream.payload and len(bad.payload) == len(stream.payload)
    assert not np.array_equal(codec.decode(bad), codec.decode(stream))


def test_flip_bits_flips_exactly_count_distinct_bits():
    rng = np.random.default_rng(2)
    payload = bytes(range(256))
    out = flip_bits(payload, 37, rng)
    diff = np.unpackbits(np.frombuffer(payload, np.uint8) ^ np.frombuffer(out, np.uint8))
    assert diff.sum() == 37
    with pytest.raises(ConfigError, match="count=2049"):
        flip_bits(payload, 2049, rng)


def test_with_payload_refuses_a_payload_of_another_length():
    stream = Bitstream(64, 64, z=b"ab", y=b"cdef")
    assert stream.with_payload(b"ABCDEF") == Bitstream(64, 64, z=b"AB", y=b"CDEF")
    with pytest.raises(ConfigError, match="exactly 6 bytes"):
        stream.with_payload(b"ABC")


def test_truncated_flip_counts_follow_the_binomial_given_a_flip():
    rng = np.random.default_rng(3)
    counts, p_any = distortion.flip_counts(1000, 1e-3, 20000, rng)
    assert counts.min() >= 1
    assert p_any == pytest.approx(1 - 0.999 ** 1000)
    assert counts.mean() == pytest.approx(1.0 / p_any, rel=0.03)  # E[k | k >= 1] = n p / P(k >= 1)
    tiny, p_tiny = distortion.flip_counts(1000, 1e-9, 100, rng)
    assert set(tiny) == {1} and p_tiny == pytest.approx(1e-6, rel=1e-3)


def test_the_distortion_curve_starts_clean_and_rises_with_ber(codec):
    images = [_image(64, 64, seed) for seed in range(2)]
    curve = distortion.measure(codec, images, bers=(1e-9, 1e-4, 1e-2, 1e-1), draws=2, seed=0)
    first, last = curve.points[0], curve.points[-1]
    assert first.mse == pytest.approx(curve.clean_mse, rel=1e-3)
    assert last.mse > curve.clean_mse and last.p_any_flip > 0.99
    assert curve.rate_bpp > 0


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class _Stop(Exception):
    pass


def _stop_at(step):
    def log(line):
        if f"step {step}/" in line:
            raise _Stop
    return log


def test_codec_training_is_seeded_resumable_and_lowers_the_loss(tmp_path, monkeypatch):
    monkeypatch.setattr(train_codec, "CHECKPOINT_STEPS", 20)
    cfg = train_codec.CodecConfig(lmbda=0.01, steps=60, **TINY)
    whole = train_codec.train(cfg, tmp_path / "a", log=lambda _: None)
    with pytest.raises(_Stop):
        train_codec.train(cfg, tmp_path / "b", log=_stop_at(40))  # killed after its step-40 checkpoint
    resumed = train_codec.train(cfg, tmp_path / "b", log=lambda _: None)
    # the same run to within float rounding (about 1e-8 here: the resumed graph rounds differently)
    assert torch.allclose(_weights(whole["model"]), _weights(resumed["model"]), rtol=0, atol=1e-6)
    again = train_codec.train(cfg, tmp_path / "b", log=lambda _: None)
    assert torch.equal(_weights(again["model"]), _weights(resumed["model"]))
    assert [e["step"] for e in resumed["log"]] == [20, 40, 60]
    assert whole["log"][-1]["loss"] < whole["log"][0]["loss"]
    again = train_codec.train(cfg, tmp_path / "a", log=_stop_at(20))  # finished: returns at once
    assert torch.equal(_weights(again["model"]), _weights(whole["model"]))


def test_a_bad_codec_config_names_the_field():
    with pytest.raises(ConfigError, match="crop_px=100"):
        train_codec.CodecConfig(crop_px=100)
    with pytest.raises(ConfigError, match="lmbda=0"):
        train_codec.CodecConfig(lmbda=0)


def test_the_report_fits_eq12_and_writes_its_table_and_plot(tmp_path):
    from testbed.optim.mu_ascc import logistic_distortion

    def curve(name, rate, threshold):
        x = np.log10(distortion.BER_GRID)
        ms, mse = logistic_distortion(x, 0.05, 0.6, 2.5, threshold), logistic_distortion(x, 1e-3, 0.08, 3.0, threshold)
        points = tuple(distortion.CurvePoint(b, float(a), float(m), 0.5) for b, a, m in zip(distortion.BER_GRID, ms, mse))
        return distortion.CodecCurve(name, rate, 0.05, 1e-3, points)

    result = distortion.report([curve("high", 0.9, -5.5), curve("low", 0.2, -4.5)])
    assert [c["codec"] for c in result["codecs"]] == ["low", "high"]  # sorted by rate
    fit = result["codecs"][0]["fits"]["msssim_distortion"]
    assert fit["threshold_log10_ber"] == pytest.approx(-4.5, abs=1e-3) and fit["r_squared"] > 0.9999
    result.update(draws=3, image_count=8, lmbdas=[0.01], steps=10)
    assert "| low | 0.200 |" in distortion.markdown(result)
    distortion.plot(result, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_non_finite_pixels_of_a_corrupted_decode_show_black_or_white(codec, monkeypatch):
    stream = codec.encode(_image(64, 64))
    x_hat = torch.full((1, 3, 64, 64), 0.5)
    x_hat[0, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), float("-inf")])
    monkeypatch.setattr(codec.model, "decompress", lambda strings, shape: {"x_hat": x_hat})
    rec = codec.decode(stream)
    assert rec[0, 0, :3].tolist() == [0.0, 1.0, 0.0] and np.isfinite(rec).all()


def test_a_fit_that_fails_is_reported_not_raised():
    flat = tuple(distortion.CurvePoint(b, 0.1, 0.01, 0.5) for b in distortion.BER_GRID)  # constant: no fit
    result = distortion.report([distortion.CodecCurve("flat", 0.3, 0.1, 0.01, flat)])
    assert "not all equal" in result["codecs"][0]["fits"]["mse"]["error"]
    result.update(draws=3, image_count=8, lmbdas=[0.01], steps=10)
    assert "fit failed" in distortion.markdown(result) and "fits that failed: 2" in distortion.markdown(result)
