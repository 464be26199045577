"""Raw gr-zeromq peer for the chain benchmark: ``push ADDR N`` sends N samples from a vector
source, ``pull ADDR N`` receives N samples into a null sink and stops on that count."""
from __future__ import annotations

import sys
import time

import numpy as np
from gnuradio import blocks, gr, zeromq


def main(role: str, addr: str, n: int) -> int:
    tb = gr.top_block()
    if role == "push":
        src = blocks.vector_source_c(np.zeros(1 << 16, np.complex64).tolist(), True)
        head = blocks.head(gr.sizeof_gr_complex, n)
        sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, addr, 100, False, -1)
        tb.connect(src, head, sink)
        tb.run()
        return 0
    src = zeromq.pull_source(gr.sizeof_gr_complex, 1, addr, 100, False, -1)
    sink = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, sink)
    tb.start()
    while sink.nitems_read(0) < n:
        time.sleep(0.005)
    tb.stop()
    tb.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
