"""Fuzzing the receiver with corrupted and truncated frames: it never crashes, it accounts for
every detection, it never accepts a header whose CRC is wrong, and a payload it calls good is
the payload that was sent."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.phy.frame import Framer
from testbed.phy.header import HEADER_BITS, HEADER_CODE, Header
from testbed.phy.ldpc import get_code
from testbed.phy.ofdm import build_grid, to_time
from testbed.phy.payload import PayloadFormat
from testbed.phy.qam import QamModem
from testbed.phy.receiver import FrameReceiver

FMTS = [PayloadFormat("qpsk", "none"), PayloadFormat("qam16", "ldpc_648_1_2"), PayloadFormat("bpsk", "none")]
N_FRAMES = 10_000
BATCH = 500


def forged_frame(rng: np.random.Generator) -> np.ndarray:
    """A frame whose header is a valid LDPC codeword around bits with a wrong CRC."""
    framer = Framer()
    bits = Header(seq=int(rng.integers(0, 65536)), length=20, modulation=2).to_bits()
    bits[rng.integers(0, HEADER_BITS)] ^= 1
    code = get_code(HEADER_CODE)
    info = np.zeros(code.k, np.uint8)
    info[:HEADER_BITS] = bits
    word = code.encode(info)
    coded = np.concatenate([word[:HEADER_BITS], word[code.k :]])
    lay = framer.layout
    coded = np.concatenate([coded, np.zeros(lay.header_symbols * lay.params.n_data - coded.size, np.uint8)])
    data = QamModem(1).modulate(coded).reshape(lay.header_symbols, lay.params.n_data)
    header = to_time(build_grid(data, lay.params, 0), lay.params)
    payload = framer.payload_samples(PayloadFormat("qpsk").encode(bytes(20)))
    return np.concatenate([lay.preamble.waveform, header, payload])


def corrupt(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of: truncation, a noise burst, impulses, a phase jump, clipping, or untouched."""
    x = frame.copy()
    kind = rng.integers(0, 6)
    a, b = np.sort(rng.integers(0, x.size, 2))
    if kind == 0:
        return x[: max(a, 1)]
    if kind == 1:
        x[a:b] = (rng.standard_normal(b - a) + 1j * rng.standard_normal(b - a)) * rng.uniform(0.1, 10)
    elif kind == 2:
        idx = rng.integers(0, x.size, int(rng.integers(1, 200)))
        x[idx] = rng.uniform(-50, 50, idx.size) + 1j * rng.uniform(-50, 50, idx.size)
    elif kind == 3:
        x[a:] *= np.exp(1j * rng.uniform(0, 2 * np.pi))
    elif kind == 4:
        x = np.clip(x.real, -0.3, 0.3) + 1j * np.clip(x.imag, -0.3, 0.3)
    return x.astype(np.complex64)


def check_accounting(rx: FrameReceiver, got, sent: dict[int, tuple[Header, bytes]]) -> None:
    c = rx.counters
    assert c.detections == c.header_crc_fail + c.header_invalid + c.frames + c.truncated
    assert c.frames == len(got)
    for f in got:
        header, payload = sent[f.header.seq]  # a header nobody sent would raise KeyError here
        assert f.header == header
        if f.payload_ok:
            assert f.payload == payload


def test_ten_thousand_corrupted_frames_are_all_accounted_for():
    rng = np.random.default_rng(2024)
    framer = Framer()
    templates = []
    for i in range(30):
        fmt = FMTS[i % len(FMTS)]
        payload = rng.integers(0, 256, int(rng.integers(1, 60)), dtype=np.uint8).tobytes()
        templates.append((payload, fmt))
    forged = [forged_frame(rng) for _ in range(10)]
    rx, got, sent, n_forged = FrameReceiver(), [], {}, 0
    for start in range(0, N_FRAMES, BATCH):
        parts = []
        for seq in range(start, start + BATCH):
            if rng.random() < 0.1:
                parts.append(corrupt(forged[seq % len(forged)], rng))
                n_forged += 1
            else:
                payload, fmt = templates[seq % len(templates)]
                frame = framer.frame(payload, fmt, seq=seq, user=1)
                sent[seq] = (Header(user=1, seq=seq, length=len(payload), modulation=fmt.ids[0], code=fmt.ids[1]), payload)
                parts.append(corrupt(frame, rng))
            noise = 0.03 * (rng.standard_normal(300) + 1j * rng.standard_normal(300))
            parts.append(noise.astype(np.complex64))
        got += rx.push(np.concatenate(parts) + np.complex64(0.01 * (rng.standard_normal() + 1j * rng.standard_normal())))
    rx.flush()
    check_accounting(rx, got, sent)
    assert rx.counters.header_crc_fail >= 0.8 * n_forged  # forged headers are detected and refused
    assert len(got) > 0.25 * N_FRAMES  # many frames survive their corruption: the checks above bite


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.floats(0.0, 1.0), snr_db=st.floats(-5.0, 30.0))
def test_truncated_frame_never_crashes_and_is_counted(seed, cut, snr_db):
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    frame = Framer().frame(payload, FMTS[seed % 3], seq=7)
    frame = frame[: int(cut * frame.size)]
    no = 10 ** (-snr_db / 10)
    y = np.concatenate([np.zeros(200), frame, np.zeros(50)]).astype(np.complex64)
    y = y + np.sqrt(no / 2) * (rng.standard_normal(y.size) + 1j * rng.standard_normal(y.size))
    rx = FrameReceiver()
    got = rx.push(y.astype(np.complex64))
    rx.flush()
    sent = {7: (Header(seq=7, length=100, modulation=FMTS[seed % 3].ids[0], code=FMTS[seed % 3].ids[1]), payload)}
    check_accounting(rx, got, sent)
