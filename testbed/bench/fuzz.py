"""Fuzz targets: the parsers that meet untrusted input must answer with the testbed's own errors.

Each target takes arbitrary bytes and feeds them to one parser: the streaming frame receiver
(raw samples, or a real frame with bytes overwritten), the header decoder, the scenario and
radio YAML loaders, and the SigMF recording reader. A TestbedError is an answer; any other
exception is a bug. ``python -m testbed.bench.fuzz TARGET --runs N`` drives one target with
atheris (coverage-guided, where its wheel installs) or else with hypothesis; the tests run every
target 10^3 times with hypothesis (tests/test_fuzz.py), the bench command 10^5.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from testbed.errors import TestbedError


def _receiver_target(data: bytes) -> None:
    """Samples from the bytes, or a genuine frame whose bytes the input overwrites in places."""
    from testbed.phy.frame import Framer
    from testbed.phy.payload import PayloadFormat
    from testbed.phy.receiver import FrameReceiver

    if not data:
        return
    if data[0] % 2:  # raw bytes as complex64 samples (NaN and inf included)
        raw = data[1:][: len(data[1:]) // 8 * 8]
        samples = np.frombuffer(raw, np.complex64).copy()
    else:
        fmt = PayloadFormat(*[("qpsk", "none"), ("qam16", "ldpc_648_1_2"), ("qam64", "ldpc_1296_3_4")][data[0] // 2 % 3])
        wave = Framer().frame(bytes(data[1:65]), fmt, seq=data[0])
        samples = np.concatenate([np.zeros(300, np.complex64), wave, np.zeros(600, np.complex64)])
        view = samples.view(np.uint8)
        for i in range(65, len(data) - 3, 4):  # (position, value) pairs overwrite sample bytes
            view[int.from_bytes(data[i:i + 3], "little") % view.size] = data[i + 3]
    receiver = FrameReceiver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in a garbage stream is expected
        for start in range(0, samples.size, 4096):
            receiver.push(samples[start:start + 4096])
    receiver.flush()


def _header_target(data: bytes) -> None:
    from testbed.phy.header import Header, decode_header, n_coded_bits

    size = 4 * n_coded_bits()
    llr = np.frombuffer((data * (size // max(len(data), 1) + 1) + bytes(size))[:size], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        decode_header(llr.copy())
        decode_header(llr[: len(data) % n_coded_bits()].copy())  # a wrong length is a FrameError
    Header.from_bits(np.unpackbits(np.frombuffer((data + bytes(10))[:10], np.uint8)))


def mutate(seed: bytes, data: bytes) -> bytes:
    """The input itself (first byte even), or ``seed`` (a valid file) with the input's
    (position, byte) triples overwriting it and its last byte cutting it short (odd)."""
    if not data or data[0] % 2 == 0:
        return data
    out = bytearray(seed)
    for i in range(1, len(data) - 2, 3):
        out[int.from_bytes(data[i:i + 2], "little") % len(out)] = data[i + 2]
    return bytes(out[: len(out) - data[-1] % 8])


def _file_target(suffix: str, load: Callable[[Path], object], seed: Callable[[], bytes]) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(mutate(seed(), data))
            load(path)

    return target


def _shipped(relative: str) -> Callable[[], bytes]:
    return lambda: (Path(__file__).resolve().parents[2] / relative).read_bytes()


def _sigmf_seed() -> bytes:
    return json.dumps({"global": {"core:datatype": "cf32_le", "core:version": "1.0.0", "core:sample_rate": 1e6},
                       "captures": [{"core:sample_start": 0}],
                       "annotations": [{"core:sample_start": 3, "core:sample_count": 10}]}).encode()


def _load_scenario(path: Path) -> object:
    from testbed.config.scenario import load_scenario

    return load_scenario(str(path))


def _load_radio(path: Path) -> object:
    from testbed.config.radio import load_radio_config

    return load_radio_config(path)


def _read_sigmf(path: Path) -> object:
    """The bytes as a recording's .sigmf-meta beside a small valid data file."""
    from testbed.recordings.sigmf_meta import read_samples

    meta = path.with_name("rx0-ant0.sigmf-meta")
    path.rename(meta)
    meta.with_suffix(".sigmf-data").write_bytes(np.zeros(64, np.complex64).tobytes())
    return read_samples(meta)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "receiver": _receiver_target,
    "header": _header_target,
    "scenario": _file_target(".yaml", _load_scenario, _shipped("testbed/scenarios/broadcast-4users.yaml")),
    "radio": _file_target(".yaml", _load_radio, _shipped("firmware_configs/b210.yaml")),
    "sigmf": _file_target(".sigmf-meta", _read_sigmf, _sigmf_seed),
}


# Modules with numba kernels: atheris's bytecode instrumentation breaks @njit functions.
NUMBA_MODULES = ["testbed.phy.ldpc", "testbed.phy.qam", "testbed.phy.sync", "testbed.phy.mimo_sync"]


def run_one(name: str, data: bytes) -> None:
    """Feed ``data`` to target ``name``; a TestbedError is an answer, anything else propagates."""
    try:
        TARGETS[name](data)
    except TestbedError:
        pass


def hypothesis_run(name: str, runs: int, max_size: int = 8192) -> None:
    """Target ``name`` on ``runs`` hypothesis inputs (derandomised: the same ones every time)."""
    from hypothesis import HealthCheck, given, settings, strategies

    @settings(max_examples=runs, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategies.binary(max_size=max_size))
    def check(data: bytes) -> None:
        run_one(name, data)

    check()


def fuzz(name: str, runs: int, seed: int = 0) -> dict:
    """Drive target ``name`` for ``runs`` inputs (atheris where installed, else hypothesis);
    {target, engine, runs, seconds}. A crash raises the offending exception."""
    start = time.perf_counter()
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None:
        with atheris.instrument_imports(include=["testbed", "yaml", "sigmf"], exclude=NUMBA_MODULES):
            run_one(name, b"")  # imports (and instruments for coverage) what the target uses
        # libFuzzer writes a crashing input as crash-<sha1> into the working directory by default;
        # it goes to the temporary directory instead, named in libFuzzer's own crash report.
        prefix = f"-artifact_prefix={Path(tempfile.gettempdir()) / 'testbed-fuzz-'}"
        atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed + 1}", "-max_len=8192", prefix],
                      lambda data: run_one(name, data))
        atheris.Fuzz()  # exits the process when the runs are done (libFuzzer's way)
    hypothesis_run(name, runs)
    return {"target": name, "engine": "hypothesis", "runs": runs, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(fuzz(args.target, args.runs, args.seed)))


if __name__ == "__main__":
    main()
