"""HEVC (BPG stand-in) and JPEG 2000 whole-image codecs of the digital baseline."""
import numpy as np
import pytest

from testbed import errors, registry
from testbed.codecs import HevcCodec, Jpeg2000Codec, budget_bytes
from testbed.data import default_images
from testbed.errors import ConfigError
from testbed.metrics import psnr_db

CODECS = [HevcCodec(), Jpeg2000Codec()]


@pytest.fixture(scope="module")
def kodim23():
    return dict(default_images())["kodim23"]


def test_registered_under_kind_codec():
    assert registry.get("codec", "hevc") is HevcCodec
    assert registry.get("codec", "jpeg2000") is Jpeg2000Codec


def test_budget_bytes():
    assert budget_bytes(1000, 2, 0.5) == 125
    assert budget_bytes(4096, 4, 1 / 3) == 682  # 5461.33 bits -> 682 whole bytes
    with pytest.raises(ConfigError, match="code_rate"):
        budget_bytes(1000, 2, 1.5)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_psnr_grows_with_budget_and_file_fits(codec, kodim23):
    psnrs = []
    for budget in (1200, 2500, 6000):
        data, quality = codec.fit_budget(kodim23, budget)
        assert len(data) <= budget
        if quality < codec.quality_range[1]:  # the next quality would not have fitted
            assert len(codec.encode(kodim23, quality + 1)) > budget
        rec = codec.decode(data)
        assert rec.shape == kodim23.shape and rec.dtype == np.float32
        psnrs.append(psnr_db(kodim23, rec))
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert psnrs[0] > 20.0


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_budget_below_smallest_file_gives_none(codec, kodim23):
    smallest = len(codec.encode(kodim23, codec.quality_range[0]))
    assert codec.fit_budget(kodim23, smallest - 1) is None
    assert codec.fit_budget(kodim23, 10) is None
    assert codec.fit_budget(kodim23, smallest) is not None


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_odd_sizes_round_trip(codec):
    img = np.random.default_rng(0).random((3, 31, 33), dtype=np.float32)
    rec = codec.decode(codec.encode(img, codec.quality_range[1]))
    assert rec.shape == (3, 31, 33)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_corrupted_bytes_raise_a_testbed_error(codec, kodim23):
    data = codec.encode(kodim23, (sum(codec.quality_range)) // 2)
    for bad in (b"", b"garbage", data[: len(data) // 3], data[:40]):
        with pytest.raises(errors.TestbedError, match=f"{codec.name} cannot decode"):
            codec.decode(bad)
    flipped = bytearray(data)
    flipped[len(data) // 2:] = bytes(255 - b for b in flipped[len(data) // 2:])
    try:  # a damaged payload may still decode to a (wrong) image, but never crashes
        assert codec.decode(bytes(flipped)).shape[0] == 3
    except errors.TestbedError:
        pass


def test_other_format_is_refused(kodim23):
    with pytest.raises(errors.TestbedError, match="not a HEIF file"):
        HevcCodec().decode(Jpeg2000Codec().encode(kodim23, 30))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_quality_out_of_range(codec, kodim23):
    with pytest.raises(ConfigError, match="quality 101 .* out of range"):
        codec.encode(kodim23, 101)


def test_hevc_chroma_option():
    with pytest.raises(ConfigError, match="chroma 411"):
        HevcCodec(chroma=411)
