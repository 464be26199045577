"""MU-ASCC: adaptive source-channel coding for data and semantic users over a MU-MISO downlink.

Implements ../shared/seeds/001_ef80d34948c98c54.txt; the optimiser (finite-blocklength BER,
logistic distortion fits, JRPB) lives in :mod:`testbed.optim`. This package holds the learned
codecs (:mod:`.codec`, trained by :mod:`.train_codec`) and the measured end-to-end distortion
under random bit flips (:mod:`.distortion`); their ONNX export (:mod:`.export`) and the
ONNX Runtime codec (:mod:`.onnx_codec`).
"""
