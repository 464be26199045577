"""Registry-parametrised: every registered system makes frames, survives the in-process GNU Radio
loopback at high SNR with every frame received, and scores above a floor (PSNR: 8 dB above the
mid-grey image a receiver that got nothing shows, and 20 dB on the default photos); at very low
SNR it degrades (so the floor is a real check)."""
import numpy as np
import pytest

from testbed import registry
from testbed.channels.spec import ChannelSpec
from testbed.data.images import image_set
from testbed import metrics
from testbed.runner.loopback import run_loopback
from testbed.systems.digital import LOST_FILL
from testbed.systems.base import evaluate

FLOORS = {"psnr_db": 20.0, "ber": 1e-3, "above_grey_db": 8.0}


@pytest.mark.parametrize("name", registry.names("system"))
def test_system_round_trip_through_loopback(name):
    system = registry.create("system", name, params={}, seed=0)
    images = image_set(type(system).images)[:2]
    encoded = system.encode(images, 25.0)
    good = run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=25.0, cfo_hz=3e3))
    high = evaluate(system, images, encoded, good)
    assert high["frames_lost"] == 0 and high["frames_received"] == high["frames_sent"] > 0
    assert all(np.isfinite(v) for v in high.values() if isinstance(v, float))
    if "psnr_db" in high:
        grey = np.mean([metrics.psnr_db(img, np.full_like(img, LOST_FILL)) for _, img in images])
        assert high["psnr_db"] > grey + FLOORS["above_grey_db"]
        if type(system).images == "default":
            assert high["psnr_db"] > FLOORS["psnr_db"]
    if "ber" in high:
        assert high["ber"] < FLOORS["ber"]
    encoded = system.encode(images, -8.0)
    low = evaluate(system, images, encoded, run_loopback(encoded.jobs, ChannelSpec(model="awgn", snr_db=-8.0)))
    key = "psnr_db" if "psnr_db" in high else "ber"
    assert (low[key] < high[key]) if key == "psnr_db" else (low.get(key, 1.0) > high[key] or low["frames_lost"] > 0)
