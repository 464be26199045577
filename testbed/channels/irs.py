"""Software intelligent reflecting surface (IRS, also RIS): geometry, cascaded channel, backends.

An IRS is a uniform planar array of N = rows x cols passive elements, each reflecting with a
phase phi_n. Between a single-antenna TX node and a single-antenna RX node the flat channel is

    h = g_r^H diag(exp(j phi)) g_t + h_d = sum_n conj(g_r[n]) exp(j phi_n) g_t[n] + h_d

with g_t (N,) the TX -> IRS channel, g_r (N,) the IRS -> RX channel and h_d the direct link.
g_t and g_r are Rician about the far-field array response toward the node,

    g = sqrt(beta) (sqrt(K/(K+1)) a(u) + sqrt(1/(K+1)) CN(0, I_N)),   a_n(u) = exp(-j 2 pi/lambda <u, p_n>)

(u the unit vector from the array centre toward the node, p_n the exact element positions
relative to the centre), h_d is Rician with line-of-sight phase 0 (or Rayleigh, or absent) and
beta = 10**(-PL/10) with the path loss of :func:`path_loss_db`. The path gains are absolute
(Friis), so they are tiny: place the SNR with the link's ``gain_db`` or the receiver noise
variance of the streaming emulator.

Small-scale draws are counter-based per coherence block as the link fading of
:mod:`testbed.channels.realization`: block b of g_t of TX node t comes from
``default_rng([seed, IRS_DOMAIN, 0, t, b])``, of g_r of RX node r from ``[seed, IRS_DOMAIN, 1, r, b]``
and of h_d from ``[seed, IRS_DOMAIN, 2, r * n_tx + t, b]`` (five words, so never one of the
four-word link keys).

The phases reach a surface through an :class:`IrsBackend`: :class:`SoftwareIrs` drives an
:class:`IrsChannel` (emulated), :class:`SocketRis` a real 1-bit RIS over TCP.
"""
from __future__ import annotations

import abc
import dataclasses
import json
import math
import socket
from typing import Any, Callable

import numpy as np

from testbed.channels.realization import block_rng, check_seed
from testbed.errors import ConfigError, RadioError

SPEED_OF_LIGHT_M_S = 299_792_458.0
IRS_DOMAIN = 0x1125
"""Second word of every IRS draw key (keeps IRS draws apart from link fading draws)."""
_G_T, _G_R, _DIRECT = 0, 1, 2


def _check_finite(field: str, value: Any, allowed: str, ok: Callable[[float], bool] = lambda v: True) -> float:
    """``value`` as a float; ConfigError naming the field unless it is finite and ``ok``."""
    number = value if isinstance(value, (int, float, np.integer, np.floating)) else math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not ok(float(number)):
        raise ConfigError(f"irs.{field} {value!r} is invalid; allowed: {allowed}")
    return float(number)


@dataclasses.dataclass(frozen=True)
class UniformPlanarArray:
    """The IRS geometry: rows x cols elements in the plane normal to ``normal``.

    Attributes:
        rows: element rows (stacked along z), >= 1.
        cols: element columns (along the horizontal axis (-sin yaw, cos yaw, 0)), >= 1.
            Element n = row * cols + col.
        freq_hz: carrier frequency, > 0.
        position_m: (x, y, z) of the array centre in metres.
        yaw_rad: orientation: the array normal (the side that reflects) is (cos yaw, sin yaw, 0).
        spacing_wavelengths: element spacing in wavelengths, > 0 (0.5: half a wavelength).
    """

    rows: int
    cols: int
    freq_hz: float
    position_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw_rad: float = 0.0
    spacing_wavelengths: float = 0.5

    def __post_init__(self) -> None:
        for field in ("rows", "cols"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"irs.{field} {value!r} is invalid; allowed: an integer >= 1")
        _check_finite("freq_hz", self.freq_hz, "a finite number > 0", lambda v: v > 0)
        _check_finite("yaw_rad", self.yaw_rad, "a finite number")
        _check_finite("spacing_wavelengths", self.spacing_wavelengths, "a finite number > 0", lambda v: v > 0)
        object.__setattr__(self, "position_m", _position("position_m", self.position_m))

    @property
    def n_elements(self) -> int:
        return self.rows * self.cols

    @property
    def wavelength_m(self) -> float:
        return SPEED_OF_LIGHT_M_S / self.freq_hz

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the array, float64 (3,)."""
        return np.array([math.cos(self.yaw_rad), math.sin(self.yaw_rad), 0.0])

    @property
    def horizontal(self) -> np.ndarray:
        """Unit vector along the element columns, float64 (3,)."""
        return np.array([-math.sin(self.yaw_rad), math.cos(self.yaw_rad), 0.0])

    def element_positions(self) -> np.ndarray:
        """Element positions relative to the array centre in metres; float64 (N, 3), n = row * cols + col."""
        spacing = self.spacing_wavelengths * self.wavelength_m
        row, col = np.divmod(np.arange(self.n_elements), self.cols)
        across = (col - (self.cols - 1) / 2.0) * spacing
        up = (row - (self.rows - 1) / 2.0) * spacing
        return across[:, None] * self.horizontal + up[:, None] * np.array([0.0, 0.0, 1.0])


def _position(field: str, value: Any) -> tuple[float, float, float]:
    """``value`` as an (x, y, z) tuple of finite floats; ConfigError naming the field otherwise."""
    allowed = "three finite numbers (x, y, z) in metres"
    try:
        coordinates = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        coordinates = ()
    if len(coordinates) != 3 or not all(math.isfinite(v) for v in coordinates):
        raise ConfigError(f"irs.{field} {value!r} is invalid; allowed: {allowed}")
    return coordinates


def steering_vector(array: UniformPlanarArray, direction: np.ndarray) -> np.ndarray:
    """Far-field response a_n = exp(-j 2 pi/lambda <u, p_n>), u = direction / |direction|; complex64 (N,)."""
    u = np.asarray(direction, np.float64)
    u = u / np.linalg.norm(u)
    phase = -2.0 * math.pi / array.wavelength_m * (array.element_positions() @ u)
    return np.exp(1j * phase).astype(np.complex64)


def array_response(array: UniformPlanarArray, theta_rad: float, phi_rad: float) -> np.ndarray:
    """a(theta, phi) toward azimuth ``theta_rad`` (from the normal toward the columns' axis) and
    elevation ``phi_rad`` (above the horizontal plane); complex64 (N,)."""
    u = (math.cos(phi_rad) * (math.cos(theta_rad) * array.normal + math.sin(theta_rad) * array.horizontal)
         + math.sin(phi_rad) * np.array([0.0, 0.0, 1.0]))
    return steering_vector(array, u)


def path_loss_db(distance_m: float, freq_hz: float, exponent: float = 2.0, reference_m: float = 1.0) -> float:
    """Log-distance path loss anchored on free space: PL = 20 log10(4 pi d0 / lambda) + 10 n log10(d / d0).

    With ``exponent`` n = 2 this is the Friis free-space loss 20 log10(4 pi d / lambda) at any
    ``reference_m`` d0; other exponents follow free space up to d0 and then fall off as d^-n.
    Distances below d0 are clipped to d0 (no gain from coming closer than the reference).
    """
    distance = max(_check_finite("distance_m", distance_m, "a finite number > 0", lambda v: v > 0), reference_m)
    wavelength = SPEED_OF_LIGHT_M_S / freq_hz
    return 20.0 * math.log10(4.0 * math.pi * reference_m / wavelength) + 10.0 * exponent * math.log10(
        distance / reference_m)


def rician(los: np.ndarray, k_factor_db: float | None, gain: float, normals: np.ndarray) -> np.ndarray:
    """gain (sqrt(K/(K+1)) los + sqrt(1/(K+1)) CN(0, I)); K = 0 (Rayleigh) when ``k_factor_db`` is None.

    Parameters:
        los: complex (n,) line-of-sight component (unit-modulus entries).
        normals: float (n, 2) standard normal pairs, CN = (a + j b) / sqrt(2).

    Returns:
        complex64 (n,).
    """
    k = 0.0 if k_factor_db is None else 10.0 ** (k_factor_db / 10.0)
    scattered = normals @ np.array([1.0, 1.0j]) / math.sqrt(2.0)
    return (gain * (math.sqrt(k / (k + 1.0)) * los + math.sqrt(1.0 / (k + 1.0)) * scattered)).astype(np.complex64)


def cascade(g_t: np.ndarray, g_r: np.ndarray, h_d: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """h[r, t] = sum_n conj(g_r[r, n]) exp(j phases[n]) g_t[t, n] + h_d[r, t].

    Parameters:
        g_t: complex (n_tx, N); g_r: complex (n_rx, N); h_d: complex (n_rx, n_tx); phases: float (N,).

    Returns:
        complex64 (n_rx, n_tx).
    """
    reflection = np.exp(1j * np.asarray(phases, np.float64))
    return (np.conj(g_r) @ (reflection[:, None] * g_t.T) + h_d).astype(np.complex64)


def optimal_phases(g_t: np.ndarray, g_r: np.ndarray, h_d: complex = 0.0) -> np.ndarray:
    """The phases maximising |h| of one TX/RX pair: phi_n = arg(h_d) - arg(conj(g_r[n]) g_t[n]).

    Every reflected term then adds in phase with the direct link. g_t, g_r complex (N,);
    returns float64 (N,) in (-2 pi, 2 pi). Quantise with :func:`quantize_phases` for a 1-bit surface.
    """
    return np.angle(h_d) - np.angle(np.conj(g_r) * g_t)


def quantize_phases(phases: np.ndarray, bits: int = 1) -> np.ndarray:
    """Each phase mapped to the nearest of the 2**bits levels 2 pi k / 2**bits (bits=1: {0, pi}); float64.

    The levels are exact (0.0 and math.pi for one bit); a phase half-way between two levels goes
    to the one numpy's round-half-to-even picks.
    """
    levels = 2 ** check_bits(bits)
    step = 2.0 * math.pi / levels
    k = np.mod(np.round(np.asarray(phases, np.float64) / step), levels)
    return k * step


def check_bits(bits: Any) -> int:
    """``bits`` as an int 1..16 (phase resolution of a surface); ConfigError naming the field otherwise."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"irs.phase_bits {bits!r} is invalid; allowed: an integer 1..16")
    return bits


@dataclasses.dataclass(frozen=True)
class PathModel:
    """Large- and small-scale model of one kind of path (TX -> IRS, IRS -> RX or direct).

    Attributes:
        k_factor_db: Rician K factor in dB; None: Rayleigh (no line of sight).
        path_loss_exponent: exponent n of :func:`path_loss_db` (2 = free space).
    """

    k_factor_db: float | None = None
    path_loss_exponent: float = 2.0

    def __post_init__(self) -> None:
        if self.k_factor_db is not None:
            _check_finite("k_factor_db", self.k_factor_db, "a finite number or None (Rayleigh)")
        _check_finite("path_loss_exponent", self.path_loss_exponent, "a finite number > 0", lambda v: v > 0)


@dataclasses.dataclass(frozen=True)
class IrsDraw:
    """The channels of one coherence block.

    Attributes:
        g_t: complex64 (n_tx, N), TX node t -> IRS element n.
        g_r: complex64 (n_rx, N), IRS element n -> RX node r (enters h conjugated).
        h_d: complex64 (n_rx, n_tx), direct links (zeros when disabled).
    """

    g_t: np.ndarray
    g_r: np.ndarray
    h_d: np.ndarray


class IrsChannel:
    """The cascaded IRS channel between single-antenna TX nodes and RX nodes.

    Parameters:
        array: the surface.
        tx_positions_m: float (n_tx, 3) TX node positions in metres.
        rx_positions_m: float (n_rx, 3) RX node positions in metres.
        seed: integer >= 0 keying the counter-based draws (module docstring).
        irs_path: model of the TX -> IRS and IRS -> RX paths (default Rician K = 10 dB, free space).
        direct_path: model of the direct TX -> RX links; None disables them (h_d = 0).
        phases: initial element phases in radians, (N,); default all zero.
    """

    def __init__(
        self,
        array: UniformPlanarArray,
        tx_positions_m: np.ndarray,
        rx_positions_m: np.ndarray,
        seed: int,
        irs_path: PathModel = PathModel(10.0, 2.0),
        direct_path: PathModel | None = PathModel(None, 3.0),
        phases: np.ndarray | None = None,
    ) -> None:
        self.array = array
        self.tx_positions_m = _positions("tx_positions_m", tx_positions_m)
        self.rx_positions_m = _positions("rx_positions_m", rx_positions_m)
        self.seed = check_seed("seed", seed)
        self.irs_path, self.direct_path = irs_path, direct_path
        self._los_t, self._beta_t = self._toward(self.tx_positions_m)
        self._los_r, self._beta_r = self._toward(self.rx_positions_m)
        self._beta_d = self._direct_gains()
        self._phases = np.zeros(array.n_elements)
        self.reflecting = True
        self._cached: tuple[int, IrsDraw] | None = None
        if phases is not None:
            self.set_phases(phases)

    @property
    def n_elements(self) -> int:
        return self.array.n_elements

    @property
    def n_tx(self) -> int:
        return len(self.tx_positions_m)

    @property
    def n_rx(self) -> int:
        return len(self.rx_positions_m)

    @property
    def phases(self) -> np.ndarray:
        """Current element phases in radians; a float64 (N,) copy."""
        return self._phases.copy()

    def set_phases(self, phases: np.ndarray, reflecting: bool = True) -> None:
        """Set the element phases (radians, float (N,), finite); ``reflecting`` False takes the
        surface away (the cascaded channel is the direct links alone, "IRS off")."""
        self._phases = check_phases(phases, self.n_elements)
        self.reflecting = bool(reflecting)

    def draw(self, block: int = 0) -> IrsDraw:
        """g_t, g_r and h_d of coherence block ``block`` (counter-based; the last block is cached)."""
        if self._cached is None or self._cached[0] != block:
            self._cached = (block, self._draw(check_seed("block", block)))
        return self._cached[1]

    def cascaded(self, phases: np.ndarray | None = None, block: int = 0) -> np.ndarray:
        """h = g_r^H diag(exp(j phi)) g_t + h_d of every node pair; complex64 (n_rx, n_tx); h_d
        alone while the surface is not ``reflecting``.

        ``phases`` None: the current phases.
        """
        phases = self._phases if phases is None else check_phases(phases, self.n_elements)
        d = self.draw(block)
        if not self.reflecting:
            return d.h_d.astype(np.complex64)
        return cascade(d.g_t, d.g_r, d.h_d, phases)

    def best_phases(self, rx: int, tx: int, block: int = 0, bits: int | None = None) -> np.ndarray:
        """:func:`optimal_phases` of RX node ``rx`` / TX node ``tx`` in ``block``, quantised to ``bits`` if given."""
        d = self.draw(block)
        phases = optimal_phases(d.g_t[tx], d.g_r[rx], d.h_d[rx, tx])
        return phases if bits is None else quantize_phases(phases, bits)

    def _toward(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line-of-sight responses complex64 (n, N) toward ``nodes`` and their amplitude gains float64 (n,)."""
        offsets = nodes - np.asarray(self.array.position_m)
        los = np.array([steering_vector(self.array, u) for u in offsets]).reshape(len(nodes), self.n_elements)
        gains = np.array([self._amplitude(np.linalg.norm(u), self.irs_path) for u in offsets])
        return los, gains

    def _direct_gains(self) -> np.ndarray:
        """Amplitude gains of the direct links, float64 (n_rx, n_tx); zeros when disabled."""
        if self.direct_path is None:
            return np.zeros((self.n_rx, self.n_tx))
        return np.array([[self._amplitude(np.linalg.norm(r - t), self.direct_path) for t in self.tx_positions_m]
                         for r in self.rx_positions_m])

    def _amplitude(self, distance_m: float, path: PathModel) -> float:
        return 10.0 ** (-path_loss_db(distance_m, self.array.freq_hz, path.path_loss_exponent) / 20.0)

    def _draw(self, block: int) -> IrsDraw:
        n, k_irs = self.n_elements, self.irs_path.k_factor_db
        g_t = np.array([rician(self._los_t[t], k_irs, self._beta_t[t], self._normals(_G_T, t, block, n))
                        for t in range(self.n_tx)]).reshape(self.n_tx, n)
        g_r = np.array([rician(self._los_r[r], k_irs, self._beta_r[r], self._normals(_G_R, r, block, n))
                        for r in range(self.n_rx)]).reshape(self.n_rx, n)
        h_d = np.zeros((self.n_rx, self.n_tx), np.complex64)
        if self.direct_path is not None:
            for r in range(self.n_rx):
                for t in range(self.n_tx):
                    normals = self._normals(_DIRECT, r * self.n_tx + t, block, 1)
                    h_d[r, t] = rician(np.ones(1), self.direct_path.k_factor_db, self._beta_d[r, t], normals)[0]
        return IrsDraw(g_t=g_t, g_r=g_r, h_d=h_d)

    def _normals(self, kind: int, node: int, block: int, n: int) -> np.ndarray:
        """Standard normal pairs float64 (n, 2) of draw ``kind`` of ``node`` in ``block``."""
        return block_rng(self.seed, IRS_DOMAIN, kind, node, block).standard_normal((n, 2))


def _positions(field: str, value: Any) -> np.ndarray:
    """Node positions as float64 (n, 3), n >= 1; ConfigError naming the field otherwise."""
    try:
        positions = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        positions = np.zeros((0, 0))
    if positions.ndim != 2 or positions.shape[1] != 3 or not len(positions) or not np.isfinite(positions).all():
        raise ConfigError(f"irs.{field} {value!r} is invalid; allowed: one or more (x, y, z) in metres")
    return positions


def check_phases(phases: Any, n_elements: int) -> np.ndarray:
    """``phases`` as float64 (n_elements,) of finite radians; ConfigError naming the field otherwise."""
    try:
        values = np.asarray(phases, np.float64)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (n_elements,) or not np.isfinite(values).all():
        raise ConfigError(f"irs.phases {phases!r} is invalid; allowed: {n_elements} finite phases in radians")
    return values.copy()


class IrsBackend(abc.ABC):
    """Something that holds a phase per element of a surface and can be told new ones."""

    @property
    @abc.abstractmethod
    def n_elements(self) -> int:
        """Number of elements N."""

    @property
    @abc.abstractmethod
    def phases(self) -> np.ndarray:
        """The phases in force, float64 (N,) radians."""

    @abc.abstractmethod
    def set_phases(self, phases: np.ndarray) -> None:
        """Apply ``phases`` (float (N,) radians; a quantised surface rounds them)."""


class SoftwareIrs(IrsBackend):
    """The emulated surface: phases go to an :class:`IrsChannel`.

    Parameters:
        channel: the channel whose phases this backend sets.
        bits: quantise every phase to ``bits`` bits first (None: continuous).
        apply: how the phases reach the channel; default ``channel.set_phases``. Pass
            ``ChannelMatrixEmulator.set_irs_phases`` (or a function sending a ``set_irs`` control
            to the channel block) so the change is logged at an output sample.
    """

    def __init__(
        self, channel: IrsChannel, bits: int | None = None, apply: Callable[[np.ndarray], None] | None = None
    ) -> None:
        self.channel, self.bits = channel, None if bits is None else check_bits(bits)
        self._apply = apply if apply is not None else channel.set_phases

    @property
    def n_elements(self) -> int:
        return self.channel.n_elements

    @property
    def phases(self) -> np.ndarray:
        return self.channel.phases

    def set_phases(self, phases: np.ndarray) -> None:
        phases = check_phases(phases, self.n_elements)
        self._apply(phases if self.bits is None else quantize_phases(phases, self.bits))


class SocketRis(IrsBackend):
    """Client of a real 1-bit RIS controller over TCP.

    Line protocol (UTF-8, one JSON object per line, ``\\n`` terminated), one request at a time:

        request:  {"phases_bits": "0110..."}   character n is "1" when element n reflects with
                                                phase pi, "0" for phase 0 (n = row * cols + col)
        answer:   {"ok": true}                  applied
                  {"ok": false, "error": "..."} refused (raises RadioError)

    Phases are quantised to {0, pi} first. A connection failure, a timeout, a closed connection,
    an answer that is not such a JSON line or a refusal raise RadioError.

    Parameters:
        host, port: the controller's address.
        n_elements: N, the number of elements of the surface.
        timeout_s: limit on connecting and on every answer.
    """

    def __init__(self, host: str, port: int, n_elements: int, timeout_s: float = 2.0) -> None:
        if isinstance(n_elements, bool) or not isinstance(n_elements, int) or n_elements < 1:
            raise ConfigError(f"irs.n_elements {n_elements!r} is invalid; allowed: an integer >= 1")
        self._n = n_elements
        self._phases = np.zeros(n_elements)
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as err:
            raise RadioError(f"RIS controller {host}:{port} cannot be reached ({err})") from None
        self._reader = self._socket.makefile("rb")
        self.address = f"{host}:{port}"

    @property
    def n_elements(self) -> int:
        return self._n

    @property
    def phases(self) -> np.ndarray:
        """The phases last acknowledged by the controller (0 or pi), float64 (N,)."""
        return self._phases.copy()

    def set_phases(self, phases: np.ndarray) -> None:
        quantised = quantize_phases(check_phases(phases, self._n), bits=1)
        bits = "".join("1" if phase else "0" for phase in quantised)
        answer = self._request({"phases_bits": bits})
        if answer.get("ok") is not True:
            raise RadioError(f"RIS controller {self.address} refused the phases: {answer.get('error', answer)!r}")
        self._phases = quantised

    def close(self) -> None:
        self._reader.close()
        self._socket.close()

    def __enter__(self) -> "SocketRis":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one JSON line and read the one-line answer; RadioError on any failure."""
        try:
            self._socket.sendall((json.dumps(message) + "\n").encode())
            line = self._reader.readline()
        except OSError as err:
            raise RadioError(f"RIS controller {self.address} did not answer ({err})") from None
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RadioError(f"RIS controller {self.address} answered {line!r}; expected a JSON object line")
        return answer
