"""The receiver's estimators for what two real radios do and the emulator does not (sample-clock
offset, IQ imbalance, DC offset, phase noise), on a synthetic SigMF capture: it decodes with them
and fails without them; a clean signal is left alone."""
import numpy as np
import pytest
import sigmf

from testbed.phy import estimate
from testbed.phy.receiver import FrameReceiver
from testbed.recordings.synthetic import Impairments, impaired_capture

ALL = Impairments()
SCO_ONLY = Impairments(iq_gain_db=0.0, iq_phase_deg=0.0, dc=0j, phase_noise_rad=0.0)
IQ_ONLY = Impairments(sco_ppm=0.0, phase_noise_rad=0.0, iq_gain_db=1.5, iq_phase_deg=8.0)


def _receive(meta, **settings):
    samples = sigmf.sigmffile.fromfile(str(meta)).read_samples().astype(np.complex64)
    return FrameReceiver(**settings).push(samples)


@pytest.mark.parametrize("imp,modulation,off", [
    (SCO_ONLY, "qam64", {"track_sco": False}),
    (IQ_ONLY, "qam256", {"correct_iq": False}),
    (ALL, "qam64", {"track_sco": False, "correct_iq": False}),
])
def test_impaired_capture_decodes_with_the_estimators_and_fails_without(tmp_path, imp, modulation, off):
    meta, payloads = impaired_capture(tmp_path / "cap", imp, modulation=modulation, seed=3)
    with_them = _receive(meta)
    assert [f.header.seq for f in with_them] == list(range(len(payloads)))
    assert all(f.payload_ok and f.payload == payloads[f.header.seq] for f in with_them)
    without = _receive(meta, **off)
    assert sum(f.payload_ok for f in without) <= len(payloads) // 2
    annotated = [a["core:sample_start"] for a in sigmf.sigmffile.fromfile(str(meta)).get_annotations()]
    assert np.allclose([f.start for f in with_them], annotated, atol=4)


def test_blind_iq_estimate_finds_the_image_and_leaves_a_circular_signal_alone():
    rng = np.random.default_rng(0)
    s = (rng.standard_normal(20000) + 1j * rng.standard_normal(20000)) / np.sqrt(2)
    dc, w = estimate.iq_dc(s)
    assert dc == 0 and w == 0
    mu, nu = 0.98 - 0.04j, 0.03 + 0.02j
    dc, w = estimate.iq_dc(mu * s + nu * np.conj(s) + 0.1)
    assert abs(dc - 0.1) < 0.02 and abs(w - nu / np.conj(mu)) < 0.01
