"""DeepJSCC over the three-process GNU Radio chain against the same model without the PHY: the
tiled model against PyTorch, the whole-image model against its ONNX evaluation (the codec's
ONNX Runtime sessions with the noise of the nominal SNR added to the symbols)."""
from pathlib import Path

import numpy as np
import pytest

from testbed.channels.spec import ChannelSpec
from testbed.data.images import default_images
from testbed.runner.chain import run_chain
from testbed.systems.base import evaluate
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.deepjscc.system import DeepJsccSystem, _image_metrics, torch_reference

pytestmark = pytest.mark.integration


def onnx_reference(model: str, images, snr_db: float, seed: int) -> float:
    """Mean PSNR of ``images`` through the ONNX encoder, complex AWGN of Es/N0 ``snr_db``, the ONNX decoder."""
    codec, rng = NeuralImageCodec(model), np.random.default_rng(seed)
    recons = []
    for _, img in images:
        sym = codec.encode(img, snr_db)
        noise = np.sqrt(10 ** (-snr_db / 10) / 2) * (rng.standard_normal(sym.size) + 1j * rng.standard_normal(sym.size))
        recons.append(codec.decode((sym + noise).astype(np.complex64), snr_db, img.shape))
    return _image_metrics([img for _, img in images], recons)["psnr_db"]


@pytest.mark.parametrize("model", ["deepjscc-r6", "adjscc-wide-r6"])
def test_chain_psnr_within_0p3_db_of_the_reference_at_10_db(tmp_path: Path, model: str):
    images = default_images()
    system = DeepJsccSystem({"model": model})
    encoded = system.encode(images, 10.0)
    spec = ChannelSpec(model="awgn", snr_db=10.0, cfo_hz=20e3, delay_samples=31.6)
    chain = run_chain([encoded.jobs], [[spec]], tmp_path)
    assert chain.problems == []
    chain_psnr = evaluate(system, images, encoded, chain.received(0))["psnr_db"]
    if system.codec.whole_image:
        reference = np.mean([onnx_reference(model, images, 10.0, seed=s) for s in range(3)])
    else:
        reference = np.mean([torch_reference(model, images, 10.0, seed=s)["psnr_db"] for s in range(3)])
    assert abs(chain_psnr - reference) <= 0.3, (chain_psnr, reference)
