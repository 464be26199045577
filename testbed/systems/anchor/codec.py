"""Whole images through a shipped anchor model set in ONNX Runtime: the base-station encoder and
one user's decoder. Shared by the ``anchor`` system's nodes and the GNU Radio anchor blocks
(testbed/gr/grc.py ``anchor_encoder`` / ``anchor_decoder``), so both run the same code.

Images are padded by edge replication to a multiple of 4 px; symbols are ordered by latent row
(a frame of consecutive symbols is a band of image rows), c/2 complex symbols per latent pixel.
"""
from __future__ import annotations

import numpy as np

from testbed import registry
from testbed.systems.anchor.evaluate import pad
from testbed.systems.anchor.model import LATENT_CHANNELS, STRIDE


class AnchorCodec:
    """The encoder and (when ``decoder`` is given) one decoder of the registered set ``model``.

    Raises ModelError (file, sha256 or names wrong) when constructed, ConfigError for a name that
    is not registered (naming the allowed ones)."""

    def __init__(self, model: str, decoder: str | None = None, threads: int = 1) -> None:
        from testbed.errors import ConfigError

        self.entry = registry.get("system-model", model)
        if decoder is not None and decoder not in self.entry.decoders:
            raise ConfigError(f"decoder = {decoder!r} is not in model set {model}; allowed: "
                              f"{', '.join(self.entry.decoders)}")
        self.threads = threads
        self.decoder_role = decoder
        self._sessions: dict = {}

    def _session(self, role: str):
        if role not in self._sessions:
            self._sessions[role] = self.entry.session(role, self.threads)
        return self._sessions[role]

    @staticmethod
    def n_symbols(shape: tuple[int, ...]) -> int:
        """Complex symbols an image of ``shape`` (3, H, W) is sent as."""
        height, width = (-(-side // STRIDE) * STRIDE for side in shape[1:])
        return height * width * LATENT_CHANNELS // (2 * STRIDE ** 2)

    def encode(self, img: np.ndarray, snr_db: float) -> np.ndarray:
        """float32 (3, H, W) in [0, 1] -> complex64 (n_symbols,), unit average power."""
        x = pad(img)[None].astype(np.float32)
        out = self._session("transmitter").run(image=x, snr_db=np.full((1, 1), snr_db, np.float32))["symbols"][0]
        return (out[:, 0] + 1j * out[:, 1]).astype(np.complex64)

    def decode(self, symbols: np.ndarray, snr_db: float, shape: tuple[int, int, int]) -> np.ndarray:
        """complex (n_symbols,) equalised symbols and the receiver's SNR estimate -> float32 image
        ``shape`` in [0, 1] through this user's decoder."""
        height, width = (-(-side // STRIDE) * STRIDE for side in shape[1:])
        grid = np.stack([symbols.real, symbols.imag], axis=-1).astype(np.float32).reshape(
            1, height // STRIDE, width // STRIDE, LATENT_CHANNELS // 2, 2)
        snr = np.full((1, 1), snr_db, np.float32)
        out = self._session(self.decoder_role).run(symbols=grid, snr_db=snr)["image"][0]
        return np.ascontiguousarray(np.clip(out[:, :shape[1], :shape[2]], 0.0, 1.0))
