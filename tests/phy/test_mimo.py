"""Multi-antenna PHY: multi-stream frames through plain numpy MIMO channels (y_m = sum_k h_mk
x_k + noise), each stream with its own timing offset and CFO; the ZF-precoded MU-MISO
downlink; the LMMSE closed forms."""
import numpy as np
import pytest

from testbed.errors import FrameError
from testbed.phy.frame import FrameJob, Framer
from testbed.phy.mimo import data_aided_sinr, lmmse_ber_monte_carlo, lmmse_detect, lmmse_sinr, mmse_rows, rayleigh
from testbed.phy.mimo_estimate import stream_covariance
from testbed.phy.mimo_frame import (
    MultiStreamFramer,
    common_payload_symbols,
    frame_stream,
    parse_stream_flags,
    slot_len,
    stream_flags,
    stream_pilots,
)
from testbed.phy.mimo_receiver import MimoFrameReceiver
from testbed.phy.payload import PayloadFormat
from testbed.phy.precoding import grid_precoder, mrt, zero_forcing
from testbed.phy.receiver import FrameReceiver
from testbed.phy.theory import q_function

FS = 1e6
QPSK = PayloadFormat("qpsk", "none")


def _noise(shape, no, rng):
    return np.sqrt(no / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def _through(streams, h, delays, cfos_hz, rng, lead=300, tail=400, one_oscillator=False):
    """Noise-free sum_k h[:, k] x_k, stream k delayed by lead + delays[k] and rotated by its CFO
    and a random phase (one phase for all streams when they share one TX ``one_oscillator``)."""
    n = lead + max(d + x.size for d, x in zip(delays, streams)) + tail
    y = np.zeros((h.shape[0], n), np.complex128)
    phases = np.full(len(streams), rng.uniform(0, 2 * np.pi)) if one_oscillator else rng.uniform(0, 2 * np.pi, len(streams))
    for k, x in enumerate(streams):
        rot = np.exp(2j * np.pi * cfos_hz[k] / FS * np.arange(x.size) + 1j * phases[k])
        y[:, lead + delays[k] : lead + delays[k] + x.size] += h[:, k : k + 1] * (x * rot)[None, :]
    return y


def _uplink(jobs, h, snr_db, rng, delays=None, cfos_hz=None):
    """Received (M, n) complex64 of one K-stream frame, each stream from its own TX process."""
    k = len(jobs)
    n_sym = common_payload_symbols(jobs)
    streams = [frame_stream(job, i, k, n_sym) for i, job in enumerate(jobs)]
    delays = list(rng.integers(0, 5, k)) if delays is None else delays
    cfos_hz = list(rng.uniform(-5e3, 5e3, k)) if cfos_hz is None else cfos_hz
    y = _through(streams, h, delays, cfos_hz, rng)
    return (y + _noise(y.shape, 10 ** (-snr_db / 10), rng)).astype(np.complex64)


def _symbols(n, rng):
    """Unit-modulus random-phase symbols complex64 (n,): their sample power is exactly 1."""
    return np.exp(2j * np.pi * rng.uniform(0, 1, n)).astype(np.complex64)


def _push_chunked(rx, y, rng):
    out, i = [], 0
    while i < y.shape[1]:
        step = int(rng.integers(1, 6000))
        out += rx.push(list(y[:, i : i + step]))
        i += step
    return out


def _bit_errors(a: bytes, b: bytes) -> int:
    return int(np.count_nonzero(np.unpackbits(np.frombuffer(a, np.uint8)) != np.unpackbits(np.frombuffer(b, np.uint8))))


def test_measured_sinr_matches_lmmse_closed_form():
    rng = np.random.default_rng(2)
    h = rayleigh((4, 4), rng)
    sent = [_symbols(2000, rng) for _ in range(4)]
    jobs = [FrameJob(s, PayloadFormat("analog"), user=k) for k, s in enumerate(sent)]
    y = _uplink(jobs, h, 15.0, rng, delays=[3, 0, 5, 2], cfos_hz=[4e3, -5e3, 2.5e3, -1.5e3])
    rx = MimoFrameReceiver(n_antennas=4)
    got = rx.push(list(y))
    assert [f.stream for f in got] == [0, 1, 2, 3] and all(f.n_streams == 4 for f in got)
    theory = 10 * np.log10(lmmse_sinr(h, 10 ** -1.5))
    measured = np.array([10 * np.log10(data_aided_sinr(f.payload, sent[f.stream])) for f in got])
    np.testing.assert_allclose(measured, theory, atol=0.5)
    np.testing.assert_allclose([f.snr_est_db for f in got], theory, atol=1.0)
    np.testing.assert_allclose([f.cfo * FS for f in got], [4e3, -5e3, 2.5e3, -1.5e3], atol=30)
    assert [f.start for f in got] == [303, 300, 305, 302]
    assert all(f.noise_var.shape == (2000,) for f in got)


def test_multipath_sinr_reaches_the_ici_aware_lmmse_bound():
    """4-tap channels, CFOs within +-5 kHz: the other streams' inter-carrier leakage no longer
    stays in one spatial direction; the receiver's MMSE rows must still reach the bound that
    accounts for it, computed here from the true channels and CFOs."""
    rng = np.random.default_rng(12)
    params, m, k = Framer().layout.params, 4, 3
    used, data_pos = np.asarray(params.used), np.searchsorted(params.used, params.data)
    gaps = []
    for _ in range(4):
        sent = [_symbols(1500, rng) for _ in range(k)]
        jobs = [FrameJob(s, PayloadFormat("analog"), user=i) for i, s in enumerate(sent)]
        streams = [frame_stream(job, i, k, common_payload_symbols(jobs)) for i, job in enumerate(jobs)]
        taps = rayleigh((m, k, 4), rng) * np.sqrt([0.6, 0.25, 0.1, 0.05])
        cfos = rng.uniform(-5e3, 5e3, k) / FS
        y = np.zeros((m, streams[0].size + 700), np.complex128)
        for i, x in enumerate(streams):
            x = x * np.exp(2j * np.pi * cfos[i] * np.arange(x.size))
            for a in range(m):
                y[a, 300 + i : 303 + i + x.size] += np.convolve(x, taps[a, i])
        got = MimoFrameReceiver(n_antennas=m).push(list((y + _noise(y.shape, 0.01, rng)).astype(np.complex64)))
        h = np.einsum("mkl,fl->fmk", taps, np.exp(-2j * np.pi * np.outer(used, np.arange(4)) / params.fft_len))
        for f in got:
            _, var = mmse_rows(h[:, :, f.stream : f.stream + 1], stream_covariance(h, 0.01, list(cfos), f.stream, params))
            bound = -10 * np.log10(np.mean(var[data_pos, 0]))
            gaps.append(10 * np.log10(data_aided_sinr(f.payload, sent[f.stream])) - bound)
    assert len(gaps) == 12
    assert abs(np.mean(gaps)) < 0.3 and max(np.abs(gaps)) < 0.8


@pytest.mark.parametrize("snr_db", [3.0, 6.0, 12.0])
def test_uncoded_qpsk_ber_4x4_rayleigh_within_half_db_of_monte_carlo(snr_db):
    rng = np.random.default_rng(int(snr_db))
    n_frames, n_bytes = 60, 600
    channels = rayleigh((n_frames, 4, 4), rng)
    parts, sent = [], []
    for i in range(n_frames):
        payloads = [rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes() for _ in range(4)]
        jobs = [FrameJob(p, QPSK, user=k, seq=i) for k, p in enumerate(payloads)]
        parts.append(_uplink(jobs, channels[i], snr_db, rng))
        sent.append(payloads)
    rx = MimoFrameReceiver(n_antennas=4)
    got = rx.push(list(np.concatenate(parts, axis=1)))
    assert len(got) == 4 * n_frames
    errors = sum(_bit_errors(f.payload, sent[f.header.seq][f.stream]) for f in got)
    ber = errors / (len(got) * n_bytes * 8)
    mc = [lmmse_ber_monte_carlo("qpsk", snr_db + d, 4, 4, n_frames, rng, n_symbols=4000, channels=channels)
          for d in (0.5, -0.5)]
    assert mc[0] < ber < mc[1]


def test_zero_forcing_downlink_each_user_decodes_its_own_frame():
    rng = np.random.default_rng(2)
    h = rayleigh((2, 2), rng)  # h[k, n]: user k from TX antenna n; ZF costs it 0.4 dB
    w = zero_forcing(h)
    assert np.sum(np.abs(w) ** 2) == pytest.approx(1.0, rel=1e-5)
    payloads = [rng.integers(0, 256, 400 + 200 * k, dtype=np.uint8).tobytes() for k in range(2)]
    jobs = [FrameJob(p, PayloadFormat("qam16", "none"), user=k, seq=k) for k, p in enumerate(payloads)]
    x = MultiStreamFramer(precoder=grid_precoder(w)).frame(jobs)
    assert x.shape[0] == 2
    for k in range(2):
        y = _through([x[0], x[1]], h[k : k + 1], [2 * k, 2 * k], [3e3 - 6e3 * k] * 2, rng,
                     one_oscillator=True)[0]
        (frame,) = FrameReceiver().push((y + _noise(y.shape, 10 ** -2.5, rng)).astype(np.complex64))
        assert frame.header.user == k and frame.payload_ok
        assert _bit_errors(frame.payload, payloads[k]) == 0
    for k in range(2):  # stream j alone, seen by user k
        alone = [MultiStreamFramer(precoder=_only(grid_precoder(w), j)).frame(jobs) for j in range(2)]
        power = [np.mean(np.abs(h[k] @ a) ** 2) for a in alone]
        assert 10 * np.log10(power[1 - k] / power[k]) < -25.0


def test_per_carrier_zero_forcing_over_multipath():
    """ZF per FFT bin of 3-tap channels: the payload EVM at each user is its own noise only."""
    rng = np.random.default_rng(3)
    taps = rayleigh((2, 2, 3), rng) * np.sqrt([0.7, 0.2, 0.1])  # taps[k, n]: user k from antenna n
    w = zero_forcing(np.fft.fft(taps, 64, axis=-1).transpose(2, 0, 1))
    gain_db = 20 * np.log10(np.abs(np.fft.fft(taps, 64, axis=-1)[:, :, 1] @ w[1])[0, 0])  # ZF: one gain
    payloads = [rng.integers(0, 256, 500, dtype=np.uint8).tobytes() for _ in range(2)]
    jobs = [FrameJob(p, PayloadFormat("qpsk", "ldpc_648_1_2"), user=k) for k, p in enumerate(payloads)]
    x = MultiStreamFramer(precoder=grid_precoder(w)).frame(jobs)
    for k in range(2):
        y = np.concatenate([np.zeros(200), sum(np.convolve(x[n], taps[k, n]) for n in range(2)), np.zeros(300)])
        (frame,) = FrameReceiver().push((y + _noise(y.shape, 10 ** -2.5, rng)).astype(np.complex64))
        assert frame.header.user == k and frame.payload == payloads[k]
        assert frame.evm_db == pytest.approx(-(25.0 + gain_db), abs=1.0)


def _only(precoder, stream):
    def precode(grid):
        mask = np.zeros((grid.shape[0], 1, 1), np.complex64)
        mask[stream] = 1
        return precoder(grid * mask)

    return precode


def test_mrt_and_zf_weights():
    rng = np.random.default_rng(9)
    h = rayleigh((3, 4), rng)
    np.testing.assert_allclose(h @ zero_forcing(h, power=3.0), np.eye(3) * (h @ zero_forcing(h, 3.0))[0, 0], atol=1e-5)
    w = mrt(h)
    assert np.sum(np.abs(w) ** 2) == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.real(np.diag(h @ w)) > 0)


def test_chunking_corrupted_headers_and_counters():
    rng = np.random.default_rng(4)
    fmt = PayloadFormat("qam16", "ldpc_648_1_2")
    length = slot_len(Framer().layout)
    header = slice(Framer().layout.header_start, length)
    parts, sent = [], {}
    for i, bad in enumerate([None, 0, 1, None]):
        sizes = np.sort(rng.integers(50, 400, 2))[:: -1 if bad == 1 else 1]  # a failed stream is the shorter
        payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
        jobs = [FrameJob(p, fmt, user=k, seq=i) for k, p in enumerate(payloads)]
        streams = [frame_stream(job, k, 2, common_payload_symbols(jobs)) for k, job in enumerate(jobs)]
        if bad is not None:  # noise instead of stream `bad`'s header: its CRC fails
            part = streams[bad][bad * length :][header]
            part[:] = _symbols(part.size, rng)
        sent.update({(i, k): p for k, p in enumerate(payloads) if k != bad})
        y = _through(streams, rayleigh((3, 2), rng), [0, 3], [-4e3, 2e3], rng, lead=int(rng.integers(100, 900)))
        parts.append((y + _noise(y.shape, 10 ** -2.5, rng)).astype(np.complex64))
    y = np.concatenate(parts, axis=1)
    whole = MimoFrameReceiver(n_antennas=3)
    a = whole.push(list(y))
    chunked = MimoFrameReceiver(n_antennas=3)
    b = _push_chunked(chunked, y, rng)
    key = lambda f: (f.header.seq, f.stream, f.payload, f.start, f.payload_ok)  # noqa: E731
    assert [key(f) for f in a] == [key(f) for f in b]
    np.testing.assert_allclose([f.snr_est_db for f in a], [f.snr_est_db for f in b], atol=1e-3)
    assert {(f.header.seq, f.stream): f.payload for f in a} == sent
    assert all(f.payload_ok for f in a)
    for rx in (whole, chunked):
        rx.flush()
        c = rx.counters
        assert (c.detections, c.header_crc_fail, c.frames, c.header_invalid, c.truncated) == (8, 2, 6, 0, 0)


def test_truncated_frame_is_counted_at_flush():
    rng = np.random.default_rng(8)
    jobs = [FrameJob(bytes(300), QPSK, user=k) for k in range(2)]
    y = _uplink(jobs, rayleigh((2, 2), rng), 25.0, rng)
    rx = MimoFrameReceiver(n_antennas=2)
    assert rx.push(list(y[:, : y.shape[1] - 1500])) == []
    rx.flush()
    assert (rx.counters.detections, rx.counters.truncated, rx.counters.frames) == (2, 2, 0)


def test_single_stream_single_antenna_is_the_ordinary_frame():
    rng = np.random.default_rng(6)
    fmt = PayloadFormat("qpsk", "ldpc_648_3_4")
    payload = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    job = FrameJob(payload, fmt, user=7, seq=11)
    x = frame_stream(job, 0, 1)
    np.testing.assert_allclose(x, Framer().frame(payload, fmt, user=7, seq=11), atol=1e-6)
    y = _through([x, x], np.ones((1, 2)), [0, x.size + 500], [-2e4, 1.5e4], rng)[0]
    y = (y + _noise(y.shape, 10 ** -1.5, rng)).astype(np.complex64)
    ours = MimoFrameReceiver(n_antennas=1).push([y])
    theirs = FrameReceiver().push(y)
    assert [f.payload for f in ours] == [f.payload for f in theirs] == [payload, payload]
    assert all(f.payload_ok and f.n_streams == 1 and f.header.user == 7 for f in ours)
    np.testing.assert_allclose([f.cfo * FS for f in ours], [-2e4, 1.5e4], atol=30)
    np.testing.assert_allclose([f.snr_est_db for f in ours], 15.0, atol=1.0)


def test_stream_flags_and_framer_limits():
    assert stream_flags(0, 1) == 0 and parse_stream_flags(0) == (0, 1)
    for k, n in [(0, 2), (3, 4), (7, 8)]:
        assert parse_stream_flags(stream_flags(k, n)) == (k, n)
    assert parse_stream_flags(0x80 | 1 << 3 | 5) is None
    with pytest.raises(FrameError):
        stream_flags(2, 2)
    with pytest.raises(FrameError):
        MultiStreamFramer().frame([FrameJob(bytes(10), QPSK)] * 9)
    with pytest.raises(FrameError):
        frame_stream(FrameJob(bytes(1000), QPSK), 0, 2, n_payload_symbols=3)
    codes = np.stack([stream_pilots(5, k, 9)[2] for k in range(4)])  # one symbol, four streams
    np.testing.assert_array_equal(codes @ codes.T, 4 * np.eye(4))
    x = MultiStreamFramer().frame([FrameJob(bytes(10), QPSK), FrameJob(bytes(900), QPSK)])
    assert x.shape == (2, 2 * slot_len(Framer().layout) + common_payload_symbols([FrameJob(bytes(900), QPSK)]) * 80)


def test_lmmse_closed_forms():
    rng = np.random.default_rng(1)
    h = rayleigh((5, 3, 2), rng)
    no = 0.1
    sinr = lmmse_sinr(h, no)
    x = _symbols(20000, rng).reshape(1, 10000, 2) * np.ones((5, 1, 1))
    y = x @ np.swapaxes(h, -1, -2) + _noise((5, 10000, 3), no, rng)
    x_hat, var = lmmse_detect(y, h, no)
    measured = data_aided_sinr(np.swapaxes(x_hat, -1, -2), np.swapaxes(x, -1, -2))
    np.testing.assert_allclose(10 * np.log10(measured), 10 * np.log10(sinr), atol=0.15)
    np.testing.assert_allclose(var[:, 0, :], 1 / sinr, rtol=1e-4)
    np.testing.assert_allclose(lmmse_sinr(h[:, :1, :1], no)[:, 0], np.abs(h[:, 0, 0]) ** 2 / no, rtol=1e-6)
    gamma = 10 ** 0.8 / 2  # QPSK over 1 x 1 Rayleigh at 8 dB: 0.5 (1 - sqrt(g / (1 + g))), g = Eb/N0
    ber = lmmse_ber_monte_carlo("qpsk", 8.0, 1, 1, 20000, rng, n_symbols=50)
    assert ber == pytest.approx(0.5 * (1 - np.sqrt(gamma / (1 + gamma))), rel=0.05)
    assert lmmse_ber_monte_carlo("qpsk", 8.0, 1, 1, 1, rng, n_symbols=50000, channels=np.ones((1, 1, 1))) == \
        pytest.approx(float(q_function(np.sqrt(10 ** 0.8))), rel=0.1)


def test_stream_frames_carry_their_flat_channel_column_and_the_noise_variance():
    """Flat K = 2, M = 4 uplink, stream 1 arriving 3 samples after stream 0: each frame's h_est is
    its true column (the LTF channel averaged over the carriers at the stream's own timing) and
    noise_var_est the noise variance the LMMSE used."""
    rng = np.random.default_rng(7)
    h, no = rayleigh((4, 2), rng), 10 ** -2.0
    jobs = [FrameJob(rng.integers(0, 256, 40, dtype=np.uint8).tobytes(), PayloadFormat("qpsk", "ldpc_648_1_2"),
                     user=k) for k in range(2)]
    n_sym = common_payload_symbols(jobs)
    y = np.zeros((4, 300 + 3 + slot_len(Framer().layout) * 2 + n_sym * 80 + 400), np.complex128)
    for k, delay in enumerate((0, 3)):
        x = frame_stream(jobs[k], k, 2, n_sym)
        y[:, 300 + delay : 300 + delay + x.size] += h[:, k : k + 1] * x[None, :]
    got = MimoFrameReceiver(n_antennas=4).push(list((y + _noise(y.shape, no, rng)).astype(np.complex64)))
    assert [(f.stream, f.payload_ok) for f in got] == [(0, True), (1, True)]
    for f in got:
        assert f.h_est.dtype == np.complex64 and f.h_est.shape == (4,)
        true = h[:, f.stream]
        assert np.linalg.norm(f.h_est - true) < 0.05 * np.linalg.norm(true), (f.stream, f.h_est, true)
        assert abs(f.noise_var_est / no - 1) < 0.2, f.noise_var_est


def test_weak_streams_at_0_db_are_detected_and_noise_is_not():
    """Two streams at 0 dB whose channel energies on 4 antennas are 1.6 and 1.9 (mean 4): the
    unscaled threshold missed such frames; threshold / M finds them and their headers decode.
    Noise alone on 4 antennas gives no detection."""
    rng = np.random.default_rng(21)
    h = rayleigh((4, 2), rng)
    h *= np.sqrt(np.array([1.6, 1.9]) / np.sum(np.abs(h) ** 2, axis=0))
    found = 0
    for trial in range(6):
        jobs = [FrameJob(bytes(rng.integers(0, 256, 200, dtype=np.uint8)), PayloadFormat("bpsk", "ldpc_1296_1_2"),
                         user=k, seq=trial) for k in range(2)]
        found += len(MimoFrameReceiver(n_antennas=4).push(list(_uplink(jobs, h, 0.0, rng))))
    assert found == 12
    rx = MimoFrameReceiver(n_antennas=4)
    assert rx.push(list(_noise((4, 400_000), 1.0, rng).astype(np.complex64))) == [] and rx.counters.detections == 0
