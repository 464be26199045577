"""Benchmarks of the testbed's compute kernels (LDPC decoding, ...)."""
