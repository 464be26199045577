"""DeepJSCC (Bourtsoulatze et al. 2019) and ADJSCC (Xu et al. 2022): the single-link baseline.

- :mod:`.model`: :class:`DeepJSCC`, the torch transceiver (``forward`` for training,
  ``encode``/``decode`` exported to ONNX).
- :mod:`.train`: time-budgeted resumable training on crops of the offline photo corpus, and the
  ``testbed train deepjscc`` command (train -> evaluate -> export -> model cards).
- :mod:`.evaluate`: PSNR / MS-SSIM on held-out whole photographs and genuine CIFAR-10 images.

- :mod:`.codec` / :mod:`.system`: whole images through the shipped ONNX models, and the
  ``deepjscc`` system of the runner.

The shipped models (``models/deepjscc/``) are registered in :mod:`testbed.models_registry`.
Nothing here imports torch at package import: the runner and the GNU Radio blocks only need
ONNX Runtime.
"""
