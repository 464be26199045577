"""One channel definition shared by every face (torch, numpy, streaming emulator).

A :class:`ChannelSpec` says what one link does to a stream of complex symbols: a flat
coefficient (``awgn`` = 1, ``fixed`` = a given complex gain, ``rayleigh`` and ``rician`` block
fading), a multipath FIR, a carrier frequency offset,
an integer + fractional timing offset, an amplitude gain and additive white Gaussian noise. The
same spec drives training in torch (:mod:`testbed.channels.torch_face`), numpy simulation
(:mod:`testbed.channels.numpy_face`) and the GNU Radio channel emulator
(:mod:`testbed.channels.stream`), which joins TX to RX streams for every topology of docs/architecture.md
("Topologies": single link, broadcast, MU-MISO, MU-MIMO uplink).

SNR convention (docs/architecture.md "Conventions"): ``snr_db`` is Es/N0 per complex symbol relative to
unit average symbol power, so the noise variance per complex sample is
``no = 10 ** (-snr_db / 10)``. The channel never measures the signal power.

The models are registered as channel factories: ``create("channel", "rayleigh", snr_db=10)``
returns ``ChannelSpec(model="rayleigh", snr_db=10)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable

from testbed.errors import ConfigError
from testbed.registry import register

MODELS = ("awgn", "rayleigh", "rician", "fixed")
FADING_MODELS = ("rayleigh", "rician")
"""The models that draw their flat coefficient (the others are deterministic: no fading blocks)."""
MAX_TAPS = 4096


def _finite(field: str, value: Any, allowed: str = "a finite number") -> float:
    """``value`` as a float; ConfigError naming the field unless it is finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"channel.{field} {value!r} is invalid; allowed: {allowed}")
    return number


def _finite_complex(field: str, value: Any) -> complex:
    """``value`` (a number or a string such as ``"(1-2j)"``) as a complex; ConfigError naming the
    field unless both parts are finite."""
    try:
        number = complex(value)
    except (TypeError, ValueError):
        number = complex(math.nan)
    if isinstance(value, bool) or not (math.isfinite(number.real) and math.isfinite(number.imag)):
        raise ConfigError(f"channel.{field} {value!r} is invalid; allowed: a finite complex number")
    return number


def _normalised_taps(value: Any) -> tuple[complex, ...]:
    """Taps as a tuple of complex numbers scaled to unit total energy (sum |tap|^2 = 1)."""
    allowed = f"1 to {MAX_TAPS} finite complex numbers with non-zero total energy"
    try:
        taps = tuple(complex(tap) for tap in _as_iterable(value))
    except (TypeError, ValueError):
        raise ConfigError(f"channel.taps {value!r} is invalid; allowed: {allowed}") from None
    energy = sum(abs(tap) ** 2 for tap in taps)
    if not 0 < len(taps) <= MAX_TAPS or not math.isfinite(energy) or energy == 0:
        raise ConfigError(f"channel.taps {value!r} is invalid; allowed: {allowed}")
    scale = 1.0 / math.sqrt(energy)
    return tuple(tap * scale for tap in taps)


def _as_iterable(value: Any) -> Iterable[Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError("taps must be a sequence")
    return value


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
    """Parameters of one link; immutable, validated on construction.

    Attributes:
        model: ``"awgn"`` (h = 1), ``"fixed"`` (h = ``coefficient``, no fading), ``"rayleigh"``
            (h ~ CN(0, 1)) or ``"rician"`` (h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1),
            line-of-sight phase 0); h is then scaled by the amplitude gain of ``gain_db``.
        snr_db: Es/N0 per complex symbol in dB; noise variance ``no = 10**(-snr_db/10)``.
        k_factor_db: Rician K factor in dB (used by ``"rician"`` only).
        cfo_hz: carrier frequency offset; the output is rotated by exp(j 2 pi cfo_hz/fs t).
        sample_rate_sps: sample rate fs used to turn ``cfo_hz`` into radians per sample.
        delay_samples: timing offset >= 0; the integer part shifts, the fractional part is a
            Kaiser-windowed sinc interpolator.
        taps: multipath FIR (tap k delays by k samples), scaled to unit energy on construction.
        coherence_samples: stream face only: a new fading draw every this many samples
            (0 = one draw for the whole stream). The block faces draw once per frame (row).
        gain_db: amplitude gain ``10 ** (gain_db / 20)`` of the link, part of its flat
            coefficient h (path loss or transmit power); the noise does not scale with it.
        coefficient: the complex flat gain of a ``"fixed"`` link (before ``gain_db``); any other
            model takes the default 1.
    """

    model: str
    snr_db: float
    k_factor_db: float = 10.0
    cfo_hz: float = 0.0
    sample_rate_sps: float = 1e6
    delay_samples: float = 0.0
    taps: tuple[complex, ...] = (1,)
    coherence_samples: int = 0
    gain_db: float = 0.0
    coefficient: complex = 1

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"channel.model {self.model!r} is unknown; allowed: {', '.join(MODELS)}")
        self._set("snr_db", _finite("snr_db", self.snr_db))
        self._set("k_factor_db", _finite("k_factor_db", self.k_factor_db))
        rate = _finite("sample_rate_sps", self.sample_rate_sps, "a finite number > 0")
        if rate <= 0:
            raise ConfigError(f"channel.sample_rate_sps {self.sample_rate_sps!r} is invalid; allowed: > 0")
        self._set("sample_rate_sps", rate)
        cfo = _finite("cfo_hz", self.cfo_hz)
        if abs(cfo) >= rate / 2:
            raise ConfigError(
                f"channel.cfo_hz {self.cfo_hz!r} is out of range; allowed: |cfo_hz| < sample_rate_sps/2 = {rate / 2:g}"
            )
        self._set("cfo_hz", cfo)
        delay = _finite("delay_samples", self.delay_samples, "a finite number >= 0")
        if delay < 0:
            raise ConfigError(f"channel.delay_samples {self.delay_samples!r} is invalid; allowed: >= 0")
        self._set("delay_samples", delay)
        self._set("taps", _normalised_taps(self.taps))
        coherence = self.coherence_samples
        if isinstance(coherence, bool) or not isinstance(coherence, int) or coherence < 0:
            raise ConfigError(
                f"channel.coherence_samples {coherence!r} is invalid; allowed: an integer >= 0 (0 = one draw)"
            )
        self._set("gain_db", _finite("gain_db", self.gain_db))
        coefficient = _finite_complex("coefficient", self.coefficient)
        if self.model != "fixed" and coefficient != 1:
            raise ConfigError(f"channel.coefficient {self.coefficient!r} is given for model {self.model!r}; "
                              "allowed: a coefficient with model fixed only")
        self._set("coefficient", coefficient)

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    @property
    def no(self) -> float:
        """Noise variance per complex sample, ``10 ** (-snr_db / 10)``."""
        return 10.0 ** (-self.snr_db / 10.0)

    @property
    def k_factor(self) -> float:
        """Rician K factor as a linear power ratio."""
        return 10.0 ** (self.k_factor_db / 10.0)

    @property
    def amplitude_gain(self) -> float:
        """Linear amplitude gain of the link, ``10 ** (gain_db / 20)``."""
        return 10.0 ** (self.gain_db / 20.0)

    @property
    def fades(self) -> bool:
        """Whether the flat coefficient is drawn (rayleigh, rician) rather than fixed (awgn, fixed)."""
        return self.model in FADING_MODELS

    @property
    def fixed_h(self) -> complex:
        """The flat coefficient of a model that does not fade: amplitude gain times ``coefficient``."""
        return self.amplitude_gain * self.coefficient

    @property
    def cfo_rad_per_sample(self) -> float:
        """Phase increment of the CFO rotation per sample, 2 pi cfo_hz / sample_rate_sps."""
        return 2.0 * math.pi * self.cfo_hz / self.sample_rate_sps

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (taps and coefficient as strings such as ``"(1+0j)"``);
        ``ChannelSpec(**d)`` rebuilds the spec."""
        d = dataclasses.asdict(self)
        d["taps"] = [str(complex(t)) for t in self.taps]
        d["coefficient"] = str(self.coefficient)
        return d

    def with_snr(self, snr_db: float) -> "ChannelSpec":
        """The same link at another SNR (for sweeps)."""
        return dataclasses.replace(self, snr_db=snr_db)


def _factory(model: str) -> Callable[..., ChannelSpec]:
    def make(**params: Any) -> ChannelSpec:
        unknown = sorted(set(params) - _PARAMS)
        if unknown:
            raise ConfigError(
                f"channel {model!r} has no parameter {', '.join(unknown)}; allowed: {', '.join(sorted(_PARAMS))}"
            )
        return ChannelSpec(model=model, **params)

    make.__name__ = make.__qualname__ = model
    make.__doc__ = f"A ``{model}`` :class:`ChannelSpec`; keyword arguments are its other fields."
    return make


_PARAMS = {field.name for field in dataclasses.fields(ChannelSpec)} - {"model"}
for _model in MODELS:
    register("channel", _model)(_factory(_model))
