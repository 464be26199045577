"""Image source and sink message blocks for flowgraphs with neural transceivers.

- ``ImageSource``: publishes images as PDUs on its ``image`` port, one every ``period_ms``, from
  its own thread (started in ``start()``, stopped in ``stop()``). PDU: f32 vector of a (3, H, W)
  image in [0, 1] with metadata ``shape`` [3, H, W], ``index`` (position in ``images``) and
  ``name``, exactly what :class:`testbed.gr.neural.NeuralEncoder` takes.
- ``ImageSink``: keeps the images arriving on its ``image`` port (PDUs of
  :class:`testbed.gr.neural.NeuralDecoder`) and writes them as PNG files when ``out_dir`` is set.

Message ports have no backpressure: the source is paced by ``period_ms`` only, so choose a period
the downstream encoder, framer and radio keep up with (the framer counts what it drops).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr
from PIL import Image

from testbed.data.images import default_images, load_folder, to_array, to_pil
from testbed.errors import ConfigError

DEFAULT_FOLDERS = ("", "default")


def square_image(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop a float32 (3, H, W) image to a square and resize it (Lanczos) to (3, size, size).

    The result is quantised to 8 bits like any image file, float32 in [0, 1].
    """
    _, height, width = img.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = img[:, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crop, dtype=np.float32)
    return to_array(to_pil(crop).resize((size, size), Image.Resampling.LANCZOS))


class ImageSource(gr.basic_block):
    """Message source of image PDUs on port ``image``.

    Parameters:
        folder: ``"default"`` (or empty) for the embedded default images, else a folder of images
            (read with :func:`testbed.data.images.load_folder`).
        period_ms: time between two images (the first leaves at once when the flowgraph starts).
        repeat: start again from the first image after the last one; else stop publishing.
        size: side of the square each image is centre-cropped and resized to (one frame carries one
            whole image, so keep it small: 32 for the shipped models).

    Attributes: images (list of (name, float32 (3, size, size)), in publishing order),
        images_sent (counter), done (threading.Event, set once every image is sent without repeat).
    """

    def __init__(self, folder: str = "default", period_ms: int = 200, repeat: bool = False, size: int = 32) -> None:
        gr.basic_block.__init__(self, name="testbed_image_source", in_sig=None, out_sig=None)
        if int(size) < 1:
            raise ConfigError(f"image source size {size} is invalid; allowed: a positive number of pixels")
        if float(period_ms) < 0:
            raise ConfigError(f"image source period_ms {period_ms} is invalid; allowed: >= 0")
        loaded = default_images() if str(folder) in DEFAULT_FOLDERS else load_folder(folder)
        self.images = [(name, square_image(img, int(size))) for name, img in loaded]
        self.period_s = float(period_ms) / 1000.0
        self.repeat = bool(repeat)
        self.images_sent = 0
        self.done = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = pmt.intern("image")
        self.message_port_register_out(self.port)

    def start(self) -> bool:
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="testbed_image_source", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> bool:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        return True

    def _run(self) -> None:
        index = 0
        while not self._halt.is_set():
            if index >= len(self.images):
                if not self.repeat:
                    self.done.set()
                    return
                index = 0
            name, img = self.images[index]
            meta = pmt.to_pmt({"shape": list(img.shape), "index": index, "name": name})
            self.message_port_pub(self.port, pmt.cons(meta, pmt.init_f32vector(img.size, img.ravel())))
            self.images_sent += 1
            index += 1
            self._halt.wait(self.period_s)


class ImageSink(gr.basic_block):
    """Message sink of image PDUs on port ``image``.

    Parameters:
        out_dir: folder to write each image to as ``image_<n>_seq<seq>.png`` (created if missing);
            empty: keep them in memory only.

    Attributes: images (list of float32 (3, H, W)), metas (their metadata dicts), images_received,
        images_bad (malformed PDUs, counted and skipped), files (paths written).
    """

    def __init__(self, out_dir: str = "") -> None:
        gr.basic_block.__init__(self, name="testbed_image_sink", in_sig=None, out_sig=None)
        self.out_dir = Path(out_dir) if str(out_dir) else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.images: list[np.ndarray] = []
        self.metas: list[dict] = []
        self.files: list[Path] = []
        self.images_received = self.images_bad = 0
        self.message_port_register_in(pmt.intern("image"))
        self.set_msg_handler(pmt.intern("image"), self._on_image)

    def _on_image(self, msg: pmt.pmt_t) -> None:
        try:
            meta = pmt.to_python(pmt.car(msg)) or {}
            img = np.asarray(pmt.f32vector_elements(pmt.cdr(msg)), np.float32).reshape(meta["shape"])
        except Exception:  # a malformed PDU is counted, never fatal
            self.images_bad += 1
            return
        if self.out_dir is not None:
            path = self.out_dir / f"image_{self.images_received:05d}_seq{int(meta.get('seq', 0)):05d}.png"
            to_pil(img).save(path)
            self.files.append(path)
        self.images.append(img)
        self.metas.append(meta)
        self.images_received += 1
