"""Source codecs of the classical digital baseline: HEVC intra (BPG's codec) and JPEG 2000.

No BPG package exists here (docs/architecture.md); BPG is HEVC intra coding, so HEVC through
pillow-heif (libheif with x265) stands in for it. JPEG 2000 comes from Pillow's openjpeg.

Whole images are coded, and the whole file counts as payload: the HEIF container header
(about 350 bytes) and the JPEG 2000 codestream header (about 150 bytes) are part of every
byte budget. Such headers are larger than the channel budget of one 32x32 tile, which is why
whole images (Kodak size, or the 192x128 defaults) are coded instead of tiles.

Usage::

    codec = create("codec", "hevc")
    fit = codec.fit_budget(img, budget_bytes(n_channel_uses=4096, bits_per_symbol=4, code_rate=0.5))
    if fit is not None:
        data, quality = fit
        rec = codec.decode(data)
"""
from __future__ import annotations

import io
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from testbed.data.images import to_array, to_pil
from testbed.errors import ConfigError, TestbedError
from testbed.registry import register

# What a corrupt or foreign file makes Pillow / libheif / openjpeg raise.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError,
                  RuntimeError, Image.DecompressionBombError)


class ImageCodec(Protocol):
    """A lossy image codec with an integer quality knob (higher = better and larger).

    Inputs and outputs are float32 (3, H, W) RGB images in [0, 1]; they are rounded to 8 bits
    before coding.
    """

    name: str
    quality_range: tuple[int, int]

    def encode(self, img: np.ndarray, quality: int) -> bytes:
        """The whole file coding ``img`` (float32 (3, H, W)) at ``quality``."""
        ...

    def decode(self, data: bytes) -> np.ndarray:
        """The float32 (3, H, W) image of a file; TestbedError when it cannot be decoded."""
        ...

    def fit_budget(self, img: np.ndarray, budget_bytes: int) -> tuple[bytes, int] | None:
        """(file, quality) of the highest quality whose file fits ``budget_bytes``, else None."""
        ...


def budget_bytes(n_channel_uses: int, bits_per_symbol: int, code_rate: float) -> int:
    """Bytes a digital link carries in ``n_channel_uses`` complex symbols.

    Parameters: n_channel_uses, complex symbols available; bits_per_symbol, log2 of the QAM
        order (2 for QPSK, 4 for 16-QAM, ...); code_rate, channel code rate in (0, 1].
    Returns: floor(n_channel_uses * bits_per_symbol * code_rate / 8).
    """
    if n_channel_uses < 0 or bits_per_symbol < 1 or not 0.0 < code_rate <= 1.0:
        raise ConfigError(f"budget of n_channel_uses={n_channel_uses}, bits_per_symbol={bits_per_symbol}, "
                          f"code_rate={code_rate} is invalid; allowed: n_channel_uses >= 0, "
                          f"bits_per_symbol >= 1, 0 < code_rate <= 1")
    return int(n_channel_uses * bits_per_symbol * code_rate) // 8


class PillowCodec:
    """An :class:`ImageCodec` saving and opening one Pillow format; subclasses give the options."""

    name = ""
    pillow_format = ""
    quality_range = (0, 100)

    def save_options(self, quality: int) -> dict[str, Any]:
        """Keyword arguments of ``Image.save`` for ``quality``."""
        raise NotImplementedError

    def encode(self, img: np.ndarray, quality: int) -> bytes:
        """The whole file (headers included) coding ``img`` at ``quality``.

        Parameters: img float32 (3, H, W) in [0, 1]; quality, an int in ``quality_range``.
        Returns: the file's bytes.
        """
        low, high = self.quality_range
        if not low <= quality <= high:
            raise ConfigError(f"quality {quality} of codec {self.name!r} is out of range; "
                              f"allowed: {low} .. {high}")
        buffer = io.BytesIO()
        to_pil(img).save(buffer, format=self.pillow_format, **self.save_options(int(quality)))
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a whole file of this codec.

        Returns: float32 (3, H, W) in [0, 1].
        Raises: TestbedError when the bytes are not a decodable file of this format (a
            corrupted file may also decode to a wrong image: the codec has no checksum).
        """
        try:
            with Image.open(io.BytesIO(data), formats=[self.pillow_format]) as image:
                return to_array(image)
        except UnidentifiedImageError:
            raise TestbedError(f"{self.name} cannot decode {len(data)} bytes: "
                               f"not a {self.pillow_format} file") from None
        except _DECODE_ERRORS as err:
            raise TestbedError(f"{self.name} cannot decode {len(data)} bytes: "
                               f"{type(err).__name__}: {err}") from None

    def fit_budget(self, img: np.ndarray, budget_bytes: int,
                   bounds: tuple[int, int] | None = None) -> tuple[bytes, int] | None:
        """Highest quality whose whole file, headers included, is at most ``budget_bytes``;
        ``bounds`` (low, high) narrows the search to qualities known to bracket the answer.

        Bisection over the integer quality (about 7 encodings for 0..100), assuming the file
        size grows with quality. The container/codestream header is counted as payload.

        Parameters: img float32 (3, H, W) in [0, 1]; budget_bytes, the byte budget.
        Returns: (file bytes, quality), or None when even the lowest quality does not fit.
        """
        low, high = bounds or self.quality_range
        best = None
        fits, too_big = low - 1, high + 1  # invariant: fits fits (or is below range), too_big does not
        while too_big - fits > 1:
            quality = (fits + too_big) // 2
            data = self.encode(img, quality)
            if len(data) <= budget_bytes:
                fits, best = quality, (data, quality)
            else:
                too_big = quality
        return best


@register("codec", "hevc")
class HevcCodec(PillowCodec):
    """HEVC intra in a HEIF file (pillow-heif / x265): the BPG stand-in.

    quality: pillow-heif's 0..100 (mapped by libheif to the x265 QP). Chroma is subsampled
    4:2:0 by default as in BPG; ``chroma=444`` keeps full chroma (better only at high rates).
    """

    name = "hevc"
    pillow_format = "HEIF"
    quality_range = (0, 100)

    def __init__(self, chroma: int = 420) -> None:
        if chroma not in (420, 422, 444):
            raise ConfigError(f"chroma {chroma} is invalid; allowed: 420, 422, 444")
        self.chroma = chroma

    def save_options(self, quality: int) -> dict[str, Any]:
        """x265 at ``quality``; no colour profile box (saves about 20 bytes)."""
        return {"quality": quality, "chroma": self.chroma, "save_nclx_profile": False}


@register("codec", "jpeg2000")
class Jpeg2000Codec(PillowCodec):
    """JPEG 2000 codestream (Pillow / openjpeg), 9/7 wavelet with the colour transform.

    quality: the target PSNR in dB of openjpeg's rate allocation, 10 .. 80 (below about
    15 dB every quality gives the smallest file). A raw codestream is written, without the
    JP2 box wrapper, to spend fewer bytes on headers.
    """

    name = "jpeg2000"
    pillow_format = "JPEG2000"
    quality_range = (10, 80)

    def save_options(self, quality: int) -> dict[str, Any]:
        """openjpeg's PSNR-targeted single layer at ``quality`` dB."""
        return {"quality_mode": "dB", "quality_layers": [quality], "irreversible": True,
                "mct": 1, "no_jp2": True}
