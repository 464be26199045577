"""Run frames through the three-process virtual-radio chain and collect what came out.

``run_chain`` starts one TX process per transmit stream, one channel-emulator process and one
RX process per receive stream, joined by gr-zeromq PUSH/PULL on free TCP ports, waits for them
to stop on their own counts, and returns their statuses and the received frames. A process
that dies or hangs is reported by name with its exit code and last words; what the others
measured is kept.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from testbed.channels.spec import ChannelSpec
from testbed.phy.frame import FrameJob, FrameLayout, slot_padding
from testbed.radios.virtual import endpoint, free_tcp_port
from testbed.runner.files import read_json, write_json
from testbed.phy.receiver import ReceivedFrame
from testbed.runner.jobs import load_results, save_jobs

GAP_SAMPLES = 400
TAIL_SAMPLES = 4096


@dataclass
class ChainResult:
    """Statuses of every process (by name), the RX result files, and the problems seen."""

    statuses: dict[str, dict] = field(default_factory=dict)
    results: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def received(self, j: int) -> list[ReceivedFrame] | None:
        """The frames RX j received, None when it wrote no result file."""
        path = self.results[j]
        return load_results(path) if path.exists() else None


def stream_samples(jobs: list[FrameJob], gap_samples: int = GAP_SAMPLES, slot_samples: int = 0) -> int:
    """Samples a TX process emits for ``jobs`` before its tail."""
    layout = FrameLayout()
    lengths = [job.frame_len(layout) for job in jobs]
    return sum(n + slot_padding(n, gap_samples, slot_samples) for n in lengths)


def fading_slot(jobs: list[FrameJob], delay_samples: float) -> int:
    """Slot length (samples) holding the longest frame, its gap and the channel delay: the
    coherence time that gives every frame one block-fading draw."""
    layout = FrameLayout()
    return max(job.frame_len(layout) for job in jobs) + GAP_SAMPLES + int(math.ceil(delay_samples)) + 64


def run_chain(tx_jobs: list[list[FrameJob]], links: list[list[ChannelSpec]], workdir: Path, *,
              sample_rate_sps: float = 1e6, seed: int = 0, timeout_s: float = 300.0,
              idle_timeout_s: float = 20.0, on_start: Callable[[dict[str, subprocess.Popen]], None] | None = None,
              slot_samples: int = 0) -> ChainResult:
    """Send ``tx_jobs[i]`` from TX stream i through the channel matrix ``links`` (n_rx x n_tx).

    Every TX stream is padded with zeros to the same length, so the emulator (a sync block)
    never waits on one stream while another has ended. A process whose input stalls for
    ``idle_timeout_s`` stops and reports what it has; ``on_start`` sees the started processes
    (for monitoring, or to inject a fault in tests). ``slot_samples`` makes every TX slotted
    (frames start on slot boundaries, see ``FramerSource``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    n_rx, n_tx = len(links), len(links[0])
    lengths = [stream_samples(jobs, GAP_SAMPLES, slot_samples) for jobs in tx_jobs]
    total = max(lengths) + TAIL_SAMPLES
    tx_ports = [endpoint(free_tcp_port()) for _ in range(n_tx)]
    rx_ports = [endpoint(free_tcp_port()) for _ in range(n_rx)]
    specs: dict[str, dict] = {}
    for i, jobs in enumerate(tx_jobs):
        save_jobs(workdir / f"tx{i}_jobs.npz", jobs)
        specs[f"tx{i}"] = {"jobs": str(workdir / f"tx{i}_jobs.npz"), "out": tx_ports[i], "gap_samples": GAP_SAMPLES,
                           "slot_samples": slot_samples,
                           "tail_samples": total - lengths[i], "total_samples": total}
    specs["channel"] = {"inputs": tx_ports, "outputs": rx_ports, "seed": seed, "total_samples": total,
                        "links": [[link.to_dict() for link in row] for row in links]}
    results = [workdir / f"rx{j}_frames.npz" for j in range(n_rx)]
    for j in range(n_rx):
        specs[f"rx{j}"] = {"input": rx_ports[j], "results": str(results[j]), "sample_rate_sps": sample_rate_sps,
                           "total_samples": total}
    for spec in specs.values():
        spec.update(idle_timeout_s=idle_timeout_s, timeout_s=timeout_s)
    return _run_processes(specs, workdir, timeout_s, ChainResult(results=results), on_start)


def _run_processes(specs: dict[str, dict], workdir: Path, timeout_s: float, result: ChainResult,
                   on_start: Callable[[dict[str, subprocess.Popen]], None] | None) -> ChainResult:
    """Start one process per spec (receivers first), wait, and collect statuses."""
    procs: dict[str, subprocess.Popen] = {}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    order = sorted(specs, key=lambda name: (not name.startswith("rx"), name != "channel"))
    for name in order:
        write_json(workdir / f"{name}_spec.json", specs[name])
        log = open(workdir / f"{name}.log", "wb")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "testbed.runner.proc", name.rstrip("0123456789"),
             str(workdir / f"{name}_spec.json"), str(workdir / f"{name}_status.json")],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    if on_start is not None:
        on_start(procs)
    deadline = time.monotonic() + timeout_s + 10.0
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs.values()):
            deadline = min(deadline, time.monotonic() + 5.0)  # one died: give the others 5 s
        time.sleep(0.05)
    for name, proc in procs.items():
        _collect(name, proc, workdir, result)
    return result


def _collect(name: str, proc: subprocess.Popen, workdir: Path, result: ChainResult) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        result.problems.append(f"process {name} did not finish in time and was killed")
    status_path = workdir / f"{name}_status.json"
    status = read_json(status_path) if status_path.exists() else {}
    status["returncode"] = proc.returncode
    result.statuses[name] = status
    if "error" in status:
        result.problems.append(f"process {name} failed: {status['error']}")
    elif proc.returncode != 0:
        tail = (workdir / f"{name}.log").read_text(errors="replace")[-300:]
        result.problems.append(f"process {name} died with exit code {proc.returncode}: {tail.strip()}")
    elif status.get("stopped") not in (None, "done"):
        result.problems.append(f"process {name} stopped on {status['stopped']} before its sample count")
