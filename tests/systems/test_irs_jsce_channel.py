"""IRS-JSCE's channel (testbed/systems/irs_jsce/channel.py) against the paper's equations
(../shared/seeds/000_5c86833aa1606c01.txt, eqs. (1)-(3), (14b), (14c)) written out here with
loops, the 1-bit quantiser, the shipped geometry and its validation, the co-phasing closed form
and the scaling of the LoS part with distance and carrier frequency."""
import json
import math

import numpy as np
import pytest
import yaml

from testbed.channels.irs import cascade
from testbed.errors import ConfigError
from testbed.systems.irs_jsce import channel as ch

C_M_S = 299_792_458.0
PAPER_USERS = [(1.13, 0.50), (-0.01, -0.21), (-1.10, -0.28), (0.19, 1.01), (0.20, 0.01)]


def random_fields(rng: np.random.Generator) -> dict:
    """The fields of a random geometry YAML: surface, users around it, K, optional direct links and loss."""
    n_users = int(rng.integers(2, 6))
    return {
        "freq_hz": float(rng.uniform(0.5e9, 6e9)),
        "rician_k": float(rng.choice([0.0, 10.0, rng.uniform(0, 30)])),
        "irs": {"position_m": rng.uniform(-2, 2, 2).tolist(), "height_m": float(rng.uniform(0, 3)),
                "yaw_deg": float(rng.uniform(-180, 180)), "rows": int(rng.integers(1, 5)),
                "cols": int(rng.integers(1, 6)), "spacing_wavelengths": float(rng.choice([0.5, rng.uniform(0.2, 1)]))},
        "direct_link": None if rng.random() < 0.3 else {"rician_k": float(rng.uniform(0, 20))},
        "path_loss": None if rng.random() < 0.5 else {"exponent": float(rng.uniform(1.5, 4)),
                                                      "reference_m": float(rng.uniform(0.1, 2))},
        "users": [{"name": f"u{i}", "position_m": rng.uniform(-5, 5, 2).tolist(), "height_m": float(rng.uniform(0, 3))}
                  for i in range(n_users)],
    }


def paper_amplitude(distance_m: float, freq_hz: float, path_loss: dict | None) -> float:
    """sqrt(beta): 1 (the paper), or log-distance loss anchored on free space at d0, clipped below d0."""
    if path_loss is None:
        return 1.0
    d0, n = path_loss["reference_m"], path_loss["exponent"]
    return C_M_S / (4 * math.pi * d0 * freq_hz) * (max(distance_m, d0) / d0) ** (-n / 2)


def cn(seed: int, kind: int, index: int, block: int, n: int) -> np.ndarray:
    pairs = np.random.default_rng([seed, ch.IRS_JSCE_DOMAIN, kind, index, block]).standard_normal((n, 2))
    return (pairs[:, 0] + 1j * pairs[:, 1]) / math.sqrt(2)


def paper_channel(f: dict, seed: int, block: int, phases: np.ndarray) -> np.ndarray:
    """h[r, k] of eq. (3) from eqs. (1), (2) and the paper's a(phi, theta), element by element."""
    freq, irs, users = f["freq_hz"], f["irs"], f["users"]
    k0, rows, cols, s = 2 * math.pi * freq / C_M_S, irs["rows"], irs["cols"], irs["spacing_wavelengths"]
    yaw = math.radians(irs["yaw_deg"])
    centre = np.array([*irs["position_m"], irs["height_m"]])
    xyz = [np.array([*u["position_m"], u["height_m"]]) for u in users]
    n_users, n_el, kk = len(users), rows * cols, f["rician_k"]
    g = np.zeros((n_users, n_el), complex)
    for k, p in enumerate(xyz):
        dx, dy, dz = p - centre
        d = math.sqrt(dx * dx + dy * dy + dz * dz)
        front, side = dx * math.cos(yaw) + dy * math.sin(yaw), -dx * math.sin(yaw) + dy * math.cos(yaw)
        azimuth, elevation = math.atan2(side, front), math.asin(dz / d)
        nlos = cn(seed, 0, k, block, n_el)
        for row in range(rows):
            for col in range(cols):
                a = np.exp(1j * 2 * math.pi * s * (col * math.sin(azimuth) * math.cos(elevation)
                                                   + row * math.sin(elevation)))
                los = np.exp(-1j * k0 * d) * a
                n = row * cols + col
                g[k, n] = paper_amplitude(d, freq, f["path_loss"]) * (
                    math.sqrt(kk / (kk + 1)) * los + math.sqrt(1 / (kk + 1)) * nlos[n])
    h = np.zeros((n_users, n_users), complex)
    for r in range(n_users):
        for k in range(n_users):
            if r == k:
                continue
            h[r, k] = sum(g[k, n] * np.exp(1j * phases[n]) * np.conj(g[r, n]) for n in range(n_el))
            if f["direct_link"] is not None:
                lo, hi = min(r, k), max(r, k)
                d = float(np.linalg.norm(xyz[hi] - xyz[lo]))
                kd = f["direct_link"]["rician_k"]
                hd = paper_amplitude(d, freq, f["path_loss"]) * (
                    math.sqrt(kd / (kd + 1)) * np.exp(-1j * k0 * d)
                    + math.sqrt(1 / (kd + 1)) * cn(seed, 1, lo * n_users + hi, block, 1)[0])
                h[r, k] += hd if r < k else np.conj(hd)
    return h


@pytest.mark.parametrize("case", range(8))
def test_cascaded_channel_is_the_papers_equations_for_random_geometries(case):
    rng = np.random.default_rng(100 + case)
    fields = random_fields(rng)
    geometry = ch.parse_geometry(fields, f"random-{case}")
    seed, block = int(rng.integers(0, 2**31)), int(rng.integers(0, 50))
    phases = rng.uniform(-2 * np.pi, 2 * np.pi, geometry.array.n_elements)
    draw = ch.draw_channels(geometry, seed, block)
    h = ch.cascaded(draw, phases)
    expected = paper_channel(fields, seed, block, phases)
    assert h.dtype == np.complex128 and h.shape == (geometry.n_users,) * 2
    np.testing.assert_allclose(h, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    # eq. (3) is testbed.channels.irs.cascade with the RX user's g as g_t and the TX user's as g_r (complex64)
    off = ~np.eye(geometry.n_users, dtype=bool)
    via_irs = cascade(draw.g, draw.g, draw.h_direct, phases)
    np.testing.assert_allclose(via_irs[off], h[off], rtol=2e-5, atol=2e-6 * np.abs(h).max())
    # the reverse link is the conjugate with conjugated phases; the same seed and block draw the same channel
    np.testing.assert_allclose(ch.cascaded(draw, -phases).T, np.conj(h), rtol=1e-12, atol=1e-14 * np.abs(h).max())
    np.testing.assert_array_equal(ch.draw_channels(geometry, seed, block).g, draw.g)
    assert not np.array_equal(ch.draw_channels(geometry, seed, block + 1).g, draw.g)


def test_one_bit_quantisation_is_exact_idempotent_and_nearest():
    eps = 1e-9
    specials = np.array([0.0, -0.0, eps, -eps, math.pi, -math.pi, math.pi - eps, math.pi + eps, -math.pi + eps,
                         2 * math.pi - eps, 2 * math.pi + eps, -2 * math.pi + eps, 4 * math.pi - eps, 1e3, -1e3])
    x = np.concatenate([specials, np.random.default_rng(5).uniform(-20, 20, 20000)])
    q = ch.one_bit(x)
    assert q.dtype == np.float64
    assert np.all((q == 0.0) | (q == math.pi)) and not np.signbit(q).any()
    np.testing.assert_array_equal(ch.one_bit(q), q)
    # nearest on the circle: pi exactly where exp(jx) is nearer -1 than +1 (ties at |cos x| ~ 0 skipped)
    clear = np.abs(np.cos(x)) > 1e-12
    np.testing.assert_array_equal((q == math.pi)[clear], (np.cos(x) < 0)[clear])
    np.testing.assert_array_equal(ch.one_bit(specials)[[2, 3, 9, 10, 11, 12]], 0.0)
    np.testing.assert_array_equal(ch.one_bit(specials)[[4, 5, 6, 7, 8]], math.pi)


def test_set_irs_change_carries_one_bit_phases_in_element_order():
    phases = np.array([0.1, 3.0, -3.0, 2 * math.pi - 0.1, 1.5])
    change = ch.set_irs_change(phases, 5)
    assert json.loads(json.dumps(change)) == {"cmd": "set_irs", "phases": [0.0, math.pi, math.pi, 0.0, 0.0]}
    assert all(type(p) is float for p in change["phases"])
    with pytest.raises(ConfigError, match="irs.phases"):
        ch.set_irs_change(phases, 6)
    with pytest.raises(ConfigError, match="irs.phases"):
        ch.set_irs_change([0.0, math.nan, 0, 0, 0], 5)


def test_shipped_geometry_is_the_papers():
    geometry = ch.load_geometry()
    assert geometry.user_names == ("user1", "user2", "user3", "user4", "user5")
    np.testing.assert_array_equal(geometry.users_m[:, :2], PAPER_USERS)
    np.testing.assert_array_equal(geometry.users_m[:, 2], 0.0)
    assert geometry.array.position_m == (0.0, 0.0, 0.0) and geometry.array.spacing_wavelengths == 0.5
    assert geometry.rician_k == 10.0 and geometry.path_loss is None
    assert geometry.array.freq_hz == 2.4e9 and geometry.array.n_elements == 64
    # the paper's frame is 2-D: every elevation is 0, so rows of the surface see the same phase
    for position in geometry.users_m:
        assert ch.user_angles(geometry.array, position)[1] == 0.0


def _edit(data: dict, path: str, value) -> dict:
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize("field, value, fragment", [
    ("users.2.height_m", -1.0, "users.2.height_m = -1.0 is invalid; allowed: a finite number >= 0"),
    ("rician_k", "10", "rician_k = '10' is invalid; allowed: a finite number >= 0 (not a string"),
    ("rician_k", True, "rician_k = True is invalid"),
    ("freq_hz", "2.4e9", "freq_hz = '2.4e9' is invalid; allowed: a finite number > 0 (not a string; YAML"),
    ("freq_hz", 0, "freq_hz = 0 is invalid; allowed: a finite number > 0"),
    ("irs.rows", 0, "irs.rows = 0 is invalid; allowed: an integer 1..256"),
    ("irs.cols", 2.5, "irs.cols = 2.5 is invalid"),
    ("irs.spacing_wavelengths", -0.5, "irs.spacing_wavelengths = -0.5 is invalid; allowed: a finite number > 0"),
    ("irs.position_m", [0, 0, 0], "irs.position_m = [0, 0, 0] is invalid; allowed: [x, y]"),
    ("irs.yaw_deg", float("nan"), "irs.yaw_deg = nan is invalid"),
    ("irs.tilt_deg", 5, "irs.tilt_deg = 5 is invalid; allowed: one of the fields position_m"),
    ("irs.height_m", _DELETE, "irs.height_m is missing"),
    ("direct_link.rician_k", -2, "direct_link.rician_k = -2 is invalid"),
    ("path_loss", {"exponent": 0}, "path_loss.reference_m is missing"),
    ("users.1.name", "user1", "users.1.name = 'user1' is invalid; allowed: a non-empty string, unique"),
    ("users.4.position_m", [0, 0], "users.4.position_m = [0.0, 0.0, 0.0] is invalid; allowed: a point away"),
    ("users.3.position_m", [1.13, 0.5], "users.3.position_m = [1.13, 0.5, 0.0] is invalid; allowed: a point no"),
    ("users", [{"name": "a", "position_m": [1, 1], "height_m": 0}], "users = [{"),
])
def test_a_bad_field_is_refused_naming_file_field_value_and_allowed(tmp_path, field, value, fragment):
    data = yaml.safe_load(ch.GEOMETRY_YAML.read_text())
    path = tmp_path / "geometry.yaml"
    path.write_text(yaml.safe_dump(_edit(data, field, value)))
    with pytest.raises(ConfigError) as err:
        ch.load_geometry(path)
    assert f"{path}: " in str(err.value) and fragment in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    data = yaml.safe_load(ch.GEOMETRY_YAML.read_text())
    data["rician_k"], data["users"][0]["height_m"] = "ten", -3
    with pytest.raises(ConfigError) as err:
        ch.parse_geometry(data, "two-bad.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("two-bad.yaml: ") for line in lines)


def test_optimal_phases_reach_the_closed_form_and_beat_random_and_one_bit_phases():
    geometry = ch.load_geometry()
    rng = np.random.default_rng(11)
    n = geometry.array.n_elements
    for seed in range(4):
        draw = ch.draw_channels(geometry, seed)
        for tx, rx in ch.slot_links([seed % 5], 5):
            best = ch.link_optimal_phases(draw, tx, rx)
            gain = abs(ch.cascaded(draw, best)[tx, rx]) ** 2
            closed = (abs(draw.h_direct[tx, rx]) + np.sum(np.abs(draw.g[rx]) * np.abs(draw.g[tx]))) ** 2
            assert gain == pytest.approx(closed, rel=1e-10)
            random_gains = np.abs(np.array([ch.cascaded(draw, p)[tx, rx] for p in rng.uniform(0, 2 * np.pi, (50, n))]))
            assert gain > (random_gains ** 2).max()
            # 1 bit: every reflected term stays within pi/2 of the direct link, so |h| >= the projection
            quantised = ch.one_bit(best)
            h1 = ch.cascaded(draw, quantised)[tx, rx]
            terms = draw.g[rx] * np.exp(1j * quantised) * np.conj(draw.g[tx])
            along_direct = terms * np.exp(-1j * np.angle(draw.h_direct[tx, rx]))
            projection = abs(draw.h_direct[tx, rx]) + np.sum(along_direct.real)
            assert abs(draw.h_direct[tx, rx]) <= projection <= abs(h1) + 1e-12 and abs(h1) ** 2 < gain
            # 1-bit phases are real reflections: the link is as strong in both directions
            assert abs(ch.cascaded(draw, quantised)[rx, tx]) == pytest.approx(abs(h1), rel=1e-12)
    with pytest.raises(ConfigError, match="two different users"):
        ch.link_optimal_phases(draw, 2, 2)
    with pytest.raises(ConfigError, match="rx 5 is invalid"):
        ch.link_optimal_phases(draw, 0, 5)


def test_half_duplex_slots_pair_transmitters_only_with_receivers():
    assert ch.slot_links([0, 3], 5) == [(0, 1), (0, 2), (0, 4), (3, 1), (3, 2), (3, 4)]
    assert ch.slot_links([], 5) == []
    with pytest.raises(ConfigError, match="distinct"):
        ch.slot_links([1, 1], 5)
    with pytest.raises(ConfigError, match="tx 7 is invalid"):
        ch.slot_links([7], 5)


def test_los_part_scales_with_distance_and_carrier_as_the_paper_and_the_path_loss_say():
    fields = yaml.safe_load(ch.GEOMETRY_YAML.read_text())
    geometry = ch.parse_geometry(fields, "shipped")
    array, user = geometry.array, geometry.users_m[0]
    los = ch.los_channel(array, user)
    # eq. (2): unit modulus (the paper has no path loss); moving the user out along its ray by delta
    # keeps a(phi, theta) and turns the phase by -k0 delta
    np.testing.assert_allclose(np.abs(los), 1.0, rtol=1e-14)
    for scale in (1.5, 3.0, 10.0):
        delta = (scale - 1) * np.linalg.norm(user)
        np.testing.assert_allclose(ch.los_channel(array, scale * user) / los,
                                   np.exp(-2j * math.pi * array.freq_hz / C_M_S * delta), rtol=1e-9)
    # with the spacing in wavelengths a(phi, theta) does not depend on f; only e^{-j k0 d} does
    for freq_hz in (0.9e9, 5.8e9):
        other = ch.parse_geometry({**fields, "freq_hz": freq_hz}, "f").array
        np.testing.assert_allclose(ch.los_channel(other, user) / los,
                                   np.exp(-2j * math.pi * (freq_hz - array.freq_hz) / C_M_S * np.linalg.norm(user)),
                                   rtol=1e-9)
    # with a path loss exponent n the whole of g_k scales by (lambda / (4 pi d0)) (d / d0)^(-n/2)
    plain = ch.draw_channels(geometry, 3)
    for n, freq_hz in ((2.0, 2.4e9), (3.5, 2.4e9), (3.5, 4.8e9)):
        lossy_fields = {**fields, "freq_hz": freq_hz, "path_loss": {"exponent": n, "reference_m": 0.1}}
        lossy = ch.draw_channels(ch.parse_geometry(lossy_fields, "lossy"), 3)
        other_plain = ch.draw_channels(ch.parse_geometry({**fields, "freq_hz": freq_hz}, "f"), 3)
        distances = np.linalg.norm(geometry.users_m, axis=1)
        expected = C_M_S / (4 * math.pi * 0.1 * freq_hz) * (np.maximum(distances, 0.1) / 0.1) ** (-n / 2)
        np.testing.assert_allclose(lossy.g / other_plain.g, np.repeat(expected[:, None], 64, 1), rtol=1e-12)
    doubled = ch.amplitude(4.0, 2.4e9, ch.PathLoss(3.0, 1.0)) / ch.amplitude(2.0, 2.4e9, ch.PathLoss(3.0, 1.0))
    assert doubled == pytest.approx(2 ** -1.5, rel=1e-12)
    assert ch.amplitude(2.0, 4.8e9, ch.PathLoss(3.0, 1.0)) / ch.amplitude(2.0, 2.4e9, ch.PathLoss(3.0, 1.0)) == \
        pytest.approx(0.5, rel=1e-12)
    assert np.abs(plain.g).max() < 10  # without path loss the magnitudes are O(1), as in the paper


def test_seeds_and_blocks_must_be_integers():
    geometry = ch.load_geometry()
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError):
            ch.draw_channels(geometry, bad)
    with pytest.raises(ConfigError, match="irs.phases"):
        ch.cascaded(ch.draw_channels(geometry, 0), np.zeros(63))
