"""IRS YAML: the geometry of a software intelligent reflecting surface and of the nodes around it.

    rows: 8                      # elements per column of the surface
    cols: 8                      # elements per row
    spacing_wavelengths: 0.5     # element spacing
    position_m: [0, 0, 2]        # centre of the surface (x, y, z) in metres
    yaw_deg: 0                   # the surface faces (cos yaw, sin yaw, 0)
    freq_hz: 2.4e9
    k_factor_db: 10              # Rician K of the TX -> IRS and IRS -> RX paths
    path_loss_exponent: 2.0      # 2 = Friis free space (testbed.channels.irs.path_loss_db)
    phase_bits: 1                # 1-bit surface; omit (null) for continuous phases
    direct: {model: rayleigh, k_factor_db: 0, path_loss_exponent: 3.0}   # model none: no direct link
    tx_positions_m: [[10, -5, 1.5]]
    rx_positions_m: [[10, 5, 1.5], [8, 6, 1.5]]

:meth:`IrsConfig.channel` builds the :class:`testbed.channels.irs.IrsChannel`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from testbed.channels.irs import IrsChannel, PathModel, SoftwareIrs, UniformPlanarArray
from testbed.config.yaml_io import load_yaml, validate

DIRECT_MODELS = ("rician", "rayleigh", "none")
MAX_SIDE = 256
Position = tuple[float, float, float]


def _finite(field: str, value: float, low: float | None = None) -> float:
    """``value`` unless it is not finite or not > ``low``; ValueError naming field, value and allowed."""
    if not math.isfinite(value) or (low is not None and value <= low):
        allowed = "a finite number" if low is None else f"a finite number > {low:g}"
        raise ValueError(f"irs.{field} = {value!r} is invalid; allowed: {allowed}")
    return value


class DirectLinkConfig(BaseModel):
    """The direct TX -> RX link of every node pair (besides the path through the surface)."""

    model_config = ConfigDict(extra="forbid")
    model: str = "rayleigh"
    k_factor_db: float = 0.0
    path_loss_exponent: float = 3.0

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in DIRECT_MODELS:
            raise ValueError(f"irs.direct.model = {value!r} is unknown; allowed: {', '.join(DIRECT_MODELS)}")
        return value

    @field_validator("k_factor_db")
    @classmethod
    def _k_finite(cls, value: float) -> float:
        return _finite("direct.k_factor_db", value)

    @field_validator("path_loss_exponent")
    @classmethod
    def _exponent(cls, value: float) -> float:
        return _finite("direct.path_loss_exponent", value, 0.0)

    def path(self) -> PathModel | None:
        """The PathModel of the direct links; None when ``model`` is none."""
        if self.model == "none":
            return None
        return PathModel(self.k_factor_db if self.model == "rician" else None, self.path_loss_exponent)


class IrsConfig(BaseModel):
    """A validated IRS file (see module docstring)."""

    model_config = ConfigDict(extra="forbid")
    rows: int = 8
    cols: int = 8
    spacing_wavelengths: float = 0.5
    position_m: Position = (0.0, 0.0, 0.0)
    yaw_deg: float = 0.0
    freq_hz: float = 2.4e9
    k_factor_db: float = 10.0
    path_loss_exponent: float = 2.0
    phase_bits: int | None = None
    direct: DirectLinkConfig = Field(default_factory=DirectLinkConfig)
    tx_positions_m: list[Position] = Field(min_length=1)
    rx_positions_m: list[Position] = Field(min_length=1)

    @field_validator("rows", "cols")
    @classmethod
    def _side(cls, value: int, info: ValidationInfo) -> int:
        if not 1 <= value <= MAX_SIDE:
            raise ValueError(f"irs.{info.field_name} = {value!r} is invalid; allowed: an integer 1..{MAX_SIDE}")
        return value

    @field_validator("spacing_wavelengths", "freq_hz", "path_loss_exponent")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        return _finite(info.field_name, value, 0.0)

    @field_validator("yaw_deg", "k_factor_db")
    @classmethod
    def _finite_number(cls, value: float, info: ValidationInfo) -> float:
        return _finite(info.field_name, value)

    @field_validator("position_m")
    @classmethod
    def _finite_position(cls, value: Position) -> Position:
        if not all(math.isfinite(v) for v in value):
            raise ValueError(f"irs.position_m = {list(value)!r} is invalid; allowed: three finite numbers (metres)")
        return value

    @field_validator("tx_positions_m", "rx_positions_m")
    @classmethod
    def _finite_positions(cls, value: list[Position], info: ValidationInfo) -> list[Position]:
        for position in value:
            if not all(math.isfinite(v) for v in position):
                raise ValueError(
                    f"irs.{info.field_name} = {list(position)!r} is invalid; allowed: three finite numbers (metres)"
                )
        return value

    @field_validator("phase_bits")
    @classmethod
    def _bits(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 16:
            raise ValueError(f"irs.phase_bits = {value!r} is invalid; allowed: 1..16 or null (continuous)")
        return value

    def array(self) -> UniformPlanarArray:
        """The surface geometry."""
        return UniformPlanarArray(rows=self.rows, cols=self.cols, freq_hz=self.freq_hz, position_m=self.position_m,
                                  yaw_rad=math.radians(self.yaw_deg), spacing_wavelengths=self.spacing_wavelengths)

    def channel(self, seed: int) -> IrsChannel:
        """The IrsChannel of this geometry, its draws keyed by ``seed`` (integer >= 0)."""
        return IrsChannel(self.array(), self.tx_positions_m, self.rx_positions_m, seed,
                          irs_path=PathModel(self.k_factor_db, self.path_loss_exponent),
                          direct_path=self.direct.path())

    def software_irs(self, channel: IrsChannel, apply: Callable[[np.ndarray], None] | None = None) -> SoftwareIrs:
        """The SoftwareIrs backend of ``channel`` quantising to ``phase_bits`` (see SoftwareIrs for ``apply``)."""
        return SoftwareIrs(channel, self.phase_bits, apply)


def load_irs_config(path: str | Path) -> IrsConfig:
    """Read and validate an IRS YAML file; ConfigError naming the file, field, value and allowed."""
    return validate(IrsConfig, load_yaml(path), str(path))
