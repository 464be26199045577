"""Run-time control of the GNU Radio channel block (testbed.gr.channel.ChannelBlock)."""
import math
import threading
import time

import numpy as np
import pytest

gr = pytest.importorskip("gnuradio.gr")
blocks = pytest.importorskip("gnuradio.blocks")
pmt = pytest.importorskip("pmt")

from testbed.channels import ChannelSpec  # noqa: E402
from testbed.channels.irs import IrsChannel, UniformPlanarArray  # noqa: E402
from testbed.channels.realization import draw_block  # noqa: E402
from testbed.gr.channel import CONTROL_ERRORS_KEPT, CONTROL_PORT, ChannelBlock  # noqa: E402

QUIET = ChannelSpec("awgn", 200)
TWICE_DB = 20 * math.log10(2)


def _work(block, n_tx, n):
    outputs = [np.zeros(n, np.complex64) for _ in range(block.emulator.n_rx)]
    assert block.work([np.ones(n, np.complex64)] * n_tx, outputs) == n
    return outputs


def test_controls_are_applied_at_the_next_work_call():
    block = ChannelBlock([[QUIET, QUIET], [QUIET, QUIET]], seed=1, noise_var=[0.0, 0.0])
    np.testing.assert_allclose(_work(block, 2, 100)[1], 2.0)
    block.control({"cmd": "set_link", "rx": 1, "tx": 0, "gain_db": TWICE_DB})
    block.control({"cmd": "set_link", "rx": 1.0, "tx": 1, "model": "rayleigh", "snr_db": 3})
    block.control({"cmd": "set_noise", "rx": 0, "noise_var": 0.5})
    assert block.emulator.changes == []  # queued, not applied yet
    y0, y1 = _work(block, 2, 20000)
    h = block.emulator.realised_h()
    assert h[1, 0] == pytest.approx(2.0) and abs(h[1, 1]) > 0
    np.testing.assert_allclose(y1, h[1, 0] + h[1, 1], rtol=1e-5)
    assert block.emulator.spec(1, 1).model == "rayleigh" and block.emulator.spec(1, 1).snr_db == 3
    assert np.mean(np.abs(y0 - 2) ** 2) == pytest.approx(0.5, rel=0.05)
    assert [(c["sample"], c["what"]) for c in block.emulator.changes] == [
        (100, "set_link"), (100, "set_link"), (100, "set_noise_var")]
    assert block.bad_controls == 0


def test_set_fading_block_control_lands_at_the_next_work_call():
    rayleigh = ChannelSpec("rayleigh", 200)
    block = ChannelBlock([[rayleigh]], seed=2, noise_var=[0.0])
    _work(block, 1, 64)
    block.control({"cmd": "set_fading_block", "block": 4.0})
    y = _work(block, 1, 64)[0]
    np.testing.assert_array_equal(y, draw_block(rayleigh, 2, 0, 0, 4))
    assert block.emulator.changes == [{"sample": 64, "what": "set_fading_block", "block": 4}]
    assert block.bad_controls == 0


def test_malformed_controls_are_counted_and_never_fatal():
    block = ChannelBlock([[QUIET]], noise_var=[0.0])
    bad = [
        {"cmd": "reboot"},
        "not a dict",
        {"cmd": "set_link", "rx": 3, "tx": 0, "snr_db": 1},
        {"cmd": "set_link", "rx": 0, "tx": 0, "colour": 1},
        {"cmd": "set_link", "rx": 0, "tx": 0, "snr_db": "loud"},
        {"cmd": "set_noise", "rx": 0},
        {"cmd": "set_noise", "rx": 0, "noise_var": -1},
        {"cmd": "set_irs", "phases": [0.0]},
        {"cmd": "set_fading_block"},
        {"cmd": "set_fading_block", "block": -2},
    ]
    for command in bad:
        block.control(command)
    np.testing.assert_allclose(_work(block, 1, 10)[0], 1.0)
    assert block.bad_controls == len(bad) and len(block.control_errors) == len(bad)
    errors = list(block.control_errors)
    assert "cmd 'reboot' is unknown; allowed" in errors[0]
    assert "rx 3 is invalid; allowed: an integer 0..0" in errors[2]
    assert "unknown ['colour'] fields; allowed" in errors[3]
    assert "channel.snr_db 'loud' is invalid" in errors[4]
    assert "set_irs_phases is invalid here" in errors[7]
    for _ in range(CONTROL_ERRORS_KEPT + 5):
        block.control({"cmd": "reboot"})
    _work(block, 1, 10)
    assert block.bad_controls == len(bad) + CONTROL_ERRORS_KEPT + 5
    assert len(block.control_errors) == CONTROL_ERRORS_KEPT
    assert block.emulator.changes == []


def test_set_irs_control_changes_the_cascaded_coefficient():
    channel = IrsChannel(UniformPlanarArray(rows=2, cols=2, freq_hz=2.4e9), [[8.0, 1.0, 0.0]], [[8.0, -1.0, 0.0]], 4)
    block = ChannelBlock([[ChannelSpec("awgn", 200, gain_db=60)]], noise_var=[0.0], irs=channel)
    best = channel.best_phases(0, 0)
    before = _work(block, 1, 50)[0]
    block.control({"cmd": "set_irs", "phases": best.tolist()})
    after = _work(block, 1, 50)[0]
    np.testing.assert_allclose(before, 1e3 * channel.cascaded(np.zeros(4))[0, 0], rtol=1e-5)
    np.testing.assert_allclose(after, 1e3 * channel.cascaded(best)[0, 0], rtol=1e-5)
    assert block.emulator.changes[-1]["sample"] == 50


def test_control_port_message_lands_at_the_recorded_sample_in_a_running_flowgraph():
    total = 2_000_000
    tb = gr.top_block()
    source = blocks.vector_source_c(np.ones(4096, np.complex64).tolist(), True)
    head = blocks.head(gr.sizeof_gr_complex, total)
    chan = ChannelBlock([[QUIET]], noise_var=[0.0])
    sink = blocks.vector_sink_c()
    tb.connect(source, head, chan, sink)
    tb.start()
    deadline = time.monotonic() + 20
    while chan.nitems_written(0) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    message = pmt.to_pmt({"cmd": "set_link", "rx": 0, "tx": 0, "gain_db": TWICE_DB})
    chan.to_basic_block()._post(pmt.intern(CONTROL_PORT), pmt.intern("junk"))  # first: applied if the next one is
    chan.to_basic_block()._post(pmt.intern(CONTROL_PORT), message)
    waiter = threading.Thread(target=tb.wait, daemon=True)
    waiter.start()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    y = np.array(sink.data())
    assert len(y) == total
    assert len(chan.emulator.changes) == 1, "the message arrived after the stream ended"
    sample = chan.emulator.changes[0]["sample"]
    assert 0 < sample < total
    np.testing.assert_allclose(y[:sample], 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[sample:], 2.0, rtol=1e-6)
    assert chan.bad_controls == 1 and "junk" in chan.control_errors[0]
