"""The IRS channel of IRS-JSCE (../shared/seeds/000_5c86833aa1606c01.txt, Sec. II-A) on the software IRS.

K single-antenna users talk device to device through one IRS of N = rows x cols elements
(element n = row * cols + col, as :class:`testbed.channels.irs.UniformPlanarArray`). User k's
channel to the surface is Rician, eq. (1), about the line of sight of eq. (2):

    g_k = sqrt(beta_k) (sqrt(K/(K+1)) g_k,LoS + sqrt(1/(K+1)) g_k,NLoS),   g_k,NLoS ~ CN(0, I_N)
    g_k,LoS = e^{-j k0 d_k} a(phi_k, theta_k),   k0 = 2 pi / lambda
    a_n(phi, theta) = exp(j 2 pi s (m sin(phi) cos(theta) + n' sin(theta)))    (s = 1/2: exp(j pi (...)))

with d_k the distance from user k to the surface's centre, phi_k its azimuth (from the surface
normal toward the columns' axis), theta_k its elevation, m = col and n' = row of element n, and
beta_k = 1 (the paper has no path loss) unless ``path_loss`` is given. The link from TX user r
to RX user k is eq. (3),

    h_{r,k} = g_k Phi g_r^H + h^d_{r,k} = sum_n g_k[n] exp(j phi_n) conj(g_r[n]) + h^d_{r,k},

with the 1-bit phases phi_n in {0, pi} of (14b). The direct link h^d_{r,k} (assumed: Rician with
its own K about e^{-j k0 d_rk}) is drawn once per user pair and h^d_{k,r} = conj(h^d_{r,k}), so
h_{k,r}(phases) = conj(h_{r,k}(-phases)) holds exactly and |h_{k,r}| = |h_{r,k}| under 1-bit phases.
Half duplex (14c): in a slot a user is TX or RX (:func:`slot_links`).

Where the paper's form differs from :mod:`testbed.channels.irs`, it is implemented here:

- a(phi, theta): the paper's +j sign and reference element (0, 0) (first entry 1); irs.py's
  ``steering_vector`` is exp(-j 2 pi/lambda <u, p_n>) about the array centre (the conjugate times
  a common phase) and its ``array_response(theta, phi)`` names the azimuth theta and the elevation phi.
- the LoS phase e^{-j k0 d_k} of eq. (2), which irs.py has not; K is linear (irs.py: dB).
- eq. (3) conjugates the TX user's channel: it is ``irs.cascade(g, g, h_direct, phases)`` (g_t the
  RX user's g, g_r the TX user's), which returns complex64; here the same sum in complex128.

Draws are counter-based (:func:`testbed.channels.realization.block_rng`): g_NLoS of user k in
coherence block b from ``default_rng([seed, IRS_JSCE_DOMAIN, 0, k, b])``, the direct link of users
r < k from ``[seed, IRS_JSCE_DOMAIN, 1, r * K + k, b]``, each a standard normal (n, 2) array of pairs
mapped to (a + j b) / sqrt(2).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from testbed.channels.irs import (UniformPlanarArray, check_phases, optimal_phases, path_loss_db,
                                  quantize_phases)
from testbed.channels.realization import block_rng
from testbed.config.irs import MAX_SIDE
from testbed.config.yaml_io import load_yaml
from testbed.errors import ConfigError
from testbed.registry import register

GEOMETRY_YAML = Path(__file__).with_name("geometry.yaml")
IRS_JSCE_DOMAIN = 0x15CE
"""Second word of every draw key here (apart from irs.py's IRS_DOMAIN and the four-word link keys)."""
_NLOS, _DIRECT = 0, 1


@dataclasses.dataclass(frozen=True)
class PathLoss:
    """Log-distance path loss of :func:`testbed.channels.irs.path_loss_db` (not in the paper).

    Attributes:
        exponent: n > 0 (2 = free space).
        reference_m: d0 > 0; free space up to d0, distances below d0 count as d0.
    """

    exponent: float
    reference_m: float


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
    """The users and the surface of a geometry YAML.

    Attributes:
        array: the surface (centre, yaw, rows x cols, spacing, freq_hz).
        user_names: K names.
        users_m: float64 (K, 3) user positions (x, y, height) in metres.
        rician_k: K of eq. (1), linear, >= 0.
        direct_rician_k: K of the direct links, linear, >= 0; None: no direct links.
        path_loss: None (the paper) or the large-scale loss of every path.
    """

    array: UniformPlanarArray
    user_names: tuple[str, ...]
    users_m: np.ndarray
    rician_k: float
    direct_rician_k: float | None
    path_loss: PathLoss | None

    @property
    def n_users(self) -> int:
        return len(self.user_names)


@dataclasses.dataclass(frozen=True, eq=False)
class ChannelDraw:
    """The small-scale channels of one coherence block.

    Attributes:
        g: complex128 (K, N), g[k] = g_k of eq. (1), user k -> IRS element n.
        h_direct: complex128 (K, K), h_direct[r, k] = h^d_{r,k}, TX r -> RX k; conjugate symmetric,
            zero diagonal (and zero when the geometry has no direct links).
    """

    g: np.ndarray
    h_direct: np.ndarray


class _Reader:
    """Reads the fields of one YAML file, collecting every problem (file, field, value, allowed)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def refuse(self, field: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{self.source}: {field} = {value!r} is invalid; allowed: {allowed}")

    def mapping(self, value: Any, field: str, keys: tuple[str, ...]) -> dict[str, Any]:
        """``value`` when it is a mapping holding exactly ``keys``; {} after refusing it otherwise."""
        if not isinstance(value, dict):
            self.refuse(field or "top level", value, f"a mapping with the fields {', '.join(keys)}")
            return {}
        for key in keys:
            if key not in value:
                self.problems.append(f"{self.source}: {_join(field, key)} is missing; allowed: "
                                     f"{field or 'the file'} with the fields {', '.join(keys)}")
        for key in value:
            if key not in keys:
                self.refuse(_join(field, key), value[key], f"one of the fields {', '.join(keys)}")
        return value if all(key in value for key in keys) else {}

    def number(self, value: Any, field: str, low: float | None = None, strict: bool = False) -> float:
        """``value`` as a float: a finite number (not a bool or string), >= ``low`` (> when ``strict``)."""
        allowed = "a finite number" + ("" if low is None else f" {'>' if strict else '>='} {low:g}")
        if isinstance(value, str):
            allowed += " (not a string; YAML reads 2.4e9 as text, write 2.4e+9)"
        real = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not real or (low is not None and (value <= low if strict else value < low)):
            self.refuse(field, value, allowed)
            return math.nan
        return float(value)

    def side(self, value: Any, field: str) -> int:
        """``value`` as an int 1..MAX_SIDE (elements along one side of the surface)."""
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
            self.refuse(field, value, f"an integer 1..{MAX_SIDE}")
            return 1
        return value

    def point(self, value: Any, field: str) -> tuple[float, float]:
        """``value`` as (x, y): two finite numbers in metres."""
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            self.refuse(field, value, "[x, y]: two finite numbers in metres")
            return (math.nan, math.nan)
        return (float(value[0]), float(value[1]))

    def optional(self, value: Any, field: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """None for null, else :meth:`mapping`."""
        return None if value is None else self.mapping(value, field, keys)


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def load_geometry(path: str | Path = GEOMETRY_YAML) -> Geometry:
    """Read and validate a geometry YAML (default the shipped one).

    Raises ConfigError naming the file, each bad field, its value and what is allowed (every
    problem at once, one line each).
    """
    return parse_geometry(load_yaml(path), str(path))


def parse_geometry(data: dict[str, Any], source: str) -> Geometry:
    """Validate the fields of a geometry YAML (see geometry.yaml); ``source`` names it in errors."""
    reader = _Reader(source)
    top = reader.mapping(data, "", ("freq_hz", "rician_k", "irs", "direct_link", "path_loss", "users"))
    if not top:
        raise ConfigError("\n".join(reader.problems))
    freq_hz = reader.number(top["freq_hz"], "freq_hz", 0.0, strict=True)
    rician_k = reader.number(top["rician_k"], "rician_k", 0.0)
    irs = reader.mapping(top["irs"], "irs", ("position_m", "height_m", "yaw_deg", "rows", "cols",
                                             "spacing_wavelengths"))
    direct = reader.optional(top["direct_link"], "direct_link", ("rician_k",))
    loss = reader.optional(top["path_loss"], "path_loss", ("exponent", "reference_m"))
    names, users_m = _users(reader, top["users"])
    array_fields = _array_fields(reader, irs, freq_hz) if irs else None
    direct_k = None if not direct else reader.number(direct["rician_k"], "direct_link.rician_k", 0.0)
    path_loss = None if not loss else PathLoss(
        reader.number(loss["exponent"], "path_loss.exponent", 0.0, strict=True),
        reader.number(loss["reference_m"], "path_loss.reference_m", 0.0, strict=True))
    if array_fields is not None and not reader.problems:
        _check_apart(reader, users_m, np.array(array_fields["position_m"]))
    if reader.problems:
        raise ConfigError("\n".join(reader.problems))
    return Geometry(array=UniformPlanarArray(**array_fields), user_names=names, users_m=users_m,
                    rician_k=rician_k, direct_rician_k=direct_k, path_loss=path_loss)


def _array_fields(reader: _Reader, irs: dict[str, Any], freq_hz: float) -> dict[str, Any]:
    """The UniformPlanarArray keywords of the ``irs`` mapping."""
    x, y = reader.point(irs["position_m"], "irs.position_m")
    return dict(rows=reader.side(irs["rows"], "irs.rows"), cols=reader.side(irs["cols"], "irs.cols"),
                freq_hz=freq_hz, position_m=(x, y, reader.number(irs["height_m"], "irs.height_m", 0.0)),
                yaw_rad=math.radians(reader.number(irs["yaw_deg"], "irs.yaw_deg")),
                spacing_wavelengths=reader.number(irs["spacing_wavelengths"], "irs.spacing_wavelengths", 0.0,
                                                  strict=True))


def _users(reader: _Reader, value: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and float64 (K, 3) positions of the ``users`` list (at least two, names unique)."""
    if not isinstance(value, list) or len(value) < 2:
        reader.refuse("users", value, "a list of at least two {name, position_m, height_m}")
        return (), np.zeros((0, 3))
    names, positions = [], []
    for i, user in enumerate(value):
        fields = reader.mapping(user, f"users.{i}", ("name", "position_m", "height_m"))
        if not fields:
            continue
        if not isinstance(fields["name"], str) or not fields["name"] or fields["name"] in names:
            reader.refuse(f"users.{i}.name", fields["name"], "a non-empty string, unique among the users")
        names.append(fields["name"])
        x, y = reader.point(fields["position_m"], f"users.{i}.position_m")
        positions.append((x, y, reader.number(fields["height_m"], f"users.{i}.height_m", 0.0)))
    return tuple(names), np.array(positions, np.float64).reshape(-1, 3)


def _check_apart(reader: _Reader, users_m: np.ndarray, irs_m: np.ndarray) -> None:
    """Refuse a user at the surface's centre (no angles) or at another user's position (no direct distance)."""
    for i, position in enumerate(users_m):
        if np.array_equal(position, irs_m):
            reader.refuse(f"users.{i}.position_m", position.tolist(), "a point away from the IRS centre")
        if any(np.array_equal(position, other) for other in users_m[:i]):
            reader.refuse(f"users.{i}.position_m", position.tolist(), "a point no earlier user is at")


def user_angles(array: UniformPlanarArray, position_m: np.ndarray) -> tuple[float, float, float]:
    """(azimuth phi_k, elevation theta_k, distance d_k) of a point seen from the surface's centre.

    phi_k in (-pi, pi] from the normal toward the columns' axis, theta_k in [-pi/2, pi/2] above
    the horizontal plane, d_k in metres. position_m: float (3,).
    """
    offset = np.asarray(position_m, np.float64) - np.asarray(array.position_m)
    along_normal, across = float(offset @ array.normal), float(offset @ array.horizontal)
    return (math.atan2(across, along_normal), math.atan2(float(offset[2]), math.hypot(along_normal, across)),
            float(np.linalg.norm(offset)))


def upa_response(array: UniformPlanarArray, azimuth_rad: float, elevation_rad: float) -> np.ndarray:
    """The paper's a(phi, theta) (Sec. II-A, after eq. (2)); complex128 (N,).

    a_n = exp(j k0 <u, p_n - p_0>) = exp(j 2 pi s (col sin(phi) cos(theta) + row sin(theta))), u the
    unit vector toward (phi, theta), p_n the element positions, p_0 element (0, 0), s the spacing in
    wavelengths (1/2 in the paper, which gives its exp(j pi (...))).
    """
    u = (math.cos(elevation_rad) * (math.cos(azimuth_rad) * array.normal + math.sin(azimuth_rad) * array.horizontal)
         + math.sin(elevation_rad) * np.array([0.0, 0.0, 1.0]))
    positions = array.element_positions()
    return np.exp(1j * 2.0 * math.pi / array.wavelength_m * ((positions - positions[0]) @ u))


def los_channel(array: UniformPlanarArray, position_m: np.ndarray) -> np.ndarray:
    """g_k,LoS = e^{-j k0 d_k} a(phi_k, theta_k) of eq. (2) of a user at ``position_m`` (float (3,)).

    Returns complex128 (N,), unit modulus."""
    azimuth, elevation, distance_m = user_angles(array, position_m)
    return np.exp(-2j * math.pi / array.wavelength_m * distance_m) * upa_response(array, azimuth, elevation)


def amplitude(distance_m: float, freq_hz: float, path_loss: PathLoss | None) -> float:
    """Large-scale amplitude sqrt(beta) of a path: 1 without path loss (the paper), else 10**(-PL/20)."""
    if path_loss is None:
        return 1.0
    return 10.0 ** (-path_loss_db(distance_m, freq_hz, path_loss.exponent, path_loss.reference_m) / 20.0)


def rician_mix(los: np.ndarray, nlos: np.ndarray, rician_k: float, gain: float) -> np.ndarray:
    """Eq. (1) scaled: gain (sqrt(K/(K+1)) los + sqrt(1/(K+1)) nlos); complex128, the shape of ``los``."""
    return gain * (math.sqrt(rician_k / (rician_k + 1.0)) * los + math.sqrt(1.0 / (rician_k + 1.0)) * nlos)


def complex_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of CN(0, 1): standard normal pairs (a, b) -> (a + j b) / sqrt(2); complex128 (n,)."""
    return rng.standard_normal((n, 2)) @ np.array([1.0, 1.0j]) / math.sqrt(2.0)


def draw_channels(geometry: Geometry, seed: int, block: int = 0) -> ChannelDraw:
    """g (eq. (1)-(2)) and the direct links of coherence block ``block`` (module docstring for the keys).

    seed, block: integers >= 0 (ConfigError otherwise).
    """
    array, n_users = geometry.array, geometry.n_users
    g = np.empty((n_users, array.n_elements), np.complex128)
    for k, position in enumerate(geometry.users_m):
        gain = amplitude(float(np.linalg.norm(position - np.asarray(array.position_m))), array.freq_hz,
                         geometry.path_loss)
        nlos = complex_normal(block_rng(seed, IRS_JSCE_DOMAIN, _NLOS, k, block), array.n_elements)
        g[k] = rician_mix(los_channel(array, position), nlos, geometry.rician_k, gain)
    return ChannelDraw(g=g, h_direct=_direct_links(geometry, seed, block))


def _direct_links(geometry: Geometry, seed: int, block: int) -> np.ndarray:
    """h^d complex128 (K, K): one Rician draw per pair r < k about e^{-j k0 d_rk}, h^d[k, r] = conj(h^d[r, k])."""
    n_users, array = geometry.n_users, geometry.array
    h = np.zeros((n_users, n_users), np.complex128)
    if geometry.direct_rician_k is None:
        return h
    for r in range(n_users):
        for k in range(r + 1, n_users):
            distance_m = float(np.linalg.norm(geometry.users_m[k] - geometry.users_m[r]))
            los = np.exp(-2j * math.pi / array.wavelength_m * distance_m)
            nlos = complex_normal(block_rng(seed, IRS_JSCE_DOMAIN, _DIRECT, r * n_users + k, block), 1)[0]
            h[r, k] = rician_mix(los, nlos, geometry.direct_rician_k,
                                 amplitude(distance_m, array.freq_hz, geometry.path_loss))
            h[k, r] = np.conj(h[r, k])
    return h


def cascaded(draw: ChannelDraw, phases: np.ndarray) -> np.ndarray:
    """Eq. (3) for every ordered user pair: h[r, k] = g_k diag(exp(j phases)) g_r^H + h^d_{r,k}.

    Parameters:
        draw: the channels of one block.
        phases: float (N,) element phases in radians (ConfigError unless N finite values).

    Returns:
        complex128 (K, K), h[r, k] from TX user r to RX user k; the diagonal (no self link) is 0.
    """
    reflection = np.exp(1j * check_phases(phases, draw.g.shape[1]))
    h = np.conj(draw.g) @ (reflection[:, None] * draw.g.T)
    np.fill_diagonal(h, 0.0)
    return h + draw.h_direct


def link_optimal_phases(draw: ChannelDraw, tx: int, rx: int) -> np.ndarray:
    """Continuous phases maximising |h_{tx,rx}| (irs.optimal_phases: every term in phase with h^d); float64 (N,).

    |h_{tx,rx}| is then |h^d| + sum_n |g_rx[n]| |g_tx[n]|. Quantise with :func:`one_bit` for (14b).
    """
    n_users = len(draw.g)
    tx, rx = _user_index("tx", tx, n_users), _user_index("rx", rx, n_users)
    if tx == rx:
        raise ConfigError(f"irs_jsce link {tx}->{rx} is invalid; allowed: two different users (half duplex)")
    return optimal_phases(draw.g[rx], draw.g[tx], draw.h_direct[tx, rx])


def _user_index(field: str, value: Any, n_users: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n_users:
        raise ConfigError(f"irs_jsce {field} {value!r} is invalid; allowed: a user index 0..{n_users - 1}")
    return int(value)


def one_bit(phases: np.ndarray) -> np.ndarray:
    """Each phase (radians, any real) to the nearest of {0, pi} (14b); float64, exactly 0.0 or math.pi."""
    return quantize_phases(phases, bits=1)


def slot_links(transmitters: Sequence[int], n_users: int) -> list[tuple[int, int]]:
    """The links (tx, rx) a slot can use under half duplex (14c): every TX to every user that is not a TX.

    transmitters: distinct user indices 0..n_users-1 (ConfigError otherwise).
    """
    txs = [_user_index("tx", t, n_users) for t in transmitters]
    if len(set(txs)) != len(txs):
        raise ConfigError(f"irs_jsce transmitters {list(transmitters)!r} are invalid; allowed: distinct user indices")
    return [(t, k) for t in txs for k in range(n_users) if k not in txs]


def set_irs_change(phases: np.ndarray, n_elements: int) -> dict[str, Any]:
    """The emulator's control change ``{"cmd": "set_irs", "phases": [...]}`` (docs/architecture.md
    "Control messages") with ``phases`` (float (n_elements,), radians) quantised to {0, pi}: a JSON
    list of n_elements Python floats in element order n = row * cols + col."""
    return {"cmd": "set_irs", "phases": one_bit(check_phases(phases, n_elements)).tolist()}


@register("irs-channel", "irs_jsce")
class EmulatedChannel:
    """This module's channel as the emulator's software IRS (``topology.irs.channel: irs_jsce``):
    the face of :class:`testbed.channels.irs.IrsChannel` that ``ChannelMatrixEmulator`` uses.

    Each TX and RX node stands at one user of the geometry (its ``position_m`` is that user's
    (x, y, height) within ``POSITION_TOLERANCE_M``); ``cascaded(block=b)[i, j]`` is h_{r,k} of
    eq. (3) from TX node j's user r to RX node i's user k in coherence block b of ``seed``, under
    the current phases quantised to {0, pi} (the paper's surface is 1-bit), or h^d alone while the
    surface is not ``reflecting``.

    surface fields: ``geometry`` (a geometry YAML, default the shipped one), ``rows``/``cols``
    (override the geometry's surface size).
    """

    def __init__(self, surface: dict[str, Any], tx_positions_m: Sequence[Sequence[float]],
                 rx_positions_m: Sequence[Sequence[float]], seed: int) -> None:
        self.geometry = geometry_of_surface(surface)
        self.tx_users = [user_at(self.geometry, p, f"tx_positions_m.{i}") for i, p in enumerate(tx_positions_m)]
        self.rx_users = [user_at(self.geometry, p, f"rx_positions_m.{i}") for i, p in enumerate(rx_positions_m)]
        self.seed = seed
        self.reflecting = True
        self._phases = np.zeros(self.n_elements)
        self._cached: tuple[int, ChannelDraw] | None = None

    @property
    def n_elements(self) -> int:
        return self.geometry.array.n_elements

    @property
    def n_tx(self) -> int:
        return len(self.tx_users)

    @property
    def n_rx(self) -> int:
        return len(self.rx_users)

    @property
    def phases(self) -> np.ndarray:
        """The element phases in force, each 0 or pi; a float64 (N,) copy."""
        return self._phases.copy()

    def set_phases(self, phases: np.ndarray, reflecting: bool = True) -> None:
        """Phases (radians, float (N,)) quantised to {0, pi}; ``reflecting`` False: no surface."""
        self._phases = one_bit(check_phases(phases, self.n_elements))
        self.reflecting = bool(reflecting)

    def draw(self, block: int = 0) -> ChannelDraw:
        if self._cached is None or self._cached[0] != block:
            self._cached = (block, draw_channels(self.geometry, self.seed, block))
        return self._cached[1]

    def cascaded(self, phases: np.ndarray | None = None, block: int = 0) -> np.ndarray:
        """complex64 (n_rx, n_tx): entry [i, j] is h from TX node j's user to RX node i's user."""
        draw = self.draw(block)
        h = cascaded(draw, self._phases if phases is None else one_bit(phases)) if self.reflecting else draw.h_direct
        return h[np.ix_(self.tx_users, self.rx_users)].T.astype(np.complex64)


POSITION_TOLERANCE_M = 1e-3


def geometry_of_surface(surface: dict[str, Any]) -> Geometry:
    """The geometry a topology's ``irs.surface`` names (``geometry``, ``rows``, ``cols``);
    ConfigError naming the field for anything else."""
    unknown = sorted(set(surface) - {"geometry", "rows", "cols"})
    if unknown:
        raise ConfigError(f"topology.irs.surface fields {unknown} are unknown for channel irs_jsce; "
                          "allowed: geometry, rows, cols")
    geometry = load_geometry(surface.get("geometry", GEOMETRY_YAML))
    sides = {key: surface[key] for key in ("rows", "cols") if key in surface}
    for key, value in sides.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
            raise ConfigError(f"topology.irs.surface.{key} = {value!r} is invalid; allowed: an integer 1..{MAX_SIDE}")
    if not sides:
        return geometry
    return dataclasses.replace(geometry, array=dataclasses.replace(geometry.array, **sides))


def user_at(geometry: Geometry, position_m: Sequence[float], field: str) -> int:
    """The index of the geometry's user at ``position_m`` (x, y, height); ConfigError naming ``field``."""
    distance = np.linalg.norm(geometry.users_m - np.asarray(position_m, np.float64)[None, :], axis=1)
    if distance.min() > POSITION_TOLERANCE_M:
        allowed = ", ".join(f"{n} {list(map(float, p))}" for n, p in zip(geometry.user_names, geometry.users_m))
        raise ConfigError(f"irs_jsce {field} = {list(position_m)!r} is no user of the geometry; allowed: {allowed}")
    return int(distance.argmin())
