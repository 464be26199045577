"""Throughput and BLER of our LDPC decoder against the ``ldpc`` package's BpDecoder and GNU
Radio's own gr-fec ``ldpc_decoder``, on the same LLRs.

Code: IEEE 802.11n n = 648, R = 1/2 (``testbed.phy.ldpc``), QPSK over AWGN (Gray QPSK carries two
independent BPSK bits, so these are BPSK LLRs at Eb/N0 = Es/N0 / (2 R)); ours and BpDecoder are
min-sum with scaling 0.75, gr-fec's is sum-product (``awgn_bp``), all with the same ``max_iter``.
Information throughput counts k bits per codeword.

gr-fec 3.10.5's decoder reads the code from an alist file, outputs the k bits at the systematic
positions of its own generator matrix (found here by decoding known codewords) and takes soft
values with positive = bit 1. Its BLER depends on the input scale: at 2 dB, -c x LLR gave BLER
1.0 (c = 1.5), 0.28 (2), 0.015 (3), 0.023 (4), 0.12 (8) on 400 codewords (ours 0.018), so it is
given its best, c = ``GR_FEC_LLR_SCALE``.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from testbed.phy.ldpc import MIN_SUM_SCALE, get_code
from testbed.phy.qam import QamModem

CODE = "ldpc_648_1_2"
GR_FEC_LLR_SCALE = 3.0


def _awgn_llrs(n_codewords: int, snr_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Info bits uint8 (N, k) and QPSK/AWGN LLRs float32 (N, n) at Es/N0 = ``snr_db``."""
    code, modem = get_code(CODE), QamModem(2)
    rng = np.random.default_rng(seed)
    info = rng.integers(0, 2, (n_codewords, code.k), dtype=np.uint8)
    symbols = modem.modulate(code.encode(info))
    no = 10 ** (-snr_db / 10)
    noise = rng.standard_normal(symbols.shape + (2,)) @ np.array([1, 1j]) * np.sqrt(no / 2)
    return info, modem.demodulate(symbols + noise, no)


def _ldpc_package_decode(llr: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    """Decode with ldpc.BpDecoder one codeword at a time; returns codewords (N, n) and seconds."""
    from ldpc import BpDecoder

    code = get_code(CODE)
    decoder = BpDecoder(code.H, error_rate=0.1, max_iter=max_iter, bp_method="minimum_sum",
                        ms_scaling_factor=MIN_SUM_SCALE, input_vector_type="received_vector")
    out = np.empty(llr.shape, dtype=np.uint8)
    start = time.perf_counter()
    for i, row in enumerate(llr.astype(np.float64)):
        decoder.update_channel_probs(1 / (1 + np.exp(np.abs(row))))
        out[i] = decoder.decode((row < 0).astype(np.uint8))
    return out, time.perf_counter() - start


def _gr_fec_flowgraph(alist: Path, soft: np.ndarray, max_iter: int) -> tuple[np.ndarray, float]:
    """gr-fec ldpc_decoder in a flowgraph (vector source -> fec.decoder -> vector sink) on soft
    values float (N, n); decided bits uint8 (N, k) and seconds of the run."""
    from gnuradio import blocks, fec, gr

    tb = gr.top_block()
    source = blocks.vector_source_f(soft.astype(np.float32).ravel().tolist(), False)
    decoder = fec.decoder(fec.ldpc_decoder.make(str(alist), np.sqrt(2.0), max_iter), gr.sizeof_float, gr.sizeof_char)
    sink = blocks.vector_sink_b()
    tb.connect(source, decoder, sink)
    start = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - start
    return np.asarray(sink.data(), np.uint8).reshape(soft.shape[0], -1), seconds


def gr_fec_decode(llr: np.ndarray, info: np.ndarray, max_iter: int) -> tuple[float, float]:
    """BLER and seconds of gr-fec's ldpc_decoder on LLRs float (N, n) of the codewords of ``info``."""
    code = get_code(CODE)
    with tempfile.TemporaryDirectory() as tmp:
        alist = Path(tmp) / f"{CODE}.alist"
        alist.write_text(code.alist())
        known = code.encode(np.random.default_rng(99).integers(0, 2, (64, code.k), dtype=np.uint8))
        out, _ = _gr_fec_flowgraph(alist, np.where(known == 1, 8.0, -8.0), max_iter)
        positions = [int(np.flatnonzero(np.all(known == out[:, [j]], axis=0))[0]) for j in range(out.shape[1])]
        decided, seconds = _gr_fec_flowgraph(alist, -GR_FEC_LLR_SCALE * llr, max_iter)
    sent = code.encode(info)[:, positions]
    return float(np.mean(np.any(decided != sent, axis=1))), seconds


def bench_ldpc(n_codewords: int = 2000, snr_db: float = 2.0, max_iter: int = 20,
               seed: int = 0) -> dict:
    """Compare our decoder with ldpc.BpDecoder on the same LLRs.

    ``snr_db`` is Es/N0 of the QPSK symbols (= Eb/N0 for R = 1/2); at 2 dB the BLER is about 1e-2.
    Returns floats: ``snr_db``, ``ours_mbps``, ``ours_bler``, ``ours_mean_iters``,
    ``ldpc_pkg_mbps``, ``ldpc_pkg_bler``, ``speedup``, ``gr_fec_mbps``, ``gr_fec_bler``,
    ``speedup_vs_gr_fec``.
    """
    code = get_code(CODE)
    info, llr = _awgn_llrs(n_codewords, snr_db, seed)
    code.decode(llr[:8], max_iter)
    start = time.perf_counter()
    bits, _, iters = code.decode(llr, max_iter)
    ours_s = time.perf_counter() - start
    theirs, theirs_s = _ldpc_package_decode(llr, max_iter)
    gr_bler, gr_s = gr_fec_decode(llr, info, max_iter)
    info_mbit = n_codewords * code.k / 1e6
    return {
        "gr_fec_mbps": info_mbit / gr_s,
        "gr_fec_bler": gr_bler,
        "speedup_vs_gr_fec": gr_s / ours_s,
        "snr_db": float(snr_db),
        "ours_mbps": info_mbit / ours_s,
        "ours_bler": float(np.mean(np.any(bits != info, axis=1))),
        "ours_mean_iters": float(iters.mean()),
        "ldpc_pkg_mbps": info_mbit / theirs_s,
        "ldpc_pkg_bler": float(np.mean(np.any(theirs[:, : code.k] != info, axis=1))),
        "speedup": theirs_s / ours_s,
    }
