"""Software IRS (testbed.channels.irs), its YAML schema (testbed.config.irs) and IRS links of the
streaming emulator. The reference channel is written here from the formulas, not the module."""
import contextlib
import json
import math
import socket
import threading

import numpy as np
import pytest

from testbed.channels import ChannelMatrixEmulator, ChannelSpec
from testbed.channels.irs import (
    IrsChannel,
    PathModel,
    SocketRis,
    SoftwareIrs,
    UniformPlanarArray,
    array_response,
    quantize_phases,
)
from testbed.config.irs import IrsConfig, load_irs_config
from testbed.config.yaml_io import validate
from testbed.errors import ConfigError, RadioError

C_M_S = 299_792_458.0
DOMAIN = 0x1125  # documented second word of every IRS draw key


def _random_geometry(rng):
    array = UniformPlanarArray(
        rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 5)), freq_hz=float(rng.uniform(0.8e9, 6e9)),
        position_m=tuple(rng.uniform(-5, 5, 3)), yaw_rad=float(rng.uniform(-math.pi, math.pi)),
        spacing_wavelengths=float(rng.uniform(0.25, 0.75)),
    )
    n_tx, n_rx = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    centre = np.asarray(array.position_m)
    tx = centre + rng.uniform(2, 30, (n_tx, 1)) * _unit(rng, n_tx)
    rx = centre + rng.uniform(2, 30, (n_rx, 1)) * _unit(rng, n_rx)
    irs_path = PathModel(float(rng.uniform(-5, 15)), float(rng.uniform(2, 3)))
    direct = [None, PathModel(None, 3.5), PathModel(float(rng.uniform(0, 10)), 2.5)][int(rng.integers(3))]
    return array, tx, rx, irs_path, direct


def _unit(rng, n):
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _reference_cascaded(array, tx, rx, irs_path, direct, seed, block, phases):
    """h[r, t] = sum_n conj(g_r[r, n]) e^{j phi_n} g_t[t, n] + h_d[r, t], from first principles."""
    lam = C_M_S / array.freq_hz
    d = array.spacing_wavelengths * lam
    yaw = array.yaw_rad
    elements = []
    for row in range(array.rows):
        for col in range(array.cols):
            across = (col - (array.cols - 1) / 2) * d
            up = (row - (array.rows - 1) / 2) * d
            elements.append((-math.sin(yaw) * across, math.cos(yaw) * across, up))
    elements = np.array(elements)
    centre = np.array(array.position_m)

    def path_amplitude(distance, exponent):  # Friis at 1 m, then distance^-exponent (distances > 1 m here)
        pl_db = 20 * math.log10(4 * math.pi / lam) + 10 * exponent * math.log10(distance)
        return 10 ** (-pl_db / 20)

    def rician_draw(los, k_db, amplitude, key, n):
        pairs = np.random.default_rng(key).standard_normal((n, 2))
        k = 0.0 if k_db is None else 10 ** (k_db / 10)
        scattered = (pairs[:, 0] + 1j * pairs[:, 1]) / math.sqrt(2)
        return amplitude * (math.sqrt(k / (k + 1)) * los + math.sqrt(1 / (k + 1)) * scattered)

    def toward(node, kind, index):
        offset = node - centre
        u = offset / np.linalg.norm(offset)
        los = np.array([np.exp(-2j * math.pi / lam * np.dot(u, p)) for p in elements])
        amplitude = path_amplitude(np.linalg.norm(offset), irs_path.path_loss_exponent)
        return rician_draw(los, irs_path.k_factor_db, amplitude, [seed, DOMAIN, kind, index, block], len(elements))

    g_t = [toward(node, 0, t) for t, node in enumerate(tx)]
    g_r = [toward(node, 1, r) for r, node in enumerate(rx)]
    h = np.zeros((len(rx), len(tx)), complex)
    for r in range(len(rx)):
        for t in range(len(tx)):
            total = sum(np.conj(g_r[r][n]) * np.exp(1j * phases[n]) * g_t[t][n] for n in range(len(elements)))
            if direct is not None:
                amplitude = path_amplitude(np.linalg.norm(rx[r] - tx[t]), direct.path_loss_exponent)
                key = [seed, DOMAIN, 2, r * len(tx) + t, block]
                total += rician_draw(np.ones(1), direct.k_factor_db, amplitude, key, 1)[0]
            h[r, t] = total
    return h


def test_cascaded_channel_matches_the_formula_for_20_random_geometries():
    rng = np.random.default_rng(2024)
    for trial in range(20):
        array, tx, rx, irs_path, direct = _random_geometry(rng)
        seed, block = int(rng.integers(0, 2**31)), int(rng.integers(0, 1000))
        phases = rng.uniform(-math.pi, math.pi, array.n_elements)
        channel = IrsChannel(array, tx, rx, seed, irs_path=irs_path, direct_path=direct)
        expected = _reference_cascaded(array, tx, rx, irs_path, direct, seed, block, phases)
        got = channel.cascaded(phases, block=block)
        assert got.dtype == np.complex64 and got.shape == (len(rx), len(tx))
        scale = np.abs(expected).max()
        assert np.abs(got - expected).max() <= 1e-5 * scale, trial
        # the same coefficients realised by the streaming emulator on IRS links (times the link gain)
        channel.set_phases(phases)
        links = {(j, i): (j, i) for j in range(len(rx)) for i in range(len(tx))}
        spec = ChannelSpec("awgn", 200, gain_db=80, coherence_samples=10)
        specs = [[spec] * len(tx)] * len(rx)
        emulator = ChannelMatrixEmulator(len(tx), len(rx), specs, 0, irs=channel, irs_links=links)
        emulator.process([np.zeros(10 * block + 3, np.complex64)] * len(tx))
        realised = emulator.realised_h() / 1e4
        assert np.abs(realised - expected).max() <= 1e-5 * scale, trial


def test_array_response_is_one_at_broadside_and_follows_the_geometry():
    array = UniformPlanarArray(rows=2, cols=3, freq_hz=3e9, yaw_rad=0.4)
    np.testing.assert_allclose(array_response(array, 0.0, 0.0), np.ones(6), atol=1e-6)
    lam = C_M_S / 3e9
    a = array_response(array, math.pi / 2, 0.0)  # along the columns' axis: phase steps of pi per column
    steps = np.angle(a.reshape(2, 3)[:, 1:] / a.reshape(2, 3)[:, :-1])
    np.testing.assert_allclose(np.abs(steps), math.pi, atol=1e-5)
    assert array.wavelength_m == pytest.approx(lam)


def test_one_bit_quantisation_is_exact():
    phases = np.random.default_rng(1).uniform(-10, 10, 5000)
    quantised = quantize_phases(phases, bits=1)
    near_zero = np.abs(np.exp(1j * phases) - 1) < np.abs(np.exp(1j * phases) + 1)
    assert set(np.unique(quantised)) <= {0.0, math.pi}
    np.testing.assert_array_equal(quantised, np.where(near_zero, 0.0, math.pi))
    assert quantize_phases(np.array([math.pi, -math.pi, 2 * math.pi, 0.1]), 1).tolist() == [math.pi, math.pi, 0.0, 0.0]
    with pytest.raises(ConfigError, match="phase_bits 0 is invalid; allowed"):
        quantize_phases(phases, bits=0)


def test_optimal_phases_beat_random_phases():
    rng = np.random.default_rng(7)
    for _ in range(10):
        array, tx, rx, irs_path, direct = _random_geometry(rng)
        array = UniformPlanarArray(rows=4, cols=4, freq_hz=array.freq_hz, position_m=array.position_m,
                                   yaw_rad=array.yaw_rad)
        channel = IrsChannel(array, tx, rx, 3, irs_path=irs_path, direct_path=direct)
        best = channel.best_phases(0, 0, block=2)
        gain = abs(channel.cascaded(best, block=2)[0, 0]) ** 2
        draw = channel.draw(2)
        bound = (abs(draw.h_d[0, 0]) + np.sum(np.abs(draw.g_r[0] * draw.g_t[0]))) ** 2
        assert gain == pytest.approx(bound, rel=1e-4)
        random_gains = [abs(channel.cascaded(rng.uniform(0, 2 * math.pi, 16), block=2)[0, 0]) ** 2 for _ in range(100)]
        assert gain >= max(random_gains)
        one_bit = abs(channel.cascaded(channel.best_phases(0, 0, block=2, bits=1), block=2)[0, 0]) ** 2
        assert set(np.unique(channel.best_phases(0, 0, bits=1))) <= {0.0, math.pi}
        assert one_bit > np.mean(random_gains)


def test_phase_change_through_the_emulator_lands_at_the_logged_sample():
    array = UniformPlanarArray(rows=3, cols=3, freq_hz=2.4e9)
    channel = IrsChannel(array, [[10.0, -4.0, 0.0]], [[9.0, 5.0, 1.0]], 11)
    first, second = np.zeros(9), channel.best_phases(0, 0)
    h1, h2 = channel.cascaded(first)[0, 0], channel.cascaded(second)[0, 0]
    spec = ChannelSpec("awgn", 200, gain_db=60)
    emulator = ChannelMatrixEmulator(1, 1, [[spec]], 0, noise_var=[0.0], irs=channel, irs_links={(0, 0): (0, 0)},
                                     log_h=True)
    ones = np.ones(300, np.complex64)
    before = emulator.process([ones[:137]])[0]
    software = SoftwareIrs(channel, apply=emulator.set_irs_phases)
    software.set_phases(second)
    after = emulator.process([ones[137:]])[0]
    change = emulator.changes[-1]
    assert change["what"] == "set_irs_phases" and change["sample"] == 137
    np.testing.assert_allclose(change["phases"], second)
    np.testing.assert_allclose(before, 1e3 * h1, rtol=1e-5)
    np.testing.assert_allclose(after, 1e3 * h2, rtol=1e-5)
    assert emulator.h_log[-1][0] == 137 and emulator.h_log[-1][1][0, 0] == pytest.approx(1e3 * h2, rel=1e-5)
    np.testing.assert_allclose(software.phases, second)


def test_software_irs_quantises_and_irs_links_are_validated():
    array = UniformPlanarArray(rows=1, cols=4, freq_hz=1e9)
    channel = IrsChannel(array, [[5.0, 0.0, 0.0]], [[5.0, 1.0, 0.0]], 0)
    software = SoftwareIrs(channel, bits=1)
    software.set_phases([0.2, 3.0, -2.0, 1.0])
    assert software.phases.tolist() == [0.0, math.pi, math.pi, 0.0] and software.n_elements == 4
    with pytest.raises(ConfigError, match="irs.phases .* is invalid; allowed: 4 finite phases"):
        channel.set_phases([0.0, 1.0])
    spec = ChannelSpec("awgn", 10)
    with pytest.raises(ConfigError, match="irs_links"):
        ChannelMatrixEmulator(1, 1, [[spec]], 0, irs=channel, irs_links={(0, 0): (1, 0)})
    with pytest.raises(ConfigError, match="without an irs"):
        ChannelMatrixEmulator(1, 1, [[spec]], 0, irs_links={(0, 0): (0, 0)})


BASE = {"tx_positions_m": [[10, -5, 1.5]], "rx_positions_m": [[10, 5, 1.5]]}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("rows", 0, "irs.rows = 0 is invalid; allowed: an integer 1..256"),
        ("freq_hz", -1, "irs.freq_hz = -1.0 is invalid; allowed: a finite number > 0"),
        ("spacing_wavelengths", 0, "irs.spacing_wavelengths = 0.0 is invalid; allowed: a finite number > 0"),
        ("phase_bits", 0, "irs.phase_bits = 0 is invalid; allowed: 1..16 or null"),
        ("direct", {"model": "los"}, "irs.direct.model = 'los' is unknown; allowed: rician, rayleigh, none"),
        ("rx_positions_m", [[1, 2, math.inf]], "irs.rx_positions_m = [1.0, 2.0, inf] is invalid; allowed: three"),
        ("colour", "red", "unknown field 'colour' = 'red' — allowed: rows, cols"),
    ],
)
def test_irs_schema_rejects_bad_fields_naming_field_value_and_allowed(field, value, fragment):
    with pytest.raises(ConfigError) as error:
        validate(IrsConfig, {**BASE, field: value}, "irs.yaml")
    assert fragment in str(error.value) and str(error.value).startswith("irs.yaml: ")


def test_irs_yaml_builds_the_channel(tmp_path):
    path = tmp_path / "irs.yaml"
    path.write_text("rows: 2\ncols: 4\nyaw_deg: 90\nphase_bits: 1\ndirect: {model: none}\n"
                    "tx_positions_m: [[0, 10, 1]]\nrx_positions_m: [[3, 10, 1], [-3, 10, 1]]\n")
    config = load_irs_config(path)
    channel = config.channel(seed=5)
    assert (channel.n_elements, channel.n_tx, channel.n_rx) == (8, 1, 2)
    assert channel.direct_path is None and np.all(channel.draw().h_d == 0)
    np.testing.assert_allclose(channel.array.normal, [0, 1, 0], atol=1e-12)
    assert config.software_irs(channel).bits == 1


@contextlib.contextmanager
def _ris_server(answers):
    """A one-connection RIS controller on 127.0.0.1 giving ``answers`` (None: hang up), then stopping."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    received = []

    def serve():
        with server, contextlib.suppress(OSError):
            connection, _ = server.accept()
            connection.settimeout(5)
            with connection, connection.makefile("rwb") as stream:
                for answer in answers:
                    line = stream.readline()
                    if not line or answer is None:
                        return
                    received.append(json.loads(line))
                    stream.write(answer.encode() + b"\n")
                    stream.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_socket_ris_speaks_the_line_protocol():
    answers = ['{"ok": true}', '{"ok": false, "error": "busy"}', "garbage", None]
    with _ris_server(answers) as (port, received):
        with SocketRis("127.0.0.1", port, n_elements=6, timeout_s=5) as ris:
            ris.set_phases([0.1, 3.0, -3.0, 1.0, 2.0, -0.2])
            assert received == [{"phases_bits": "011010"}]
            assert ris.phases.tolist() == [0.0, math.pi, math.pi, 0.0, math.pi, 0.0]
            with pytest.raises(RadioError, match="refused the phases: 'busy'"):
                ris.set_phases(np.zeros(6))
            with pytest.raises(RadioError, match="expected a JSON object line"):
                ris.set_phases(np.zeros(6))
            with pytest.raises(RadioError):
                ris.set_phases(np.zeros(6))  # the controller hung up
            assert ris.phases.tolist() == [0.0, math.pi, math.pi, 0.0, math.pi, 0.0]
            with pytest.raises(ConfigError, match="6 finite phases"):
                ris.set_phases(np.zeros(5))


def test_socket_ris_reports_an_unreachable_controller():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(RadioError, match="cannot be reached"):
        SocketRis("127.0.0.1", port, n_elements=4, timeout_s=1)
