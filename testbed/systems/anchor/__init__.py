"""Anchor-aided multi-user semantic communication with heterogeneous decoders over a 1 -> 4
broadcast (../shared/seeds/002_dc33bc085f1347c9.txt; docs/anchor.md). ``model`` holds the networks
and the decoder-family registry, ``train`` the three training schemes, ``system`` the testbed
system, ``models`` the shipped ONNX sets (kind ``system-model``)."""
