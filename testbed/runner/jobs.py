"""Job lists (what a TX process sends) and result lists (what an RX process received) as npz.

Variable-length payloads are stored concatenated with offsets. Jobs: ``payload_u8`` or
``payload_c64`` plus ``offsets`` int64 (n+1,), and per-job int arrays ``system``, ``user``,
``seq``, ``modulation``, ``code`` (header ids). Results add ``payload_ok``, ``snr_est_db``,
``evm_db``, ``cfo_hz``, ``start`` and the hard information bits (``bits`` + ``bit_offsets``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from testbed.phy.frame import FrameJob
from testbed.phy.payload import PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.runner.files import write_npz

_INT_FIELDS = ("system", "user", "seq")


def _concat(chunks: list[np.ndarray], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([c.size for c in chunks])
    data = np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype)
    return data, offsets


def _payload_array(payload: bytes | np.ndarray) -> np.ndarray:
    if isinstance(payload, (bytes, bytearray)):
        return np.frombuffer(bytes(payload), dtype=np.uint8)
    return np.asarray(payload, dtype=np.complex64)


def save_jobs(path: str | Path, jobs: list[FrameJob]) -> None:
    """Write jobs (all digital or all analog) to ``path`` atomically."""
    analog = bool(jobs) and jobs[0].fmt.analog
    data, offsets = _concat([_payload_array(j.payload) for j in jobs], np.complex64 if analog else np.uint8)
    ids = np.array([j.fmt.ids for j in jobs], dtype=np.int64).reshape(-1, 2)
    fields = {f: np.array([getattr(j, f) for j in jobs], dtype=np.int64) for f in _INT_FIELDS}
    write_npz(path, **{"payload_c64" if analog else "payload_u8": data}, offsets=offsets,
              modulation=ids[:, 0], code=ids[:, 1], **fields)


def load_jobs(path: str | Path) -> list[FrameJob]:
    z = np.load(path)
    analog = "payload_c64" in z
    data, off = (z["payload_c64"], z["offsets"]) if analog else (z["payload_u8"], z["offsets"])
    jobs = []
    for i in range(off.size - 1):
        chunk = data[off[i] : off[i + 1]]
        fmt = PayloadFormat.from_ids(int(z["modulation"][i]), int(z["code"][i]))
        payload = chunk.copy() if analog else chunk.tobytes()
        jobs.append(FrameJob(payload, fmt, **{f: int(z[f][i]) for f in _INT_FIELDS}))
    return jobs


def save_results(path: str | Path, frames: list[ReceivedFrame], sample_rate_sps: float) -> None:
    """Write received frames to ``path`` atomically (digital and analog may be mixed)."""
    digital = [f for f in frames if not f.fmt.analog]
    analog = [f for f in frames if f.fmt.analog]
    u8, u8_off = _concat([_payload_array(f.payload) for f in digital], np.uint8)
    bits, bit_off = _concat([f.bits for f in digital], np.uint8)
    c64, c64_off = _concat([f.payload for f in analog], np.complex64)
    nv, _ = _concat([f.noise_var for f in analog], np.float32)
    ordered = digital + analog
    write_npz(
        path, n_digital=np.array(len(digital)), payload_u8=u8, offsets_u8=u8_off, bits=bits, bit_offsets=bit_off,
        payload_c64=c64, noise_var=nv, offsets_c64=c64_off,
        **{f: np.array([getattr(fr.header, f) for fr in ordered], dtype=np.int64) for f in _INT_FIELDS},
        length=np.array([fr.header.length for fr in ordered], dtype=np.int64),
        modulation=np.array([fr.header.modulation for fr in ordered], dtype=np.int64),
        code=np.array([fr.header.code for fr in ordered], dtype=np.int64),
        payload_ok=np.array([fr.payload_ok for fr in ordered], dtype=bool),
        snr_est_db=np.array([fr.snr_est_db for fr in ordered], dtype=np.float64),
        evm_db=np.array([fr.evm_db for fr in ordered], dtype=np.float64),
        cfo_hz=np.array([fr.cfo * sample_rate_sps for fr in ordered], dtype=np.float64),
        start=np.array([fr.start for fr in ordered], dtype=np.int64),
    )


def load_results(path: str | Path, sample_rate_sps: float = 1e6) -> list[ReceivedFrame]:
    """The frames written by :func:`save_results` (digital ones first), as ReceivedFrame."""
    from testbed.phy.header import Header

    z = np.load(path)
    n_digital = int(z["n_digital"])
    frames = []
    for row in range(z["seq"].size):
        header = Header(**{f: int(z[f][row]) for f in ("system", "user", "seq", "length", "modulation", "code")})
        fmt = PayloadFormat.from_ids(header.modulation, header.code)
        common = dict(header=header, fmt=fmt, start=int(z["start"][row]), payload_ok=bool(z["payload_ok"][row]),
                      snr_est_db=float(z["snr_est_db"][row]), evm_db=float(z["evm_db"][row]),
                      cfo=float(z["cfo_hz"][row]) / sample_rate_sps)
        if row < n_digital:
            off, boff = z["offsets_u8"], z["bit_offsets"]
            frames.append(ReceivedFrame(payload=z["payload_u8"][off[row]:off[row + 1]].tobytes(),
                                        bits=z["bits"][boff[row]:boff[row + 1]], **common))
        else:
            i, off = row - n_digital, z["offsets_c64"]
            frames.append(ReceivedFrame(payload=z["payload_c64"][off[i]:off[i + 1]],
                                        noise_var=z["noise_var"][off[i]:off[i + 1]], **common))
    return frames
