"""DeepJSCC over the three-process GNU Radio chain against the same model in pure PyTorch."""
from pathlib import Path

import numpy as np
import pytest

from testbed.channels.spec import ChannelSpec
from testbed.data.images import default_images
from testbed.runner.chain import run_chain
from testbed.systems.base import evaluate
from testbed.systems.deepjscc.system import DeepJsccSystem, torch_reference

pytestmark = pytest.mark.integration


def test_chain_psnr_within_0p3_db_of_torch_at_10_db(tmp_path: Path):
    images = default_images()
    system = DeepJsccSystem({"model": "deepjscc-r6"})
    encoded = system.encode(images, 10.0)
    spec = ChannelSpec(model="awgn", snr_db=10.0, cfo_hz=20e3, delay_samples=31.6)
    chain = run_chain([encoded.jobs], [[spec]], tmp_path)
    assert chain.problems == []
    chain_psnr = evaluate(system, images, encoded, chain.received(0))["psnr_db"]
    reference = np.mean([torch_reference("deepjscc-r6", images, 10.0, seed=s)["psnr_db"] for s in range(3)])
    assert abs(chain_psnr - reference) <= 0.3, (chain_psnr, reference)
