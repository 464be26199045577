"""A MU-ASCC hyperprior codec run from its ONNX export (:mod:`testbed.systems.mu_ascc.export`):
ONNX Runtime for the transforms, numpy for quantisation and CDF indexes, CompressAI's rANS coder
for the bits.

:class:`OnnxHyperpriorCodec` has the interface of :class:`~testbed.systems.mu_ascc.codec.HyperpriorCodec`
(``encode``, ``decode``, ``name``) and replicates, step by step, what CompressAI's
``ScaleHyperprior.compress`` / ``decompress`` do:

- entropy bottleneck (z): symbols = round(z - medians) (int32, round half to even as
  ``torch.round``), one CDF per channel; z_hat = float32(symbols) + medians;
- Gaussian conditional (y): scales_hat = h_s(z_hat) bounded below by the scale bound, CDF index
  = the number of scale-table entries (but the last) below the scale (``build_indexes``);
  symbols = round(y), y_hat = float32(symbols);
- the image is edge-replicated to multiples of 64 and cropped again; non-finite pixels of a
  corrupted decode show black (NaN, -inf) or white (+inf), as in ``HyperpriorCodec``.

A flipped payload decodes without an exception, as the same rANS decoder reads it. Given the same
(y, z), the streams are those of CompressAI bit for bit; the graphs' float results differ from
torch's by rounding (about 1e-6), which moves a latent across a rounding boundary now and then,
so a few images code to other, equally valid, bytes.

The rANS coder is ``compressai.ans``, a C++ extension inside the compressai package: importing it
imports the whole package, hence torch and torchvision (seconds). Nothing else of CompressAI or
torch is used here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from compressai.ans import RansDecoder, RansEncoder

from testbed.errors import ModelError
from testbed.onnx.card import sha256_file
from testbed.onnx.session import OnnxModel
from testbed.systems.mu_ascc.codec import ALIGN_PX, Bitstream, _padding, check_image

CODEC_ROLES = ("analysis", "hyper_synthesis", "synthesis")
TABLE_SUFFIX = ".entropy.npz"
# The table file: eb_* of the entropy bottleneck (a row per hyper-latent channel, N), gc_* of the
# Gaussian conditional (a row per entry of its scale table, S).
TABLE_KEYS = ("eb_quantized_cdf", "eb_cdf_length", "eb_offset", "eb_medians",
              "gc_scale_table", "gc_scale_bound", "gc_quantized_cdf", "gc_cdf_length", "gc_offset")


@dataclass(frozen=True)
class CdfTable:
    """The rANS coder's arguments for one entropy model: ``cdfs`` (rows of 16-bit quantised CDFs,
    zero-padded), ``lengths`` (used entries per row) and ``offsets`` (the symbol of entry 0)."""

    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]


def load_tables(path: str | Path, sha256: str) -> dict[str, np.ndarray]:
    """The arrays of a table file (:data:`TABLE_KEYS`), checked against the card's ``sha256``.

    Raises: ModelError naming the file when it is missing, its sha256 differs, it is not an .npz,
        it lacks a key, or its arrays' shapes do not fit together.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: entropy table file is missing")
    digest = sha256_file(path)
    if digest != sha256:
        raise ModelError(f"{path}: sha256 mismatch (card {str(sha256)[:12]}…, file {digest[:12]}…)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            tables = {key: npz[key] for key in npz.files}
    except Exception as err:  # noqa: BLE001  (zipfile and numpy raise several types)
        raise ModelError(f"{path}: entropy table file cannot be read as .npz ({err})") from None
    missing = [key for key in TABLE_KEYS if key not in tables]
    if missing:
        raise ModelError(f"{path}: entropy table file lacks {', '.join(missing)}; it needs {', '.join(TABLE_KEYS)}")
    for prefix, rows_key in (("eb", "eb_medians"), ("gc", "gc_scale_table")):
        rows = tables[rows_key].shape
        cdf = tables[f"{prefix}_quantized_cdf"]
        shapes = {key: tables[key].shape for key in (f"{prefix}_cdf_length", f"{prefix}_offset")}
        if cdf.ndim != 2 or cdf.shape[:1] != rows or any(s != rows for s in shapes.values()):
            raise ModelError(f"{path}: {prefix}_quantized_cdf {cdf.shape}, {shapes} do not match {rows_key} {rows}; "
                             f"allowed: (R, L) and (R,) for R = len({rows_key})")
    return tables


def cdf_table(tables: dict[str, np.ndarray], prefix: str) -> CdfTable:
    """The rANS arguments of the ``"eb"`` or ``"gc"`` entropy model of ``tables``."""
    return CdfTable(tables[f"{prefix}_quantized_cdf"].astype(np.int64).tolist(),
                    tables[f"{prefix}_cdf_length"].astype(np.int64).tolist(),
                    tables[f"{prefix}_offset"].astype(np.int64).tolist())


def gaussian_indexes(scales: np.ndarray, scale_table: np.ndarray, scale_bound: np.float32) -> np.ndarray:
    """int32 CDF indexes of float32 ``scales`` as ``GaussianConditional.build_indexes``: the
    scale is bounded below by ``scale_bound`` and the index counts the entries of
    ``scale_table[:-1]`` below it (NaN gets the last index, as there)."""
    bounded = np.maximum(scales, scale_bound)
    return np.searchsorted(scale_table[:-1], bounded, side="left").astype(np.int32)


def _symbols(values: np.ndarray) -> np.ndarray:
    """int32 round half to even of float32 ``values`` (``torch.round(...).int()``)."""
    with np.errstate(invalid="ignore"):
        return np.rint(values).astype(np.int32)


class OnnxHyperpriorCodec:
    """The codec ``name`` exported to ``directory``: float32 (3, H, W) in [0, 1] <-> :class:`Bitstream`.

    Parameters: directory holding ``<name>.<role>.onnx`` for :data:`CODEC_ROLES`, their cards and
        the table file named by the cards; name; threads, ONNX Runtime's intra-op threads per
        session (inter-op 1, as :class:`~testbed.onnx.session.OnnxModel`).
    Raises: ModelError naming the file that is missing or does not match its card.
    """

    def __init__(self, directory: str | Path, name: str, threads: int = 1) -> None:
        directory = Path(directory)
        self.name = name
        self.sessions = {role: OnnxModel(directory / f"{name}.{role}.onnx", threads=threads) for role in CODEC_ROLES}
        tables = load_tables(*self._table_file(directory))
        self._check_channels(tables)
        self.medians = tables["eb_medians"].astype(np.float32)
        self.scale_table = tables["gc_scale_table"].astype(np.float32)
        self.scale_bound = np.float32(tables["gc_scale_bound"].reshape(-1)[0])
        self.z_table, self.y_table = cdf_table(tables, "eb"), cdf_table(tables, "gc")
        self.encoder, self.decoder = RansEncoder(), RansDecoder()

    def _table_file(self, directory: Path) -> tuple[Path, str]:
        """(path, sha256) of the table file all three cards name."""
        named = set()
        for role, session in self.sessions.items():
            entry = session.card.get("entropy_tables")
            if not isinstance(entry, dict) or not {"file", "sha256"} <= set(entry):
                raise ModelError(f"{session.path}: card lacks entropy_tables {{file, sha256}}")
            named.add((entry["file"], entry["sha256"]))
        if len(named) != 1:
            raise ModelError(f"{directory}: the cards of {self.name} name different entropy tables {sorted(named)}")
        file, sha256 = named.pop()
        return directory / file, sha256

    def _check_channels(self, tables: dict[str, np.ndarray]) -> None:
        z_channels = self.sessions["analysis"].card["outputs"][1]["shape"][1]
        if len(tables["eb_medians"]) != z_channels:
            raise ModelError(f"{self.sessions['analysis'].path}: z has {z_channels} channels, the entropy tables "
                             f"{len(tables['eb_medians'])}; allowed: the same")

    def _z_indexes(self, height: int, width: int) -> np.ndarray:
        """int32 (N, h, w): hyper-latent channel c codes with CDF c."""
        return np.broadcast_to(np.arange(len(self.medians), dtype=np.int32)[:, None, None],
                               (len(self.medians), height, width))

    def _encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTable) -> bytes:
        return self.encoder.encode_with_indexes(symbols.ravel().tolist(), indexes.ravel().tolist(),
                                                table.cdfs, table.lengths, table.offsets)

    def _decode(self, string: bytes, indexes: np.ndarray, table: CdfTable) -> np.ndarray:
        values = self.decoder.decode_with_indexes(string, indexes.ravel().tolist(), table.cdfs, table.lengths,
                                                  table.offsets)
        return np.asarray(values, dtype=np.int32).reshape(indexes.shape)

    def _y_indexes(self, z_hat: np.ndarray) -> np.ndarray:
        """int32 (M, h, w) CDF indexes of y from z_hat float32 (N, h/4, w/4)."""
        scales = self.sessions["hyper_synthesis"].run(z_hat=z_hat[None])["scales_hat"][0]
        return gaussian_indexes(scales, self.scale_table, self.scale_bound)

    def encode(self, img: np.ndarray) -> Bitstream:
        """float32 (3, H, W) in [0, 1] (any H, W) -> :class:`Bitstream`."""
        check_image(img)
        _, height, width = img.shape
        pad_h, pad_w = _padding(height, width)
        x = np.pad(img, ((0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        latents = self.sessions["analysis"].run(x=x[None])
        return self.encode_latents(latents["y"][0], latents["z"][0], height, width)

    def encode_latents(self, y: np.ndarray, z: np.ndarray, height: int, width: int) -> Bitstream:
        """The entropy-coding half of :meth:`encode`: y float32 (M, h, w) and z float32
        (N, h/4, w/4) of an image of ``height`` x ``width`` px -> :class:`Bitstream`."""
        z_symbols = _symbols(z - self.medians[:, None, None])
        z_string = self._encode(z_symbols, self._z_indexes(*z.shape[1:]), self.z_table)
        z_hat = z_symbols.astype(np.float32) + self.medians[:, None, None]
        y_string = self._encode(_symbols(y), self._y_indexes(z_hat), self.y_table)
        return Bitstream(height, width, z=z_string, y=y_string)

    def decode_latents(self, stream: Bitstream) -> np.ndarray:
        """The entropy-decoding half of :meth:`decode`: y_hat float32 (M, h, w) of ``stream``."""
        pad_h, pad_w = _padding(stream.height, stream.width)
        z_indexes = self._z_indexes((stream.height + pad_h) // ALIGN_PX, (stream.width + pad_w) // ALIGN_PX)
        z_hat = self._decode(stream.z, z_indexes, self.z_table).astype(np.float32) + self.medians[:, None, None]
        return self._decode(stream.y, self._y_indexes(z_hat), self.y_table).astype(np.float32)

    def decode(self, stream: Bitstream) -> np.ndarray:
        """:class:`Bitstream` (possibly corrupted) -> float32 (3, H, W) in [0, 1], all finite."""
        y_hat = self.decode_latents(stream)
        x_hat = self.sessions["synthesis"].run(y_hat=y_hat[None])["x_hat"][0, :, :stream.height, :stream.width]
        x_hat = np.nan_to_num(np.clip(x_hat, 0.0, 1.0), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(x_hat, 0.0, 1.0).astype(np.float32)
