"""Checks of shipped models: card and file integrity, and ONNX-vs-torch parity.

``verify_model(entry)`` lists problems (empty = fine); ``parity(entry)`` is the largest absolute
difference between ONNX Runtime and the PyTorch source on fresh random inputs. ``entry`` is a
:class:`testbed.models_registry.ModelEntry` (anything with ``encoder``, ``decoder`` paths,
``name``, ``variant``, ``bandwidth_ratio`` and ``torch_model()``).
"""
from __future__ import annotations

import numpy as np
import torch

from testbed.errors import ModelError, TestbedError
from testbed.onnx.session import OnnxModel

# Largest ONNX-vs-torch difference a shipped model may show. Kernels differ between CPUs: 1e-6 on
# one Xeon, 1.95e-4 on the CI machine for the same model and inputs. 1e-3 is a quarter of one 8-bit
# grey level of the image and 1e-3 of the unit RMS of the symbols, far below anything PSNR sees,
# and far above rounding; a wrong export differs by 1e-1 or more.
PARITY_TOLERANCE = 1e-3


def verify_model(entry) -> list[str]:
    """Problems of one shipped model: files, cards, sha256, names/shapes, card fields vs the entry."""
    problems = []
    for role, path in (("encoder", entry.encoder), ("decoder", entry.decoder)):
        try:
            card = OnnxModel(path).card
        except ModelError as err:
            problems.append(str(err))
            continue
        expected = {"name": entry.name, "role": role, "variant": entry.variant,
                    "bandwidth_ratio": entry.bandwidth_ratio, "system": entry.system}
        for field, value in expected.items():
            if card.get(field) != value:
                problems.append(f"{path}: card {field} is {card.get(field)!r}, expected {value!r}")
    if not problems:
        try:
            entry.torch_model()
        except (TestbedError, RuntimeError) as err:
            problems.append(f"{entry.encoder}: the torch model cannot be rebuilt ({err})")
    return problems


@torch.no_grad()
def parity(entry, n: int = 8, seed: int = 0) -> float:
    """Max abs error between ONNX Runtime and torch, over encoder and decoder, on random inputs.

    Inputs: n random images U(0, 1) (n, 3, 32, 32) (whole-image models: (n, 3, 64, 96)) and SNRs
        U(-5, 25) dB (n, 1) for the encoder; for the decoder the torch symbols plus
        unit-variance complex noise (whole-image models: reshaped to (n, 8, 12, c/2, 2)).
    Raises: ModelError when a file does not load (see :class:`OnnxModel`).
    """
    rng = np.random.default_rng(seed)
    model = entry.torch_model()
    encoder, decoder = OnnxModel(entry.encoder), OnnxModel(entry.decoder)
    whole = not hasattr(model, "k")
    image = rng.random((n, 3, 64, 96) if whole else (n, 3, 32, 32), dtype=np.float32)
    snr = rng.uniform(-5, 25, (n, 1)).astype(np.float32)
    torch_symbols = model.encode(torch.from_numpy(image), torch.from_numpy(snr)).numpy()
    onnx_symbols = encoder.run(image=image, snr_db=snr)["symbols"]
    received = (torch_symbols + rng.normal(0, np.sqrt(0.5), torch_symbols.shape)).astype(np.float32)
    if whole:
        received = received.reshape(n, 8, 12, model.latent_channels // 2, 2)
    torch_image = model.decode(torch.from_numpy(received), torch.from_numpy(snr)).numpy()
    onnx_image = decoder.run(symbols=received, snr_db=snr)["image"]
    return float(max(np.max(np.abs(torch_symbols - onnx_symbols)), np.max(np.abs(torch_image - onnx_image))))
