"""Whole images through a shipped DeepJSCC/ADJSCC model in ONNX Runtime, and back. Shared by the
``deepjscc`` system of the runner and the GNU Radio encoder/decoder blocks, so both run the same
code.

Two families (the model card tells which): tiled models cut the image into 32x32 tiles and
encode them in one batch (k complex symbols per tile); whole-image models
(:mod:`testbed.systems.deepjscc.whole_image`) pad the image by edge replication to a multiple of
8 px and encode it in one piece (symbols ordered by latent row, so a frame is a band of rows)."""
from __future__ import annotations

import numpy as np

from testbed import registry
from testbed.data.images import tile, untile
from testbed.onnx.session import OnnxModel

TILE = 32


class NeuralImageCodec:
    """Encoder and decoder sessions of the registered model ``model`` (e.g. ``"adjscc-r6"``).

    Attributes: entry (the registry's ModelEntry); whole_image (bool); symbols_per_tile (k complex
        symbols per 32x32 tile, tiled models only); stride and latent_channels (whole-image only).
    Raises ModelError (file, sha256 or names wrong) when constructed, before anything runs.
    """

    def __init__(self, model: str, threads: int = 1) -> None:
        self.entry = registry.get("model", model)
        self.encoder = OnnxModel(self.entry.encoder, threads=threads)
        self.decoder = OnnxModel(self.entry.decoder, threads=threads)
        arch = self.encoder.card["architecture"]
        self.whole_image = "stride" in self.encoder.card
        if self.whole_image:
            self.stride = int(self.encoder.card["stride"])
            self.latent_channels = int(self.encoder.card["latent_channels"])
        else:
            self.symbols_per_tile = int(self.encoder.card["outputs"][0]["shape"][1])
        self.bandwidth_ratio = arch["bandwidth_ratio"]

    def padded_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(H, W) of an image of ``shape`` (3, H, W) padded to the model's grid (8 px or 32 px tiles)."""
        step = self.stride if self.whole_image else TILE
        return -(-shape[1] // step) * step, -(-shape[2] // step) * step

    def n_symbols(self, shape: tuple[int, ...]) -> int:
        """Complex symbols an image of ``shape`` (3, H, W) is sent as."""
        height, width = self.padded_shape(shape)
        if self.whole_image:
            return height * width * self.latent_channels // (2 * self.stride ** 2)
        return height * width // TILE ** 2 * self.symbols_per_tile

    def encode(self, img: np.ndarray, snr_db: float) -> np.ndarray:
        """float32 (3, H, W) in [0, 1] -> complex64 (n_symbols,), unit average power per symbol."""
        if self.whole_image:
            height, width = self.padded_shape(img.shape)
            x = np.pad(img, ((0, 0), (0, height - img.shape[1]), (0, width - img.shape[2])), mode="edge")[None]
        else:
            x = tile(img, TILE)
        snr = np.full((x.shape[0], 1), snr_db, dtype=np.float32)
        sym = self.encoder.run(image=x, snr_db=snr)["symbols"]
        return (sym[..., 0] + 1j * sym[..., 1]).astype(np.complex64).reshape(-1)

    def decode(self, symbols: np.ndarray, snr_db: np.ndarray | float, shape: tuple[int, int, int]) -> np.ndarray:
        """complex (n_symbols,) equalised symbols -> float32 image ``shape``; ``snr_db`` a scalar (or,
        for tiled models, (n_tiles,) per tile: the receiver's estimate of each tile's frame)."""
        if not self.whole_image:
            n_tiles = symbols.size // self.symbols_per_tile
            snr = np.broadcast_to(np.asarray(snr_db, np.float32).reshape(-1, 1), (n_tiles, 1))
            return untile(self.decode_tiles(symbols.reshape(n_tiles, self.symbols_per_tile), snr[:, 0]), shape)
        height, width = self.padded_shape(shape)
        grid = (1, height // self.stride, width // self.stride, self.latent_channels // 2)
        x = np.stack([symbols.real, symbols.imag], axis=-1).astype(np.float32).reshape(*grid, 2)
        snr = np.asarray(snr_db, np.float32).reshape(1, 1)
        image = self.decoder.run(symbols=x, snr_db=snr)["image"][0]
        return np.ascontiguousarray(image[:, :shape[1], :shape[2]])

    def decode_tiles(self, symbols: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        """Tiled models: complex (T, k) -> float32 (T, 3, 32, 32); snr_db (T,)."""
        x = np.stack([symbols.real, symbols.imag], axis=-1).astype(np.float32)
        return self.decoder.run(symbols=x, snr_db=np.asarray(snr_db, np.float32).reshape(-1, 1))["image"]
