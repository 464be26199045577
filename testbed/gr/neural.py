"""Generic neural encoder and decoder blocks, configured by a registered model name.

- ``NeuralEncoder``: message in ``image`` (PDU: f32 vector of a (3, H, W) image in [0, 1],
  metadata ``shape`` [3, H, W] and optional ``user``), message out ``pdu`` for the framer: one
  PDU of power-normalised complex symbols (c32) per image, metadata modulation "analog" and a
  ``seq`` counter.
- ``NeuralDecoder``: message in ``frames`` (the receiver's PDUs: c32 equalised symbols with
  metadata ``snr_est_db``), message out ``image`` (f32 vector + metadata shape, seq, snr_est_db).
  The image size is a block parameter: one frame carries one whole image.

Both call ``testbed.systems.deepjscc.codec.NeuralImageCodec`` (batched ONNX Runtime sessions with
explicit thread counts), or any codec given to them with the same ``encode(img, snr_db)`` /
``decode(symbols, snr_db, shape)`` (the anchor broadcast's ``AnchorCodec``); the blocks only
convert PDUs.
"""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from testbed.systems.deepjscc.codec import NeuralImageCodec


class NeuralEncoder(gr.basic_block):
    """Image PDUs -> symbol PDUs through the encoder of registered ``model``."""

    def __init__(self, model: str, snr_db: float = 10.0, threads: int = 1, codec=None) -> None:
        gr.basic_block.__init__(self, name="testbed_neural_encoder", in_sig=None, out_sig=None)
        self.codec = NeuralImageCodec(model, threads) if codec is None else codec
        self.snr_db = snr_db
        self.seq = 0
        self.images_bad = 0
        self.message_port_register_in(pmt.intern("image"))
        self.message_port_register_out(pmt.intern("pdu"))
        self.set_msg_handler(pmt.intern("image"), self._on_image)

    def set_snr_db(self, snr_db: float) -> None:
        """CSI for SNR-adaptive encoders (ADJSCC); plain DeepJSCC ignores it."""
        self.snr_db = snr_db

    def _on_image(self, msg: pmt.pmt_t) -> None:
        try:
            meta = pmt.to_python(pmt.car(msg)) or {}
            img = np.asarray(pmt.f32vector_elements(pmt.cdr(msg)), np.float32).reshape(meta["shape"])
            symbols = self.codec.encode(img, self.snr_db)
        except Exception:  # a malformed image PDU is counted, never fatal
            self.images_bad += 1
            return
        out = {"modulation": "analog", "code": "none", "seq": self.seq % 65536, "user": int(meta.get("user", 0))}
        self.seq += 1
        self.message_port_pub(pmt.intern("pdu"), pmt.cons(pmt.to_pmt(out), pmt.init_c32vector(symbols.size, symbols)))


class NeuralDecoder(gr.basic_block):
    """Received-frame PDUs -> image PDUs of ``height`` x ``width`` through registered ``model``."""

    def __init__(self, model: str, height: int = 32, width: int = 32, threads: int = 1, codec=None) -> None:
        gr.basic_block.__init__(self, name="testbed_neural_decoder", in_sig=None, out_sig=None)
        self.codec = NeuralImageCodec(model, threads) if codec is None else codec
        self.shape = (3, height, width)
        self.images = self.frames_bad = 0
        self.message_port_register_in(pmt.intern("frames"))
        self.message_port_register_out(pmt.intern("image"))
        self.set_msg_handler(pmt.intern("frames"), self._on_frame)

    def _on_frame(self, msg: pmt.pmt_t) -> None:
        meta = pmt.to_python(pmt.car(msg)) or {}
        try:
            symbols = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)), np.complex64)
            img = self.codec.decode(symbols, float(meta["snr_est_db"]), self.shape)
        except Exception:  # a frame of another system or size is counted, never fatal
            self.frames_bad += 1
            return
        self.images += 1
        out = {"shape": list(self.shape), "seq": meta.get("seq", 0), "snr_est_db": meta.get("snr_est_db")}
        self.message_port_pub(pmt.intern("image"), pmt.cons(pmt.to_pmt(out), pmt.init_f32vector(img.size, img.ravel())))
