"""A test system for the closed CSI loop (``adapt: closed_loop``): the ``link`` system with
``encode_with_csi``, which writes what it was told (batch, SNR, channel column) into its
manifest; its scorer reports that as the batch's ``choice``, so the metrics rows show it.
Registered through ``testbed.registry.load_plugins``."""
from __future__ import annotations

import numpy as np

from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, Items
from testbed.systems.link import LinkSystem


@register("system", "csi_link")
class CsiLinkSystem(LinkSystem):
    """``link`` payloads; ``encode_with_csi`` records its arguments (csi as M [re, im] pairs)."""

    name = "csi_link"

    def encode_with_csi(self, items: Items, csi: np.ndarray | None, snr_db: float, batch: int,
                        sinr_db: float | None = None) -> Encoded:
        encoded = self.encode(items, snr_db, batch)
        told = None if csi is None else [[float(c.real), float(c.imag)] for c in csi]
        encoded.manifest["told"] = {"batch": batch, "snr_db": snr_db, "sinr_db": sinr_db, "csi": told}
        return encoded

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict:
        return {**super().score(items, manifest, decoded), "choice": manifest.get("told")}
