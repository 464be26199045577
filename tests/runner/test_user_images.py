"""Per-user image sets and the beamformed TX mode as plain data: which items each user and each
TX gets, what the scenario loader refuses, and how the process graph marks a beamformed TX and
its users' receivers (systems without encode_precoded keep the zero-forcing graph)."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from testbed import registry
from testbed.config.scenario import load_scenario, scenario_from_dict
from testbed.data.images import image_set
from testbed.errors import ConfigError
from testbed.runner.graph import build_graph
from testbed.runner.scenario import scenario_images, user_images
from testbed.runner.session import union_items

PLUGIN = Path(__file__).parents[1] / "integration" / "plugin_beams"


def _folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{name}.png")
    return folder


def _downlink(system: str, images_u1: str | None, **top) -> dict:
    users = [{"name": "u0", "tx": "bs", "rx": "ue0"}, {"name": "u1", "tx": "bs", "rx": "ue1", "images": images_u1}]
    return {"name": "t", "system": system, **top, "topology": {
        "nodes": [{"name": "bs", "role": "tx", "antennas": 2}, {"name": "ue0", "role": "rx"},
                  {"name": "ue1", "role": "rx"}],
        "users": users, "links": [{"tx": "bs", "rx": f"ue{k}", "snr_db": 20.0} for k in range(2)]}}


@pytest.fixture
def beams():
    registry.load_plugins(PLUGIN)


def test_each_user_gets_its_own_set_cut_to_max_images_and_the_default_set_is_shared(tmp_path, beams):
    folder = _folder(tmp_path, ["a", "b", "c"])
    scenario = scenario_from_dict(_downlink("beams", str(folder), max_images=2))
    items = scenario_images(scenario)
    per_user = user_images(scenario, items)
    assert per_user["u0"] is items and [n for n, _ in items] == [n for n, _ in image_set("default")[:2]]
    assert [name for name, _ in per_user["u1"]] == ["a", "b"]
    assert user_images(scenario_from_dict(_downlink("beams", None)), items) == {"u0": items, "u1": items}


def test_a_tx_is_sent_the_union_of_its_users_items_once_each():
    a, b, c = (np.full((3, 2, 2), v, np.float32) for v in (0.1, 0.2, 0.3))
    assert union_items([[("x", a), ("y", b)], [("y", b.copy()), ("z", c)]]) == [("x", a), ("y", b), ("z", c)]
    with pytest.raises(ConfigError, match="item 'y' differs between the image sets of one TX's users; allowed"):
        union_items([[("y", b)], [("y", c)]])


def test_users_of_one_tx_share_a_set_unless_the_system_sends_each_its_own(tmp_path):
    folder = _folder(tmp_path, ["a"])
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(_downlink("link", str(folder)), "t.yaml")
    assert ("t.yaml: topology.users: the users of bs have the image sets {'u0': 'default', 'u1': '" + str(folder)
            + "'}; allowed: one set for all (only a multi-antenna TX whose system defines encode_precoded") in str(err.value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_downlink("link", "no/such/folder")))
    with pytest.raises(ConfigError, match="bad.yaml: topology.users.1.images = 'no/such/folder' is not a folder; "
                                          "allowed: 'default'"):
        load_scenario(str(path))


def test_a_system_with_encode_precoded_makes_a_beamformed_tx_and_stream_receivers(beams):
    graph = build_graph(scenario_from_dict(_downlink("beams", None)), "token", 0, 1e6)
    (tx,) = graph.tx()
    assert (tx.spec["mode"], tx.spec["users"], tx.spec["flows"]) == ("beamformed", ["u0", "u1"], [0, 1])
    assert [rx.spec["own_flows"] for rx in graph.rx()] == [True, True]
    zf = build_graph(load_scenario("mumiso-downlink"), "token", 0, 1e6)  # deepjscc: no encode_precoded
    assert [p.spec["mode"] for p in zf.tx()] == ["precoded"]
    assert [rx.spec["own_flows"] for rx in zf.rx()] == [False, False]
