"""Every fuzz target (testbed.bench.fuzz) takes 10^3 hypothesis inputs: only the testbed's own
errors come out of the frame receiver, the header decoder, the YAML loaders and the SigMF reader."""
from __future__ import annotations

import numpy as np
import pytest

from testbed.bench.fuzz import TARGETS, hypothesis_run
from testbed.errors import ConfigError


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_answers_only_with_testbed_errors(name):
    hypothesis_run(name, 300 if name == "receiver" else 1000, max_size=4096)


def test_the_sigmf_reader_names_the_file_of_a_bad_recording(tmp_path):
    from testbed.recordings.sigmf_meta import read_samples

    meta = tmp_path / "rx0-ant0.sigmf-meta"
    meta.write_text('{"global": {"core:datatype": "ri16_le", "core:version": "1.0.0"}, "captures": [], '
                    '"annotations": []}')
    meta.with_suffix(".sigmf-data").write_bytes(np.zeros(8, np.int16).tobytes())
    with pytest.raises(ConfigError, match=r"rx0-ant0.sigmf-meta: datatype 'ri16_le'; allowed: cf32_le"):
        read_samples(meta)
    meta.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable testbed SigMF recording"):
        read_samples(meta)


def test_nan_samples_found_by_atheris_are_counted_not_raised():
    """atheris's receiver run found NaN samples reaching the hard demapper as an index
    (IndexError); they are now set to 0 and counted, and the demapper maps NaN to a level."""
    from testbed.phy.frame import Framer
    from testbed.phy.payload import PayloadFormat
    from testbed.phy.qam import get_modem
    from testbed.phy.receiver import FrameReceiver

    wave = Framer().frame(bytes(range(200)), PayloadFormat("qam16", "ldpc_648_1_2"))
    samples = np.concatenate([np.zeros(300, np.complex64), wave, np.zeros(600, np.complex64)])
    samples[2000:2010] = np.nan
    samples[2010] = np.inf
    receiver = FrameReceiver()
    frames = receiver.push(samples)
    assert receiver.counters.nonfinite_samples == 11 and len(frames) == 1
    assert get_modem(4).hard(np.array([np.nan + 1j * np.nan], np.complex64)).shape == (4,)
