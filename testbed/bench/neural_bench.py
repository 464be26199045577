"""Neural transceiver timings: encoder + decoder per 32x32 image at batch 1 in ONNX Runtime
against the same model in torch (one thread each), and the whole image path through the
testbed (encode, frame, three processes, sync, decode) per image."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from testbed import registry
from testbed.channels.spec import ChannelSpec
from testbed.data.images import default_images
from testbed.onnx.session import OnnxModel
from testbed.runner.chain import run_chain
from testbed.systems.base import evaluate
from testbed.systems.deepjscc.system import DeepJsccSystem


def _per_call(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_onnx_vs_torch(model: str = "deepjscc-r6", repeats: int = 300) -> dict[str, float]:
    """Seconds per 32x32 image (encode + decode) at batch 1: ONNX Runtime and torch, 1 thread."""
    entry = registry.get("model", model)
    enc, dec = OnnxModel(entry.encoder, threads=1), OnnxModel(entry.decoder, threads=1)
    net = entry.torch_model()
    image = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    snr = np.full((1, 1), 10.0, np.float32)

    def onnx_path():
        dec.run(symbols=enc.run(image=image, snr_db=snr)["symbols"], snr_db=snr)

    timg, tsnr = torch.from_numpy(image), torch.from_numpy(snr)

    def torch_path():
        with torch.no_grad():
            net.decode(net.encode(timg, tsnr), tsnr)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"onnx_s": _per_call(onnx_path, repeats), "torch_s": _per_call(torch_path, repeats)}
    finally:
        torch.set_num_threads(threads)


def bench_whole_image(model: str, repeats: int = 5, side: int = 512) -> dict[str, float]:
    """Seconds per ``side`` x ``side`` image (encode + decode, batch 1) of a whole-image model:
    ONNX Runtime and torch, one thread each."""
    entry = registry.get("model", model)
    enc, dec = OnnxModel(entry.encoder, threads=1), OnnxModel(entry.decoder, threads=1)
    net = entry.torch_model()
    image = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    snr = np.full((1, 1), 10.0, np.float32)
    grid = (1, side // 8, side // 8, net.latent_channels // 2, 2)

    def onnx_path():
        dec.run(symbols=enc.run(image=image, snr_db=snr)["symbols"].reshape(grid), snr_db=snr)

    timg, tsnr = torch.from_numpy(image), torch.from_numpy(snr)

    def torch_path():
        with torch.no_grad():
            net.decode(net.encode(timg, tsnr).reshape(grid), tsnr)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"onnx_s": _per_call(onnx_path, repeats), "torch_s": _per_call(torch_path, repeats)}
    finally:
        torch.set_num_threads(threads)


def bench_image_path(model: str = "deepjscc-r6", copies: int = 4) -> dict[str, float]:
    """Seconds per default image through encode, frame, the three-process chain, sync, decode."""
    images = default_images() * copies
    images = [(f"{name}-{i}", img) for i, (name, img) in enumerate(images)]
    system = DeepJsccSystem({"model": model})
    start = time.perf_counter()
    encoded = system.encode(images, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        chain = run_chain([encoded.jobs], [[ChannelSpec(model="awgn", snr_db=10.0)]], Path(tmp))
        psnr = evaluate(system, images, encoded, chain.received(0) or [])["psnr_db"]
    elapsed = time.perf_counter() - start
    tiles = sum(-(-img.shape[1] // 32) * -(-img.shape[2] // 32) for _, img in images)
    return {"per_image_s": elapsed / len(images), "images": len(images), "psnr_db": psnr, "tiles": tiles,
            "pixels": int(sum(img.shape[1] * img.shape[2] for _, img in images) / len(images))}
