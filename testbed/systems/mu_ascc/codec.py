"""Learned image codecs of MU-ASCC: the scale hyperprior of Ballé et al. 2018 ([33] in
../shared/seeds/001_ef80d34948c98c54.txt), CompressAI's ``ScaleHyperprior`` model class, with
real entropy-coded bitstreams from CompressAI's rANS coder (``compress`` / ``decompress``).

One model is one source coding rate: the paper's lookup table M_d holds N_o models trained at
different rate-distortion trade-offs lambda (:mod:`testbed.systems.mu_ascc.train_codec`).

What an image codes to (:class:`Bitstream`): the hyper-latent string z and the latent string y.
The image size and len(z) are side information of a few bytes that the frame header carries
(it is CRC-protected there); the payload z + y is what a noisy channel flips. A flipped payload
still decodes: the rANS decoder reads whatever symbols the corrupted state gives, so channel
errors turn into image distortion (measured by :mod:`testbed.systems.mu_ascc.distortion`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior

from testbed.errors import ConfigError

ALIGN_PX = 64  # g_a downsamples by 16 and h_a by 4 more: image sides must be multiples of 64


@dataclass(frozen=True)
class Bitstream:
    """One coded image: ``z`` (hyper-latent) and ``y`` (latent) entropy-coded strings, and the
    (height, width) of the image, in pixels."""

    height: int
    width: int
    z: bytes
    y: bytes

    @property
    def payload(self) -> bytes:
        """The bytes a channel carries (and may flip): z then y."""
        return self.z + self.y

    @property
    def bits(self) -> int:
        """Payload size in bits."""
        return 8 * (len(self.z) + len(self.y))

    def with_payload(self, payload: bytes) -> Bitstream:
        """The same stream with its payload replaced by ``payload`` of the same length (e.g. after
        bit flips)."""
        if len(payload) != len(self.z) + len(self.y):
            raise ConfigError(f"payload of {len(payload)} bytes; allowed: exactly "
                              f"{len(self.z) + len(self.y)} bytes (len(z) + len(y))")
        return replace(self, z=payload[:len(self.z)], y=payload[len(self.z):])


def _padding(height: int, width: int) -> tuple[int, int]:
    return (-height) % ALIGN_PX, (-width) % ALIGN_PX


def check_image(img: np.ndarray) -> None:
    """ConfigError unless ``img`` is a float32 (3, H, W) array."""
    if img.ndim != 3 or img.shape[0] != 3 or img.dtype != np.float32:
        raise ConfigError(f"image of shape {img.shape} and dtype {img.dtype}; allowed: float32 (3, H, W) in [0, 1]")


class HyperpriorCodec:
    """A trained ``ScaleHyperprior`` as an image codec (eval mode, CDF tables built).

    ``encode`` takes float32 (3, H, W) in [0, 1] (any H, W: edges are replicated up to multiples
    of 64 and cropped again on decoding); ``decode`` returns float32 (3, H, W) in [0, 1].
    """

    def __init__(self, model: ScaleHyperprior, name: str = "hyperprior") -> None:
        self.model = model.eval()
        self.model.update(force=True)
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> HyperpriorCodec:
        """The codec of a file written by :func:`testbed.systems.mu_ascc.train_codec.train`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"codec {str(path)!r} is not a file; allowed: a .pt file written by "
                              "python -m testbed.systems.mu_ascc.train_codec")
        state = torch.load(path, map_location="cpu", weights_only=False)
        return cls(ScaleHyperprior.from_state_dict(state["model"]), name=state.get("name", path.stem))

    @torch.no_grad()
    def encode(self, img: np.ndarray) -> Bitstream:
        check_image(img)
        _, height, width = img.shape
        pad_h, pad_w = _padding(height, width)
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.model.compress(x)
        return Bitstream(height, width, z=out["strings"][1][0], y=out["strings"][0][0])

    @torch.no_grad()
    def decode(self, stream: Bitstream) -> np.ndarray:
        pad_h, pad_w = _padding(stream.height, stream.width)
        z_shape = ((stream.height + pad_h) // ALIGN_PX, (stream.width + pad_w) // ALIGN_PX)
        x_hat = self.model.decompress([[stream.y], [stream.z]], z_shape)["x_hat"]
        # A corrupted stream can decode to latents so large that the synthesis gives inf or NaN;
        # such pixels show as black (NaN, -inf) or white (+inf), as a display would clip them.
        x_hat = torch.nan_to_num(x_hat[0, :, :stream.height, :stream.width], nan=0.0, posinf=1.0, neginf=0.0)
        return x_hat.clamp_(0.0, 1.0).numpy().astype(np.float32)


def flip_bits(payload: bytes, count: int, rng: np.random.Generator) -> bytes:
    """``payload`` with ``count`` distinct bits, chosen uniformly, flipped."""
    n_bits = 8 * len(payload)
    if not 0 <= count <= n_bits:
        raise ConfigError(f"count={count}; allowed: 0 <= count <= {n_bits} (the payload's bits)")
    data = np.frombuffer(payload, np.uint8).copy()
    where = rng.choice(n_bits, size=count, replace=False)
    np.bitwise_xor.at(data, where // 8, (1 << (7 - where % 8)).astype(np.uint8))
    return data.tobytes()
