"""Digital side information next to an analog payload: flagged in the header, LDPC-coded, with
its own CRC, recovered exactly through the receiver with CFO and noise; absent when unflagged."""
import numpy as np
import pytest

from testbed.errors import FrameError
from testbed.phy.frame import Framer, FrameJob, FrameLayout
from testbed.phy.payload import PayloadFormat
from testbed.phy.receiver import FrameReceiver
from testbed.phy.side_info import MAX_SIDE_BYTES, SIDE_INFO_FLAG, encode_side_info

ANALOG = PayloadFormat("analog", "none")


def _through(frame: np.ndarray, snr_db: float, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(300, np.complex64), frame, np.zeros(3000, np.complex64)])
    x = x * np.exp(2j * np.pi * 7e-3 * np.arange(x.size))  # 7 kHz at 1 MS/s
    no = 10 ** (-snr_db / 10)
    x = x + np.sqrt(no / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
    rx = FrameReceiver()
    return rx.push(x.astype(np.complex64))


def test_side_information_and_analog_payload_both_arrive():
    rng = np.random.default_rng(1)
    symbols = ((rng.standard_normal(2000) + 1j * rng.standard_normal(2000)) / np.sqrt(2)).astype(np.complex64)
    side = bytes(range(20))
    job = FrameJob(symbols, ANALOG, seq=5, side_info=side)
    frame = Framer().frame(job.payload, job.fmt, seq=5, side_info=side)
    assert frame.size == job.frame_len(FrameLayout()) > FrameJob(symbols, ANALOG).frame_len(FrameLayout())
    (got,) = _through(frame, 12.0)
    assert got.header.flags & SIDE_INFO_FLAG and got.side_ok and got.side_info == side
    assert got.payload.size == symbols.size
    err = 10 * np.log10(np.mean(np.abs(got.payload - symbols) ** 2))
    assert err < -10.0  # the payload is the symbols sent, not shifted by the side block


def test_a_frame_without_side_information_has_none():
    (got,) = _through(Framer().frame(np.ones(500, np.complex64), ANALOG), 20.0)
    assert got.side_info is None and not got.side_ok and not got.header.flags & SIDE_INFO_FLAG


def test_a_corrupted_side_block_is_reported_not_trusted():
    frame = Framer().frame(np.ones(500, np.complex64), ANALOG, side_info=b"abc")
    results = [_through(frame, -3.0, seed) for seed in range(6)]
    frames = [f for r in results for f in r]
    assert frames and all(f.side_info in (b"abc", b"") for f in frames)
    assert all(f.side_ok == (f.side_info == b"abc") for f in frames)


def test_too_much_side_information_is_refused():
    with pytest.raises(FrameError, match=str(MAX_SIDE_BYTES)):
        encode_side_info(bytes(MAX_SIDE_BYTES + 1))
