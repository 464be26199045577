"""The IRS-JSCE experiment commands on tiny runs: fine-tuning from a shipped model, snapshots over
training and the rows of the IRS-size sweep and of the training curve."""
import numpy as np
import pytest
import torch

from testbed import registry
from testbed.data.images import image_set
from testbed.errors import ConfigError
from testbed.systems.irs_jsce import irs_size, training_curve
from testbed.systems.irs_jsce.system import DEFAULT_MODEL
from testbed.systems.irs_jsce.train import TrainConfig, Trainer, train

TINY = dict(steps=2, batch_slots=1, crop=16, bank_blocks=4, warmup_steps=0)


def test_a_run_can_start_from_a_shipped_models_networks():
    trainer = Trainer(TrainConfig(irs_side=2, init=DEFAULT_MODEL, **TINY))
    shipped = registry.get("system-model", DEFAULT_MODEL).torch_module("transmitter").state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in trainer.encoder.state_dict().items())
    assert trainer.irs.phases.numel() == 4  # its own surface, phases afresh
    with pytest.raises(ConfigError, match="init = 'nope' is unknown; allowed: irs-jsce-"):
        Trainer(TrainConfig(init="nope", **TINY))


@pytest.fixture(scope="module")
def snapshotted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("irs-ck")
    cfg = TrainConfig(irs_side=2, **TINY)
    train(cfg, folder, progress=False, snapshot_every=1)
    return cfg, folder


def test_snapshots_are_found_by_step(snapshotted):
    cfg, folder = snapshotted
    found = training_curve.snapshots(cfg, folder)
    assert [step for step, _ in found] == [1, 2]
    with pytest.raises(ConfigError, match="no snapshot of"):
        training_curve.snapshots(TrainConfig(irs_side=4, **TINY), folder)


def test_size_row_and_curve_point_measure_the_run(snapshotted):
    cfg, folder = snapshotted
    images = [img[:, :64, :64] for _, img in image_set("default")[:2]]
    row = irs_size.size_row(cfg, training_curve.snapshots(cfg, folder)[-1][1], images, blocks=1)
    assert row["side"] == 2 and row["elements"] == 4
    assert all(np.isfinite(v) for k, v in row.items() if k.endswith(("_db", "_ssim")))
    point = training_curve.curve_point(training_curve.snapshots(cfg, folder)[0][1], images, seed=0)
    assert len(point["schedule"]) == 5
    assert all(np.isfinite(point[k]) for k in ("jsce_throughput", "one_tx_throughput", "semantic_tdma_throughput"))
