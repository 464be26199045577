"""The ZF-WF-DJSCC benchmark of MU-ASCC (section V-A of ../shared/seeds/001_ef80d34948c98c54.txt):
zero-forcing beams, water-filling powers and, per user, a DeepJSCC trained at 10 dB AWGN.

Zero-forcing leaves each stream no interference, so at its ZF-WF SINR a user's DJSCC sees an AWGN
link of that SNR. This module measures each DJSCC model's distortion against the SNR through
AWGN once (:func:`measure`, on held-out items only) and reads the benchmark's distortion off
those curves (:class:`DjsccBenchmark`):

- data user: 1 - MS-SSIM of the held-out photo crops (``held_out_crops()``, the data user's
  codec tables use the same) through the tiled DeepJSCC models ``DU_MODELS`` (ratios 1/32 and
  1/24, both trained at 10 dB AWGN); at a ratio between two models the distortion is
  interpolated linearly in the ratio, as the paper interpolates its codec tables (eqs. 26-30);
- semantic user: the classification error of the shipped classifier behind
  :class:`~testbed.systems.mu_ascc.djscc.FashionJSCC` on the first ``SEMANTIC_ITEMS``
  Fashion-MNIST test items (the semantic tables use the same), at ratio 0.25.

Between grid SNRs a curve is interpolated linearly in dB; outside the grid it keeps its end value.
A ratio no model brackets gives no benchmark (None): a DJSCC sends a fixed number of symbols.

    python -m testbed.systems.mu_ascc.djscc_benchmark --out docs/results
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

from testbed import registry
from testbed.data.images import held_out_crops
from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError
from testbed.metrics import ms_ssim
from testbed.onnx.card import read_card
from testbed.onnx.session import OnnxModel
from testbed.runner.files import atomic_write_bytes, read_json, write_json
from testbed.systems.deepjscc.codec import NeuralImageCodec
from testbed.systems.mu_ascc.system import MODEL_DIR

SNR_GRID_DB = tuple(float(s) for s in range(-10, 31))
DU_MODELS = ("deepjscc-r32-awgn-10db", "deepjscc-r24-awgn-10db")
SEMANTIC_ITEMS = 500
RESULT_FILE = "mu_ascc_djscc.json"
ROLES = ("data", "semantic")


def _awgn(symbols: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power symbols, complex (n,) or float32 I/Q (..., 2), plus complex AWGN of variance
    10^(-snr_db/10); the same dtype and shape back."""
    sigma = np.sqrt(10.0 ** (-snr_db / 10.0) / 2.0)
    if np.iscomplexobj(symbols):
        noise = sigma * rng.standard_normal((*symbols.shape, 2))
        return (symbols + noise[..., 0] + 1j * noise[..., 1]).astype(symbols.dtype)
    return (symbols + sigma * rng.standard_normal(symbols.shape)).astype(np.float32)


def data_curve(model: str, snrs_db: tuple[float, ...] = SNR_GRID_DB, draws: int = 2, seed: int = 0) -> dict:
    """Mean 1 - MS-SSIM of the held-out crops through ``model`` and AWGN at each SNR."""
    codec = NeuralImageCodec(model)
    crops = [img for _, img in held_out_crops()]
    rng = np.random.default_rng(seed)
    distortion = []
    for snr in snrs_db:
        values = [1.0 - float(ms_ssim(img, codec.decode(_awgn(codec.encode(img, snr), snr, rng), snr, img.shape)))
                  for img in crops for _ in range(draws)]
        distortion.append(float(np.mean(values)))
    ratio = float(Fraction(codec.bandwidth_ratio))
    return {"model": model, "bandwidth_ratio": ratio, "metric": "1 - MS-SSIM", "items": len(crops),
            "draws": draws, "snr_db": list(snrs_db), "distortion": distortion}


def semantic_curve(models_dir: Path = MODEL_DIR, snrs_db: tuple[float, ...] = SNR_GRID_DB, draws: int = 2,
                   seed: int = 0) -> dict:
    """Classification error of the first ``SEMANTIC_ITEMS`` test items through the Fashion-MNIST
    DeepJSCC, AWGN at each SNR and the shipped classifier."""
    encoder_path = _one(models_dir, "fmnist-deepjscc-*.jscc_encoder.onnx")
    classifier = OnnxModel(_one(models_dir, "fmnist-classifier-*.classifier.onnx"))
    encoder = OnnxModel(encoder_path)
    decoder = OnnxModel(encoder_path.with_name(encoder_path.name.replace("jscc_encoder", "jscc_decoder")))
    images, labels = load_fashion_mnist(split="test")
    items = np.repeat(images[:SEMANTIC_ITEMS], 3, axis=1)
    labels = labels[:SEMANTIC_ITEMS]
    symbols = encoder.run(image=items)["symbols"]
    rng = np.random.default_rng(seed)
    error = []
    for snr in snrs_db:
        wrong = [np.mean(classifier.run(image=decoder.run(symbols=_awgn(symbols, snr, rng))["image"])
                         ["logits"].argmax(axis=1) != labels) for _ in range(draws)]
        error.append(float(np.mean(wrong)))
    card = read_card(encoder_path)
    return {"model": card["name"], "bandwidth_ratio": float(card["bandwidth_ratio"]), "metric": "classification error",
            "items": SEMANTIC_ITEMS, "draws": draws, "snr_db": list(snrs_db), "distortion": error}


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(Path(folder).glob(pattern))
    if len(found) != 1:
        raise ConfigError(f"models {pattern!r} in {str(folder)!r}: {len(found)} found; allowed: exactly one")
    return found[0]


def measure(du_models: tuple[str, ...] = DU_MODELS, models_dir: Path = MODEL_DIR, draws: int = 2) -> dict:
    """Every DJSCC curve: {"data": [curve per model, by ratio], "semantic": [curve]}."""
    for name in du_models:
        registry.get("model", name)  # names a missing model before anything runs
    data = sorted((data_curve(m, draws=draws) for m in du_models), key=lambda c: c["bandwidth_ratio"])
    return {"data": data, "semantic": [semantic_curve(models_dir, draws=draws)]}


class DjsccBenchmark:
    """The DJSCC distortion of a user at a bandwidth ratio and SNR, from :func:`measure`'s curves."""

    def __init__(self, curves: dict) -> None:
        self.curves = {role: sorted(curves[role], key=lambda c: c["bandwidth_ratio"]) for role in ROLES}

    @classmethod
    def load(cls, path: str | Path) -> "DjsccBenchmark":
        if not Path(path).is_file():
            raise ConfigError(f"DJSCC curves {str(path)!r} is not a file; allowed: the output of "
                              "python -m testbed.systems.mu_ascc.djscc_benchmark --out DIR")
        return cls(read_json(path))

    def models(self, role: str, ratio: float) -> list[str]:
        """The models whose curves give ``role``'s distortion at ``ratio`` (empty: none brackets it)."""
        return [c["model"] for c, _ in self._bracket(role, ratio)]

    def distortion(self, role: str, ratio: float, snr_db: float) -> float | None:
        """``role``'s DJSCC distortion at ``ratio`` channel uses per real dimension and ``snr_db``."""
        bracket = self._bracket(role, ratio)
        if not bracket:
            return None
        return float(sum(w * np.interp(snr_db, c["snr_db"], c["distortion"]) for c, w in bracket))

    def _bracket(self, role: str, ratio: float) -> list[tuple[dict, float]]:
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is unknown; allowed: {', '.join(ROLES)}")
        curves = self.curves[role]
        for c in curves:
            if abs(c["bandwidth_ratio"] - ratio) <= 1e-6 * ratio:
                return [(c, 1.0)]
        for low, high in zip(curves, curves[1:]):
            if low["bandwidth_ratio"] < ratio < high["bandwidth_ratio"]:
                w = (ratio - low["bandwidth_ratio"]) / (high["bandwidth_ratio"] - low["bandwidth_ratio"])
                return [(low, 1.0 - w), (high, w)]
        return []


def markdown(result: dict) -> str:
    lines = ["# The DJSCC models of MU-ASCC's ZF-WF-DJSCC benchmark, through AWGN", "",
             "Generated by `python -m testbed.systems.mu_ascc.djscc_benchmark --out docs/results` "
             "(testbed/systems/mu_ascc/djscc_benchmark.py). Every model was trained at 10 dB AWGN; "
             "held-out items only.", ""]
    for role in ROLES:
        for c in result[role]:
            lines += [f"## {role} user: `{c['model']}` (ratio {c['bandwidth_ratio']:.4g}, {c['metric']}, "
                      f"{c['items']} items x {c['draws']} draws)", "", "| SNR (dB) | " + " | ".join(
                          f"{s:g}" for s in c["snr_db"][::5]) + " |", "|---|" + "---|" * len(c["snr_db"][::5]),
                      "| distortion | " + " | ".join(f"{d:.4f}" for d in c["distortion"][::5]) + " |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.djscc_benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=2, help="noise draws per item and SNR")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    result = measure(draws=args.draws)
    write_json(args.out / RESULT_FILE, result)
    atomic_write_bytes(args.out / RESULT_FILE.replace(".json", ".md"), markdown(result).encode())
    return result


if __name__ == "__main__":
    main()
