"""The constellations of DeepSCM in numpy (no torch: the node processes use it).

A square M-QAM symbol is two independent sqrt(M)-PAM levels (I and Q). DeepSCM superposes an
inner M1-QAM and an outer M2-QAM, Y = sqrt(a) Y1 + sqrt(1 - a) Y2 (eq. 4 of
../shared/seeds/003_75f868b86f184b01.txt), each of unit mean power; with the rectangular
factors a = 0.8 (4QAM x 4QAM) and 32/42 (4QAM x 16QAM) the super-constellation is exactly the
unit-power Gray-free 16- or 64-QAM grid.
"""
from __future__ import annotations

import math

import numpy as np

# sqrt(a/2) / sqrt((1-a)/2) = 2 (4QAM x 4QAM -> 16-QAM); sqrt(a/2) / sqrt((1-a)/10) = 4 (4QAM x 16QAM -> 64-QAM)
RECTANGULAR_ALPHA = {(4, 4): 0.8, (4, 16): 32.0 / 42.0}


def pam_levels(order: int) -> np.ndarray:
    """The sqrt(order) PAM levels (float32, ascending) of a square ``order``-QAM with unit power."""
    side = math.isqrt(order)
    if side * side != order or side < 2:
        raise ValueError(f"QAM order = {order} is not a square of an integer >= 2; allowed: 4, 16, 64, 256")
    levels = np.arange(side, dtype=np.float64) * 2 - (side - 1)
    return (levels / math.sqrt(2.0 * (order - 1) / 3.0)).astype(np.float32)


def layer_levels(architecture: dict) -> list[np.ndarray]:
    """Per transmitted layer, its PAM levels already scaled by its power share: DeepSCM
    [sqrt(a) inner, sqrt(1-a) outer]; CM [the levels of its one QAM]."""
    if "order1" in architecture:
        alpha = float(architecture["alpha"])
        return [math.sqrt(alpha) * pam_levels(architecture["order1"]),
                math.sqrt(1.0 - alpha) * pam_levels(architecture["order2"])]
    return [pam_levels(architecture["order"])]


def super_levels(architecture: dict) -> np.ndarray:
    """All PAM levels (ascending) one real dimension of the transmitted symbols can take."""
    grid = np.zeros(1, np.float32)
    for levels in layer_levels(architecture):
        grid = (grid[:, None] + levels[None, :]).reshape(-1)
    return np.sort(grid).astype(np.float32)


def demap(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each real value replaced by the nearest of ``levels`` (ascending); same shape, float32."""
    edges = (levels[1:] + levels[:-1]) / 2
    return levels[np.searchsorted(edges, values)].astype(np.float32)
