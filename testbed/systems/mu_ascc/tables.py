"""MU-ASCC's codec tables M_d and M_s: each codec's rate and its fitted eq. (12) / (13)
parameters, read from the measured fits in docs/results and shipped beside the ONNX codecs as
``models/mu_ascc/tables.json`` (what the TX node's optimiser plans with).

Roles: ``data`` (the photo codecs, 1 - MS-SSIM fits of ``mu_ascc_distortion.json``, rates in
bits per RGB pixel) and ``semantic`` (the Fashion-MNIST codecs, classification-error fits of
``mu_ascc_semantic.json``, rates in bits per pixel of the 28 x 28 item). A codec whose fit
failed is left out.

    python -m testbed.systems.mu_ascc.tables --results docs/results --models models/mu_ascc
"""
from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

from testbed.errors import ConfigError
from testbed.runner.files import read_json, write_json

ROLES = ("data", "semantic")
KIND = "mu-ascc-tables"
_FIT_FIELDS = ("source_distortion", "channel_distortion", "slope_per_decade", "threshold_log10_ber")


def _entry(codec: dict, fit: dict) -> dict | None:
    if "error" in fit:
        return None
    return {"name": codec["codec"], "rate_bpp": codec["rate_bpp"], "r_squared": fit["r_squared"],
            "fit": {k: fit[k] for k in _FIT_FIELDS}}


def entries_from_results(results: Path, models: Path | None = None) -> dict[str, list[dict]]:
    """role -> [{"name", "rate_bpp", "r_squared", "fit"}] by rate, from the two fit files in
    ``results``; only codecs exported to ``models`` (``<name>.analysis.onnx``) when it is given."""
    data = read_json(Path(results) / "mu_ascc_distortion.json")["codecs"]
    semantic = read_json(Path(results) / "mu_ascc_semantic.json")["codecs"]
    roles = {"data": [_entry(c, c["fits"]["msssim_distortion"]) for c in data],
             "semantic": [_entry(c, c["fit"]) for c in semantic]}
    def shipped(entry: dict | None) -> bool:
        return entry is not None and (models is None or (Path(models) / f"{entry['name']}.analysis.onnx").is_file())

    return {role: sorted((e for e in found if shipped(e)), key=lambda e: e["rate_bpp"]) for role, found in roles.items()}


def rate_distortion_model(entries: list[dict]):
    """The optimiser's table (``RateDistortionModel``) of one role's entries (>= 2 codecs)."""
    from testbed.optim.mu_ascc import LogisticParams, RateDistortionModel  # cvxpy: only where one plans

    return RateDistortionModel.from_fits([e["rate_bpp"] for e in entries], [LogisticParams(**e["fit"]) for e in entries])


@lru_cache(maxsize=4)
def load_tables(path: str) -> dict[str, list[dict]]:
    """role -> entries of a ``tables.json`` written by :func:`main`; ConfigError naming the file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"tables = {path!r} is not a file; allowed: models/mu_ascc/tables.json, written by "
                          "python -m testbed.systems.mu_ascc.tables")
    doc = read_json(file)
    if doc.get("kind") != KIND or set(doc.get("roles", {})) != set(ROLES) \
            or any(len(doc["roles"][r]) < 2 for r in ROLES):
        raise ConfigError(f"tables = {path!r} is not a MU-ASCC codec table; allowed: kind {KIND!r} with >= 2 "
                          f"codecs for each of the roles {', '.join(ROLES)}")
    return {role: doc["roles"][role] for role in ROLES}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.tables",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--models", type=Path, default=Path("models/mu_ascc"),
                        help="the exported codecs: the table lists those, and is written there as tables.json")
    args = parser.parse_args(argv)
    doc = {"kind": KIND, "sources": ["docs/results/mu_ascc_distortion.json", "docs/results/mu_ascc_semantic.json"],
           "roles": entries_from_results(args.results, args.models)}
    missing = [role for role, entries in doc["roles"].items() if len(entries) < 2]
    if missing:
        raise ConfigError(f"--models {str(args.models)!r} holds fewer than 2 fitted codecs for {', '.join(missing)}; "
                          "allowed: >= 2 per role, exported by python -m testbed.systems.mu_ascc.export")
    write_json(args.models / "tables.json", doc)
    return doc


if __name__ == "__main__":
    print({role: [e["name"] for e in entries] for role, entries in main()["roles"].items()})
