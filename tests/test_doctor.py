"""`testbed doctor` report: keys, JSON-friendliness, and a clear "no radios found" without hardware."""
from __future__ import annotations

import json

import pytest
from rich.console import Console

from testbed.doctor import GR_MODULES, NO_RADIOS, PACKAGES, doctor_report, render


@pytest.fixture(scope="module")
def report() -> dict:
    return doctor_report()


def test_report_keys_and_render(report: dict) -> None:
    assert set(report) == {"testbed", "python", "gnuradio", "packages", "radio_backends", "radios"}
    assert set(report["gnuradio"]["modules"]) == set(GR_MODULES)
    assert report["gnuradio"]["version"].startswith("3.10")
    assert set(report["packages"]) == set(PACKAGES)
    assert {"zmq", "uhd", "pluto"} <= set(report["radio_backends"])
    assert report["radio_backends"]["zmq"]["available"]
    json.dumps(report)

    console = Console(width=160, record=True)
    console.print(render(report))
    text = console.export_text()
    assert "gnuradio.zeromq" in text and "radio backend uhd" in text
    if not report["radios"]:
        assert NO_RADIOS in text


def test_render_lists_found_radios(report: dict) -> None:
    report = {**report}
    report["radios"] = [{"backend": "pluto", "uri": "usb:1.2.5", "description": "PlutoSDR"}]
    console = Console(width=160, record=True)
    console.print(render(report))
    text = console.export_text()
    assert "uri=usb:1.2.5" in text and NO_RADIOS not in text
