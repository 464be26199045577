"""Data-set loaders on files written here in the exact standard layouts, and on genuine CIFAR."""
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from testbed.data.images import package_dir
from testbed.data.loaders import (genuine_cifar_samples, load_cifar10, load_cifar100, load_cub,
                                  load_div2k, load_kodak)
from testbed.errors import ConfigError

HAS_FOOLBOX = package_dir("foolbox") is not None
needs_foolbox = pytest.mark.skipif(not HAS_FOOLBOX, reason="foolbox is not installed: "
                                   "pip install --no-deps foolbox==3.3.4 (it ships genuine CIFAR images)")


def _u8(images: np.ndarray) -> np.ndarray:
    """float (N, 3, 32, 32) in [0, 1] -> CIFAR's b'data' uint8 (N, 3072)."""
    return np.rint(images * 255).astype(np.uint8).reshape(len(images), 3072)


def _dump(path: Path, batch: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def _write_cifar10(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        _dump(folder / name, {b"batch_label": name.encode(), b"labels": [int(x) for x in labels],
                              b"data": _u8(images), b"filenames": [b"x.png"] * len(images)})
    _dump(folder / "batches.meta", {b"label_names": [b"airplane"] * 10, b"num_vis": 3072})


def _write_cifar100(root: Path, images: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> None:
    for name in ("train", "test"):
        _dump(root / "cifar-100-python" / name,
              {b"filenames": [b"x.png"] * len(images), b"batch_label": name.encode(),
               b"fine_labels": [int(x) for x in fine], b"coarse_labels": [int(x) for x in coarse],
               b"data": _u8(images)})


@needs_foolbox
def test_genuine_cifar_samples_are_the_official_first_test_images():
    samples = genuine_cifar_samples()
    images, labels = samples["cifar10"]
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int64
    # the first labels of the official CIFAR-10 test_batch
    assert labels.tolist()[:10] == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert samples["cifar100"][1].tolist()[:5] == [49, 33, 72, 51, 71]


@needs_foolbox
def test_cifar10_round_trip_of_genuine_images(tmp_path):
    images, labels = genuine_cifar_samples()["cifar10"]
    _write_cifar10(tmp_path, images, labels)
    got, got_labels = load_cifar10(tmp_path, "test")
    np.testing.assert_allclose(got, images, atol=1e-6)
    np.testing.assert_array_equal(got_labels, labels)
    train, train_labels = load_cifar10(tmp_path / "cifar-10-batches-py", "train")
    assert train.shape == (100, 3, 32, 32) and train_labels.shape == (100,)
    assert train_labels.dtype == np.int64


@needs_foolbox
def test_cifar100_round_trip_of_genuine_images(tmp_path):
    images, fine = genuine_cifar_samples()["cifar100"]
    coarse = fine // 5
    _write_cifar100(tmp_path, images, fine, coarse)
    got, got_fine, got_coarse = load_cifar100(tmp_path, "test")
    np.testing.assert_allclose(got, images, atol=1e-6)
    np.testing.assert_array_equal(got_fine, fine)
    np.testing.assert_array_equal(got_coarse, coarse)


def test_cifar_row_layout_is_red_plane_then_green_then_blue(tmp_path):
    data = np.zeros((1, 3072), np.uint8)
    data[0, 0] = 255            # R at (0, 0)
    data[0, 1024 + 33] = 255    # G at (1, 1)
    data[0, 2048 + 1023] = 255  # B at (31, 31)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": data, b"labels": [7]})
    images, labels = load_cifar10(tmp_path, "test")
    assert images[0, 0, 0, 0] == 1.0 and images[0, 1, 1, 1] == 1.0 and images[0, 2, 31, 31] == 1.0
    assert images.sum() == 3.0 and labels.tolist() == [7]


def test_cifar_bad_paths_name_path_and_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"no folder 'cifar-10-batches-py'.*data_batch_1"):
        load_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(ConfigError, match=r"data_batch_1.* is missing; expected layout"):
        load_cifar10(tmp_path, "train")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="not a CIFAR pickle"):
        load_cifar10(tmp_path, "test")
    _dump(tmp_path / "cifar-100-python" / "test", {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [1, 2]})
    with pytest.raises(ConfigError, match="coarse_labels"):
        load_cifar100(tmp_path, "test")
    with pytest.raises(ConfigError, match="allowed: train, test"):
        load_cifar100(tmp_path, "valid")


def _png(path: Path, width: int, height: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)


def test_kodak_needs_all_24_and_loads_each_orientation(tmp_path):
    for i in range(1, 25):
        _png(tmp_path / f"kodim{i:02d}.png", 24 if i != 4 else 16, 16 if i != 4 else 24, 10 * i)
    kodak = load_kodak(tmp_path)
    assert len(kodak) == 24 and kodak.names[0] == "kodim01"
    name, img = kodak[3]
    assert name == "kodim04" and img.shape == (3, 24, 16) and img.dtype == np.float32
    assert np.allclose(img, 40 / 255)
    assert load_kodak(tmp_path, short_side=8)[0][1].shape == (3, 8, 12)
    (tmp_path / "kodim07.png").unlink()
    with pytest.raises(ConfigError, match=r"lacks kodim07.png; expected layout: .*kodim24"):
        load_kodak(tmp_path)


def test_div2k_splits_and_bad_path(tmp_path):
    _png(tmp_path / "DIV2K_train_HR" / "0001.png", 20, 12, 0)
    _png(tmp_path / "DIV2K_train_HR" / "0002.png", 12, 20, 255)
    _png(tmp_path / "DIV2K_valid_HR" / "0801.png", 20, 12, 128)
    train = load_div2k(tmp_path, "train")
    assert train.names == ["0001", "0002"] and train[1][1].shape == (3, 20, 12)
    assert load_div2k(tmp_path, "valid")[0][0] == "0801"
    with pytest.raises(ConfigError, match=r"DIV2K_valid_HR.*holds no PNG; expected layout"):
        load_div2k(tmp_path / "elsewhere")


def _write_cub(root: Path) -> Path:
    folder = root / "CUB_200_2011"
    entries = [(1, 1, "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg", 1),
               (2, 1, "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg", 0),
               (3, 200, "200.Common_Yellowthroat/Common_Yellowthroat_0055_190967.jpg", 0)]
    for image_id, _, rel, _ in entries:
        path = folder / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((10 + image_id, 14, 3), 30 * image_id, np.uint8)).save(path, quality=95)
    (folder / "images.txt").write_text("".join(f"{i} {rel}\n" for i, _, rel, _ in entries))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c, _, _ in entries))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in entries))
    (folder / "classes.txt").write_text("".join(f"{k} {k:03d}.Bird_{k}\n" for k in range(1, 201)))
    return folder


def test_cub_official_split_and_labels(tmp_path):
    _write_cub(tmp_path)
    images, labels, class_names = load_cub(tmp_path, "test")
    assert labels.tolist() == [0, 199] and labels.dtype == np.int64
    assert len(class_names) == 200 and class_names[199] == "200.Bird_200"
    name, img = images[1]
    assert name == "Common_Yellowthroat_0055_190967" and img.shape == (3, 13, 14)
    train_images, train_labels, _ = load_cub(tmp_path / "CUB_200_2011", "train")
    assert len(train_images) == 1 and train_labels.tolist() == [0]


def test_cub_missing_file_names_it(tmp_path):
    folder = _write_cub(tmp_path)
    (folder / "train_test_split.txt").unlink()
    with pytest.raises(ConfigError, match=r"train_test_split.txt.* is missing; expected layout"):
        load_cub(tmp_path)
    with pytest.raises(ConfigError, match="no folder 'CUB_200_2011'"):
        load_cub(tmp_path / "nowhere")
