"""MU-ASCC's network system: the codec of a planned rate, the payload reassembly at the RX and
the parameter checks (the whole system runs in tests/systems/test_every_system.py and, through
node processes, in tests/integration/test_mu_ascc.py)."""
import numpy as np
import pytest
from pydantic import ValidationError

from testbed.phy.header import Header
from testbed.phy.payload import PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.systems.mu_ascc import system as mu

CODECS = [{"name": "a", "rate_bpp": 0.2}, {"name": "b", "rate_bpp": 0.4}, {"name": "c", "rate_bpp": 0.8}]


def test_codec_at_takes_the_codec_of_the_planned_rate():
    assert mu.codec_at(CODECS, 0.4)["name"] == "b" and mu.codec_at(CODECS, 0.79)["name"] == "c"


def _frame(seq, payload, ok=True):
    fmt = PayloadFormat("qpsk", "ldpc_648_1_2")
    return ReceivedFrame(header=Header(seq=seq, length=len(payload)), fmt=fmt, start=0, payload=payload,
                         payload_ok=ok, snr_est_db=10.0, evm_db=-10.0, cfo=0.0)


def test_joined_payload_fills_lost_frames_with_zeros_and_keeps_crc_failures():
    manifest = {"bytes": 10, "frame_bytes": 4, "frames": 3}
    data, missing = mu.joined_payload([_frame(0, b"abcd"), _frame(2, b"ij", ok=False)], manifest)
    assert data == b"abcd\0\0\0\0ij" and missing == [1]
    data, missing = mu.joined_payload([_frame(1, b"efg")], manifest)  # wrong length: not this frame
    assert data == bytes(10) and missing == [0, 1, 2]


@pytest.mark.parametrize("params, match", [({"roles": {"du": "data", "su": "data"}}, "one data user"),
                                           ({"roles": {"du": "data", "su": "task"}}, "roles.su"),
                                           ({"mcs": ["ldpc_648_1_2/qam1024"]}, "mcs"),
                                           ({"weights": {"du": -1.0}}, "weights.du"),
                                           ({"bandwidth_ratios": {"du": 0, "su": 1}}, "bandwidth_ratios.du"),
                                           ({"weights": {"du": 1.0}}, "weights has no entry for su")])
def test_bad_params_name_the_field(params, match):
    with pytest.raises(ValidationError, match=match):
        mu.MuAsccParams(**params)
