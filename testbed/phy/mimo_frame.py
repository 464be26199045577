"""Multi-stream frames: time-orthogonal training, then all streams' payloads at once.

A K-stream frame (K <= 8) is

    | slot 0 | slot 1 | ... | slot K-1 | payload: n_payload_symbols x 80, all streams at once |
    slot k = stream k's ordinary preamble (STF + LTF) and LDPC header, the other streams silent

so every slot is what ``frame.Framer`` sends before a payload (``FrameLayout.payload_start``
samples), and the receiver measures each stream's timing, CFO and channel column interference
free. Stream k's header describes stream k's payload (``length``, ``modulation``, ``code``,
``user``, ``seq``) and its ``flags`` say where it sits:

    flags bit 7     1: stream of a K-stream frame (0: ordinary frame, i.e. stream 0 of 1)
    flags bit 6     reserved, 0
    flags bits 5..3 K - 1
    flags bits 2..0 k

A 1-stream frame is an ordinary frame (flags 0), so single-antenna links and the MIMO receiver
interoperate. Every stream sends the same number of payload OFDM symbols (shorter payloads are
padded with empty data carriers; pilots go on), as the time-slotted uplink needs: every TX
process of one frame is given ``common_payload_symbols`` of all its jobs. No header carries that
count: the receiver takes the longest need among the headers it decodes, so padding beyond it
is not part of the frame.

Pilots: stream k multiplies the ordinary pilots (802.11a polarity per symbol) by row k mod 4 of
the 4 x 4 Hadamard matrix across the four pilot carriers. The receiver separates the streams
spatially first (pilot carriers pass through the same LMMSE rows as data) and then fits each
stream's residual phase on its own output; the Walsh code makes what interference the LMMSE
leaves on the pilots cancel in that fit wherever it is flat over the pilot carriers. Stream 0
keeps the ordinary pilots. (Time-domain Walsh codes would need K-symbol groups and blur the
per-symbol phase; giving each stream its own pilot tone would leave one pilot per stream.)

Frames are built as a ``ResourceGrid``: one 64-bin spectrum per segment (the 16-periodic STF
and the 64-periodic LTF are one spectrum each, every header and payload OFDM symbol one), so a
precoder (``testbed.phy.precoding``) can act per carrier on the whole frame, preamble included.

Beamformed downlink (``beamformed_frame``): a multi-antenna TX sends user k's stream on its beam
w_k. With beams that leak (MMSE, not zero-forcing) a single-antenna user k hears
sum_j h_k^T w_j x_j, so a shared preamble would measure h_k^T (w_1 + ... + w_K). Each stream
therefore keeps its own training slot, precoded by its own beam: in slot j user k measures
h_k^T w_j alone, its own effective channel in slot k and the leakage of stream j in the others,
and a one-antenna ``MimoFrameReceiver`` detects its stream by LMMSE with the others as
structured interference (the single-antenna MMSE receiver; its SNR estimate is the SINR).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from testbed.errors import FrameError
from testbed.phy.frame import FrameJob, FrameLayout
from testbed.phy.header import Header, encode_header
from testbed.phy.ofdm import build_grid, pilot_values
from testbed.phy.payload import MAX_LENGTH
from testbed.phy.precoding import Precoder, grid_precoder
from testbed.phy.qam import get_modem

MULTI_STREAM_FLAG = 0x80
MAX_STREAMS = 8
PILOT_CODES = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=np.float32)


def stream_flags(stream: int, n_streams: int) -> int:
    """Header ``flags`` of stream ``stream`` of an ``n_streams``-stream frame (0 when K = 1)."""
    if not 1 <= n_streams <= MAX_STREAMS or not 0 <= stream < n_streams:
        raise FrameError(f"stream {stream} of {n_streams}: need 0 <= stream < n_streams <= {MAX_STREAMS}")
    return 0 if n_streams == 1 else MULTI_STREAM_FLAG | (n_streams - 1) << 3 | stream


def parse_stream_flags(flags: int) -> tuple[int, int] | None:
    """(stream, n_streams) from header ``flags``; (0, 1) for an ordinary frame, None if invalid."""
    if not flags & MULTI_STREAM_FLAG:
        return 0, 1
    stream, n_streams = flags & 7, ((flags >> 3) & 7) + 1
    return (stream, n_streams) if stream < n_streams else None


def slot_len(layout: FrameLayout) -> int:
    """Samples of one training slot: preamble and header."""
    return layout.payload_start


def stream_pilots(n_sym: int, stream: int, first_symbol: int) -> np.ndarray:
    """Pilot values float32 (n_sym, 4) of ``stream`` on payload symbols from ``first_symbol``."""
    return pilot_values(n_sym, first_symbol) * PILOT_CODES[stream % len(PILOT_CODES)][None, :]


@dataclass(frozen=True)
class ResourceGrid:
    """A frame as spectra: ``spectra`` complex64 (n_streams, n_rows, fft_len), FFT order.

    Row r becomes ``lengths[r]`` samples x[(n - cps[r]) mod fft_len], n = 0..lengths[r]-1, of
    its unitary IFFT x: a cyclic prefix of ``cps[r]`` then periodic repetitions.
    """

    spectra: np.ndarray
    lengths: tuple[int, ...]
    cps: tuple[int, ...]

    def render(self) -> np.ndarray:
        """Time samples complex64 (n_streams, sum(lengths))."""
        fft_len = self.spectra.shape[-1]
        t = np.fft.ifft(self.spectra, axis=-1) * np.sqrt(fft_len)
        lengths = np.asarray(self.lengths, dtype=np.int64)
        row = np.repeat(np.arange(lengths.size), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        col = (np.arange(row.size) - starts[row] - np.asarray(self.cps, dtype=np.int64)[row]) % fft_len
        return t[:, row, col].astype(np.complex64)


def job_symbols(job: FrameJob) -> tuple[np.ndarray, int]:
    """Data symbols complex64 (n,) of a job and the header ``length`` that describes them."""
    if job.fmt.analog:
        symbols = np.asarray(job.payload, dtype=np.complex64).reshape(-1)
        if symbols.size > MAX_LENGTH:
            raise FrameError(f"analog payload of {symbols.size} symbols exceeds {MAX_LENGTH}")
        return symbols, symbols.size
    if not isinstance(job.payload, (bytes, bytearray)):
        raise FrameError(f"a {job.fmt.modulation} payload must be bytes, got {type(job.payload).__name__}")
    return job.fmt.encode(bytes(job.payload)), len(job.payload)


def payload_symbols(job: FrameJob, layout: FrameLayout | None = None) -> int:
    """Payload OFDM symbols a job needs."""
    layout = layout or FrameLayout()
    n = job.payload.size if job.fmt.analog else len(job.payload)
    return layout.payload_symbols(job.fmt.n_symbols(n))


def common_payload_symbols(jobs: list[FrameJob], layout: FrameLayout | None = None) -> int:
    """Payload OFDM symbols of a multi-stream frame carrying ``jobs`` (the largest need)."""
    return max(payload_symbols(job, layout) for job in jobs)


def _preamble_rows(layout: FrameLayout) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """STF and LTF as spectra complex64 (2, fft_len) with their lengths and cyclic prefixes."""
    pre, n_fft = layout.preamble, layout.params.fft_len
    stf = np.tile(pre.stf_symbol, n_fft // pre.stf_period)
    ltf = pre.ltf_symbol
    spectra = np.fft.fft(np.stack([stf, ltf]), axis=-1) / np.sqrt(n_fft)
    return spectra.astype(np.complex64), (pre.stf_len, pre.ltf_len), (0, pre.ltf_gi)


def _header_rows(header: Header, layout: FrameLayout) -> np.ndarray:
    """BPSK-coded header spectra complex64 (header_symbols, fft_len), as ``Framer`` sends it."""
    bits = encode_header(header)
    bits = np.concatenate([bits, np.zeros(layout.header_symbols * layout.params.n_data - bits.size, np.uint8)])
    data = get_modem(1).modulate(bits).reshape(layout.header_symbols, layout.params.n_data)
    return build_grid(data, layout.params, 0)


def _payload_rows(symbols: np.ndarray, n_sym: int, stream: int, layout: FrameLayout) -> np.ndarray:
    """Payload spectra complex64 (n_sym, fft_len): data zero-padded, stream-coded pilots."""
    params = layout.params
    data = np.zeros(n_sym * params.n_data, dtype=np.complex64)
    data[: symbols.size] = symbols
    grid = build_grid(data.reshape(n_sym, params.n_data), params, layout.header_symbols)
    grid[:, params.bins(params.pilots)] = stream_pilots(n_sym, stream, layout.header_symbols)
    return grid


def stream_grid(job: FrameJob, stream: int, n_streams: int, n_payload_symbols: int | None = None,
                layout: FrameLayout | None = None) -> ResourceGrid:
    """One stream of a multi-stream frame as a grid with a single stream (spectra (1, rows, 64))."""
    layout = layout or FrameLayout()
    symbols, length = job_symbols(job)
    need = layout.payload_symbols(symbols.size)
    n_sym = need if n_payload_symbols is None else n_payload_symbols
    if n_sym < need:
        raise FrameError(f"payload needs {need} OFDM symbols, the frame has {n_sym}")
    mod_id, code_id = job.fmt.ids
    header = Header(system=job.system, user=job.user, seq=job.seq % 65536, length=length,
                    modulation=mod_id, code=code_id, flags=stream_flags(stream, n_streams))
    pre, pre_lengths, pre_cps = _preamble_rows(layout)
    slot = np.concatenate([pre, _header_rows(header, layout)])
    slots = [slot if j == stream else np.zeros_like(slot) for j in range(n_streams)]
    payload = _payload_rows(symbols, n_sym, stream, layout)
    sym_lengths = (layout.params.sym_len,) * layout.header_symbols
    sym_cps = (layout.params.cp_len,) * layout.header_symbols
    lengths = (pre_lengths + sym_lengths) * n_streams + (layout.params.sym_len,) * n_sym
    cps = (pre_cps + sym_cps) * n_streams + (layout.params.cp_len,) * n_sym
    return ResourceGrid(np.concatenate(slots + [payload])[None], lengths, cps)


def frame_stream(job: FrameJob, stream: int, n_streams: int, n_payload_symbols: int | None = None,
                 layout: FrameLayout | None = None) -> np.ndarray:
    """Waveform complex64 (n_streams * slot_len + n_payload_symbols * 80,) of one stream.

    What a single-antenna TX of a slotted MU-MIMO uplink sends for its stream; all streams of a
    frame must use the same ``n_payload_symbols`` (``common_payload_symbols``; default: this
    job's own need, right only when K = 1 or every job needs as many).
    """
    return stream_grid(job, stream, n_streams, n_payload_symbols, layout).render()[0]


@dataclass
class MultiStreamFramer:
    """Frames for one TX node with several antennas.

    Without a precoder, jobs[k] is spatial stream k of a K-stream frame on antenna k (Nt = K),
    for a ``MimoFrameReceiver``. With a precoder (MU-MISO downlink), jobs[k] is an ordinary
    frame for single-antenna user k, all padded to one payload length, and the whole grid,
    preamble included, goes through ``precoder`` (K streams -> Nt antennas) before the IFFT;
    with ``orthogonal_training`` too, jobs[k] is stream k of a K-stream frame (its own training
    slot) before the precoder, for beams that leak (see the module docstring).
    """

    layout: FrameLayout = field(default_factory=FrameLayout)
    precoder: Precoder | None = None
    orthogonal_training: bool = False

    def grid(self, jobs: list[FrameJob]) -> ResourceGrid:
        """The K streams before precoding: spectra complex64 (K, n_rows, fft_len)."""
        if not 1 <= len(jobs) <= MAX_STREAMS:
            raise FrameError(f"{len(jobs)} jobs: a frame carries 1..{MAX_STREAMS} streams")
        n_sym = common_payload_symbols(jobs, self.layout)
        if self.precoder is None or self.orthogonal_training:
            grids = [stream_grid(job, k, len(jobs), n_sym, self.layout) for k, job in enumerate(jobs)]
        else:
            grids = [stream_grid(job, 0, 1, n_sym, self.layout) for job in jobs]
        return replace(grids[0], spectra=np.concatenate([g.spectra for g in grids]))

    def frame(self, jobs: list[FrameJob]) -> np.ndarray:
        """Antenna waveforms complex64 (Nt, n)."""
        grid = self.grid(jobs)
        if self.precoder is not None:
            grid = replace(grid, spectra=np.asarray(self.precoder(grid.spectra), dtype=np.complex64))
        return grid.render()


def beamformed_frame(jobs: list[FrameJob | None], weights: np.ndarray,
                     layout: FrameLayout | None = None) -> np.ndarray:
    """Antenna waveforms complex64 (Nt, n) of one frame of a beamformed downlink.

    Inputs: jobs[k] is user k's job in this frame, or None when user k has none left (it is then
    silent: no slot, no payload, no interference); weights complex (Nt, K), column k user k's
    beam, already power-scaled. The users with a job, in order, are streams 0..A-1 of an
    A-stream frame (time-orthogonal training slots, payloads padded to the longest), each
    precoded by its own column.
    """
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(jobs):
        raise FrameError(f"weights of shape {weights.shape} for {len(jobs)} users; allowed: (Nt, {len(jobs)})")
    active = [k for k, job in enumerate(jobs) if job is not None]
    if not active:
        raise FrameError("a beamformed frame needs at least one user with a job")
    framer = MultiStreamFramer(layout or FrameLayout(), grid_precoder(weights[:, active]), orthogonal_training=True)
    return framer.frame([jobs[k] for k in active])
