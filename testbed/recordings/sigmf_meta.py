"""SigMF metadata of an RX node's recording: one ``<prefix>-ant<a>.sigmf-data`` per antenna
(raw cf32_le samples, written by GNU Radio's file_sink beside the receiver) and its
``.sigmf-meta``: the sample rate, the radio and its gains, the scenario, system and models (file
-> sha256), and one annotation per frame the receiver found (start sample, length, user, seq,
system, payload CRC, SNR estimate, batch). No gnuradio import here (docs/architecture.md
"Layout"); the node program calls :func:`write_meta` after every batch, so a run that dies keeps
a readable recording up to its last batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sigmf
import sigmf.error
from sigmf import SigMFFile

from testbed.errors import ConfigError

NAMESPACE = "testbed"


def data_path(prefix: str | Path, antenna: int) -> Path:
    """The raw sample file of one antenna of a recording."""
    return Path(f"{prefix}-ant{antenna}.sigmf-data")


def write_meta(prefix: str | Path, antenna: int, info: dict[str, Any], frames: list[dict[str, Any]]) -> Path:
    """Write ``<prefix>-ant<a>.sigmf-meta`` for the samples recorded so far.

    Parameters: info {"sample_rate_sps", "radio", "scenario", "system", "models", "node"} (radio: a
        dict of the radio config, gains included); frames [{"start", "samples", "user", "seq",
        "system", "payload_ok", "snr_est_db", "batch"}], every frame found so far.
    Returns: the .sigmf-meta path.
    """
    meta = SigMFFile(data_file=str(data_path(prefix, antenna)), skip_checksum=True, global_info={
        sigmf.DATATYPE_KEY: "cf32_le",
        sigmf.SAMPLE_RATE_KEY: float(info["sample_rate_sps"]),
        sigmf.HW_KEY: str(info["radio"].get("name", "")),
        sigmf.RECORDER_KEY: "semantic-PHY testbed RX node",
        sigmf.DESCRIPTION_KEY: f"scenario {info['scenario']}, node {info['node']}, antenna {antenna}",
        sigmf.EXTENSIONS_KEY: [{"name": NAMESPACE, "version": "1.0.0", "optional": True}],
        f"{NAMESPACE}:system": info["system"],
        f"{NAMESPACE}:models": info["models"],
        f"{NAMESPACE}:radio": info["radio"],
        f"{NAMESPACE}:antenna": antenna,
    })
    meta.add_capture(0, metadata={sigmf.FREQUENCY_KEY: float(info["radio"].get("center_freq_hz", 0.0))})
    for f in frames:
        meta.add_annotation(int(f["start"]), int(f["samples"]), metadata={
            sigmf.LABEL_KEY: f"user {f['user']} seq {f['seq']}",
            f"{NAMESPACE}:user": int(f["user"]), f"{NAMESPACE}:seq": int(f["seq"]),
            f"{NAMESPACE}:system": int(f["system"]), f"{NAMESPACE}:payload_ok": bool(f["payload_ok"]),
            f"{NAMESPACE}:snr_est_db": float(f["snr_est_db"]), f"{NAMESPACE}:batch": int(f["batch"])})
    path = Path(f"{prefix}-ant{antenna}.sigmf-meta")
    meta.tofile(str(path), skip_validate=True, overwrite=True)
    return path


def read_samples(meta: str | Path) -> np.ndarray:
    """The complex64 samples of one recorded antenna, read through its ``.sigmf-meta`` with the
    ``sigmf`` package. ConfigError naming the file when the metadata is not SigMF the testbed
    wrote (bad JSON, missing fields, another datatype) or the data file does not match it."""
    import sigmf.sigmffile

    try:
        record = sigmf.sigmffile.fromfile(str(meta), skip_checksum=True)
        datatype = record.get_global_info().get(sigmf.DATATYPE_KEY)
        if datatype != "cf32_le":
            raise ConfigError(f"{meta}: datatype {datatype!r}; allowed: cf32_le (what the testbed records)")
        return np.asarray(record.read_samples(), np.complex64)
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, sigmf.error.SigMFError) as err:
        raise ConfigError(f"{meta}: not a readable testbed SigMF recording ({type(err).__name__}: {err})") from None
