"""What an RX node makes of one batch for its users, without GNU Radio: shared by the RX node
program (runner.nodes) and the offline replay of a recording (testbed.recordings.replay)."""
from __future__ import annotations

from typing import Any

import numpy as np

from testbed.phy.receiver import ReceivedFrame
from testbed.runner.control import Arrays
from testbed.systems.base import Decoded, System, frame_stats


def decode_users(systems: dict[str, System], users: list[dict[str, Any]], frames: list[ReceivedFrame],
                 manifests: dict[str, dict]) -> tuple[dict[str, dict], Arrays]:
    """Each user's frame counts and frame log ([start, snr_est_db, payload_ok] per frame), and
    its decoded images/arrays as ``<user>/image/<name>`` / ``<user>/array/<name>``."""
    out: dict[str, dict] = {}
    arrays: Arrays = {}
    for user in users:
        manifest = manifests[str(user["flow"])]
        mine = [f for f in frames if f.header.user == user["flow"]]
        decoded = systems[user["name"]].decode(mine, manifest)
        out[user["name"]] = frame_stats(mine, int(manifest["frames"]))
        out[user["name"]]["frame_log"] = [[int(f.start), float(f.snr_est_db), bool(f.payload_ok)] for f in mine]
        arrays.update(arrays_of(user["name"], decoded))
    return out, arrays


def arrays_of(user: str, decoded: Decoded) -> Arrays:
    out = {f"{user}/image/{name}": img for name, img in decoded.images.items()}
    out.update({f"{user}/array/{name}": np.asarray(a) for name, a in decoded.arrays.items()})
    return out


def decoded_of(user: str, arrays: Arrays) -> Decoded:
    """Inverse of :func:`arrays_of` for one user."""
    return Decoded(images={k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{user}/image/")},
                   arrays={k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{user}/array/")})
