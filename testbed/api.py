"""The scripting API: run the testbed's scenarios from Python scripts and notebooks (docs/scripting.md).

    from testbed.api import Run

    with Run("broadcast-4users", "runs/ramp", overrides={"batches": 4}) as run:
        run.set_snr("bs->ue1", 15.0)            # live, from the next batch on
        for record in run.records():            # one Record per user and batch, as they arrive
            print(record.user, record.snr_db, record.psnr_db)
    # every node process is stopped here, also after an exception or Ctrl-C, and
    # runs/ramp/metrics.json holds everything measured

``Run`` (testbed.runner.run) takes a shipped scenario name, a YAML path, a mapping with the
scenario schema or a Scenario, and overrides; ``Record`` is one user's result of one batch (the
keys of a metrics.json row); ``Change`` a live change with the emulator sample it landed at.
"""
from testbed.config.scenario import Scenario, shipped_scenarios
from testbed.errors import ConfigError, ProcessError, RadioError, TestbedError
from testbed.runner.run import Change, Record, Run, as_scenario

__all__ = ["Run", "Record", "Change", "Scenario", "as_scenario", "shipped_scenarios",
           "TestbedError", "ConfigError", "RadioError", "ProcessError"]
