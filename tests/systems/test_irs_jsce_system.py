"""The irs_jsce system without GNU Radio: its emulator channel, parameters, TX and RX steps on
frames made by hand, idle users and the run summary."""
import numpy as np
import pytest
import torch

from testbed.config.scenario import load_scenario
from testbed.data.images import image_set
from testbed.errors import ConfigError
from testbed.metrics import psnr_db
from testbed.phy.header import Header
from testbed.phy.mimo_receiver import MimoReceivedFrame
from testbed.runner.graph import tx_mode
from testbed.runner.results import Results, UserBatch
from testbed.systems.irs_jsce import channel
from testbed.systems.irs_jsce.system import ANALOG, IrsJsceSystem

GEOMETRY = channel.load_geometry()
USERS_M = [list(p) for p in GEOMETRY.users_m]


def test_emulated_channel_is_the_papers_cascade_in_node_order():
    tx, rx = [USERS_M[3], USERS_M[0]], [USERS_M[1], USERS_M[4], USERS_M[3]]
    irs = channel.EmulatedChannel({}, tx, rx, seed=5)
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, irs.n_elements)
    irs.set_phases(phases)
    assert set(np.unique(irs.phases)) <= {0.0, np.pi}
    paper = channel.cascaded(channel.draw_channels(GEOMETRY, 5, 2), channel.one_bit(phases))
    h = irs.cascaded(block=2)
    assert h.shape == (3, 2)
    for i, k in enumerate((1, 4, 3)):
        for j, r in enumerate((3, 0)):
            assert h[i, j] == pytest.approx(paper[r, k], rel=1e-5)  # TX user r -> RX user k
    assert h[2, 0] == 0  # user4 to itself: no link
    irs.set_phases(phases, reflecting=False)
    direct = channel.draw_channels(GEOMETRY, 5, 2).h_direct
    assert irs.cascaded(block=2)[0, 1] == pytest.approx(direct[0, 1], rel=1e-5)


def test_emulated_channel_refuses_nodes_away_from_the_users():
    with pytest.raises(ConfigError, match=r"rx_positions_m.1 = \[5.0, 5.0, 0.0\] is no user"):
        channel.EmulatedChannel({}, [USERS_M[0]], [USERS_M[1], [5.0, 5.0, 0.0]], seed=0)
    with pytest.raises(ConfigError, match="surface fields.*'k_factor_db'.*allowed: geometry, rows, cols"):
        channel.EmulatedChannel({"k_factor_db": 3}, [USERS_M[0]], [USERS_M[1]], seed=0)
    assert channel.EmulatedChannel({"rows": 4, "cols": 2}, [USERS_M[0]], [USERS_M[1]], seed=0).n_elements == 8


def test_the_scenario_makes_one_five_stream_frame_per_slot():
    topo = load_scenario("irs-jsce-5users").network()
    assert [tx_mode(topo, n.name) for n in topo.tx_nodes()] == [("stream", k, 5) for k in range(5)]
    with pytest.raises(ConfigError, match="topology.irs.channel = 'nope' is unknown; allowed: irs_jsce"):
        load_scenario("irs-jsce-5users", ["topology.irs.channel=nope"])


@pytest.mark.parametrize("field, value, message", [
    ("schedule", [["user1", "user2", "user3", "user4", "user5"]], "someone must receive"),
    ("schedule", [["user1", "user9"]], "user9"),
    ("user", "user0", "user0"),
    ("crop_px", 100, "multiple of 32"),
])
def test_bad_parameters_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        IrsJsceSystem({field: value})


def _frames(encoded, h: complex, noise_var: float, flow: int, rng) -> list[MimoReceivedFrame]:
    """What the one-antenna stream receiver makes of a lone TX's frames: y / h."""
    out = []
    for job in encoded.jobs:
        noise = (rng.standard_normal((job.payload.size, 2)) @ [1, 1j]) * np.sqrt(noise_var / 2)
        z = (job.payload + noise / h).astype(np.complex64)
        out.append(MimoReceivedFrame(header=Header(user=flow, seq=job.seq, length=z.size), fmt=ANALOG, start=0,
                                     payload=z, payload_ok=True, snr_est_db=0.0, evm_db=0.0, cfo=0.0,
                                     h_est=np.array([h], np.complex64), noise_var_est=noise_var))
    return out


def _torch_slot(system: IrsJsceSystem, items, h: complex) -> dict[int, np.ndarray]:
    """Slot 0 of ``system`` (user1 alone sends) through model.transmit_slot in torch, every link of
    gain ``h`` and no noise: RX user -> its image."""
    from testbed.data.images import tile, untile
    from testbed.systems.irs_jsce.model import transmit_slot

    links = channel.slot_links([0], 5)
    chosen = [items[k % len(items)][1] for _, k in links]
    sent = [system.crop(img, system.crop_side(chosen)) for img in chosen]
    tiles = torch.from_numpy(np.stack([tile(img, 32) for img in sent], axis=1))
    gains = torch.full((len(tiles), 5, 5), h, dtype=torch.complex64)
    with torch.no_grad():
        out = transmit_slot(system.entry.torch_module("transmitter"), system.entry.torch_module("receiver"), tiles,
                            links, gains, 1e-12, torch.from_numpy(system.positions_m)).clamp(0, 1).numpy()
    return {k: untile(out[:, j], sent[j].shape) for j, (_, k) in enumerate(links)}


def test_tx_and_rx_steps_on_frames_made_by_hand():
    schedule = [["user1"], ["user2", "user3"]]
    tx = IrsJsceSystem({"user": "user1", "schedule": schedule, "crop_px": 64})
    rng = np.random.default_rng(0)
    photo = image_set("default")[0][1]
    items = [("a", photo[:, :96, :80]), ("b", photo[:, -64:, -64:])]
    enc = tx.encode(items, 10.0, batch=0)
    assert enc.manifest["tiles"] == 4 and [lk["rx"] for lk in enc.manifest["links"]] == [1, 2, 3, 4]
    assert [lk["item"] for lk in enc.manifest["links"]] == ["b", "a", "b", "a"]  # item (batch + k) mod n
    symbols = np.concatenate([job.payload for job in enc.jobs])
    assert np.mean(np.abs(symbols) ** 2) == pytest.approx(1.0, rel=1e-3)
    assert tx.encode(items, 10.0, batch=1).jobs == []  # not a transmitter of slot 1: silent
    rx = IrsJsceSystem({"user": "user3", "schedule": schedule, "crop_px": 64})
    assert tx.idle(enc.manifest) and not rx.idle(enc.manifest)  # user1 does not send to itself
    good = rx.decode(_frames(enc, 12 - 5j, 1e-6, 0, rng), enc.manifest)
    assert np.max(np.abs(good.images["a"] - _torch_slot(tx, items, 12 - 5j)[2])) < 2e-3  # user3's link
    noisy = rx.decode(_frames(enc, 0.5, 0.1, 0, rng), enc.manifest)
    reference = tx.crop(items[0][1], 64)
    assert psnr_db(reference, good.images["a"]) > psnr_db(reference, noisy.images["a"]) + 1
    scores = rx.score(items, enc.manifest, good)
    assert scores["semantic_throughput"] == pytest.approx(12 * scores["ssim"])
    assert scores["snr_est_db"] == pytest.approx(10 * np.log10(169 / 1e-6), abs=1e-3)
    lost = rx.decode([], enc.manifest)
    assert int(lost.arrays["lost_frames"]) == len(enc.jobs) and np.all(lost.images["a"] == 0.5)


def test_idle_batches_are_left_out_of_rows_and_the_summary_takes_the_minimum():
    topo = load_scenario("irs-jsce-5users").network()
    results = Results(topo, {u.name: "m" for u in topo.users})
    metrics = {"psnr_db": 20.0, "ssim": 0.5, "semantic_throughput": 6.0, "frames_sent": 1, "csi_snr_db": 10.0}
    results.add(0, {}, UserBatch("u1to2", metrics=metrics))
    results.add(0, {}, UserBatch("u1to2", idle=True))
    results.add(0, {}, UserBatch("u1to3", idle=True))
    results.irs_at[0] = "trained"
    rows = {r["user"]: r for r in results.rows()}
    assert rows["u1to2"]["status"] == "ok" and rows["u1to2"]["batches"] == 1 and rows["u1to2"]["idle_batches"] == 1
    assert rows["u1to3"]["status"] == "idle" and rows["u1to3"]["psnr_db"] is None
    summary = IrsJsceSystem.summary(list(rows.values()))["min_semantic_throughput"]["trained"]
    assert summary == {"value": 0.0, "link": "u1to3", "links": 2, "links_failed": 0}
    del rows["u1to3"]
    assert IrsJsceSystem.summary(list(rows.values()))["min_semantic_throughput"]["trained"]["value"] == 3.0
