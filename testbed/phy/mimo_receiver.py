"""Streaming receiver of multi-stream frames (``mimo_frame``) on M antennas.

``MimoFrameReceiver.push([x_0, ..., x_{M-1}])`` takes any chunking of M equally long sample
streams and returns one ``MimoReceivedFrame`` per decodable stream of every frame completed.

Training: the first slot found (antenna-summed Schmidl-Cox, ``mimo_sync``) is synchronised
(coarse and fine CFO, LTF timing, channel on every antenna, header by MRC). Its header says
"stream k of K", which places the other K - 1 slots; each is synchronised on its own (a slot
whose header failed earlier is reused). A stream whose header fails stays in the detector as
an interferer with the channel its LTF gave. The headers carry no frame length: the payload is
taken to be as long as the longest need among the headers decoded (what ``mimo_frame`` pads to),
so the tail of a failed stream that needs more is scanned again, and the frame's end there is no
detection (``_burst_end``).

Payload, per stream k: the received signal is derotated by stream k's own CFO before the FFT,
so stream k has no inter-carrier interference (ICI), and each carrier is filtered by the
unbiased MMSE row of stream k, h_k^H R_k^-1 / (h_k^H R_k^-1 h_k), h_j being stream j's LTF
channel. The other streams keep their CFO offset from stream k (several kHz between Pluto
TCXOs; 5 kHz is a third of a carrier, whose ICI alone would cap the SINR near 5 dB if ignored),
so R_k holds their leakage over the neighbouring carriers (``mimo_estimate.stream_covariance``).
In a flat channel the leakage of stream j stays along h_j and R_k is the plain H H^H + no I of
``mimo.lmmse_filter``; in multipath it spreads over more directions and costs SINR (measured:
3 streams with CFOs within +-5 kHz on 4 antennas over 4-tap channels come within about 0.2 dB of
this bound, which lies 1-7 dB below the ICI-free LMMSE; users that pre-compensate their CFO
avoid that loss). Row k does not depend on the phases of the other columns, so no
per-symbol rotation of the channel matrix is needed: only stream k's own phase is tracked, an
offset plus a slope over the OFDM symbols fitted to its Walsh-coded pilots after its row. All
streams use one FFT window, that of the earliest stream; a stream arriving d samples later sees
its LTF channel times exp(-j 2 pi f d / N).

Counters: every slot synchronised counts one detection and ends as exactly one of a frame
(payload CRC good or bad), a header CRC failure, an invalid header (fields, or a slot at odds with
its frame), with ``flows`` a stream of another flow (``other_flows``: its header decoded, its
payload left undetected) or, at ``flush``, truncated.

``flows``: a receiver for some users only (a single-antenna user of a beamformed downlink, whose
other streams are meant for other users) detects only the streams whose header ``user`` is one
of these flows; the others still count as interference in its LMMSE rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.errors import FrameError
from testbed.phy import estimate, mimo_sync
from testbed.phy.header import Header, decode_header, n_coded_bits
from testbed.phy.mimo import mmse_rows
from testbed.phy.mimo_estimate import ltf_channels, mrc, stream_covariance
from testbed.phy.mimo_frame import MAX_STREAMS, parse_stream_flags, slot_len, stream_pilots
from testbed.phy.ofdm import pilot_values
from testbed.phy.payload import PayloadFormat
from testbed.phy.qam import get_modem
from testbed.phy.receiver import ReceivedFrame, ReceiverSettings

SLOT_TOLERANCE = 16
"""Samples a slot may sit away from where its frame's first slot puts it (timing offsets)."""
BURST_END_METRIC = 1.0 / 48
"""Floor of the detection threshold, above the 1/64 that a burst's end reaches (``_burst_end``)."""


@dataclass
class MimoReceivedFrame(ReceivedFrame):
    """One stream of a multi-stream frame. ``snr_est_db`` is the post-LMMSE SINR estimate (of
    the mean error over data carriers); ``sinr_db`` float32 (48,) its value per data carrier;
    ``start`` the absolute sample index where this stream's frame begins; ``h_est`` complex64
    (M,) this stream's LS channel column, flat: the mean over the used carriers of its LTF
    channel at its own slot's timing (its arrival delay and the FFT window's advance undone, so
    a stream arriving after the earliest is not smeared by the slope the common FFT window of
    the payload gives it), its phase that at the slot's CFO reference sample; ``noise_var_est``
    the noise variance per carrier (float) the LMMSE used."""

    stream: int = 0
    n_streams: int = 1
    sinr_db: np.ndarray | None = None
    h_est: np.ndarray | None = None
    noise_var_est: float | None = None


@dataclass
class _Slot:
    """Synchronisation of one stream's training slot (absolute sample indices)."""

    ref: int  # where the CFO derotation has phase 0
    cfo: float  # cycles/sample
    ltf: int  # first LTF repetition
    h: np.ndarray  # complex64 (M, 52) at this slot's FFT timing
    no: float
    header: Header | None


@dataclass
class _Frame:
    """A multi-stream frame whose slots are all synchronised."""

    origin: int  # absolute start of the frame as its earliest stream sees it
    slots: list[_Slot | None]  # per stream; None when the slot was not found
    fmts: list[PayloadFormat | None]  # per stream; None when its header is unusable
    n_sym: int  # payload OFDM symbols: the longest need among the headers decoded
    end: int  # absolute end of the payload of the latest stream


@dataclass
class MimoFrameReceiver(ReceiverSettings):
    """Streaming multi-stream receiver for ``n_antennas`` antennas, tuned by the
    ``receiver.ReceiverSettings`` fields; ``flows`` (None: every flow) as in the module docstring."""

    n_antennas: int = 1
    flows: frozenset[int] | None = None

    def __post_init__(self) -> None:
        self._buf = np.zeros((self.n_antennas, 0), dtype=np.complex64)
        self._offset = 0  # absolute index of self._buf[:, 0]
        self._pos = 0  # scan position in the buffer
        self._pending: tuple[int, _Slot | _Frame] | None = None
        self._orphans: list[_Slot] = []

    @property
    def _threshold(self) -> float:
        """The detection threshold on the antenna-summed metric: ``threshold / n_antennas``,
        and not below BURST_END_METRIC.

        On noise alone the summed metric is exponential with mean 1 / (M window) (M window
        independent lag products in P, R = M window N), so threshold / M keeps the single-antenna
        receiver's false-alarm rate per sample, exp(-threshold window). The unscaled threshold
        missed whole frames at 0 dB: a stream of channel energy G = sum |h_m|^2 on M antennas
        plateaus at (G / (G + M))^2, 0.11 for G = 2 of a mean 4, where its header (MRC over
        the antennas) still decodes.
        """
        return max(self.threshold / self.n_antennas, BURST_END_METRIC)

    @property
    def _retention(self) -> int:
        """Samples kept behind the scan position: the earlier slots of a frame."""
        return MAX_STREAMS * slot_len(self.layout) + 2 * self.window

    def push(self, samples: list[np.ndarray]) -> list[MimoReceivedFrame]:
        """Append one complex64 (n,) array per antenna; return the stream frames completed."""
        rows = [np.asarray(s, dtype=np.complex64).reshape(-1) for s in samples]
        if len(rows) != self.n_antennas or len({r.size for r in rows}) > 1:
            raise FrameError(f"push needs {self.n_antennas} arrays of equal length, got sizes {[r.size for r in rows]}")
        self.counters.samples += rows[0].size
        cut = max(self._pos - self._retention, 0)
        self._buf = np.concatenate([self._buf[:, cut:], np.stack(rows)], axis=1)
        self._offset += cut
        self._pos -= cut
        self._orphans = [o for o in self._orphans if o.ltf >= self._offset]
        frames: list[MimoReceivedFrame] = []
        while (result := self._step()) is not None:
            frames += result
        return frames

    def flush(self) -> None:
        """End of stream: streams still waiting for samples are counted as truncated."""
        if self._pending is not None:
            state = self._pending[1]
            self.counters.truncated += 1 if isinstance(state, _Slot) else sum(f is not None for f in state.fmts)
            self._pending = None
        self._offset += self._buf.shape[1]
        self._buf = np.zeros((self.n_antennas, 0), dtype=np.complex64)
        self._pos = 0
        self._orphans = []

    def _rel(self, absolute: int) -> int:
        return absolute - self._offset

    def _slot_start(self, slot: _Slot) -> int:
        pre = self.layout.preamble
        return slot.ltf - pre.ltf_gi - pre.stf_len

    def _step(self) -> list[MimoReceivedFrame] | None:
        """Process the next detection; None when more samples are needed."""
        lag = self.layout.preamble.stf_period
        d0 = mimo_sync.first_crossing(self._buf, lag, self.window, self._threshold, self._pos, self.min_power)
        if d0 < 0:
            self._pos = max(self._pos, self._buf.shape[1] - self.window - lag)
            return None
        if self._burst_end(d0):
            self._pos = d0 + 1
            return []
        key = self._offset + d0
        if self._pending is not None and abs(self._pending[0] - key) <= SLOT_TOLERANCE // 2:
            state = self._pending[1]
        else:
            state = self._sync(max(d0 - 16, 0))
            if state is None:
                self._pos = max(self._pos, d0 - 32)
                return None
            self.counters.detections += 1
            self._pending = (key, state)
        if isinstance(state, _Slot):
            state = self._frame_of(state, d0)
            if not isinstance(state, _Frame):
                return state
            self._pending = (key, state)
        if self._buf.shape[1] < self._rel(state.end) + 64:
            self._pos = max(self._pos, d0 - 64)
            return None
        self._pending = None
        self._pos = self._rel(state.end)
        self._orphans = [o for o in self._orphans if o.ltf > state.end]
        return self._decode(state)

    def _burst_end(self, d0: int) -> bool:
        """Whether the crossing at buffer index d0 is where a burst ends, not an STF.

        ``first_crossing`` tests |P|^2 > threshold R^2, R the energy of the lagged window alone.
        Where a burst of power S ends, that window holds its last k samples and noise: |P|^2 ~
        k S^2 against R^2 ~ (k S + 128 N)^2, a metric near 1/k at high SNR. The scan meets such an
        end in the tail of a frame whose longest stream failed its header; the slot synchronised
        there failed too, and the skip past it went into the next frame's STF. An STF fills the
        unlagged window as well (its energy R_0 <= R while the STF arrives, R_0 ~ R on its plateau),
        so a crossing must also pass |P|^2 > threshold R_0^2; at a burst's end R_0 holds k + 16
        samples and |P|^2 / R_0^2 ~ k / (k + 16)^2 <= 1/64, below BURST_END_METRIC.
        """
        lag, win = self.layout.preamble.stf_period, self.window
        head = self._buf[:, d0 : d0 + win].astype(np.complex128)
        p = np.vdot(head, self._buf[:, d0 + lag : d0 + lag + win])
        return bool(abs(p) ** 2 <= self._threshold * np.sum(np.abs(head) ** 2) ** 2)

    def _frame_of(self, slot: _Slot, d0: int) -> _Frame | list[MimoReceivedFrame] | None:
        """The frame a detected slot belongs to; [] when the slot ends here; None: wait."""
        role = self._validate(slot)
        skip = max(d0 + 1, self._rel(self._slot_start(slot) + self.layout.preamble.length))
        if role is None:
            self._orphans.append(slot)
            self._pending, self._pos = None, skip
            return []
        frame = self._assemble(slot, *role)
        if frame is None:
            self._pos = max(self._pos, d0 - 64)
            return None
        if frame.end - frame.origin > self.max_frame_len:
            self.counters.header_invalid += sum(f is not None for f in frame.fmts)
            self._pending, self._pos = None, skip
            return []
        return frame

    def _validate(self, slot: _Slot, expect: tuple[int, int] | None = None) -> tuple[int, int, PayloadFormat] | None:
        """(stream, n_streams, format) of a slot's header, or None after counting why not."""
        if slot.header is None:
            self.counters.header_crc_fail += 1
            return None
        role = parse_stream_flags(slot.header.flags)
        fmt = PayloadFormat.from_ids(slot.header.modulation, slot.header.code)
        if role is None or fmt is None or (expect is not None and role != expect):
            self.counters.header_invalid += 1
            return None
        return role[0], role[1], fmt

    def _assemble(self, slot: _Slot, stream: int, n_streams: int, fmt: PayloadFormat) -> _Frame | None:
        """Synchronise the other slots of ``slot``'s frame; None while samples are missing."""
        lay, length = self.layout, slot_len(self.layout)
        origin = self._slot_start(slot) - stream * length
        if self._buf.shape[1] < self._rel(origin + (n_streams - 1) * length) - 80 + self._sync_need:
            return None
        slots: list[_Slot | None] = []
        fmts: list[PayloadFormat | None] = []
        for j in range(n_streams):
            if j == stream:
                slots.append(slot)
                fmts.append(fmt)
                continue
            expected = origin + j * length
            other = self._orphan_at(expected)
            fresh = other is None
            if fresh:
                other = self._sync(self._rel(expected) - 80, self._rel(expected))
            role = None
            if fresh and other is not None:
                self.counters.detections += 1
                role = self._validate(other, (j, n_streams))
            slots.append(other)
            fmts.append(role[2] if role is not None else None)
        n_sym = max(lay.payload_symbols(f.n_symbols(s.header.length)) for f, s in zip(fmts, slots) if f is not None)
        # the frame's timing comes from the slots whose header decoded: a slot that failed (a weak
        # stream, e.g. another user's leakage in a beamformed downlink) can be mistimed
        origins = [self._slot_start(s) - j * length for j, (s, f) in enumerate(zip(slots, fmts))
                   if s is not None and f is not None]
        end = max(origins) + n_streams * length + n_sym * lay.params.sym_len
        return _Frame(origin=min(origins), slots=slots, fmts=fmts, n_sym=n_sym, end=end)

    def _orphan_at(self, start: int) -> _Slot | None:
        """Take the slot that failed on its own near absolute ``start``, if one is kept."""
        for i, slot in enumerate(self._orphans):
            if abs(self._slot_start(slot) - start) <= SLOT_TOLERANCE:
                return self._orphans.pop(i)
        return None

    @property
    def _sync_need(self) -> int:
        """Samples ``_sync`` needs from its segment start."""
        return 2 * self.window + self.layout.preamble.stf_period + 48 + slot_len(self.layout) + 128

    def _sync(self, s0: int, start: int | None = None) -> _Slot | None:
        """Synchronise the slot whose STF starts in [s0, s0 + 160] (buffer indices); None when
        samples are missing. ``start``, where the frame puts the slot, narrows the LTF timing
        search to +-SLOT_TOLERANCE (at low SNR the wide search can slip by one LTF period)."""
        lay, pre = self.layout, self.layout.preamble
        lag, win = pre.stf_period, self.window
        need = s0 + self._sync_need
        if s0 < 0 or self._buf.shape[1] < need:
            return None
        s_rel, cfo = mimo_sync.plateau(self._buf[:, s0 : s0 + 2 * win + lag + 48], lag, win, pre.stf_len)
        stf, search = (s0 + s_rel, 64) if start is None else (start, SLOT_TOLERANCE)
        ref = max(stf - 64, 0)
        seg = mimo_sync.rotate(self._buf[:, ref:need], cfo)
        expected = stf - ref + pre.stf_len + pre.ltf_gi
        lo = max(expected - search, 0)
        span = pre.n_ltf * lay.params.fft_len
        ltf = lo + mimo_sync.ltf_timing(seg[:, lo : expected + search + span], pre.ltf_symbol, pre.n_ltf)
        fine = mimo_sync.fine_cfo(seg[:, ltf : ltf + span], lay.params.fft_len)
        seg = mimo_sync.rotate(seg, fine)
        grid = self._symbols(seg, ltf - self.backoff, pre.n_ltf, lay.params.fft_len)
        h, no = ltf_channels(grid, pre.ltf_freq, lay.params, self.delays)
        header = self._header(seg, ltf, h, no)
        return _Slot(ref=self._offset + ref, cfo=cfo + fine, ltf=self._offset + ref + ltf, h=h, no=no, header=header)

    def _symbols(self, seg: np.ndarray, start: int, n_sym: int, step: int) -> np.ndarray:
        """FFTs complex64 (M, n_sym, fft_len) of windows at start + i * step in seg (M, n)."""
        n_fft = self.layout.params.fft_len
        idx = start + np.arange(n_sym)[:, None] * step + np.arange(n_fft)[None, :]
        return (np.fft.fft(seg[:, idx], axis=-1) / np.sqrt(n_fft)).astype(np.complex64)

    def _header(self, seg: np.ndarray, ltf: int, h: np.ndarray, no: float) -> Header | None:
        """Decode the header after an LTF at ``ltf`` in seg (M, n): MRC, pilot phase, LDPC."""
        lay, params, pre = self.layout, self.layout.params, self.layout.preamble
        start = ltf - pre.ltf_gi - pre.stf_len + lay.header_start + params.cp_len - self.backoff
        grid = self._symbols(seg, start, lay.header_symbols, params.sym_len)
        z, nv = mrc(grid[:, :, params.bins(params.used)], h, no)
        z = self._track_phase(z, pilot_values(lay.header_symbols, 0))
        x, nv = self._data(z, nv)
        return decode_header(get_modem(1).demodulate(x[: n_coded_bits()], nv[: n_coded_bits()]))

    def _track_phase(self, z: np.ndarray, pilots: np.ndarray) -> np.ndarray:
        """z complex64 (n_sym, 52) of one stream, unbiased, with its pilot-fitted phase removed."""
        params = self.layout.params
        pilot_pos = np.searchsorted(np.asarray(params.used), np.asarray(params.pilots))
        phase = estimate.pilot_phase(z[:, pilot_pos], np.ones(pilot_pos.size), pilots)
        return (z * np.exp(-1j * phase)[:, None]).astype(np.complex64)

    def _data(self, z: np.ndarray, nv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data carriers of z (n_sym, 52) and their variances nv (52,), flattened (n_sym * 48,)."""
        params = self.layout.params
        data_pos = np.searchsorted(np.asarray(params.used), np.asarray(params.data))
        return z[:, data_pos].reshape(-1), np.tile(nv[data_pos], z.shape[0])

    def _decode(self, frame: _Frame) -> list[MimoReceivedFrame]:
        """Joint LMMSE of the payload; one frame per stream with a usable header."""
        params, length = self.layout.params, slot_len(self.layout)
        present = [j for j, s in enumerate(frame.slots) if s is not None]
        used = np.asarray(params.used, dtype=np.float64)
        columns = []
        for j in present:
            delay = self._slot_start(frame.slots[j]) - j * length - frame.origin
            columns.append(frame.slots[j].h * np.exp(-2j * np.pi * used * delay / params.fft_len)[None, :])
        h = np.stack(columns, axis=-1).transpose(1, 0, 2)  # (52, M, K present)
        no = float(np.mean([frame.slots[j].no for j in present]))
        cfos = [frame.slots[j].cfo for j in present]
        out = []
        for i, j in enumerate(present):
            if frame.fmts[j] is not None and not self._mine(frame.slots[j].header):
                self.counters.other_flows += 1
            elif frame.fmts[j] is not None:
                w, var = mmse_rows(h[:, :, i : i + 1], stream_covariance(h, no, cfos, i, self.layout.params))
                out.append(self._stream(frame, j, w[:, 0], var[:, 0], self._flat_column(frame.slots[j].h), no))
        return out

    def _flat_column(self, h: np.ndarray) -> np.ndarray:
        """The flat channel column complex64 (M,) of one stream's LTF channel h complex (M, 52)
        at its own slot's timing: the mean over the used carriers once the FFT window's advance
        by ``backoff`` samples (a linear phase across the carriers) is undone."""
        params = self.layout.params
        advance = np.exp(2j * np.pi * np.asarray(params.used, np.float64) * self.backoff / params.fft_len)
        return np.mean(h * advance[None, :], axis=1).astype(np.complex64)

    def _mine(self, header: Header) -> bool:
        """Whether a stream with this header is detected here (``flows``)."""
        return self.flows is None or header.user in self.flows

    def _stream(self, frame: _Frame, stream: int, w: np.ndarray, var: np.ndarray, h_est: np.ndarray,
                no: float) -> MimoReceivedFrame:
        """Detect one stream with its LMMSE rows w complex64 (52, M) of output variance var (52,),
        computed from noise variance ``no``; ``h_est`` complex64 (M,) its flat channel column."""
        lay, params = self.layout, self.layout.params
        slot, fmt = frame.slots[stream], frame.fmts[stream]
        hdr = slot.header
        n_streams = len(frame.slots)
        payload0 = frame.origin + n_streams * slot_len(lay)
        seg = mimo_sync.rotate(self._buf[:, self._rel(payload0) : self._rel(frame.end) + 64], slot.cfo,
                               2 * np.pi * slot.cfo * (payload0 - slot.ref))
        grid = self._symbols(seg, params.cp_len - self.backoff, frame.n_sym, params.sym_len)
        z = np.einsum("fm,mnf->nf", w, grid[:, :, params.bins(params.used)])
        z = self._track_phase(z, stream_pilots(frame.n_sym, stream, lay.header_symbols))
        n_data = fmt.n_symbols(hdr.length)
        x, nv = self._data(z, var)
        x, nv = x[:n_data], nv[:n_data]
        data_var = var[np.searchsorted(np.asarray(params.used), np.asarray(params.data))]
        snr = float(-10 * np.log10(max(np.mean(data_var), 1e-30)))
        common = dict(header=hdr, fmt=fmt, start=self._slot_start(slot) - stream * slot_len(lay), snr_est_db=snr,
                      cfo=slot.cfo, stream=stream, n_streams=n_streams, h_est=h_est, noise_var_est=no,
                      sinr_db=(-10 * np.log10(np.maximum(data_var, 1e-30))).astype(np.float32))
        self.counters.frames += 1
        if fmt.analog:
            return MimoReceivedFrame(payload=x, payload_ok=True, evm_db=-snr, noise_var=nv, **common)
        decoded, evm = self._decode_digital(fmt, x, nv, hdr.length)
        return MimoReceivedFrame(payload=decoded.payload, payload_ok=decoded.ok, evm_db=evm, bits=decoded.bits, **common)
