"""Loaders for the standard on-disk image datasets: CIFAR-10/100, Kodak, DIV2K, CUB and Fashion-MNIST.

None of these data sets can be downloaded by the testbed (it works offline); a user who has
them points a loader at the folder. Each loader checks the standard layout and raises
ConfigError naming the path and the expected layout when it differs.

Conventions: images are float32 in [0, 1], channel first. Fixed-size sets (CIFAR) come as one
array (N, 3, 32, 32); variable-size sets (Kodak, DIV2K, CUB) as an :class:`ImageFiles`
sequence of (name, float32 (3, H, W)) that decodes each file when indexed, so DIV2K's 800
2K-pixel images never sit in memory at once. Labels are int64 (N,), starting at 0.

:func:`genuine_cifar_samples` returns the 20 genuine CIFAR-10 and 20 CIFAR-100 test images
shipped inside the foolbox wheel (the first 20 of each official test batch), the only real
CIFAR images available offline here. :func:`load_fashion_mnist` reads Fashion-MNIST's IDX
files, which Debian's ``dataset-fashion-mnist`` installs (``make setup`` does).

Security note: the CIFAR "python" batches are pickles; unpickling runs code named in the
file, so load only batches from a source you trust (as with every pickle).
"""
from __future__ import annotations

import gzip
import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from testbed.data.images import load_image, package_dir, resize_short_side, to_array
from testbed.errors import ConfigError, TestbedError

TRAIN_TEST_SPLITS = ("train", "test")
DIV2K_SPLITS = ("train", "valid")
FOOLBOX_PIN = "foolbox==3.3.4"

_CIFAR10_LAYOUT = ("cifar-10-batches-py/ with data_batch_1 .. data_batch_5 and test_batch "
                   "(pickles with b'data' uint8 (N, 3072) and b'labels')")
_CIFAR100_LAYOUT = ("cifar-100-python/ with train and test (pickles with b'data' uint8 (N, 3072), "
                    "b'fine_labels' and b'coarse_labels')")
_KODAK_LAYOUT = "a folder with kodim01.png .. kodim24.png"
_DIV2K_LAYOUT = "a folder with DIV2K_train_HR/ (0001.png .. 0800.png) and DIV2K_valid_HR/ (0801.png .. 0900.png)"
_FASHION_LAYOUT = ("a folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                   "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (IDX files, gzipped or not)")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
# A coarse grouping of the ten classes (a label hierarchy S1 -> S2 -> X): every fine class has
# exactly one coarse class.
FASHION_MNIST_COARSE_CLASSES = ("tops", "bottoms and dresses", "footwear", "bags")
FASHION_MNIST_COARSE = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2], dtype=np.int64)
_CUB_LAYOUT = ("CUB_200_2011/ with images.txt, image_class_labels.txt, train_test_split.txt, "
               "classes.txt and images/")


class ImageFiles(Sequence):
    """Image files decoded on access: ``files[i]`` is (name, float32 (3, H, W) in [0, 1]).

    Parameters: paths of the files; short_side, when given, downscale each image on loading
    so its short side is that many pixels (never upscaled; see docs/architecture.md on why photos are
    downscaled before cropping).
    """

    def __init__(self, paths: Sequence[Path], short_side: int | None = None) -> None:
        self.paths = list(paths)
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int | slice) -> tuple[str, np.ndarray] | ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.paths[index], self.short_side)
        path = self.paths[index]
        if self.short_side is None:
            return path.stem, load_image(path)
        with Image.open(path) as image:
            return path.stem, to_array(resize_short_side(image, self.short_side))

    @property
    def names(self) -> list[str]:
        """File stems, in order."""
        return [path.stem for path in self.paths]


def _dataset_dir(root: str | Path, name: str, layout: str) -> Path:
    """``root`` itself when it is the folder ``name``, else ``root/name``; ConfigError if neither."""
    root = Path(root)
    for candidate in (root, root / name):
        if candidate.name == name and candidate.is_dir():
            return candidate
    raise ConfigError(f"dataset path {str(root)!r} has no folder {name!r}; expected layout: {layout}")


def _unpickle(path: Path, layout: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"dataset file {str(path)!r} is missing; expected layout: {layout}")
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ConfigError(f"dataset file {str(path)!r} is not a CIFAR pickle ({err}); "
                          f"expected layout: {layout}") from None


def _cifar_images(batch: dict, path: Path, layout: str) -> np.ndarray:
    """b'data' uint8 (N, 3072), rows of 1024 R, 1024 G, 1024 B values -> float32 (N, 3, 32, 32)."""
    data = np.asarray(batch.get(b"data", ()), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ConfigError(f"dataset file {str(path)!r} has no b'data' of shape (N, 3072); "
                          f"expected layout: {layout}")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0


def _labels(batch: dict, key: bytes, path: Path, layout: str, n: int) -> np.ndarray:
    labels = np.asarray(batch.get(key, ()), dtype=np.int64)
    if labels.shape != (n,):
        raise ConfigError(f"dataset file {str(path)!r} has no {key!r} with {n} labels; "
                          f"expected layout: {layout}")
    return labels


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ConfigError(f"split {split!r} is unknown; allowed: {', '.join(allowed)}")


def load_cifar10(root: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the official "python version" batches.

    Parameters: root, the folder ``cifar-10-batches-py`` or the folder holding it; split,
        ``"train"`` (data_batch_1 .. data_batch_5, 50000 images) or ``"test"`` (test_batch, 10000).
    Returns: images float32 (N, 3, 32, 32) in [0, 1]; labels int64 (N,) in 0..9.
    """
    _check_split(split, TRAIN_TEST_SPLITS)
    folder = _dataset_dir(root, "cifar-10-batches-py", _CIFAR10_LAYOUT)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        path = folder / name
        batch = _unpickle(path, _CIFAR10_LAYOUT)
        images.append(_cifar_images(batch, path, _CIFAR10_LAYOUT))
        labels.append(_labels(batch, b"labels", path, _CIFAR10_LAYOUT, len(images[-1])))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar100(root: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-100 from the official "python version" files.

    Parameters: root, the folder ``cifar-100-python`` or the folder holding it; split,
        ``"train"`` (50000 images) or ``"test"`` (10000).
    Returns: images float32 (N, 3, 32, 32) in [0, 1]; fine labels int64 (N,) in 0..99;
        coarse (superclass) labels int64 (N,) in 0..19.
    """
    _check_split(split, TRAIN_TEST_SPLITS)
    folder = _dataset_dir(root, "cifar-100-python", _CIFAR100_LAYOUT)
    path = folder / split
    batch = _unpickle(path, _CIFAR100_LAYOUT)
    images = _cifar_images(batch, path, _CIFAR100_LAYOUT)
    fine = _labels(batch, b"fine_labels", path, _CIFAR100_LAYOUT, len(images))
    coarse = _labels(batch, b"coarse_labels", path, _CIFAR100_LAYOUT, len(images))
    return images, fine, coarse


def load_kodak(root: str | Path, short_side: int | None = None) -> ImageFiles:
    """The 24 Kodak images (kodim01.png .. kodim24.png, 768x512 or 512x768).

    All 24 must be there, so that a number quoted "on Kodak" is on the whole set.
    Parameters: root, the folder holding the PNGs; short_side, optional downscaling.
    Returns: ImageFiles of 24 (name, float32 (3, H, W)), names kodim01 .. kodim24.
    """
    folder = Path(root)
    paths = [folder / f"kodim{i:02d}.png" for i in range(1, 25)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"Kodak path {str(folder)!r} lacks {', '.join(missing[:3])}"
                          f"{' ...' if len(missing) > 3 else ''}; expected layout: {_KODAK_LAYOUT}")
    return ImageFiles(paths, short_side)


def load_div2k(root: str | Path, split: str = "valid", short_side: int | None = None) -> ImageFiles:
    """DIV2K high-resolution images (about 2040 px on the long side).

    Parameters: root, the folder holding ``DIV2K_train_HR/`` and/or ``DIV2K_valid_HR/``;
        split, ``"train"`` (800 images) or ``"valid"`` (100); short_side, optional
        downscaling (e.g. 512 before cropping tiles). Every PNG of the split's folder is
        read; a subset of the standard files is accepted.
    Returns: ImageFiles of (name, float32 (3, H, W)), sorted by name (0001 ..).
    """
    _check_split(split, DIV2K_SPLITS)
    folder = Path(root) / f"DIV2K_{split}_HR"
    paths = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not paths:
        raise ConfigError(f"DIV2K path {str(folder)!r} holds no PNG; expected layout: {_DIV2K_LAYOUT}")
    return ImageFiles(paths, short_side)


def _read_table(path: Path) -> list[list[str]]:
    """Rows of a CUB text file: whitespace-separated fields, the last one may hold no spaces."""
    if not path.is_file():
        raise ConfigError(f"CUB file {str(path)!r} is missing; expected layout: {_CUB_LAYOUT}")
    return [line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]


def _id_map(path: Path) -> dict[int, str]:
    try:
        return {int(key): value.strip() for key, value in _read_table(path)}
    except ValueError:
        raise ConfigError(f"CUB file {str(path)!r} is not '<id> <value>' per line; "
                          f"expected layout: {_CUB_LAYOUT}") from None


def load_cub(root: str | Path, split: str = "test",
             short_side: int | None = None) -> tuple[ImageFiles, np.ndarray, list[str]]:
    """CUB-200-2011 bird species, with the official train/test split.

    Parameters: root, the folder ``CUB_200_2011`` or the folder holding it; split,
        ``"train"`` (5994 images) or ``"test"`` (5794); short_side, optional downscaling.
    Returns: images, ImageFiles of (name, float32 (3, H, W)) in image-id order; labels int64
        (N,) = class id - 1, in 0..199; class names (200 str, e.g. "001.Black_footed_Albatross"),
        indexed by label.
    """
    _check_split(split, TRAIN_TEST_SPLITS)
    folder = _dataset_dir(root, "CUB_200_2011", _CUB_LAYOUT)
    files = _id_map(folder / "images.txt")
    classes = _id_map(folder / "image_class_labels.txt")
    is_train = _id_map(folder / "train_test_split.txt")
    class_names = _id_map(folder / "classes.txt")
    wanted = "1" if split == "train" else "0"
    ids = sorted(i for i in files if is_train.get(i) == wanted)
    if any(i not in classes for i in ids):
        raise ConfigError(f"CUB file {str(folder / 'image_class_labels.txt')!r} lacks image ids; "
                          f"expected layout: {_CUB_LAYOUT}")
    paths = [folder / "images" / files[i] for i in ids]
    labels = np.array([int(classes[i]) - 1 for i in ids], dtype=np.int64)
    names = [class_names[k] for k in sorted(class_names)]
    return ImageFiles(paths, short_side), labels, names


_FOOLBOX_SAMPLE = re.compile(r"(cifar10|cifar100)_(\d\d)_(\d+)\.png")


def genuine_cifar_samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The genuine CIFAR test images shipped in the foolbox wheel (read without importing foolbox).

    These are the first 20 images of the official CIFAR-10 ``test_batch`` and of the CIFAR-100
    ``test`` file, stored losslessly as PNG by foolbox (MIT licence). Install with
    ``pip install --no-deps foolbox==3.3.4``.

    Returns: {"cifar10": (images float32 (20, 3, 32, 32) in [0, 1], labels int64 (20,)),
        "cifar100": (images, fine labels int64 (20,))}; a key is absent if its files are.
    Raises: TestbedError when foolbox is not installed.
    """
    root = package_dir("foolbox")
    if root is None or not (root / "data").is_dir():
        raise TestbedError(f"the genuine CIFAR samples need foolbox: pip install --no-deps {FOOLBOX_PIN}")
    found: dict[str, list[tuple[int, int, Path]]] = {}
    for path in (root / "data").iterdir():
        match = _FOOLBOX_SAMPLE.fullmatch(path.name)
        if match:
            found.setdefault(match[1], []).append((int(match[2]), int(match[3]), path))
    samples = {}
    for name, entries in sorted(found.items()):
        entries.sort()
        images = np.stack([load_image(path) for _, _, path in entries])
        samples[name] = (images, np.array([label for _, label, _ in entries], dtype=np.int64))
    return samples


def _idx_file(folder: Path, stem: str) -> Path:
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    raise ConfigError(f"dataset file {str(folder / stem)!r}(.gz) is missing; expected layout: {_FASHION_LAYOUT}")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes (magic 0x0000 08 ndim, big-endian sizes, then the data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ConfigError(f"dataset file {str(path)!r} cannot be read ({err}); expected layout: {_FASHION_LAYOUT}") from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 8, ndim]):
        raise ConfigError(f"dataset file {str(path)!r} is not an IDX file of {ndim}-D unsigned bytes; "
                          f"expected layout: {_FASHION_LAYOUT}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"dataset file {str(path)!r} holds {body.size} bytes, its header says {shape}; "
                          f"expected layout: {_FASHION_LAYOUT}")
    return body.reshape(shape)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from its IDX files.

    Parameters: root, the folder of the four files; split, ``"train"`` (60000) or ``"test"`` (10000).
    Returns: images float32 (N, 1, 28, 28) in [0, 1]; labels int64 (N,) in 0..9
        (:data:`FASHION_MNIST_CLASSES`; coarse labels: ``FASHION_MNIST_COARSE[labels]``).
    """
    _check_split(split, TRAIN_TEST_SPLITS)
    folder = Path(root)
    if not folder.is_dir():
        raise ConfigError(f"dataset path {str(folder)!r} is not a folder; expected layout: {_FASHION_LAYOUT} "
                          f"(Debian: apt-get install dataset-fashion-mnist)")
    stem = "train" if split == "train" else "t10k"
    images = _read_idx(_idx_file(folder, f"{stem}-images-idx3-ubyte"), 3)
    labels = _read_idx(_idx_file(folder, f"{stem}-labels-idx1-ubyte"), 1).astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max(initial=0) > 9:
        raise ConfigError(f"Fashion-MNIST {split} in {str(folder)!r}: images {images.shape} and labels "
                          f"{labels.shape} do not match; expected (N, 28, 28) and (N,) in 0..9")
    return images[:, None].astype(np.float32) / 255.0, labels


FASHION_MNIST_ITEM_PREFIX = "fashion-mnist-test-"
FASHION_MNIST_ITEMS = 1000


def fashion_mnist_items(count: int = FASHION_MNIST_ITEMS, root: str | Path = FASHION_MNIST_DIR) -> list[tuple[str, np.ndarray]]:
    """The first ``count`` Fashion-MNIST test images as testbed items (the ``fashion-mnist``
    image set): names ``fashion-mnist-test-00000`` .., float32 (3, 28, 28), the grey image in
    all three channels (so every image metric is the grey image's)."""
    images, _ = load_fashion_mnist(root, "test")
    return [(f"{FASHION_MNIST_ITEM_PREFIX}{i:05d}", np.repeat(images[i], 3, axis=0)) for i in range(min(count, len(images)))]
