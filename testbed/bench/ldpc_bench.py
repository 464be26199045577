"""Throughput and BLER of our LDPC decoder against the ``ldpc`` package's BpDecoder.

Code: IEEE 802.11n n = 648, R = 1/2 (``testbed.phy.ldpc``), QPSK over AWGN (Gray QPSK carries two
independent BPSK bits, so these are BPSK LLRs at Eb/N0 = Es/N0 / (2 R)), both decoders min-sum with
scaling 0.75 and the same ``max_iter``. Information throughput counts k bits per codeword.
"""

import time

import numpy as np

from testbed.phy.ldpc import MIN_SUM_SCALE, get_code
from testbed.phy.qam import QamModem

CODE = "ldpc_648_1_2"


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


def bench_ldpc(n_codewords: int = 2000, snr_db: float = 2.0, max_iter: int = 20,
               seed: int = 0) -> dict:
    """Compare our decoder with ldpc.BpDecoder on the same LLRs.

    ``snr_db`` is Es/N0 of the QPSK symbols (= Eb/N0 for R = 1/2); at 2 dB the BLER is about 1e-2.
    Returns floats: ``snr_db``, ``ours_mbps``, ``ours_bler``, ``ours_mean_iters``,
    ``ldpc_pkg_mbps``, ``ldpc_pkg_bler``, ``speedup``.
    """
    code = get_code(CODE)
    info, llr = _awgn_llrs(n_codewords, snr_db, seed)
    code.decode(llr[:8], max_iter)
    start = time.perf_counter()
    bits, _, iters = code.decode(llr, max_iter)
    ours_s = time.perf_counter() - start
    theirs, theirs_s = _ldpc_package_decode(llr, max_iter)
    info_mbit = n_codewords * code.k / 1e6
    return {
        "snr_db": float(snr_db),
        "ours_mbps": info_mbit / ours_s,
        "ours_bler": float(np.mean(np.any(bits != info, axis=1))),
        "ours_mean_iters": float(iters.mean()),
        "ldpc_pkg_mbps": info_mbit / theirs_s,
        "ldpc_pkg_bler": float(np.mean(np.any(theirs[:, : code.k] != info, axis=1))),
        "speedup": theirs_s / ours_s,
    }
