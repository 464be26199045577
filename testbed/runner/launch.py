"""Start node processes locally and supervise them: who is alive, who died and why.

Each process is ``python -m testbed.runner.proc ROLE SPEC.json STATUS.json`` with its log in
the run folder. The data plane is already TCP, so a launcher for other hosts only has to start
the same command there (issue of multi-host runs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from testbed.runner.files import read_json, write_json
from testbed.runner.graph import NodeProcess


class Launcher:
    """Started processes by name; ``reason(name)`` says why one is no longer running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()

    def start(self, node: NodeProcess) -> None:
        spec_path = self.workdir / f"{node.name}_spec.json"
        write_json(spec_path, node.spec)
        log = open(self.workdir / f"{node.name}.log", "wb")
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TESTBED_RUNNER_PID=str(os.getpid()))
        self.procs[node.name] = subprocess.Popen(
            [sys.executable, "-m", "testbed.runner.proc", node.role, str(spec_path), str(self._status(node.name))],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def _status(self, name: str) -> Path:
        return self.workdir / f"{name}_status.json"

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def reason(self, name: str) -> str:
        """Why ``name`` stopped: its error, its exit code and last log words."""
        proc = self.procs[name]
        if proc.poll() is None:
            return f"process {name} is running"
        status = read_json(self._status(name)) if self._status(name).exists() else {}
        if "error" in status:
            return f"process {name} failed: {status['error']}"
        tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-300:].strip()
        return f"process {name} died with exit code {proc.returncode}" + (f": {tail}" if tail else "")

    def stop_all(self, grace_s: float = 10.0, terminate: bool = False) -> dict[str, dict]:
        """Wait ``grace_s`` for every process to end (after its stop command; with ``terminate``
        SIGTERM first and 3 s), kill the rest; every process's final status (with ``returncode``)."""
        if terminate:
            grace_s = min(grace_s, 3.0)
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()
        deadline = time.monotonic() + grace_s
        while any(p.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        statuses = {}
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                self.killed.add(name)
            status = read_json(self._status(name)) if self._status(name).exists() else {}
            statuses[name] = {**status, "returncode": proc.returncode}
        return statuses
