"""ONNX export of MU-ASCC's learned models, with model cards (docs/architecture.md "Model cards").

A hyperprior codec (:class:`~testbed.systems.mu_ascc.codec.HyperpriorCodec`) is split into three
graphs and one table file (H, W multiples of 64, dynamic; N, M are CompressAI's channel counts):

    <name>.analysis.onnx         x float32 (1, 3, H, W) -> y float32 (1, M, H/16, W/16),
                                 z float32 (1, N, H/64, W/64)           (g_a, then h_a of |y|)
    <name>.hyper_synthesis.onnx  z_hat float32 (1, N, H/64, W/64) -> scales_hat float32 (1, M, H/16, W/16)  (h_s)
    <name>.synthesis.onnx        y_hat float32 (1, M, H/16, W/16) -> x_hat float32 (1, 3, H, W)
                                 (g_s, not clamped: the runtime clamps and maps NaN/inf)
    <name>.entropy.npz           the rANS coder's tables (:data:`TABLE_KEYS`)

Entropy coding is no ONNX operator, so :class:`~testbed.systems.mu_ascc.onnx_codec.OnnxHyperpriorCodec`
runs the graphs with ONNX Runtime and codes with CompressAI's rANS coder from the tables; each
graph's card names the table file and its sha256. The semantic user's Fashion-MNIST classifier
(:class:`~testbed.systems.mu_ascc.semantic.FashionClassifier`) is one graph:

    <name>.classifier.onnx       image float32 (N, 3, 28, 28) in [0, 1] -> logits float32 (N, 10)

As in testbed/onnx/export.py, constant folding is off, so every weight stays an initializer
named ``model.<state_dict key>``.

    python -m testbed.systems.mu_ascc.export --codecs DIR [--classifier FILE] --out models/mu_ascc
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch

from testbed.errors import ConfigError
from testbed.onnx.card import machine, sha256_file, write_card
from testbed.onnx.export import OPSET, export_graph
from testbed.systems.mu_ascc.codec import ALIGN_PX, HyperpriorCodec
from testbed.systems.mu_ascc.onnx_codec import CODEC_ROLES, TABLE_KEYS, TABLE_SUFFIX

CLASSIFIER_ROLE = "classifier"
FASHION_TEST_IMAGES = 200  # Fashion-MNIST test images a fashion-mnist codec's card metrics use
CODEC_DATA = {
    "photos": ("random crops (horizontal flips) of photo_corpus('train'): real photographs downscaled to a "
               "short side of 512 px; the held-out photos kodim23, astronaut, coffee, chelsea never trained on"),
    "fashion-mnist": ("the 60000 Fashion-MNIST training images (Debian dataset-fashion-mnist), edge-replicated "
                      "from 28 to 64 px, random horizontal flips; the test split held out"),
}
CLASSIFIER_DATA = ("Fashion-MNIST (Debian dataset-fashion-mnist): the 60000 training images, then a mix of clean "
                   "images and the Fashion-MNIST codecs' error-free reconstructions of them; the 10000 test "
                   "images never trained or tuned on")


def table_path(out_dir: str | Path, name: str) -> Path:
    """The entropy table file of codec ``name`` in ``out_dir``."""
    return Path(out_dir) / f"{name}{TABLE_SUFFIX}"


def entropy_tables(codec: HyperpriorCodec) -> dict[str, np.ndarray]:
    """The rANS tables of ``codec`` (built by ``update(force=True)``), keyed by :data:`TABLE_KEYS`.

    Returns: eb_quantized_cdf int32 (N, Le), eb_cdf_length int32 (N,), eb_offset int32 (N,),
        eb_medians float32 (N,); gc_scale_table float32 (S,), gc_scale_bound float32 (1,) (the
        lower bound of the scales), gc_quantized_cdf int32 (S, Lg), gc_cdf_length int32 (S,),
        gc_offset int32 (S,).
    """
    eb, gc = codec.model.entropy_bottleneck, codec.model.gaussian_conditional

    def array(t: torch.Tensor, dtype: type, flat: bool = True) -> np.ndarray:
        a = t.detach().cpu().numpy().astype(dtype)
        return a.reshape(-1) if flat else a

    return {
        "eb_quantized_cdf": array(eb._quantized_cdf, np.int32, flat=False),
        "eb_cdf_length": array(eb._cdf_length, np.int32), "eb_offset": array(eb._offset, np.int32),
        "eb_medians": array(eb.quantiles[:, 0, 1], np.float32),
        "gc_scale_table": array(gc.scale_table, np.float32),
        "gc_scale_bound": array(gc.lower_bound_scale.bound, np.float32),
        "gc_quantized_cdf": array(gc._quantized_cdf, np.int32, flat=False),
        "gc_cdf_length": array(gc._cdf_length, np.int32), "gc_offset": array(gc._offset, np.int32),
    }


class _Analysis(torch.nn.Module):
    """x -> (y, z): g_a, then h_a of |y|, as ``ScaleHyperprior.compress`` does."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.model.g_a(x)
        return y, self.model.h_a(torch.abs(y))


class _Transform(torch.nn.Module):
    """One transform of the model (``h_s`` or ``g_s``); the weights stay under ``model.``."""

    def __init__(self, model: torch.nn.Module, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.part)(x)


def _tensor(name: str, channels: int, stride: int) -> dict:
    dims = ["H", "W"] if stride == 1 else [f"H/{stride}", f"W/{stride}"]
    return {"name": name, "shape": [1, channels, *dims], "dtype": "float32"}


def codec_io_spec(n: int, m: int) -> dict[str, dict[str, list[dict]]]:
    """Names, shapes (strings = dynamic axes) and dtypes of the codec roles for N = ``n``, M = ``m``."""
    y, z = _tensor("y", m, 16), _tensor("z", n, ALIGN_PX)
    return {"analysis": {"inputs": [_tensor("x", 3, 1)], "outputs": [y, z]},
            "hyper_synthesis": {"inputs": [_tensor("z_hat", n, ALIGN_PX)], "outputs": [_tensor("scales_hat", m, 16)]},
            "synthesis": {"inputs": [_tensor("y_hat", m, 16)], "outputs": [_tensor("x_hat", 3, 1)]}}


def export_codec_graphs(codec: HyperpriorCodec, out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>.<role>.onnx`` for the :data:`CODEC_ROLES` and ``<name>.entropy.npz`` (no cards).

    Returns: {role: path, "tables": path}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = codec.model.eval()
    spec = codec_io_spec(model.N, model.M)
    modules = {"analysis": _Analysis(model), "hyper_synthesis": _Transform(model, "h_s"),
               "synthesis": _Transform(model, "g_s")}
    examples = {"analysis": torch.rand(1, 3, 128, 192), "hyper_synthesis": torch.randn(1, model.N, 2, 3),
                "synthesis": torch.randn(1, model.M, 8, 12)}
    paths = {role: export_graph(modules[role], (examples[role],), out_dir / f"{name}.{role}.onnx", spec[role])
             for role in CODEC_ROLES}
    paths["tables"] = table_path(out_dir, name)
    np.savez_compressed(paths["tables"], **entropy_tables(codec))
    return paths


def export_codec(codec: HyperpriorCodec, out_dir: str | Path, *, config: dict, command: str, minutes: float,
                 training_log: list[dict], metrics: dict) -> dict[str, Path]:
    """Export ``codec`` (:func:`export_codec_graphs`) under ``codec.name`` and write a card per graph.

    Parameters: config, the training :class:`~testbed.systems.mu_ascc.train_codec.CodecConfig` as a
        dict (``data``, ``seed``, ``steps`` are read); command, the training command; minutes of
        training; training_log, its entries (the last goes into the metrics); metrics, measured ones.
    Returns: {role: ONNX path, "tables": table path}.
    Raises: ConfigError when ``config["data"]`` is not a known training set.
    """
    if config.get("data", "photos") not in CODEC_DATA:
        raise ConfigError(f"config data={config.get('data')!r}; allowed: {', '.join(CODEC_DATA)}")
    paths = export_codec_graphs(codec, out_dir, codec.name)
    model = codec.model
    spec = codec_io_spec(model.N, model.M)
    tables = {"file": paths["tables"].name, "sha256": sha256_file(paths["tables"]), "keys": list(TABLE_KEYS)}
    for role in CODEC_ROLES:
        card = {
            "name": codec.name, "system": "mu_ascc", "role": role, "file": paths[role].name,
            "bandwidth_ratio": None, "variant": "scale-hyperprior",
            "architecture": {"class": "compressai.models.ScaleHyperprior", "N": model.N, "M": model.M,
                             "align_px": ALIGN_PX},
            "data": CODEC_DATA[config.get("data", "photos")], "command": command, "seed": config["seed"],
            "snr_range_db": None, "channels": [], "training_minutes": round(minutes, 2),
            "training_steps": config["steps"], "training_config": config, "machine": machine(),
            "metrics": {**metrics, "final_training": training_log[-1] if training_log else None},
            "opset": OPSET, "inputs": spec[role]["inputs"], "outputs": spec[role]["outputs"],
            "entropy_tables": tables, "entropy_coder": "CompressAI rANS (compressai.ans), 16-bit CDFs",
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        }
        write_card(paths[role], card)
    return paths


def codec_metrics(codec: HyperpriorCodec, data: str) -> dict:
    """Rate and PSNR of ``codec``'s error-free bitstreams on held-out images of its ``data``:
    the held-out photo crops, or the first :data:`FASHION_TEST_IMAGES` Fashion-MNIST test images
    (bits per pixel of the 28 x 28 image)."""
    if data == "fashion-mnist":
        from testbed.data.loaders import load_fashion_mnist

        grey, _ = load_fashion_mnist(split="test")
        images = list(np.repeat(grey[:FASHION_TEST_IMAGES], 3, axis=1))
        held_out = f"the first {FASHION_TEST_IMAGES} Fashion-MNIST test images"
    else:
        from testbed.data.images import held_out_crops

        images = [img for _, img in held_out_crops()]
        held_out = "the held-out photo crops (testbed.data.images.held_out_crops)"
    bpp, psnr = [], []
    for img in images:
        stream = codec.encode(img)
        mse = float(np.mean((codec.decode(stream) - img) ** 2))
        bpp.append(stream.bits / (img.shape[1] * img.shape[2]))
        psnr.append(-10.0 * np.log10(max(mse, 1e-12)))
    return {"held_out": held_out, "images": len(images), "rate_bpp": float(np.mean(bpp)),
            "psnr_db": float(np.mean(psnr))}


def export_codec_file(path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Export a codec file of :func:`testbed.systems.mu_ascc.train_codec.write_codec` with its
    training facts and :func:`codec_metrics`."""
    codec = HyperpriorCodec.from_file(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = state["config"]
    metrics = {**(state.get("metrics") or {}), **codec_metrics(codec, config.get("data", "photos"))}
    return export_codec(codec, out_dir, config=config, command=state["command"], minutes=state["minutes"],
                        training_log=state["log"], metrics=metrics)


def export_classifier(model: torch.nn.Module, out_dir: str | Path, name: str, *, config: dict, command: str,
                      minutes: float, metrics: dict, codecs: list[str]) -> Path:
    """Write ``<name>.classifier.onnx`` (image float32 (N, 3, 28, 28) -> logits float32 (N, 10)) and its card.

    Parameters: model, a :class:`~testbed.systems.mu_ascc.semantic.FashionClassifier` (put in eval
        mode); config, its ``ClassifierConfig`` as a dict (``seed``, ``clean_steps``,
        ``finetune_steps`` are read); command, the training command; minutes of training; metrics,
        measured ones; codecs, the names of the codecs it was fine-tuned behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"inputs": [{"name": "image", "shape": ["N", 3, 28, 28], "dtype": "float32"}],
            "outputs": [{"name": "logits", "shape": ["N", 10], "dtype": "float32"}]}
    path = export_graph(_Transform(model.eval(), "forward"), (torch.rand(2, 3, 28, 28),),
                        out_dir / f"{name}.{CLASSIFIER_ROLE}.onnx", spec)
    card = {
        "name": name, "system": "mu_ascc", "role": CLASSIFIER_ROLE, "file": path.name, "bandwidth_ratio": None,
        "variant": "fashion-classifier",
        "architecture": {"class": "testbed.systems.mu_ascc.semantic.FashionClassifier",
                         "parameters": sum(p.numel() for p in model.parameters())},
        "data": CLASSIFIER_DATA, "command": command, "seed": config["seed"], "snr_range_db": None,
        "channels": [], "training_minutes": round(minutes, 2),
        "training_steps": config["clean_steps"] + config["finetune_steps"], "training_config": config,
        "codecs": codecs, "machine": machine(), "metrics": metrics, "opset": OPSET,
        "inputs": spec["inputs"], "outputs": spec["outputs"],
        "torch_version": torch.__version__, "onnx_version": onnx.__version__,
    }
    write_card(path, card)
    return path


def export_classifier_file(path: str | Path, out_dir: str | Path) -> Path:
    """Export a classifier file of :func:`testbed.systems.mu_ascc.semantic.write_classifier`.

    The file holds no command line; the card's is rebuilt from its config (the codec folder is
    not recorded, so it reads ``--codecs DIR``; the card's ``codecs`` lists their names).
    """
    from testbed.systems.mu_ascc.semantic import FashionClassifier

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--classifier {str(path)!r} is not a file; allowed: a .pt written by "
                          "python -m testbed.systems.mu_ascc.semantic --classifier-out DIR")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = FashionClassifier()
    model.load_state_dict(state["model"])
    cfg = state["config"]
    command = (f"python -m testbed.systems.mu_ascc.semantic --codecs DIR --clean-steps {cfg['clean_steps']} "
               f"--finetune-steps {cfg['finetune_steps']} --seed {cfg['seed']} --classifier-out DIR")
    return export_classifier(model, out_dir, state["name"], config=cfg, command=command, minutes=state["minutes"],
                             metrics=state.get("metrics") or {}, codecs=list(state.get("codecs", [])))


def main(argv: list[str] | None = None) -> dict[str, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--codecs", type=Path, required=True, help="folder of codec files (*.pt) of train_codec")
    parser.add_argument("--classifier", type=Path, default=None, help="a classifier file (.pt) of semantic")
    parser.add_argument("--out", type=Path, default=Path("models/mu_ascc"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec_files = sorted(args.codecs.glob("*.pt")) if args.codecs.is_dir() else []
    if not codec_files:
        raise ConfigError(f"--codecs {str(args.codecs)!r} holds no *.pt; allowed: a folder written by "
                          "python -m testbed.systems.mu_ascc.train_codec --out DIR")
    written = {}
    if args.classifier is not None:  # first: a wrong path fails before the codecs' minutes
        written["classifier"] = [str(export_classifier_file(args.classifier, args.out))]
    written["codecs"] = [str(export_codec_file(p, args.out)["analysis"]) for p in codec_files]
    return written


if __name__ == "__main__":
    print(main())
