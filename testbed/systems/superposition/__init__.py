"""DeepSCM: deep-learning superposition coded modulation for hierarchical semantics over a
1 -> 2 broadcast (../shared/seeds/003_75f868b86f184b01.txt), with its coded-modulation and
SSCC/TDMA baselines (docs/superposition.md). ``system`` registers the testbed system,
``models`` the shipped ONNX models (kind ``system-model``)."""
