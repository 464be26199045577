"""The three-process virtual-radio chain: TX, channel emulator and RX as separate OS processes
joined by gr-zeromq PUSH/PULL on free ports."""
import os
import signal
import threading

import numpy as np
import pytest

from testbed.channels.spec import ChannelSpec
from testbed.phy.theory import ber_awgn
from testbed.runner.chain import run_chain
from testbed.systems.base import evaluate
from testbed.systems.link import LinkSystem

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("modulation,snr_db,cfo_hz", [("qpsk", 2.0, 20e3), ("qpsk", 6.0, -20e3), ("qam16", 12.0, 20e3)])
def test_uncoded_ber_through_three_processes_within_half_db(tmp_path, modulation, snr_db, cfo_hz):
    rng = np.random.default_rng(int(snr_db))
    system = LinkSystem({"modulation": modulation, "code": "none", "n_frames": 30, "payload_bytes": 1500}, seed=1)
    encoded = system.encode([])
    jobs = encoded.jobs
    spec = ChannelSpec(model="awgn", snr_db=snr_db, cfo_hz=cfo_hz, delay_samples=float(rng.uniform(0, 200)))
    chain = run_chain([jobs], [[spec]], tmp_path, seed=int(snr_db))
    assert chain.problems == []
    m = evaluate(system, [], encoded, chain.received(0))
    assert m["frames_lost"] == 0
    assert ber_awgn(snr_db + 0.5, modulation) < m["ber"] < ber_awgn(snr_db - 0.5, modulation)
    assert chain.statuses["tx0"]["samples_sent"] == chain.statuses["rx0"]["samples_received"]
    assert chain.statuses["channel"]["samples_in"] == chain.statuses["channel"]["samples_out"]


def test_a_dead_process_is_named_and_the_loss_counted(tmp_path):
    system = LinkSystem({"modulation": "qpsk", "code": "none", "n_frames": 1500, "payload_bytes": 1500}, seed=2)
    encoded = system.encode([])
    jobs = encoded.jobs
    spec = ChannelSpec(model="awgn", snr_db=20.0)

    def kill_channel_soon(procs):
        threading.Timer(4.0, lambda: os.kill(procs["channel"].pid, signal.SIGKILL)).start()

    chain = run_chain([jobs], [[spec]], tmp_path, idle_timeout_s=3.0, on_start=kill_channel_soon)
    assert any("process channel died" in p for p in chain.problems)
    assert chain.statuses["channel"]["returncode"] == -signal.SIGKILL
    received = chain.received(0)  # the RX kept and saved what it had measured (maybe nothing yet)
    assert received is not None
    m = evaluate(system, [], encoded, received)
    # a TX still sending when the channel died may report no count (-1: unknown)
    sent, got = chain.statuses["tx0"].get("samples_sent", -1), chain.statuses["rx0"]["samples_received"]
    assert got < sent or sent < 0 or chain.statuses["tx0"].get("stopped") != "done"
    assert m["frames_received"] < m["frames_sent"] and m["frames_lost"] == m["frames_sent"] - m["frames_received"]
