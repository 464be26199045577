"""Export a transceiver's deployment path (``encode`` / ``decode``) to ONNX, with model cards.

``torch.onnx.export(..., dynamo=False, opset_version=17, dynamic_axes={batch})`` writes one
self-contained file per role (docs/architecture.md "Choices made"). Constant folding and the
de-duplication of equal weights are off on purpose: every initializer then keeps its
``state_dict`` name (``encoder.0.conv.weight``, ...), so the
torch model is rebuilt exactly from the two ONNX files (:func:`state_dict_from_onnx`) and the
parity check compares ONNX Runtime against the PyTorch source code with the shipped weights,
without a second weights file that could drift from the ONNX one.

Inputs and outputs of tiled models (N = batch, dynamic):
    encoder: image float32 (N, 3, 32, 32), snr_db float32 (N, 1) -> symbols float32 (N, k, 2)
    decoder: symbols float32 (N, k, 2), snr_db float32 (N, 1) -> image float32 (N, 3, 32, 32)
Whole-image models (N, H, W, K = c H W / 128 dynamic; c latent channels, stride 8):
    encoder: image float32 (N, 3, H, W), snr_db (N, 1) -> symbols float32 (N, K, 2)
    decoder: symbols float32 (N, H/8, W/8, c/2, 2), snr_db (N, 1) -> image float32 (N, 3, H, W)
Models that ignore ``snr_db`` (plain DeepJSCC) still get it as a graph input (see
:class:`_Role`), so every model has the same interface.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from testbed.errors import ModelError

OPSET = 17
BATCH = "N"


def io_spec(model: torch.nn.Module) -> dict[str, dict[str, list[dict]]]:
    """Names, shapes (strings = dynamic axes) and dtypes of the encoder and decoder of ``model``."""
    snr = {"name": "snr_db", "shape": [BATCH, 1], "dtype": "float32"}
    if _whole_image(model):
        image = {"name": "image", "shape": [BATCH, 3, "H", "W"], "dtype": "float32"}
        symbols = {"name": "symbols", "shape": [BATCH, "K", 2], "dtype": "float32"}
        grid = {"name": "symbols", "shape": [BATCH, "H/8", "W/8", model.latent_channels // 2, 2], "dtype": "float32"}
        return {"encoder": {"inputs": [image, snr], "outputs": [symbols]},
                "decoder": {"inputs": [grid, snr], "outputs": [image]}}
    image = {"name": "image", "shape": [BATCH, 3, 32, 32], "dtype": "float32"}
    symbols = {"name": "symbols", "shape": [BATCH, model.k, 2], "dtype": "float32"}
    return {"encoder": {"inputs": [image, snr], "outputs": [symbols]},
            "decoder": {"inputs": [symbols, snr], "outputs": [image]}}


def _whole_image(model: torch.nn.Module) -> bool:
    return not hasattr(model, "k")


def _examples(model: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    snr = torch.full((2, 1), 10.0)
    if _whole_image(model):
        grid = torch.randn(2, 8, 12, model.latent_channels // 2, 2)
        return {"encoder": (torch.rand(2, 3, 64, 96), snr), "decoder": (grid, snr)}
    return {"encoder": (torch.rand(2, 3, 32, 32), snr), "decoder": (torch.randn(2, model.k, 2), snr)}


def _dynamic_axes(spec: dict[str, list[dict]]) -> dict[str, dict[int, str]]:
    return {entry["name"]: {i: dim for i, dim in enumerate(entry["shape"]) if isinstance(dim, str)}
            for entry in spec["inputs"] + spec["outputs"]}


class _Role(torch.nn.Module):
    """``model.encode`` or ``model.decode`` as a module for the exporter.

    ``snr_db`` enters the graph even when the model ignores it (``+ 0 * snr_db`` per image on the
    output is not folded away by the exporter), so the ONNX input list is the same for every
    variant. The term is exactly zero for finite SNRs.
    """

    def __init__(self, model: torch.nn.Module, role: str, keep_snr: bool) -> None:
        super().__init__()
        self.model = model
        self.role = role
        self.keep_snr = keep_snr

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        out = self.model.encode(x, snr_db) if self.role == "encoder" else self.model.decode(x, snr_db)
        if self.keep_snr:
            out = out + 0.0 * snr_db.reshape(-1, *([1] * (out.ndim - 1)))
        return out


def export_model(model: torch.nn.Module, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``out_dir/<name>.encoder.onnx`` and ``out_dir/<name>.decoder.onnx`` (no cards).

    Parameters: model with ``encode(image, snr_db)``, ``decode(symbols, snr_db)`` and ``variant``,
        and either ``k`` (tiled: complex symbols per tile) or ``latent_channels`` (whole-image);
        out_dir; name, e.g. ``"adjscc-r6"``.
    Returns: (encoder path, decoder path).
    Raises: ModelError when an exported graph lacks a named input or output.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    spec = io_spec(model)
    keep_snr = not str(getattr(model, "variant", "")).startswith("adjscc")
    examples = _examples(model)
    paths = []
    for role in ("encoder", "decoder"):
        path = out_dir / f"{name}.{role}.onnx"
        paths.append(export_graph(_Role(model, role, keep_snr), examples[role], path, spec[role]))
    return paths[0], paths[1]


def export_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                 spec: dict[str, list[dict]]) -> Path:
    """Write ``module(*example)`` as the ONNX file ``path`` (the settings of this module's docstring).

    ``spec`` is {"inputs": [...], "outputs": [...]} of {"name", "shape", "dtype"}; string
    dimensions of a shape are dynamic axes of that name. ``module`` is put in eval mode and stays
    so (the exporter gives a module back in the mode it found it, submodules included).
    Raises: ModelError when the exported graph's input or output names differ from ``spec``'s.
    """
    module.eval()
    inputs = [entry["name"] for entry in spec["inputs"]]
    outputs = [entry["name"] for entry in spec["outputs"]]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, example, buffer, dynamo=False, opset_version=OPSET, input_names=inputs,
            output_names=outputs, do_constant_folding=False, keep_initializers_as_inputs=True,
            dynamic_axes=_dynamic_axes(spec),
        )
    graph = onnx.load_from_string(buffer.getvalue())
    _drop_initializer_inputs(graph)
    onnx.checker.check_model(graph)
    got_in = [i.name for i in graph.graph.input]
    got_out = [o.name for o in graph.graph.output]
    if got_in != inputs or got_out != outputs:
        raise ModelError(f"{path}: exported inputs {got_in} / outputs {got_out}; expected {inputs} / {outputs}")
    path.write_bytes(graph.SerializeToString())
    return path


def _drop_initializer_inputs(graph: onnx.ModelProto) -> None:
    """Remove the weights from the graph inputs (they stay initializers), in place.

    The export keeps initializers as inputs only to skip the exporter's de-duplication of
    equal-valued weights (e.g. two freshly initialised GDN betas), which would lose their names.
    """
    weights = {init.name for init in graph.graph.initializer}
    kept = [i for i in graph.graph.input if i.name not in weights]
    del graph.graph.input[:]
    graph.graph.input.extend(kept)


def initializers(path: str | Path) -> dict[str, np.ndarray]:
    """The named initializers (weights) of an ONNX file."""
    try:
        graph = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001  (protobuf raises several types)
        raise ModelError(f"{path}: cannot be read as ONNX ({err})") from None
    return {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}


def state_dict_from_onnx(model: torch.nn.Module, *paths: str | Path) -> dict[str, torch.Tensor]:
    """A full ``state_dict`` for ``model`` taken from the initializers of exported ONNX files.

    The exporter names each weight ``model.<state_dict key>`` (constant folding is off); every
    key of ``model.state_dict()`` must be found with the right shape, else ModelError.
    """
    found: dict[str, np.ndarray] = {}
    for path in paths:
        for key, value in initializers(path).items():
            if key.startswith("model."):
                found[key[len("model."):]] = value
    state = {}
    for key, ref in model.state_dict().items():
        if key not in found:
            raise ModelError(f"{', '.join(map(str, paths))}: weight {key} is missing from the ONNX initializers")
        if tuple(found[key].shape) != tuple(ref.shape):
            raise ModelError(f"{', '.join(map(str, paths))}: weight {key} has shape {found[key].shape}, "
                             f"the model needs {tuple(ref.shape)}")
        state[key] = torch.from_numpy(found[key].copy())
    return state


def export_system(model: torch.nn.Module, out_dir: str | Path, name: str, *, command: str, seed: int,
                  minutes: float, steps: int, run_config: dict, threads: int = 1,
                  metrics: dict | None = None) -> tuple[tuple[Path, Path], dict]:
    """Evaluate (unless ``metrics`` is given), export encoder and decoder, write both model cards.

    Returns: ((encoder path, decoder path), the encoder's card).
    """
    from testbed.onnx.card import machine, write_card
    from testbed.systems.deepjscc.evaluate import card_metrics

    if metrics is None:
        metrics = card_metrics(model)
    paths = export_model(model, out_dir, name)
    spec = io_spec(model)
    crop = run_config.get("crop", 32)
    if _whole_image(model):
        shape = {"stride": 8, "latent_channels": model.latent_channels, "whole_image": True}
    else:
        shape = {"symbols_per_image": model.k}
    cards = []
    for role, path in zip(("encoder", "decoder"), paths):
        card = {
            "name": name, "system": "deepjscc", "role": role, "file": path.name,
            "bandwidth_ratio": model.bandwidth_ratio, "variant": model.variant,
            **shape, "architecture": model.config(),
            "data": (f"random {crop}x{crop} crops (photo drawn uniformly, horizontal flips) of "
                     "photo_corpus('train'): real photographs downscaled to a short side of 512 px "
                     "(sporco, scikit-image, scikit-learn, Debian plasma-workspace-wallpapers and "
                     "mate-backgrounds); held-out test photos kodim23, astronaut, coffee, chelsea "
                     "never trained on"),
            "command": command, "seed": seed, "snr_range_db": run_config["snr_range_db"],
            "channels": run_config.get("channels", ["awgn", "rayleigh"]), "training_minutes": minutes, "training_steps": steps,
            "batch_size": run_config["batch_size"], "threads": threads, "machine": machine(),
            "metrics": metrics, "opset": OPSET, "inputs": spec[role]["inputs"], "outputs": spec[role]["outputs"],
            "snr_convention": "Es/N0 per complex symbol in dB, unit average symbol power per image",
            "weights": "the torch model is rebuilt from the initializers of the encoder and decoder files",
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        }
        write_card(path, card)
        cards.append(card)
    return paths, cards[0]
