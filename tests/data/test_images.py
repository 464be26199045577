"""Embedded default images, user folders, the offline photo corpus and tiling."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from testbed.data import images
from testbed.data.images import default_images, load_folder, load_image, photo_corpus, tile, untile
from testbed.errors import ConfigError

IMAGES_DIR = Path(images.__file__).parent / "images"


def test_default_images_are_small_real_rgb_photos():
    found = default_images()
    assert 4 <= len(found) <= 6
    assert "kodim23" in dict(found)
    for name, img in found:
        assert img.dtype == np.float32 and img.shape[0] == 3, name
        assert img.shape[1:] in ((128, 128), (128, 192)), name
        assert 0.0 <= img.min() and img.max() <= 1.0
        assert img.std() > 0.1, f"{name} looks flat"
    assert sum(p.stat().st_size for p in IMAGES_DIR.glob("*.png")) < 400_000


def test_every_default_image_has_a_licence_entry():
    licences = (IMAGES_DIR.parent / "LICENSES.md").read_text()
    for name, _ in default_images():
        assert f"{name}.png" in licences


def test_load_folder_reads_supported_files_sorted(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (rng.random((8, 12, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "b.png")
    Image.fromarray(pixels).save(tmp_path / "a.bmp")
    Image.fromarray(pixels).convert("L").save(tmp_path / "c.TIF")
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = load_folder(tmp_path)
    assert [name for name, _ in loaded] == ["a", "b", "c"]
    name, img = loaded[1]
    assert img.dtype == np.float32 and img.shape == (3, 8, 12)
    np.testing.assert_array_equal(img, pixels.transpose(2, 0, 1) / np.float32(255))
    assert np.array_equal(loaded[2][1][0], loaded[2][1][2])  # grey -> 3 equal channels


def test_load_folder_reads_heic(tmp_path):
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "x.heic", quality=90)
    [(name, img)] = load_folder(tmp_path)
    assert name == "x" and img.shape == (3, 16, 16) and abs(img.mean() - 0.5) < 0.02


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_load_folder_refuses_missing_or_empty_folder(tmp_path, make):
    folder = tmp_path / "imgs"
    if make == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"images: .*imgs.*allowed: .*\.png"):
        load_folder(folder)


def test_load_image_refuses_missing_and_undecodable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="cannot be decoded"):
        load_image(tmp_path / "bad.png")


@pytest.mark.parametrize("shape", [(3, 64, 96), (3, 33, 70), (3, 5, 7)])
def test_tile_untile_round_trip(shape):
    img = np.random.default_rng(1).random(shape, dtype=np.float32)
    tiles = tile(img, 32)
    rows, cols = -(-shape[1] // 32), -(-shape[2] // 32)
    assert tiles.shape == (rows * cols, 3, 32, 32) and tiles.dtype == np.float32
    np.testing.assert_array_equal(untile(tiles, img.shape), img)


def test_tile_order_and_edge_padding():
    img = np.arange(3 * 3 * 5, dtype=np.float32).reshape(3, 3, 5)
    tiles = tile(img, 2)
    assert tiles.shape == (6, 3, 2, 2)
    np.testing.assert_array_equal(tiles[1], img[:, 0:2, 2:4])  # row-major order
    np.testing.assert_array_equal(tiles[5][:, :, 0], img[:, [2, 2], 4])  # bottom-right: replicated
    np.testing.assert_array_equal(tiles[5][:, :, 1], img[:, [2, 2], 4])


def test_untile_refuses_wrong_tile_count():
    with pytest.raises(ConfigError, match="do not make an image"):
        untile(np.zeros((3, 3, 8, 8), np.float32), (3, 16, 16))


def test_photo_corpus_splits_per_photo_with_kodim23_in_test():
    test = photo_corpus("test")
    train = photo_corpus("train")
    assert len(test) >= 1 and len(train) >= 1
    for img in test + train:
        assert img.dtype == np.float32 and img.shape[0] == 3
        assert min(img.shape[1:]) <= images.CORPUS_SHORT_SIDE
    paths = images.corpus_files()
    assert [p.stem for p in paths if images.photo_split(p) == "test"].count("kodim23") == 1
    assert not {p.stem for p in paths if images.photo_split(p) == "train"} & set(images.TEST_PHOTOS)


def test_photo_corpus_refuses_unknown_split():
    with pytest.raises(ConfigError, match="allowed: train, test"):
        photo_corpus("val")


def test_a_wallpaper_folder_counts_once(tmp_path):
    folder = tmp_path / "Autumn" / "contents" / "images"
    folder.mkdir(parents=True)
    for name, size in (("640x480.jpg", 10), ("2560x1600.jpg", 300), ("1280x800.jpg", 50)):
        (folder / name).write_bytes(b"x" * size)
    other = tmp_path / "Kite" / "contents" / "images"
    other.mkdir(parents=True)
    (other / "800x600.jpg").write_bytes(b"x")
    chosen = images._one_per_folder(sorted(tmp_path.glob("*/contents/images/*.jpg")))
    assert [p.name for p in chosen] == ["2560x1600.jpg", "800x600.jpg"]


def test_held_out_image_set_is_two_crops_of_each_held_out_photo():
    crops = images.image_set("held-out")
    names = [name for name, _ in crops]
    assert len(crops) == 2 * len(images.TEST_PHOTOS) and len(set(names)) == len(names)
    assert {name.rsplit("-", 1)[0] for name in names} == set(images.TEST_PHOTOS)
    for name, img in crops:
        assert img.shape == (3, images.HELD_OUT_CROP, images.HELD_OUT_CROP) and img.dtype == np.float32
    a, b = dict(crops)["kodim23-a"], dict(crops)["kodim23-b"]
    assert not np.array_equal(a, b)
    assert [n for n, _ in images.image_set("default")] == [n for n, _ in images.default_images()]
    with pytest.raises(ConfigError, match="images"):
        images.image_set("/no/such/folder")
