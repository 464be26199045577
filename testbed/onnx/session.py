"""ONNX Runtime sessions that check a shipped model against its card before running it.

    model = OnnxModel("models/deepjscc/adjscc-r6.encoder.onnx", threads=1)
    out = model.run(image=images, snr_db=snr)   # {"symbols": float32 (N, 512, 2)}

Loading refuses (ModelError naming the file and what is wrong) a missing file or card, a file
whose sha256 differs from the card's, a file ONNX Runtime cannot load, and input/output names,
shapes or dtypes that differ from the card's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from testbed.errors import ModelError
from testbed.onnx.card import read_card, sha256_file

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
               "tensor(float16)": "float16"}


def _shape(shape) -> list:
    """A shape with every symbolic (dynamic) dimension written as "N"."""
    return [dim if isinstance(dim, int) else "N" for dim in shape]


class OnnxModel:
    """A checked ONNX Runtime session of one model file.

    Parameters: path of the ``.onnx`` file (its card is the ``.json`` of the same stem);
        threads, ONNX Runtime's intra-op threads (inter-op is 1, sequential execution);
        batch_size, the largest batch one ``session.run`` call gets (``run`` splits larger ones).
    Attributes: path, card (dict), input_names, output_names, session.
    Raises: ModelError naming the file and the mismatch.
    """

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int = 256) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file is missing")
        self.card = read_card(self.path)
        digest = sha256_file(self.path)
        if digest != self.card["sha256"]:
            raise ModelError(f"{self.path}: sha256 mismatch (card {str(self.card['sha256'])[:12]}…, "
                             f"file {digest[:12]}…)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001  (ORT raises several exception types)
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it, the file is corrupt ({err})") from None
        self._check("input", self.session.get_inputs(), self.card["inputs"])
        self._check("output", self.session.get_outputs(), self.card["outputs"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check(self, kind: str, actual, expected: list[dict]) -> None:
        names = [a.name for a in actual]
        card_names = [e.get("name") for e in expected]
        if names != card_names:
            raise ModelError(f"{self.path}: {kind} names {names} differ from the card's {card_names}")
        shapes = [_shape(a.shape) for a in actual]
        card_shapes = [_shape(e.get("shape", [])) for e in expected]
        if shapes != card_shapes:
            raise ModelError(f"{self.path}: {kind} shapes {shapes} differ from the card's {card_shapes}")
        dtypes = [_ORT_DTYPES.get(a.type, a.type) for a in actual]
        card_dtypes = [e.get("dtype") for e in expected]
        if dtypes != card_dtypes:
            raise ModelError(f"{self.path}: {kind} dtypes {dtypes} differ from the card's {card_dtypes}")

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run on named inputs, float32 arrays with a common batch size N (split into batches).

        Returns: {output name: array} with the batch axis N first.
        Raises: ModelError when the input names or batch sizes are wrong.
        """
        if sorted(inputs) != sorted(self.input_names):
            raise ModelError(f"{self.path}: run() got inputs {sorted(inputs)}; the model takes {self.input_names}")
        arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in inputs.items()}
        sizes = {name: a.shape[0] if a.ndim else None for name, a in arrays.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise ModelError(f"{self.path}: inputs must share the batch axis; got batch sizes {sizes}")
        n = next(iter(sizes.values()))
        chunks = []
        for start in range(0, max(n, 1), self.batch_size):
            feed = {name: a[start:start + self.batch_size] for name, a in arrays.items()}
            chunks.append(self.session.run(self.output_names, feed))
        return {name: np.concatenate([c[i] for c in chunks]) for i, name in enumerate(self.output_names)}

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, inputs={self.input_names}, outputs={self.output_names})"
