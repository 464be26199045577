"""Images for the testbed: the embedded defaults, user folders, the offline photo corpus, tiling.

Every image this module returns is a float32 numpy array of shape (3, H, W) with values in
[0, 1] (RGB, channel first), the layout docs/architecture.md fixes for the whole testbed.

- :func:`default_images` are the small photographs shipped inside the package
  (``testbed/data/images/``, sources and licences in ``testbed/data/LICENSES.md``); they are
  what ``testbed demo`` transmits.
- :func:`load_folder` reads a user's folder (``--set images=DIR``).
- :func:`photo_corpus` gathers the real photographs available offline (Python packages and
  Debian wallpaper packages) for training and evaluation, downscaled so the short side is
  512 px: crops of full-resolution photos are much smoother than ordinary photographs, and a
  model trained and scored on them looks about 8 dB better than it is (docs/architecture.md).
- :func:`tile` / :func:`untile` cut a whole image into square patches (e.g. 32x32 for a model
  trained on CIFAR-size inputs) and put it back together.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from testbed.errors import ConfigError

register_heif_opener()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".heic", ".heif")
CORPUS_SHORT_SIDE = 512
SPLITS = ("train", "test")

# Photographs of the offline corpus, by package: (package, folder inside it, file names).
# Only colour photographs of ordinary scenes; scikit-image's textures, microscopy, the retina
# and the Hubble deep field are left out, and of the stereo pair only the left view is kept.
_PACKAGE_PHOTOS = (
    ("sporco", "data", ("kodim23.png", "barbara.png", "monarch.png", "sail.png", "tulips.png")),
    ("skimage", "data", ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                         "motorcycle_left.png")),
    ("sklearn", "datasets/images", ("china.jpg", "flower.jpg")),
)
# Debian wallpaper packages: plasma-workspace-wallpapers (one folder per photo, see
# _one_per_folder) and mate-backgrounds' nature photos (one folder of photos).
_WALLPAPER_GLOBS = (
    ("/usr/share/wallpapers", "*/contents/images/*.jpg", True),
    ("/usr/share/backgrounds/mate/nature", "*.jpg", False),
)
# The photos the embedded defaults were cut from: always in the test split, so what the demo
# transmits was never trained on. kodim23 is one of them.
TEST_PHOTOS = ("kodim23", "astronaut", "coffee", "chelsea")


def to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as float32 (3, H, W) RGB in [0, 1]."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def to_pil(img: np.ndarray) -> Image.Image:
    """A float (3, H, W) image in [0, 1] as an 8-bit RGB Pillow image (values are clipped)."""
    _check_image(img)
    u8 = np.clip(np.rint(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(u8.transpose(1, 2, 0))


def resize_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """Downscale (Lanczos) so the shorter side is ``short_side`` px; smaller images are kept.

    Images are never upscaled: upscaling would make them smoother than the photos they stand for.
    """
    width, height = image.size
    scale = short_side / min(width, height)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.format == "JPEG":
        image.draft("RGB", size)  # decode JPEG at a reduced scale first: much faster
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def load_image(path: str | Path) -> np.ndarray:
    """Read one image file.

    Parameters: path of a PNG, JPEG, BMP, TIFF or HEIC file.
    Returns: float32 (3, H, W) RGB in [0, 1] (grey and RGBA images are converted to RGB).
    Raises: ConfigError naming the path when the file is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            return to_array(image)
    except FileNotFoundError:
        raise ConfigError(f"image {str(path)!r} does not exist; allowed: an existing image file "
                          f"({', '.join(IMAGE_SUFFIXES)})") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ConfigError(f"image {str(path)!r} cannot be decoded ({err}); allowed: "
                          f"{', '.join(IMAGE_SUFFIXES)} files") from None


def load_folder(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Read every image of a folder (not recursive), sorted by file name.

    Parameters: folder holding .png/.jpg/.jpeg/.bmp/.tif/.tiff/.heic/.heif files (any case).
    Returns: list of (file stem, float32 (3, H, W) in [0, 1]).
    Raises: ConfigError naming the field ``images``, the value and what is allowed when the
        folder is missing or holds no image.
    """
    folder = Path(folder)
    allowed = f"a folder with {', '.join(IMAGE_SUFFIXES)} files"
    if not folder.is_dir():
        raise ConfigError(f"images: {str(folder)!r} is not a folder; allowed: {allowed}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"images: folder {str(folder)!r} holds no image; allowed: {allowed}")
    return [(path.stem, load_image(path)) for path in files]


def default_images() -> list[tuple[str, np.ndarray]]:
    """The embedded default images (``testbed/data/images/*.png``), sorted by name.

    Returns: list of (name, float32 (3, H, W) in [0, 1]); each image is 128x128 or
        128 high x 192 wide. Sources and licences: ``testbed/data/LICENSES.md``.
    """
    folder = importlib.resources.files("testbed.data") / "images"
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".png")), key=lambda e: e.name)
    result = []
    for entry in entries:
        with importlib.resources.as_file(entry) as path:
            result.append((Path(entry.name).stem, load_image(path)))
    return result


HELD_OUT_CROP = 256
IMAGE_SETS = ("default", "held-out", "fashion-mnist")


def held_out_crops(size: int = HELD_OUT_CROP) -> list[tuple[str, np.ndarray]]:
    """Two ``size`` x ``size`` crops of every held-out photo (the ``"test"`` split, short side
    512 px): the left and right (or top and bottom) ends of the centre band, overlapping where the
    photo is small. Photographs no shipped model trained on, larger than the embedded defaults.

    Returns: list of ("<photo>-a" / "<photo>-b", float32 (3, size, size)), sorted by name.
    """
    crops = []
    for path in corpus_files():
        if photo_split(path) != "test":
            continue
        with Image.open(path) as image:
            photo = to_array(resize_short_side(image, CORPUS_SHORT_SIDE))
        _, height, width = photo.shape
        if min(height, width) < size:
            raise ConfigError(f"held-out photo {path} of {width}x{height} px is smaller than the {size} px crop")
        if width >= height:
            y, xs = (height - size) // 2, (0, width - size)
            corners = [(y, x) for x in xs]
        else:
            x, ys = (width - size) // 2, (0, height - size)
            corners = [(y, x) for y in ys]
        for tag, (y, x) in zip("ab", corners):
            crops.append((f"{path.stem}-{tag}", np.ascontiguousarray(photo[:, y:y + size, x:x + size])))
    return sorted(crops, key=lambda item: item[0])


def image_set(name: str) -> list[tuple[str, np.ndarray]]:
    """A named image set: ``"default"`` (the embedded 128-px images), ``"held-out"``
    (:func:`held_out_crops`) or ``"fashion-mnist"`` (the first 1000 Fashion-MNIST test images,
    ``testbed.data.loaders.fashion_mnist_items``); anything else is read as a folder
    (:func:`load_folder`)."""
    if name == "default":
        return default_images()
    if name == "held-out":
        return held_out_crops()
    if name == "fashion-mnist":
        from testbed.data.loaders import fashion_mnist_items  # loaders imports this module

        return fashion_mnist_items()
    return load_folder(name)


def package_dir(package: str) -> Path | None:
    """Installed folder of a top-level package, found without importing it; None if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def corpus_files() -> list[Path]:
    """Paths of the offline corpus photographs present on this machine (package ones first)."""
    paths = []
    for package, sub, names in _PACKAGE_PHOTOS:
        root = package_dir(package)
        if root is not None:
            paths += [root / sub / name for name in names if (root / sub / name).is_file()]
    for root, pattern, folder_per_photo in _WALLPAPER_GLOBS:
        found = sorted(Path(root).glob(pattern))
        paths += _one_per_folder(found) if folder_per_photo else found
    return paths


def _one_per_folder(paths: list[Path]) -> list[Path]:
    """The largest file of each folder: a Plasma wallpaper ships one photo as up to twelve crops
    and sizes (640x480 ... 2560x1600), which would weigh that photo twelve times."""
    largest: dict[Path, Path] = {}
    for path in paths:
        best = largest.get(path.parent)
        if best is None or path.stat().st_size > best.stat().st_size:
            largest[path.parent] = path
    return sorted(largest.values())


def photo_split(path: str | Path) -> str:
    """The split of one photo: ``"test"`` for the sources of the embedded defaults, else ``"train"``."""
    return "test" if Path(path).stem in TEST_PHOTOS else "train"


def photo_corpus(split: str) -> list[np.ndarray]:
    """The offline real photographs of one split, downscaled so the short side is 512 px.

    Sources, where installed: sporco's kodim23, barbara, monarch, sail, tulips; scikit-image's
    astronaut, chelsea, coffee, rocket, motorcycle_left; scikit-learn's china and flower;
    Debian's plasma-workspace-wallpapers (/usr/share/wallpapers/*/contents/images/*.jpg) and
    mate-backgrounds nature photos (/usr/share/backgrounds/mate/nature/*.jpg).

    The split is fixed per photo (see :func:`photo_split`): the photos the embedded defaults
    come from (kodim23, astronaut, coffee, chelsea) are ``"test"``, all others ``"train"``.
    Sample tiles uniformly per photo, not by area.

    Parameters: split, ``"train"`` or ``"test"``.
    Returns: list of float32 (3, H, W) in [0, 1], min(H, W) = 512 (smaller photos keep their
        size: they are never upscaled).
    """
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is unknown; allowed: {', '.join(SPLITS)}")
    photos = []
    for path in corpus_files():
        if photo_split(path) == split:
            with Image.open(path) as image:
                photos.append(to_array(resize_short_side(image, CORPUS_SHORT_SIDE)))
    return photos


def tile(img: np.ndarray, size: int) -> np.ndarray:
    """Cut an image into square tiles, row by row, padding the right and bottom edges.

    Parameters: img float32 (3, H, W); size, the tile side in px.
    Returns: float32 (ceil(H/size) * ceil(W/size), 3, size, size); the image is padded by
        edge replication up to a multiple of ``size``.
    """
    _check_image(img)
    if size < 1:
        raise ConfigError(f"tile size {size} is invalid; allowed: a positive number of pixels")
    _, height, width = img.shape
    rows, cols = -(-height // size), -(-width // size)
    padded = np.pad(img, ((0, 0), (0, rows * size - height), (0, cols * size - width)), mode="edge")
    tiles = padded.reshape(3, rows, size, cols, size).transpose(1, 3, 0, 2, 4)
    return np.ascontiguousarray(tiles.reshape(rows * cols, 3, size, size), dtype=np.float32)


def untile(tiles: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`tile`: put tiles back together and crop the padding.

    Parameters: tiles float (N, 3, size, size) in :func:`tile`'s order; shape, the (3, H, W)
        shape of the original image.
    Returns: float32 (3, H, W).
    """
    n, channels, size, size_w = tiles.shape
    _, height, width = shape
    rows, cols = -(-height // size), -(-width // size)
    if channels != 3 or size != size_w or n != rows * cols:
        raise ConfigError(f"tiles of shape {tiles.shape} do not make an image of shape {tuple(shape)}; "
                          f"allowed: {rows * cols} tiles of shape (3, {size}, {size})")
    grid = tiles.reshape(rows, cols, 3, size, size).transpose(2, 0, 3, 1, 4)
    image = grid.reshape(3, rows * size, cols * size)[:, :height, :width]
    return np.ascontiguousarray(image, dtype=np.float32)


def _check_image(img: np.ndarray) -> None:
    if np.ndim(img) != 3 or np.shape(img)[0] != 3:
        raise ConfigError(f"image of shape {np.shape(img)} is invalid; allowed: (3, H, W) float in [0, 1]")
