"""The adaptive-rate system on the network's terms: the side information round-trips bit-exactly,
a damaged one is refused, and the shipped model goes through the single-antenna loopback PHY
(frames per item fixed by the item's size, decisions carried by the side-information frame, the
receiver's tiles the ONNX user's own, a lost side frame leaves the item grey)."""
import numpy as np
import pytest

from testbed import registry
from testbed.channels.spec import ChannelSpec
from testbed.data.images import default_images
from testbed.errors import ConfigError, FrameError
from testbed.runner.loopback import run_loopback
from testbed.systems.adaptive_rate import side_info
from testbed.systems.adaptive_rate.onnx_user import TxDecision
from testbed.systems.adaptive_rate.system import PAPER_SIDE_MCS, ROBUST_SIDE_MCS, ROBUST_SIDE_SCHEMES, adaptive_scheme
from testbed.systems.base import by_seq, evaluate
from testbed.systems.digital import LOST_FILL
from testbed.systems.digital.bler import spectral_efficiency

RATIOS = np.array([0.0, 0.2, 0.3, 0.4, 0.5], np.float32)


def _decision(n: int, rng: np.random.Generator) -> TxDecision:
    """Random thermometer selections and pruning patterns of n tiles (C/2 = 8, 2L = 128)."""
    selected = rng.integers(0, 9, n)
    ratio_index = rng.integers(0, 5, n)
    mask = np.arange(8)[None, :] >= (8 - selected)[:, None]
    kept = np.repeat(mask[:, :, None], 128, 2)
    pruned = (ratio_index > 0)[:, None] & mask
    kept[pruned] = rng.random((int(pruned.sum()), 128)) > 0.3
    return TxDecision(mask=mask, ratio_index=ratio_index, ratio=RATIOS[ratio_index], kept=kept,
                      power=rng.random(n).astype(np.float32))


def test_side_information_round_trips_bit_exactly():
    rng = np.random.default_rng(0)
    decision = _decision(40, rng)
    csi = (rng.normal(size=4) + 1j * rng.normal(size=4)).astype(np.complex64)
    data = side_info.pack(decision, csi, 7.5)
    got, got_csi, snr_db = side_info.unpack(data, 40, 4, 8, 128, RATIOS)
    for field in ("mask", "ratio_index", "ratio", "kept", "power"):
        np.testing.assert_array_equal(getattr(got, field), getattr(decision, field), err_msg=field)
    np.testing.assert_array_equal(got_csi, csi)
    assert snr_db == 7.5
    flags = int((decision.selected * (decision.ratio_index > 0)).sum()) * 128
    assert len(data) == 4 * 9 + 40 * 6 + -(-flags // 8)


def test_truncated_or_impossible_side_information_is_refused():
    data = side_info.pack(_decision(4, np.random.default_rng(1)), np.ones(4), 0.0)
    with pytest.raises(FrameError, match="at least"):
        side_info.unpack(data[:30], 4, 4, 8, 128, RATIOS)
    bad = bytearray(data)
    bad[36] = 9  # tile 0 selects 9 of 8 maps
    with pytest.raises(FrameError, match="at most 8 maps"):
        side_info.unpack(bytes(bad), 4, 4, 8, 128, RATIOS)


def test_the_adaptive_side_scheme_gets_denser_with_snr_and_is_the_papers_at_high_snr():
    assert [adaptive_scheme(snr) for snr in (-8.0, -3.0, 0.0)] == list(ROBUST_SIDE_SCHEMES)[::-1]
    assert ROBUST_SIDE_MCS == list(ROBUST_SIDE_SCHEMES)[-1]
    schemes = [adaptive_scheme(snr) for snr in (-3.0, 5.0, 12.0, 30.0)]
    assert schemes[0] in ROBUST_SIDE_SCHEMES  # below every measured scheme
    efficiency = [spectral_efficiency(s) for s in schemes[1:]]
    assert efficiency == sorted(efficiency) and efficiency[0] < efficiency[-1]
    assert spectral_efficiency(schemes[-1]) >= spectral_efficiency(PAPER_SIDE_MCS)


@pytest.fixture(scope="module")
def system():
    return registry.create("system", "adaptive_rate", params={}, seed=0)


def test_bad_parameters_name_the_field(system):
    with pytest.raises(ConfigError, match="side_info_mcs"):
        registry.create("system", "adaptive_rate", params={"side_info_mcs": "ldpc_648_9_10/qpsk"})
    with pytest.raises(ConfigError, match="system_params.model 'nope' is unknown; allowed: "):
        registry.create("system", "adaptive_rate", params={"model": "nope"})


def test_loopback_decodes_what_the_onnx_user_decodes(system):
    images = default_images()[:2]
    encoded = system.encode(images, 20.0)
    sizes = [len(tile_rows) for tile_rows in [item["frames"] for item in encoded.manifest["items"]]]
    assert len(encoded.jobs) == sum(1 + s for s in sizes)  # one side frame + the analog frames per item
    frames = run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=40.0, cfo_hz=2e3))
    result = evaluate(system, images, encoded, frames)
    assert result["frames_lost"] == 0 and result["side_info_ok"] == 1.0
    # nearly noiseless: the network's tiles are the ONNX user's own decode of the clean symbols
    from testbed.data.images import tile, untile
    name, img = images[0]
    symbols, decision = system.user.transmit(tile(img, 32), np.ones(4), 20.0)
    clean = untile(system.user.receive(symbols, decision, np.ones(4), 20.0), img.shape)
    decoded = system.decode(frames, encoded.manifest).images[name]
    assert np.abs(decoded - clean).mean() < 0.01
    item = encoded.manifest["items"][0]
    assert item["symbols"] == int(decision.counts.sum()) and item["cpp"] == pytest.approx(system.user.cpp(decision).mean())


def test_a_lost_side_frame_leaves_its_item_grey_and_the_rest_decodes(system):
    images = default_images()[:2]
    encoded = system.encode(images, 20.0)
    frames = run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=40.0))
    first_side = encoded.manifest["items"][0]["side"]
    kept = [f for seq, f in by_seq(frames).items() if seq != first_side]
    decoded = system.decode(kept, encoded.manifest)
    assert np.all(decoded.images[images[0][0]] == LOST_FILL)
    assert decoded.arrays["side_info_ok"].tolist() == [0.0, 1.0]
    assert np.std(decoded.images[images[1][0]]) > 0.05


@pytest.mark.parametrize("sinr_db, arrives", [(-1.0, True), (-4.0, True), (1.5, False)])
def test_below_every_measured_threshold_the_side_information_goes_repeated_and_arrives(system, sinr_db, arrives):
    """At -2 dB the side information arrives when the probe's SINR (less the 2 dB margin)
    chose BPSK with its codeword repeated (x2 from -1 dB, x4 from -4 dB); BPSK alone (chosen at
    1.5 dB) fails there."""
    images = default_images()[:2]
    encoded = system.encode_with_csi(images, np.ones(4, np.complex64), 1.0, sinr_db=sinr_db)
    assert encoded.manifest["side_info_mcs"] == adaptive_scheme(sinr_db - 2.0)
    assert encoded.manifest["side_info_mcs"] in ROBUST_SIDE_SCHEMES
    frames = run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=-2.0))
    assert system.decode(frames, encoded.manifest).arrays["side_info_ok"].tolist() == [float(arrives)] * 2


def test_complete_models_come_before_ablations_so_the_default_is_complete(tmp_path):
    import json

    from testbed.onnx.card import REQUIRED_FIELDS
    from testbed.systems.adaptive_rate.system import shipped_models

    parts = dict(entropy=True, attention=True, feedback=True, pruning=True)
    for name, arch in (("adaptive-a-noattention", {**parts, "attention": False}), ("adaptive-b", parts),
                       ("adaptive-c", parts)):
        card = {**{f: None for f in REQUIRED_FIELDS}, "system": "adaptive_rate", "architecture": arch}
        (tmp_path / f"{name}.transmitter.json").write_text(json.dumps(card))
    assert shipped_models(tmp_path) == ["adaptive-b", "adaptive-c", "adaptive-a-noattention"]
