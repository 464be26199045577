"""The ``testbed`` command line: doctor, run, sweep, demo, bench, soak, fuzz."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from testbed.errors import TestbedError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=160)


def _fail(err: TestbedError) -> None:
    console.print(f"[red]error:[/red] {err}", highlight=False)
    raise typer.Exit(2)


def _table(document: dict) -> Table:
    from testbed.runner.report import table_rows

    keys, cells = table_rows(document["rows"])
    table = Table(title=f"{document['scenario']} ({document['system']})")
    for key in keys:
        table.add_column(key, justify="right" if key != "model" else "left")
    for row in cells:
        table.add_row(*row)
    return table


def _snr_range(text: str) -> list[float]:
    try:
        start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise TestbedError(f"--snr-db {text!r}: expected START:STOP:STEP, e.g. 0:20:5") from None
    if step <= 0 or stop < start:
        raise TestbedError(f"--snr-db {text!r}: STEP must be > 0 and STOP >= START")
    return [float(v) for v in np.arange(start, stop + step / 2, step)]


def _run(scenario_name: str, overrides: list[str], out: Optional[Path], resume: bool = False) -> dict:
    from testbed.config.scenario import load_scenario
    from testbed.runner.report import write_report
    from testbed.runner.scenario import default_out_dir, run_scenario

    scenario = load_scenario(scenario_name, overrides)
    out_dir = out or default_out_dir(scenario.name)
    with console.status(f"running {scenario.name}") as status:
        result = run_scenario(scenario, out_dir, progress=lambda s: status.update(f"running {s}"), resume=resume)
    report = write_report(out_dir, result.document, result.originals, result.images)
    console.print(_table(result.document))
    for key, value in result.document.get("summary", {}).items():
        console.print(f"{key}: {json.dumps(value)}", highlight=False, markup=False)
    for problem in result.document["problems"]:
        console.print(f"[yellow]problem:[/yellow] {problem}", highlight=False)
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {report}")
    return result.document


@app.command()
def run(scenario: str = typer.Argument(..., help="shipped scenario name or YAML path"),
        set_: list[str] = typer.Option([], "--set", help="override, e.g. images=DIR or channel.snr_db=[0,10]"),
        out: Optional[Path] = typer.Option(None, help="output folder (default runs/<time>-<scenario>)"),
        record: Optional[Path] = typer.Option(None, help="record every RX node's samples here as SigMF"),
        resume: bool = typer.Option(False, help="with --out of an earlier run: skip the points it completed")) -> None:
    """Run SCENARIO over the virtual-radio network and write metrics.json and a report."""
    try:
        doc = _run(scenario, [*set_, *([f"record={record}"] if record else [])], out, resume)
    except TestbedError as err:
        _fail(err)
    _exit_if_all_failed(doc)


def _exit_if_all_failed(doc: dict) -> None:
    """Exit 1 when every user of every point failed (a partial failure still exits 0)."""
    if doc["rows"] and all(row.get("status") == "failed" for row in doc["rows"]):
        console.print("[red]every user failed[/red]")
        raise typer.Exit(1)


@app.command()
def sweep(scenario: str = typer.Argument(...), snr_db: str = typer.Option(..., help="START:STOP:STEP in dB"),
          set_: list[str] = typer.Option([], "--set"), out: Optional[Path] = typer.Option(None),
          resume: bool = typer.Option(False, help="with --out of a killed sweep: go on from its last complete point")
          ) -> None:
    """Run SCENARIO at every SNR of START:STOP:STEP: the link's SNR for a one-link scenario, an
    offset added to every link's SNR for a topology (its own sweep axes are replaced)."""
    from testbed.config.scenario import load_scenario

    try:
        values = _snr_range(snr_db)
        if load_scenario(scenario, set_).topology is None:
            axis = f"channel.snr_db={json.dumps(values)}"
        else:
            axis = f"topology.sweep={json.dumps([{'axis': 'snr_offset_db', 'values': values}])}"
        doc = _run(scenario, [*set_, axis], out, resume)
    except TestbedError as err:
        _fail(err)
    _exit_if_all_failed(doc)


@app.command()
def replay(recording: Path = typer.Argument(..., help="a folder written by testbed run SCENARIO --record DIR"),
           out: Optional[Path] = typer.Option(None, help="output folder (default runs/<time>-replay)")) -> None:
    """Run the receiver and the decoders offline on a recorded run; writes the same metrics.json."""
    from testbed.recordings.replay import replay as run_replay
    from testbed.runner.scenario import default_out_dir

    out_dir = out or default_out_dir("replay")
    try:
        doc = run_replay(recording, out_dir)
    except TestbedError as err:
        _fail(err)
    console.print(_table(doc))
    console.print(f"metrics: {out_dir / 'metrics.json'}")
    _exit_if_all_failed(doc)


@app.command()
def demo(out: Optional[Path] = typer.Option(None)) -> None:
    """The embedded default run: the best DeepJSCC models at 1/6 and 1/12 against the digital
    envelope and its capacity-achieving ideal over the ZMQ virtual-radio network (TX, channel, RX
    processes), AWGN and Rayleigh, 0-20 dB, on 256-px crops of the held-out photographs."""
    from testbed.runner.demo import run_demo
    from testbed.runner.scenario import default_out_dir

    out_dir = out or default_out_dir("demo")
    try:
        with console.status("demo") as status:
            doc = run_demo(out_dir, progress=lambda s: status.update(f"running {s}"))
    except TestbedError as err:
        _fail(err)
    console.print(_table(doc))
    for problem in doc["problems"]:
        console.print(f"[yellow]problem:[/yellow] {problem}", highlight=False)
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.md'}")


def _lab_preflight(json_: bool) -> None:
    from dataclasses import asdict

    from testbed.lab_preflight import preflight, worst

    checks = preflight()
    if json_:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        table = Table(title="testbed lab preflight")
        for column in ("check", "status", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/{colour[c.status]}]", c.detail, c.fix)
        console.print(table)
    if worst(checks) == "fail":
        raise typer.Exit(1)


@app.command()
def doctor(json_: bool = typer.Option(False, "--json", help="print the report as JSON"),
           lab: bool = typer.Option(False, "--lab", help="lab-machine preflight: GNU Radio modules, libiio, UHD "
                                    "and its FPGA images, USB speed of attached radios, CPU, memory, disk; "
                                    "exit 1 when a check fails")) -> None:
    """GNU Radio, ONNX Runtime and torch versions, radio backends, radios found, models verified."""
    if lab:
        _lab_preflight(json_)
        return
    from testbed.doctor import doctor_report, render

    from testbed import registry
    from testbed.onnx.verify import verify_model

    report = doctor_report()
    report["models"] = {name: verify_model(registry.get("model", name)) or "ok" for name in registry.names("model")}
    report["models"].update({name: registry.get("system-model", name).verify() or "ok"
                             for name in registry.names("system-model")})
    if json_:
        print(json.dumps(report, indent=2, default=str))
        return
    console.print(render(report))
    for name, status in report["models"].items():
        console.print(f"model {name}: " + ("ok" if status == "ok" else f"[red]{'; '.join(status)}[/red]"), highlight=False)


def _trainable(system: str):
    from testbed import registry

    cls = registry.get("system", system)
    if cls.trainer is None:
        allowed = [n for n in registry.names("system") if registry.get("system", n).trainer]
        raise TestbedError(f"system {system!r} has nothing to train; allowed: {', '.join(allowed)}")
    return cls.trainer


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH)
def train(ctx: typer.Context, system: str = typer.Argument(..., help="a trainable system, e.g. deepjscc")) -> None:
    """Train SYSTEM reproducibly (seeded, resumable), evaluate it, export ONNX + model cards.

    The options after SYSTEM go to its trainer, e.g. `testbed train deepjscc --ratio 1/6
    --variant adjscc --minutes 45 --seed 0 --out models/deepjscc` (see --help of the trainer:
    `testbed train deepjscc --help`)."""
    try:
        _trainable(system)(list(ctx.args))
    except TestbedError as err:
        _fail(err)


@app.command(context_settings=_PASS_THROUGH)
def export(ctx: typer.Context, system: str = typer.Argument(...)) -> None:
    """Export a finished training run of SYSTEM to ONNX + cards: the train command with the same
    options resumes its checkpoint, finds the time budget spent, and only evaluates and exports."""
    try:
        _trainable(system)(list(ctx.args))
    except TestbedError as err:
        _fail(err)


@app.command()
def models(verify: bool = typer.Option(False, "--verify", help="check hash, names, shapes and torch-vs-ONNX parity")) -> None:
    """List the shipped models; with --verify check every one (exit 1 on any problem)."""
    from testbed import registry
    from testbed.onnx.card import read_card

    table = Table(title="shipped models")
    for col in ("name", "system", "ratio", "variant", "PSNR 0/10/20 dB AWGN (held-out photos)", "check"):
        table.add_column(col)
    failed = False
    for name in registry.names("model"):
        entry = registry.get("model", name)
        problems, psnr = (_check_model(entry) if verify else []), ""
        try:
            awgn = read_card(entry.encoder)["metrics"]["photos_awgn"]
            psnr = " / ".join(f"{v:.2f}" for s, v in zip(awgn["snr_db"], awgn["psnr_db"]) if s in (0.0, 10.0, 20.0))
        except (TestbedError, KeyError) as err:
            problems = problems or [str(err)]
        failed |= bool(problems)
        check = ("[red]" + "; ".join(problems) + "[/red]") if problems else ("ok" if verify else "")
        table.add_row(name, entry.system, entry.bandwidth_ratio, entry.variant, psnr, check)
    console.print(table)
    if failed and verify:
        raise typer.Exit(1)


def _check_model(entry) -> list[str]:
    from testbed.onnx.verify import PARITY_TOLERANCE, parity, verify_model

    problems = verify_model(entry)
    if not problems:
        err = parity(entry)
        if err > PARITY_TOLERANCE:
            problems.append(f"ONNX vs torch max abs error {err:.2e} > {PARITY_TOLERANCE:g}")
    return problems


@app.command("phy-curves")
def phy_curves(out: Path = typer.Option(Path("docs/results"), help="folder for the plots and JSON"),
               quick: bool = typer.Option(False, help="three points per curve")) -> None:
    """Measure uncoded BER and LDPC BLER curves through the three-process ZMQ chain and plot them."""
    from testbed.runner.phy_curves import make_curves

    with console.status("measuring") as status:
        doc = make_curves(out, quick, progress=lambda s: status.update(s))
    for mod, rows in doc["ber"].items():
        console.print(f"BER {mod}: " + ", ".join(f"{r['snr_db']:g} dB {r['ber']:.2e} (theory {r['theory']:.2e})" for r in rows))
    for code, rows in doc["bler"].items():
        console.print(f"BLER {code}: " + ", ".join(f"{r['snr_db']:g} dB {r['bler']:.3f}" for r in rows))
    console.print(f"plots and numbers in {out}")


@app.command()
def bench(quick: bool = typer.Option(False, help="fewer repetitions (for a smoke run)")) -> None:
    """Throughput side by side with its peer: receiver, ZMQ chain, LDPC decoder."""
    from testbed.bench.suite import print_suite, run_suite

    print_suite(run_suite(quick=quick), console)


@app.command()
def soak(scenario: str = typer.Argument(..., help="shipped scenario name or YAML path"),
         minutes: float = typer.Option(60.0, help="how long to keep the run going"),
         sample_s: float = typer.Option(60.0, help="seconds between samples of memory and metrics"),
         set_: list[str] = typer.Option([], "--set", help="override, e.g. system_params.n_frames=10"),
         out: Optional[Path] = typer.Option(None, help="output folder (default runs/<time>-soak-<scenario>)")) -> None:
    """Keep SCENARIO running for MINUTES; sample every process's memory and the metrics; soak.json."""
    from testbed.runner.scenario import default_out_dir
    from testbed.runner.soak import soak as run_soak

    out_dir = out or default_out_dir(f"soak-{Path(scenario).stem}")
    try:
        with console.status("soak") as status:
            doc = run_soak(scenario, out_dir, minutes, sample_s, overrides=set_ or None,
                           progress=lambda s: status.update(f"soak: {s}"))
    except TestbedError as err:
        _fail(err)
    summary = doc.get("summary", {})
    console.print(f"{summary.get('samples', 0)} samples, memory growth after warm-up (%): "
                  f"{summary.get('rss_growth_pct')}, metric drift: {summary.get('metric_drift')}")
    console.print(f"soak: {out_dir / 'soak.json'}")


@app.command()
def fuzz(targets: list[str] = typer.Argument(None, help="receiver, header, scenario, radio, sigmf (default: all)"),
         runs: int = typer.Option(100_000, help="inputs per target")) -> None:
    """Fuzz the parsers that meet untrusted input (atheris where installed, else hypothesis), each
    target in its own process; exit 1 when one raised anything but the testbed's own errors."""
    import re
    import subprocess
    import sys

    from testbed.bench.fuzz import TARGETS

    table, failed = Table(title=f"fuzzing, {runs} inputs per target"), False
    for col in ("target", "inputs", "seconds", "result"):
        table.add_column(col)
    for name in targets or sorted(TARGETS):
        if name not in TARGETS:
            _fail(TestbedError(f"fuzz target {name!r} is unknown; allowed: {', '.join(sorted(TARGETS))}"))
        done = subprocess.run([sys.executable, "-m", "testbed.bench.fuzz", name, "--runs", str(runs)],
                              capture_output=True, text=True)
        found = re.search(r"Done (\d+) runs in (\d+) second", done.stderr) or \
            re.search(r'"runs": (\d+), "seconds": ([\d.]+)', done.stdout)
        ok = done.returncode == 0 and found is not None
        failed |= not ok
        detail = "ok" if ok else "[red]" + (done.stderr.strip().splitlines() or ["no output"])[-1][:100] + "[/red]"
        table.add_row(name, found.group(1) if found else "-", found.group(2) if found else "-", detail)
    console.print(table)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
