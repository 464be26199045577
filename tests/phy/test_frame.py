"""Frame round trips through the streaming receiver (in-process, numpy channel)."""
import numpy as np
import pytest

from testbed.channels.numpy_face import awgn
from testbed.phy.frame import Framer
from testbed.phy.header import Header, decode_header, encode_header
from testbed.phy.payload import CODE_IDS, MODULATION_IDS, PayloadFormat
from testbed.phy.qam import get_modem
from testbed.phy.receiver import FrameReceiver
from testbed.phy.theory import ber_awgn, snr_for_ber


def _stream(frames, rng, gap=300):
    parts = [np.zeros(gap, np.complex64)]
    for f in frames:
        parts += [f, np.zeros(gap + int(rng.integers(0, 50)), np.complex64)]
    return np.concatenate(parts)


def _impair(x, snr_db, cfo, rng, delay=0):
    n = np.arange(x.size)
    y = np.concatenate([np.zeros(delay, np.complex64), x * np.exp(2j * np.pi * cfo * n + 1j * rng.uniform(0, 6.28))])
    return awgn(y.astype(np.complex64)[None, :], snr_db, rng)[0]


def _push_chunked(rx, y, rng):
    out, i = [], 0
    while i < y.size:
        step = int(rng.integers(1, 20000))
        out += rx.push(y[i : i + step])
        i += step
    return out


@pytest.mark.parametrize("modulation", ["bpsk", "qpsk", "qam16", "qam64", "qam256"])
@pytest.mark.parametrize("code", ["none", "ldpc_648_3_4", "ldpc_1296_5_6"])
def test_digital_round_trip_high_snr(modulation, code):
    rng = np.random.default_rng(7)
    fmt = PayloadFormat(modulation, code)
    payloads = [rng.integers(0, 256, int(rng.integers(1, 700)), dtype=np.uint8).tobytes() for _ in range(4)]
    frames = [Framer().frame(p, fmt, seq=i, user=3) for i, p in enumerate(payloads)]
    y = _impair(_stream(frames, rng), 40.0, -0.018, rng, delay=11)
    rx = FrameReceiver()
    got = _push_chunked(rx, y, rng)
    assert [f.header.seq for f in got] == [0, 1, 2, 3]
    assert all(f.payload_ok and f.payload == payloads[f.header.seq] for f in got)
    assert all(f.header.user == 3 for f in got)
    assert abs(np.mean([f.cfo for f in got]) + 0.018) < 1e-4


def test_analog_symbols_round_trip():
    rng = np.random.default_rng(3)
    sym = ((rng.standard_normal(500) + 1j * rng.standard_normal(500)) / np.sqrt(2)).astype(np.complex64)
    y = _impair(_stream([Framer().frame(sym, PayloadFormat("analog"), seq=9)], rng), 20.0, 0.01, rng)
    (frame,) = FrameReceiver().push(y)
    err = np.mean(np.abs(frame.payload - sym) ** 2)
    assert frame.header.length == 500 and frame.noise_var.shape == (500,)
    assert 10 * np.log10(err) == pytest.approx(-20.0, abs=1.0)  # the equalised noise is the channel's
    assert frame.snr_est_db == pytest.approx(20.0, abs=1.0)


@pytest.mark.parametrize("modulation,snr_db", [("qpsk", 0.0), ("qpsk", 6.0), ("qam16", 12.0)])
def test_uncoded_ber_within_half_db_of_closed_form(modulation, snr_db):
    rng = np.random.default_rng(11)
    fmt = PayloadFormat(modulation, "none")
    payloads = [rng.integers(0, 256, 1500, dtype=np.uint8).tobytes() for _ in range(25)]
    frames = [Framer().frame(p, fmt, seq=i) for i, p in enumerate(payloads)]
    y = _impair(_stream(frames, rng), snr_db, 0.02, rng, delay=5)
    got = FrameReceiver().push(y)
    assert len(got) == len(payloads)
    errors = sum(np.count_nonzero(np.unpackbits(np.frombuffer(f.payload, np.uint8))
                                  != np.unpackbits(np.frombuffer(payloads[f.header.seq], np.uint8))) for f in got)
    ber = errors / (1500 * 8 * len(got))
    assert ber_awgn(snr_db + 0.5, modulation) < ber < ber_awgn(snr_db - 0.5, modulation)
    assert abs(snr_for_ber(ber, modulation) - snr_db) < 0.5


def test_header_round_trip_and_crc_rejection():
    header = Header(system=5, user=2, seq=65535, length=1234, modulation=3, code=4, flags=7)
    bits = encode_header(header).astype(np.float32)
    llr = (1.0 - 2.0 * bits) * 4.0
    assert decode_header(llr) == header
    forged = header.to_bits().copy()
    forged[3] ^= 1  # a valid codeword around fields whose CRC does not match
    from testbed.phy.header import HEADER_BITS, HEADER_CODE
    from testbed.phy.ldpc import get_code

    code = get_code(HEADER_CODE)
    info = np.zeros(code.k, np.uint8)
    info[:HEADER_BITS] = forged
    word = code.encode(info)
    coded = np.concatenate([word[:HEADER_BITS], word[code.k :]]).astype(np.float32)
    assert decode_header((1.0 - 2.0 * coded) * 4.0) is None


def test_format_ids_cover_every_combination():
    for mod, mod_id in MODULATION_IDS.items():
        for code, code_id in CODE_IDS.items():
            fmt = PayloadFormat.from_ids(mod_id, code_id)
            assert fmt is None if (mod == "analog" and code != "none") else fmt == PayloadFormat(mod, code)
    assert PayloadFormat.from_ids(15, 0) is None


@pytest.mark.parametrize("code", ["none", "ldpc_648_1_2", "ldpc_1296_3_4", "ldpc_1296_1_2_x2"])
def test_evm_reference_is_the_sent_symbols_when_the_crc_holds(code):
    rng = np.random.default_rng(9)
    fmt = PayloadFormat("qam16", code)
    payload = rng.integers(0, 256, 301, dtype=np.uint8).tobytes()
    sent = fmt.encode(payload)
    no = 10 ** (-22 / 10)  # uncoded 16-QAM: BER about 1e-8
    x = (sent + np.sqrt(no / 2) * (rng.standard_normal(sent.size) + 1j * rng.standard_normal(sent.size))).astype(np.complex64)
    decoded = fmt.decode(x, np.full(x.size, no, np.float32), len(payload))
    assert decoded.ok and decoded.payload == payload
    np.testing.assert_array_equal(fmt.evm_reference(decoded, x), sent)
    garbled = fmt.decode(-x, np.full(x.size, no, np.float32), len(payload))  # wrong CRC: the hard decisions
    modem = get_modem(4)
    assert not garbled.ok
    np.testing.assert_array_equal(fmt.evm_reference(garbled, -x), modem.modulate(modem.hard(-x)))


def test_repeated_codes_add_their_copies_and_keep_the_plain_ids():
    """BPSK, genie LLRs: LDPC 1296 rate 1/2 fails at -3 dB (threshold about -0.6 dB); sent twice
    it decodes there, four times it still decodes at -6 dB where twice fails. The plain codes
    keep ids 1..8."""
    from testbed.phy.ldpc import CODES
    from testbed.phy.payload import REPEATED_CODES

    assert [CODE_IDS[c] for c in sorted(CODES)] == list(range(1, 9))
    assert [CODE_IDS[c] for c in REPEATED_CODES] == [9, 10] and max(CODE_IDS.values()) < 16
    rng = np.random.default_rng(10)
    ok = {}
    for code, snr_db in (("ldpc_1296_1_2", -3), ("ldpc_1296_1_2_x2", -3), ("ldpc_1296_1_2_x2", -6),
                         ("ldpc_1296_1_2_x4", -6)):
        fmt, no = PayloadFormat("bpsk", code), 10 ** (-snr_db / 10)
        payloads = [rng.integers(0, 256, 200, dtype=np.uint8).tobytes() for _ in range(6)]
        sent = [fmt.encode(p) for p in payloads]
        copies = {"": 1, "_x2": 2, "_x4": 4}[code[13:]]
        assert sent[0].size == fmt.n_symbols(200) == 3 * 1296 * copies  # 1632 bits: 3 codewords
        noisy = [x + np.sqrt(no / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) for x in sent]
        ok[code, snr_db] = [fmt.decode(y.astype(np.complex64), np.full(y.size, no, np.float32), 200).ok for y in noisy]
    assert not any(ok["ldpc_1296_1_2", -3]) and all(ok["ldpc_1296_1_2_x2", -3])
    assert not any(ok["ldpc_1296_1_2_x2", -6]) and all(ok["ldpc_1296_1_2_x4", -6])
