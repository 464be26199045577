"""Schema of a radio YAML (``firmware_configs/*.yaml``) checked against each device's real limits.

A radio config names the backend (``zmq`` virtual radio, ``uhd`` USRP, ``pluto`` PlutoSDR), the
device model and its RF settings. Everything is checked before a flowgraph is built: an unknown
key, a backend that does not drive the device, or a frequency, rate, gain, bandwidth or channel
outside the device's range is refused with the field, the value and the allowed range.

Limits (sources):

- Pluto (ADALM-PLUTO, AD9363): stock firmware tunes 325 MHz..3.8 GHz; the ad9361 IIO driver
  accepts sample rates 520.833 kS/s (2.083 MS/s with the FIR decimating by 4) ..61.44 MS/s and
  RF bandwidths 200 kHz..56 MHz; TX gain is the driver's ``hardwaregain`` = -attenuation,
  -89.75..0 dB in 0.25 dB steps; manual RX gain 0..73 dB (below 1.3 GHz; the driver tops out at
  71 dB above). 1r1t stock, 2r2t on Rev C/D boards with the AD9361 mode firmware. Sources:
  https://wiki.analog.com/university/tools/pluto/users/customizing,
  https://wiki.analog.com/resources/tools-software/linux-drivers/iio-transceiver/ad9361,
  pyadi-iio adi/ad936x.py.
- USRP B200/B210 (AD9361 RFIC): 70 MHz..6 GHz, analog bandwidth 200 kHz..56 MHz, master clock
  up to 61.44 MHz so rates up to 56 MS/s over USB 3 with one channel and 30.72 MS/s per channel
  with two; TX gain 0..89.75 dB (UHD's 0.25 dB steps, quoted "89.8 dB"), RX gain 0..76 dB.
  B200: one TX, one RX; B210: two of each. Source: UHD manual "USRP B2x0 Series",
  https://files.ettus.com/manual/page_usrp_b200.html.
- USRP X310 with UBX-160: 10 MHz..6 GHz, 160 MHz bandwidth, 200 MHz master clock so up to
  200 MS/s per channel, TX and RX gain 0..31.5 dB, two daughterboard slots. Sources:
  https://files.ettus.com/manual/page_usrp_x3x0.html, https://files.ettus.com/manual/page_dboards.html.
- USRP N210 with WBX: 50 MHz..2.2 GHz, 40 MHz bandwidth, 100 MHz master clock, 25 MS/s over
  Gigabit Ethernet with sc16 samples, RX gain 0..31.5 dB, TX gain 0..31 dB (WBX v3/v4 and
  WBX-120; the old v2 stops at 25 dB and UHD clips), one slot. Source: UHD manual, page_dboards
  and page_usrp2.
- USRP lower rate bounds are master clock / largest DSP decimation (about 195 kS/s on N210 and
  X310, 62.5 kS/s on B2x0 at its default 32 MHz clock); UHD coerces below them.
- ZMQ virtual radios have no RF: frequency, rate and gains are nominal (recorded, not applied).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from testbed.config.yaml_io import format_number, load_yaml, validate

Backend = Literal["zmq", "uhd", "pluto"]
Device = Literal["b200", "b210", "x310", "n210", "pluto", "zmq"]
RefSource = Literal["internal", "external", "gpsdo"]
Range = tuple[float, float]
INF = math.inf


@dataclass(frozen=True)
class DeviceLimits:
    """Hardware limits of one device model; ranges are inclusive (low, high)."""

    backend: str
    freq_hz: Range
    rate_sps: Range
    bandwidth_hz: Range
    tx_gain_db: Range
    rx_gain_db: Range
    max_channels: int
    antennas: tuple[str, ...] = ()
    rate_sps_two_channels: float = INF  # per-channel rate limit when two channels stream


DEVICE_LIMITS: dict[str, DeviceLimits] = {
    "pluto": DeviceLimits("pluto", (325e6, 3.8e9), (520_833, 61.44e6), (200e3, 56e6),
                          (-89.75, 0.0), (0.0, 73.0), 2),
    "b200": DeviceLimits("uhd", (70e6, 6e9), (62.5e3, 56e6), (200e3, 56e6),
                         (0.0, 89.75), (0.0, 76.0), 1, ("TX/RX", "RX2")),
    "b210": DeviceLimits("uhd", (70e6, 6e9), (62.5e3, 56e6), (200e3, 56e6),
                         (0.0, 89.75), (0.0, 76.0), 2, ("TX/RX", "RX2"), 30.72e6),
    "x310": DeviceLimits("uhd", (10e6, 6e9), (195.3125e3, 200e6), (0.0, 160e6),
                         (0.0, 31.5), (0.0, 31.5), 2, ("TX/RX", "RX2", "CAL")),
    "n210": DeviceLimits("uhd", (50e6, 2.2e9), (195.3125e3, 25e6), (0.0, 40e6),
                         (0.0, 31.0), (0.0, 31.5), 1, ("TX/RX", "RX2")),
    "zmq": DeviceLimits("zmq", (0.0, INF), (0.0, INF), (0.0, INF),
                        (-INF, INF), (-INF, INF), 64),
}
# The UHD ``type=`` device argument that each USRP model answers to.
UHD_TYPES = {"b200": "b200", "b210": "b200", "x310": "x300", "n210": "usrp2"}
PLUTO_URI_PREFIXES = ("ip:", "usb:", "local:", "serial:")


def _range(low: float, high: float, unit: str) -> str:
    return f"{format_number(low)}..{format_number(high)} {unit}"


class RadioConfig(BaseModel):
    """One radio: backend, device model and RF settings (units in the field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    backend: Backend
    device: Device
    args: str = ""  # UHD device args ("type=b200,serial=..."), Pluto URI ("ip:192.168.2.1"), "" = any
    center_freq_hz: float
    sample_rate_sps: float = Field(gt=0)
    bandwidth_hz: float | None = Field(default=None, gt=0)
    tx_gain_db: float
    rx_gain_db: float
    tx_backoff_db: float = Field(default=15.0, ge=0.0, le=40.0)  # hardware: TX RMS below DAC full scale
    tx_channels: list[int] = [0]
    rx_channels: list[int] = [0]
    clock_source: RefSource = "internal"
    time_source: RefSource = "internal"
    antenna: str | None = None  # RX antenna port of a USRP; TX always uses TX/RX

    @model_validator(mode="after")
    def _check_device_limits(self) -> RadioConfig:
        problems = _device_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def limits(self) -> DeviceLimits:
        """The hardware limits this config was checked against."""
        return DEVICE_LIMITS[self.device]


def _device_problems(cfg: RadioConfig) -> list[str]:
    """Every way ``cfg`` breaks its device's limits, one message per problem."""
    lim = DEVICE_LIMITS[cfg.device]
    dev = f"device {cfg.device!r}"
    problems = []
    if cfg.backend != lim.backend:
        problems.append(f"backend = {cfg.backend!r} cannot drive {dev}; allowed: {lim.backend!r}")
    checks = [
        ("center_freq_hz", cfg.center_freq_hz, lim.freq_hz, "Hz"),
        ("sample_rate_sps", cfg.sample_rate_sps, lim.rate_sps, "S/s"),
        ("tx_gain_db", cfg.tx_gain_db, lim.tx_gain_db, "dB"),
        ("rx_gain_db", cfg.rx_gain_db, lim.rx_gain_db, "dB"),
    ]
    if cfg.bandwidth_hz is not None:
        checks.append(("bandwidth_hz", cfg.bandwidth_hz, lim.bandwidth_hz, "Hz"))
    for field, value, (low, high), unit in checks:
        if not low <= value <= high:
            problems.append(f"{field} = {format_number(value)} is outside "
                            f"{_range(low, high, unit)} allowed for {dev}")
    for field in ("tx_channels", "rx_channels"):
        channels = getattr(cfg, field)
        if any(not 0 <= ch < lim.max_channels for ch in channels) or len(set(channels)) != len(channels):
            problems.append(f"{field} = {channels} is not a list of distinct channels in "
                            f"0..{lim.max_channels - 1} allowed for {dev}")
    if not cfg.tx_channels and not cfg.rx_channels:
        problems.append("tx_channels and rx_channels are both empty; at least one channel is needed")
    two_channels = max(len(cfg.tx_channels), len(cfg.rx_channels)) > 1
    if two_channels and cfg.sample_rate_sps > lim.rate_sps_two_channels:
        problems.append(f"sample_rate_sps = {format_number(cfg.sample_rate_sps)} is above "
                        f"{format_number(lim.rate_sps_two_channels)} S/s allowed for {dev} with two channels")
    problems.extend(_args_problems(cfg, dev))
    if lim.backend != "uhd":
        for field in ("clock_source", "time_source"):
            if getattr(cfg, field) != "internal":
                problems.append(f"{field} = {getattr(cfg, field)!r} is not supported by {dev}; "
                                "allowed: 'internal'")
    if cfg.antenna is not None and cfg.antenna not in lim.antennas:
        allowed = ", ".join(repr(a) for a in lim.antennas) or "none (leave unset)"
        problems.append(f"antenna = {cfg.antenna!r} is not a port of {dev}; allowed: {allowed}")
    return problems


def _args_problems(cfg: RadioConfig, dev: str) -> list[str]:
    """Problems with ``args``: a Pluto URI scheme, or UHD key=value pairs naming the right type."""
    if not cfg.args:
        return []
    if cfg.backend == "pluto" and not cfg.args.startswith(PLUTO_URI_PREFIXES):
        return [f"args = {cfg.args!r} is not an IIO URI; allowed: {', '.join(PLUTO_URI_PREFIXES)}... or ''"]
    if cfg.backend == "uhd":
        pairs = [item.partition("=") for item in cfg.args.split(",")]
        if any(not key.strip() or not sep for key, sep, _ in pairs):
            return [f"args = {cfg.args!r} is not a UHD device address; allowed: key=value[,key=value...]"]
        given = {key.strip(): value.strip() for key, _, value in pairs}.get("type")
        if given is not None and given != UHD_TYPES[cfg.device]:
            return [f"args type = {given!r} does not match {dev}; allowed: {UHD_TYPES[cfg.device]!r}"]
    return []


def load_radio_config(path: str | Path) -> RadioConfig:
    """Load and validate a radio YAML; ConfigError naming the file, field, value and range."""
    return validate(RadioConfig, load_yaml(path), str(path))
