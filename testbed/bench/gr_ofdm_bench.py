"""The peer a user would otherwise pick: GNU Radio's own OFDM receiver (gr-digital ``ofdm_rx``,
64-point FFT, 16-sample cyclic prefix, BPSK header, QPSK payload) against the testbed's receiver,
both on QPSK packets of the same size back to back at the same SNR, one core each.

gr-digital's ``ofdm_tx`` refuses packets above a few hundred bytes (its tagged-stream mux buffer),
so both sides send ``PACKET_BYTES``-byte packets."""
from __future__ import annotations

import time

import numpy as np
from gnuradio import blocks, digital, gr

from testbed.bench.receiver_bench import _rate, frame_stream
from testbed.phy.payload import PayloadFormat

PACKET_BYTES = 200
SNR_DB = 25.0  # gr-digital's receiver delivers few 200-byte packets at 15 dB (measured 3.5%)


def _gr_stream(n_packets: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    data = rng.integers(0, 256, n_packets * PACKET_BYTES, dtype=np.uint8)
    tb = gr.top_block()
    src = blocks.vector_source_b(data.tolist(), False)
    tagger = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, PACKET_BYTES, "packet_len")
    tx = digital.ofdm_tx(fft_len=64, cp_len=16, packet_length_tag_key="packet_len", bps_header=1, bps_payload=2,
                         rolloff=0, scramble_bits=False)
    sink = blocks.vector_sink_c()
    tb.connect(src, tagger, tx, sink)
    tb.run()
    x = np.array(sink.data(), dtype=np.complex64)
    x /= np.sqrt(np.mean(np.abs(x) ** 2) * 52 / 64)  # unit power per used carrier, as the testbed's frames
    noise = np.sqrt(10 ** (-SNR_DB / 10) / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
    return (x + noise).astype(np.complex64), data.size


def _gr_rate(x: np.ndarray) -> tuple[float, int]:
    """Samples/s of gr-digital's ofdm_rx over ``x`` and the payload bytes it delivered."""
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False)
    rx = digital.ofdm_rx(fft_len=64, cp_len=16, frame_length_tag_key="frame_length", packet_length_tag_key="length",
                         bps_header=1, bps_payload=2, scramble_bits=False)
    sink = blocks.vector_sink_b()
    tb.connect(src, rx, sink)
    start = time.perf_counter()
    tb.run()
    return x.size / (time.perf_counter() - start), len(sink.data())


def bench_gr_ofdm(n_packets: int = 400, seed: int = 0) -> dict[str, float]:
    """{"gr_sps", "gr_delivered", "ours_sps", "ours_frames", "packets"}: both receivers' rates."""
    rng = np.random.default_rng(seed)
    x, sent_bytes = _gr_stream(n_packets, rng)
    gr_sps, got = _gr_rate(x)
    ours_sps, frames = _rate(frame_stream(n_packets, PayloadFormat("qpsk"), SNR_DB, payload_bytes=PACKET_BYTES))
    return {"gr_sps": gr_sps, "gr_delivered": got / sent_bytes, "ours_sps": ours_sps,
            "ours_frames": frames / n_packets, "packets": n_packets}
