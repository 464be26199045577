"""Streaming burst receiver: detect, synchronise, estimate, equalise, demap, decode, deframe.

``FrameReceiver.push(samples)`` takes any chunking of a sample stream and returns the frames
completed so far. Every detection ends as exactly one of: a frame (payload CRC ok or not), a
header that failed its CRC, a header whose fields are invalid, or (at ``flush``) a truncated
frame; ``counters`` counts each, so nothing is lost silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from testbed.phy import estimate, sync
from testbed.phy.frame import FrameLayout
from testbed.phy.header import Header, decode_header, n_coded_bits
from testbed.phy.ofdm import pilot_values, to_freq
from testbed.phy.payload import DecodedPayload, PayloadFormat
from testbed.phy.qam import get_modem
from testbed.phy.side_info import SIDE_SYMBOLS, decode_side_info, has_side_info

DEFAULT_DELAYS = tuple(range(-2, 8))


@dataclass
class ReceivedFrame:
    """One deframed frame.

    ``payload`` is bytes (digital, ``header.length`` bytes) or complex64 (length,) equalised
    symbols (analog) with ``noise_var`` float32 (length,) their per-symbol noise variance.
    ``bits`` holds the descrambled hard information bits of a digital payload (for BER).
    ``side_info`` is the frame's side block (testbed.phy.side_info) when its header flags one,
    ``side_ok`` whether that block passed its CRC.
    """

    header: Header
    fmt: PayloadFormat
    start: int
    payload: bytes | np.ndarray
    payload_ok: bool
    snr_est_db: float
    evm_db: float
    cfo: float
    noise_var: np.ndarray | None = None
    bits: np.ndarray | None = None
    side_info: bytes | None = None
    side_ok: bool = False


@dataclass
class RxCounters:
    """What happened to every detection and sample (all cumulative)."""

    samples: int = 0
    detections: int = 0
    header_crc_fail: int = 0
    header_invalid: int = 0
    frames: int = 0
    payload_crc_fail: int = 0
    truncated: int = 0
    other_flows: int = 0  # streams of other users' flows, kept as interference only (MimoFrameReceiver.flows)
    nonfinite_samples: int = 0  # NaN or infinite input samples (a corrupt recording), set to 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Sync:
    """Synchronisation state of one detected burst, in buffer coordinates."""

    ref: int  # buffer index that ``ltf`` counts from; shifted when the buffer is trimmed
    cfo: float
    ltf: int
    h: np.ndarray
    no: float
    header: Header | None
    fmt: PayloadFormat | None = None


@dataclass
class ReceiverSettings:
    """What every streaming receiver is tuned by (FrameReceiver and the multi-antenna
    MimoFrameReceiver): ``threshold`` is the Schmidl-Cox detection threshold on M in [0, 1];
    ``backoff`` the FFT window advance into the cyclic prefix (samples); ``delays`` the channel
    delay window (samples) of the LS fit; ``max_frame_len`` bounds what a header may announce;
    ``track_sco`` follows a sample-clock offset with the pilots' phase slope across subcarriers
    (estimate.pilot_sco; single-antenna receiver); ``correct_iq`` removes a DC offset and an IQ
    imbalance estimated blindly from each digital payload (estimate.iq_dc; single-antenna
    receiver); ``counters`` counts every detection's outcome."""

    layout: FrameLayout = field(default_factory=FrameLayout)
    threshold: float = 0.1
    window: int = 128
    backoff: int = 3
    delays: tuple[int, ...] = DEFAULT_DELAYS
    max_frame_len: int = 1 << 21
    min_power: float = 1e-9
    track_sco: bool = True
    correct_iq: bool = True
    counters: RxCounters = field(default_factory=RxCounters)

    def _decode_digital(self, fmt: PayloadFormat, x: np.ndarray, nv: np.ndarray,
                        length: int) -> tuple[DecodedPayload, float]:
        """A digital payload's equalised symbols complex64 (n,) and noise variances float32 (n,)
        -> (decoded payload, EVM dB); a failed CRC is counted."""
        decoded = fmt.decode(x, nv, length)
        self.counters.payload_crc_fail += int(not decoded.ok)
        return decoded, estimate.evm_db(x, fmt.evm_reference(decoded, x))


def _phasors(theta: np.ndarray) -> np.ndarray:
    """exp(-j theta) as complex64, theta float32 (any shape). np.exp(-1j * theta) computes in
    complex128: measured 5x slower for a 125 x 64 grid, a tenth of a QPSK frame's receive time."""
    out = np.empty(theta.shape, np.complex64)
    out.real = np.cos(theta)
    out.imag = -np.sin(theta)
    return out


@dataclass
class FrameReceiver(ReceiverSettings):
    """Streaming single-antenna receiver, tuned by the ReceiverSettings fields."""

    def __post_init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.complex64)
        self._offset = 0
        self._pos = 0
        self._pending: tuple[int, _Sync] | None = None

    @property
    def _lag(self) -> int:
        return self.layout.preamble.stf_period

    def push(self, samples: np.ndarray) -> list[ReceivedFrame]:
        """Append samples (complex64 (n,)) and return the frames completed in them."""
        x = np.asarray(samples, dtype=np.complex64)
        self.counters.samples += x.size
        if not np.isfinite(np.sum(x)):  # one reduction per chunk; the mask only for a bad one
            bad = ~np.isfinite(x)  # found by fuzzing: NaN reached the hard demapper as an index
            x = np.where(bad, np.complex64(0), x)
            self.counters.nonfinite_samples += int(np.count_nonzero(bad))
        keep = self._buf[self._pos :]
        self._offset += self._pos
        if self._pending is not None:
            self._pending[1].ref -= self._pos
        self._buf = np.concatenate([keep, x]) if keep.size else x.copy()
        self._pos = 0
        frames = []
        while (result := self._step()) is not None:
            if isinstance(result, ReceivedFrame):
                frames.append(result)
        return frames

    def flush(self) -> None:
        """End of stream: a burst still waiting for samples is counted as truncated."""
        if self._pending is not None:
            self.counters.truncated += 1
            self._pending = None
        self._buf = np.zeros(0, dtype=np.complex64)
        self._pos = 0

    def _step(self) -> ReceivedFrame | bool | None:
        """Process the next detection; None when more samples are needed."""
        buf, lag, win = self._buf, self._lag, self.window
        d0 = sync.first_crossing(buf, lag, win, self.threshold, self._pos, self.min_power)
        if d0 < 0:
            self._pos = max(self._pos, buf.size - win - lag)
            return None
        key = self._offset + d0
        if self._pending is not None and self._pending[0] == key:
            state = self._pending[1]
        else:
            state = self._synchronise(d0)
            if state is None:
                self._pos = max(self._pos, d0 - 32)
                return None
            self.counters.detections += 1
            self._pending = (key, state)
        return self._finish(d0, state)

    def _synchronise(self, d0: int) -> _Sync | None:
        """Coarse timing/CFO, fine timing/CFO, channel, header. None when samples are missing."""
        lay, pre = self.layout, self.layout.preamble
        lag, win = self._lag, self.window
        seg_start = max(d0 - 16, 0)
        need = seg_start + 2 * win + lag + 48 + lay.payload_start + 128
        if self._buf.size < need:
            return None
        s_rel, cfo = sync.plateau(self._buf[seg_start : seg_start + 2 * win + lag + 48], lag, win, pre.stf_len)
        ref = max(seg_start + s_rel - 64, 0)
        seg = sync.rotate(self._buf[ref:need], cfo)
        expected = seg_start + s_rel - ref + pre.stf_len + pre.ltf_gi
        lo = max(expected - 64, 0)
        span = pre.n_ltf * lay.params.fft_len
        ltf = lo + sync.ltf_timing(seg[lo : expected + 64 + span], pre.ltf_symbol, pre.n_ltf)
        fine = sync.fine_cfo(seg[ltf : ltf + span], lay.params.fft_len)
        seg = sync.rotate(seg, fine)
        state = _Sync(ref=ref, cfo=cfo + fine, ltf=ltf, h=np.zeros(0), no=1.0, header=None)
        state.h, state.no = self._channel(seg, ltf)
        state.header = self._header(seg, state)
        if state.header is not None:
            state.fmt = PayloadFormat.from_ids(state.header.modulation, state.header.code)
        return state

    def _channel(self, seg: np.ndarray, ltf: int) -> tuple[np.ndarray, float]:
        pre, params = self.layout.preamble, self.layout.params
        idx = ltf - self.backoff + np.arange(pre.n_ltf)[:, None] * params.fft_len + np.arange(params.fft_len)
        grid = np.fft.fft(seg[idx], axis=1) / np.sqrt(params.fft_len)
        return estimate.ltf_channel(grid, pre.ltf_freq, params, self.delays)

    def _grid(self, seg: np.ndarray, state: _Sync, first: int, n_sym: int) -> np.ndarray:
        """Phase-corrected FFT grid (complex64 (n_sym, 64)) of OFDM symbols from symbol ``first``."""
        lay, params = self.layout, self.layout.params
        frame0 = state.ltf - lay.preamble.ltf_gi - lay.preamble.stf_len
        start = frame0 + lay.header_start + first * params.sym_len + params.cp_len - self.backoff
        grid = to_freq(seg, n_sym, params, start)
        pilot_pos = np.searchsorted(np.asarray(params.used), np.asarray(params.pilots))
        y_pilots, x_pilots = grid[:, params.bins(params.pilots)], pilot_values(n_sym, first)
        phase = estimate.pilot_phase(y_pilots, state.h[pilot_pos], x_pilots)
        alpha = (estimate.pilot_sco(y_pilots, state.h[pilot_pos], x_pilots, np.asarray(params.pilots), phase)
                 if self.track_sco else 0.0)
        if alpha == 0.0:
            grid *= np.exp(-1j * phase.astype(np.float32))[:, None]
            return grid
        # Every bin turns (the unused ones are never read): no gather/scatter, float32 phases.
        n = (first + np.arange(n_sym, dtype=np.float32))[:, None]  # the drift grows from the LTF on
        k = np.fft.fftfreq(params.fft_len, 1.0 / params.fft_len).astype(np.float32)[None, :]
        grid *= _phasors(phase.astype(np.float32)[:, None] + np.float32(alpha) * n * k)
        return grid

    def _data(self, grid: np.ndarray, state: _Sync) -> tuple[np.ndarray, np.ndarray]:
        """Equalised data-carrier symbols and their noise variances, both flattened."""
        params = self.layout.params
        data_pos = np.searchsorted(np.asarray(params.used), np.asarray(params.data))
        x, nv = estimate.equalize(grid[:, params.bins(params.data)], state.h[data_pos], state.no)
        return x.reshape(-1), nv.reshape(-1)

    def _header(self, seg: np.ndarray, state: _Sync) -> Header | None:
        grid = self._grid(seg, state, 0, self.layout.header_symbols)
        x, nv = self._data(grid, state)
        llr = get_modem(1).demodulate(x[: n_coded_bits()], nv[: n_coded_bits()])
        return decode_header(llr)

    def _finish(self, d0: int, state: _Sync) -> ReceivedFrame | bool | None:
        """Decode the payload of a synchronised burst, or count why it has none."""
        lay = self.layout
        frame0 = state.ltf - lay.preamble.ltf_gi - lay.preamble.stf_len
        skip = max(d0 + 1, state.ref + frame0 + lay.preamble.stf_len // 2)
        if state.header is None or state.fmt is None:
            if state.header is None:
                self.counters.header_crc_fail += 1
            else:
                self.counters.header_invalid += 1
            self._pending, self._pos = None, skip
            return False
        frame_len = lay.frame_len(state.fmt, state.header.length, has_side_info(state.header.flags))
        if frame_len > self.max_frame_len:
            self.counters.header_invalid += 1
            self._pending, self._pos = None, skip
            return False
        end = state.ref + frame0 + frame_len + 64
        if self._buf.size < end:
            self._pos = max(self._pos, min(state.ref, d0))
            return None
        frame = self._payload(state, end)
        self._pending, self._pos = None, state.ref + frame0 + frame_len
        return frame

    def _payload(self, state: _Sync, end: int) -> ReceivedFrame:
        lay, hdr, fmt = self.layout, state.header, state.fmt
        raw = self._buf[state.ref : end]
        frame0 = state.ltf - lay.preamble.ltf_gi - lay.preamble.stf_len
        dc, w = estimate.iq_dc(raw[frame0 + lay.payload_start :]) if self.correct_iq else (0j, 0j)
        if fmt.analog:  # a neural encoder's symbols need not be circular: only digital payloads are
            w = 0j      # (scrambled QAM); the DC carrier is empty for every payload
        if dc or w:  # the preamble's channel estimate is redone on the corrected samples
            seg = sync.rotate(estimate.correct_iq_dc(raw, dc, w), state.cfo)
            state.h, state.no = self._channel(seg, state.ltf)
        else:
            seg = sync.rotate(raw, state.cfo)
        n_data = fmt.n_symbols(hdr.length)
        n_side = SIDE_SYMBOLS if has_side_info(hdr.flags) else 0
        n_sym = lay.header_symbols + lay.payload_symbols(n_side + n_data)
        grid = self._grid(seg, state, 0, n_sym)[lay.header_symbols :]
        x, nv = self._data(grid, state)
        side = decode_side_info(x[:n_side], nv[:n_side]) if n_side else (None, False)
        x, nv = x[n_side : n_side + n_data], nv[n_side : n_side + n_data]
        common = dict(header=hdr, fmt=fmt, start=self._offset + state.ref + frame0,
                      snr_est_db=estimate.snr_db(state.h, state.no), cfo=state.cfo, side_info=side[0], side_ok=side[1])
        self.counters.frames += 1
        if fmt.analog:
            evm = float(-estimate.snr_db(state.h, state.no))
            return ReceivedFrame(payload=x, payload_ok=True, evm_db=evm, noise_var=nv, **common)
        decoded, evm = self._decode_digital(fmt, x, nv, hdr.length)
        return ReceivedFrame(payload=decoded.payload, payload_ok=decoded.ok, evm_db=evm, bits=decoded.bits, **common)

