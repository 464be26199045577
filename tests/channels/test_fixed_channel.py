"""The ``fixed`` channel model: a given flat complex gain per antenna pair, no fading, the same in
the numpy, torch and streaming faces; validated in the spec and in a scenario's topology."""
import math

import numpy as np
import pytest
import torch
import yaml

from testbed.channels import ChannelMatrixEmulator, ChannelSpec, draw, numpy_face, torch_face
from testbed.channels.realization import draw_block, generate_matrix
from testbed.config.scenario import load_scenario
from testbed.config.topology import Topology, stream_matrix
from testbed.errors import ConfigError

H_BAR = np.array([[-0.4199 - 1.2885j, -0.4546 + 1.0362j], [0.2092 + 1.0851j, -0.5603 + 0.7316j]])
"""The paper's downlink channel: row i = user i's gains from the two TX antennas."""


def _pairs(row: np.ndarray) -> list[list[float]]:
    return [[float(h.real), float(h.imag)] for h in row]


def _downlink(**link_changes) -> dict:
    """bs (2 antennas) -> ue0, ue1 over fixed links with the rows of H_BAR at 30 dB."""
    links = [{"tx": "bs", "rx": f"ue{k}", "model": "fixed", "snr_db": 30.0, "coefficients": _pairs(H_BAR[k])}
             for k in range(2)]
    links[0].update(link_changes)
    return {"nodes": [{"name": "bs", "role": "tx", "antennas": 2}, {"name": "ue0", "role": "rx"},
                      {"name": "ue1", "role": "rx"}],
            "users": [{"name": "u0", "tx": "bs", "rx": "ue0"}, {"name": "u1", "tx": "bs", "rx": "ue1"}],
            "links": links}


def _to_numpy(t):
    t = t.detach().numpy()
    return t[..., 0] + 1j * t[..., 1]


def test_numpy_torch_and_stream_faces_apply_the_coefficient_times_the_gain():
    spec = ChannelSpec("fixed", snr_db=12, coefficient=H_BAR[0, 1], gain_db=-6, cfo_hz=2e3, delay_samples=1.5)
    expected = np.complex64(H_BAR[0, 1] * 10 ** (-6 / 20))
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 64)) + 1j * rng.standard_normal((3, 64))).astype(np.complex64)
    realization = draw(spec, 3, 64, rng)
    np.testing.assert_array_equal(realization.h, np.full(3, expected))
    y_np, h_np = numpy_face.apply(x, spec, realization=realization)
    y_t, h_t = torch_face.apply(torch.from_numpy(np.stack([x.real, x.imag], -1)), spec, realization=realization)
    assert np.max(np.abs(_to_numpy(y_t) - y_np)) < 1e-5
    _, h_drawn = torch_face.apply(torch.zeros(3, 64, 2), spec)  # torch's own draw: no fading either
    np.testing.assert_allclose(_to_numpy(h_drawn), h_np, atol=1e-7)
    assert {draw_block(spec, seed, 0, 0, block) for seed in (0, 9) for block in (0, 5, 10**6)} == {expected}


def test_the_emulator_realises_exactly_the_topology_coefficients():
    topo = Topology.model_validate(_downlink())
    matrix = stream_matrix(topo, topo.points()[0], 1e6)
    emulator = ChannelMatrixEmulator(2, 2, matrix.specs, seed=4, noise_var=matrix.noise_var)
    assert matrix.noise_var == pytest.approx([1e-3, 1e-3])  # 10**(-snr_db/10) with unit gain
    np.testing.assert_array_equal(emulator.realised_h(), H_BAR.astype(np.complex64))
    x = np.ones((2, 500), np.complex64)
    emulator.set_noise_var(0, 0.0)
    emulator.set_noise_var(1, 0.0)
    y = emulator.process(list(x))
    np.testing.assert_allclose(np.stack(y), np.repeat(H_BAR.sum(1, keepdims=True), 500, 1), atol=1e-6)
    np.testing.assert_array_equal(generate_matrix(matrix.specs, 4, [0, 7])[1], H_BAR.astype(np.complex64))


def test_gain_db_scales_a_fixed_link_and_noise_db_sets_the_noise():
    topo = _downlink(snr_db=None, gain_db=-20.0)
    topo["nodes"][1]["noise_db"] = -40.0
    matrix = stream_matrix(Topology.model_validate(topo), {"bs->ue1": 30.0}, 1e6)
    assert matrix.noise_var[0] == pytest.approx(1e-4)
    assert ChannelMatrixEmulator(2, 2, matrix.specs, 0).realised_h()[0] == pytest.approx(H_BAR[0] * 0.1, abs=1e-6)


def test_a_spec_refuses_a_bad_coefficient_or_one_for_another_model():
    with pytest.raises(ConfigError, match=r"channel.coefficient \(nan\+0j\) is invalid; allowed: a finite complex"):
        ChannelSpec("fixed", 10, coefficient=complex(math.nan, 0))
    with pytest.raises(ConfigError, match="channel.coefficient 'x' is invalid; allowed"):
        ChannelSpec("fixed", 10, coefficient="x")
    with pytest.raises(ConfigError, match="coefficient 2j is given for model 'rayleigh'; allowed: a coefficient "
                                          "with model fixed only"):
        ChannelSpec("rayleigh", 10, coefficient=2j)
    spec = ChannelSpec("fixed", 10, coefficient=0.5 - 2j)
    assert ChannelSpec(**spec.to_dict()) == spec and not spec.fades and ChannelSpec("rician", 0).fades


@pytest.mark.parametrize(("change", "needle"), [
    ({"coefficients": [[1.0, 0.0]]}, "links.0.coefficients = [(1.0, 0.0)] (1 given) does not fit model fixed; "
                                     "allowed: 2 [re, im] pairs, one per TX antenna (2) of 'bs'"),
    ({"coefficients": None}, "links.0.coefficients = None (0 given) does not fit model fixed; allowed: 2 [re, im]"),
    ({"coefficients": [[1.0, 0.0], [math.inf, 0.0]]},
     "links.0.coefficients.1 = [inf, 0.0] is not finite; allowed: finite numbers"),
    ({"model": "rayleigh"}, "links.0.coefficients = [(-0.4199, -1.2885), (-0.4546, 1.0362)] is given for model "
                            "'rayleigh'; allowed: coefficients with model fixed only"),
])
def test_the_scenario_loader_names_field_value_and_allowed(tmp_path, change, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "system": "link", "topology": _downlink(**change)}))
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path))
    assert needle in str(err.value) and str(err.value).startswith("bad.yaml"), str(err.value)


def test_a_multi_antenna_rx_takes_its_coefficients_rx_antenna_by_rx_antenna():
    topo = _downlink(coefficients=[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    topo["nodes"][1]["antennas"] = 2
    matrix = stream_matrix(Topology.model_validate(topo), {"bs->ue0": 30.0, "bs->ue1": 30.0}, 1e6)
    h = ChannelMatrixEmulator(2, 3, matrix.specs, 0).realised_h()
    np.testing.assert_array_equal(h[:2], [[1, 1j], [2, 2j]])
