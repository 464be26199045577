"""Whole images through a shipped DeepJSCC/ADJSCC model in ONNX Runtime: tile into 32x32,
encode in one batch to power-normalised complex symbols, and back. Shared by the ``deepjscc``
system of the runner and the GNU Radio encoder/decoder blocks, so both run the same code."""
from __future__ import annotations

import numpy as np

from testbed import registry
from testbed.data.images import tile, untile
from testbed.onnx.session import OnnxModel

TILE = 32


class NeuralImageCodec:
    """Encoder and decoder sessions of the registered model ``model`` (e.g. ``"adjscc-r6"``).

    Attributes: entry (the registry's ModelEntry), symbols_per_tile (k complex symbols).
    Raises ModelError (file, sha256 or names wrong) when constructed, before anything runs.
    """

    def __init__(self, model: str, threads: int = 1) -> None:
        self.entry = registry.get("model", model)
        self.encoder = OnnxModel(self.entry.encoder, threads=threads)
        self.decoder = OnnxModel(self.entry.decoder, threads=threads)
        self.symbols_per_tile = int(self.encoder.card["outputs"][0]["shape"][1])

    def encode(self, img: np.ndarray, snr_db: float) -> np.ndarray:
        """float32 (3, H, W) in [0, 1] -> complex64 (n_tiles * k,), unit average power per symbol."""
        tiles = tile(img, TILE)
        snr = np.full((tiles.shape[0], 1), snr_db, dtype=np.float32)
        sym = self.encoder.run(image=tiles, snr_db=snr)["symbols"]
        return (sym[..., 0] + 1j * sym[..., 1]).astype(np.complex64).reshape(-1)

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray | float, shape: tuple[int, int, int]) -> np.ndarray:
        """complex (n_tiles * k,) equalised symbols -> float32 image ``shape``; ``snr_db`` scalar or
        (n_tiles,) per tile (the receiver's estimate of its frame)."""
        n_tiles = symbols.size // self.symbols_per_tile
        sym = symbols.reshape(n_tiles, self.symbols_per_tile)
        x = np.stack([sym.real, sym.imag], axis=-1).astype(np.float32)
        snr = np.broadcast_to(np.asarray(snr_db, np.float32).reshape(-1, 1), (n_tiles, 1))
        tiles = self.decoder.run(symbols=x, snr_db=snr)["image"]
        return untile(tiles, shape)

    def decode_tiles(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        """complex (T, k) -> float32 (T, 3, 32, 32); snr_db (T,)."""
        x = np.stack([symbols.real, symbols.imag], axis=-1).astype(np.float32)
        return self.decoder.run(symbols=x, snr_db=np.asarray(snr_db, np.float32).reshape(-1, 1))["image"]

    def tiles_of(self, img: np.ndarray) -> int:
        return tile(img, TILE).shape[0]
