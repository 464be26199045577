"""ONNX export, model cards, checked runtime sessions and parity checks (docs/architecture.md "Contracts").

- :mod:`.export`: ``export_model(model, out_dir, name) -> (encoder.onnx, decoder.onnx)``.
- :mod:`.card`: the JSON model card beside every ``.onnx`` (sha256, names, shapes, metrics, ...).
- :mod:`.session`: :class:`OnnxModel`, an ONNX Runtime session that refuses files not matching
  their card (ModelError naming the file and the mismatch).
- :mod:`.verify`: ``verify_model(entry)`` (list of problems) and ``parity(entry)`` (ONNX vs torch).

Submodules are imported on use, so ``import testbed.onnx`` stays cheap.
"""
