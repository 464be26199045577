"""The semantic user of MU-ASCC: a learned source decoder followed by an image classifier, and
its semantic distortion (classification error) under random bit flips, fitted by eq. (13).

../shared/seeds/001_ef80d34948c98c54.txt (section V-A) fine-tunes a pre-trained ResNet-152 on
CUB-200 behind the hyperprior decoder. Neither CUB-200 nor pre-trained weights can be had
offline here, so the semantic user classifies Fashion-MNIST (Debian's dataset-fashion-mnist,
10 classes) with :class:`FashionClassifier`, a four-convolution CNN of 0.45 M parameters
(a far lighter backbone than ResNet-152). It is trained on the 60000 training images, then
fine-tuned on a mix of clean images and the Fashion-MNIST codecs' error-free reconstructions of
training images (each codec's eval-mode forward pass, which equals its entropy-coded decode),
so it classifies what the source decoders give. The codecs' own weights stay fixed. The test
split is never trained or tuned on; the curves are measured on its first ``--images`` images.

Training is seeded and resumable (an atomic checkpoint every ``CHECKPOINT_STEPS``), and a
finished run returns at once:

    python -m testbed.systems.mu_ascc.semantic --codecs DIR --out docs/results --threads 2
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError
from testbed.optim.mu_ascc import LogisticParams, fit_logistic
from testbed.runner.files import atomic_save_figure, atomic_torch_save, atomic_write_bytes, write_json
from testbed.systems.mu_ascc.codec import ALIGN_PX, HyperpriorCodec
from testbed.systems.mu_ascc.distortion import BER_GRID, decode_flipped, flip_counts

CHECKPOINT_STEPS = 250
DEFAULT_CKPT_DIR = Path(os.environ.get("TESTBED_CKPT_DIR", Path.home() / ".cache" / "testbed")) / "mu_ascc"
FASHION_MEAN, FASHION_STD = 0.286, 0.353  # pixel statistics of the Fashion-MNIST training split
IMAGE_PX = 28


class FashionClassifier(nn.Module):
    """Fashion-MNIST classifier: float32 (B, 3, 28, 28) in [0, 1] (the channels are averaged to
    grey) -> logits float32 (B, 10). Two blocks of two 3x3 convolutions with batch norm, each
    block halving the size, then a 128-unit hidden layer."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                    nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(1, 32), *block(32, 64))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                                  nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = (x.mean(dim=1, keepdim=True) - FASHION_MEAN) / FASHION_STD
        return self.head(self.features(grey))


@dataclass(frozen=True)
class ClassifierConfig:
    """``clean_steps`` on clean images, then ``finetune_steps`` on clean and decoded ones (a
    fraction ``decoded_fraction`` of each batch of ``batch``), Adam at ``lr`` with cosine decay."""

    clean_steps: int = 1500
    finetune_steps: int = 1000
    batch: int = 128
    decoded_fraction: float = 0.75
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("clean_steps", "finetune_steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 1")
        if not 0.0 <= self.decoded_fraction <= 1.0:
            raise ConfigError(f"decoded_fraction={self.decoded_fraction}; allowed: 0 <= decoded_fraction <= 1")

    @property
    def steps(self) -> int:
        return self.clean_steps + self.finetune_steps

    def name(self, codec_names: list[str]) -> str:
        digest = hashlib.sha256("\n".join(sorted(codec_names)).encode()).hexdigest()[:8]
        tag = f"{len(codec_names)}codecs-{digest}" if codec_names else "clean"
        return f"fmnist-classifier-seed{self.seed}-{self.clean_steps}+{self.finetune_steps}steps-{tag}"


def pad_to_codec(x: torch.Tensor) -> torch.Tensor:
    """float32 (B, C, 28, 28) -> (B, 3, 64, 64), edge-replicated bottom and right as
    ``HyperpriorCodec.encode`` pads."""
    pad = ALIGN_PX - x.shape[-1]
    return F.pad(x, (0, pad, 0, pad), mode="replicate").expand(-1, 3, -1, -1).contiguous()


@torch.no_grad()
def reconstruct(codec: HyperpriorCodec, x: torch.Tensor) -> torch.Tensor:
    """The codec's error-free reconstruction of float32 (B, C, 28, 28): (B, 3, 28, 28) in [0, 1]
    (the eval-mode forward pass rounds the latents as the entropy-coded decode does)."""
    x_hat = codec.model(pad_to_codec(x))["x_hat"]
    return x_hat[..., :IMAGE_PX, :IMAGE_PX].clamp(0.0, 1.0)


def _training_batch(cfg: ClassifierConfig, step: int, images: torch.Tensor, labels: torch.Tensor,
                    codecs: list[HyperpriorCodec], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    which = torch.from_numpy(rng.integers(0, len(images), cfg.batch))
    x, y = images[which].expand(-1, 3, -1, -1).clone(), labels[which]
    flips = torch.from_numpy(rng.random(cfg.batch) < 0.5)
    x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    if step >= cfg.clean_steps and codecs:
        n_decoded = int(round(cfg.decoded_fraction * cfg.batch))
        picks = rng.integers(0, len(codecs), n_decoded)
        for c in np.unique(picks):
            rows = torch.from_numpy(np.flatnonzero(picks == c))
            x[rows] = reconstruct(codecs[c], x[rows])
    return x, y


def train_classifier(cfg: ClassifierConfig, codecs: list[HyperpriorCodec], ckpt_dir: Path = DEFAULT_CKPT_DIR,
                     threads: int = 1, log=print) -> dict:
    """Train (or resume) the classifier; {"model", "minutes", "log"} once all steps ran."""
    torch.set_num_threads(threads)
    path = Path(ckpt_dir) / f"{cfg.name([c.name for c in codecs])}.ckpt"
    torch.manual_seed(cfg.seed)
    model = FashionClassifier()
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    images, labels = (torch.from_numpy(a) for a in load_fashion_mnist(split="train"))
    rng = np.random.default_rng(cfg.seed)
    state = {"step": 0, "seconds": 0.0, "log": []}
    if path.is_file():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
    started = time.monotonic() - state["seconds"]
    window: list[tuple[float, float]] = []
    while state["step"] < cfg.steps:
        model.train()
        for group in opt.param_groups:  # cosine decay to 5% of lr over the whole run
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * state["step"] / cfg.steps)))
        x, y = _training_batch(cfg, state["step"], images, labels, codecs, rng)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["step"] += 1
        window.append((loss.item(), (logits.argmax(1) == y).float().mean().item()))
        if state["step"] % CHECKPOINT_STEPS == 0 or state["step"] == cfg.steps:
            entry = {"step": state["step"], "loss": float(np.mean([w[0] for w in window])),
                     "train_accuracy": float(np.mean([w[1] for w in window]))}
            window.clear()
            state["log"].append(entry)
            state.update(model=model.state_dict(), opt=opt.state_dict(), np_rng=rng.bit_generator.state,
                         torch_rng=torch.get_rng_state(), seconds=time.monotonic() - started)
            atomic_torch_save(path, state)
            log(f"classifier step {entry['step']}/{cfg.steps}: loss {entry['loss']:.4f}, "
                f"train accuracy {entry['train_accuracy']:.4f}")
    model.eval()
    return {"model": model, "minutes": state["seconds"] / 60.0, "log": state["log"]}


@torch.no_grad()
def classify(model: FashionClassifier, images: np.ndarray | torch.Tensor, batch: int = 500) -> np.ndarray:
    """Predicted classes int64 (B,) of float32 (B, 3, 28, 28) images."""
    x = torch.as_tensor(images)
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


@dataclass(frozen=True)
class SemanticPoint:
    """Mean classification error over images at one BER; ``p_any_flip`` averaged over images."""

    ber: float
    classification_error: float
    p_any_flip: float


@dataclass(frozen=True)
class SemanticCurve:
    """One codec's semantic curve: mean payload ``bits_per_image`` (and per pixel of 28x28)."""

    codec: str
    bits_per_image: float
    rate_bpp: float
    clean_classification_error: float
    points: tuple[SemanticPoint, ...]


def measure(codec: HyperpriorCodec, model: FashionClassifier, images: np.ndarray, labels: np.ndarray,
            bers: tuple[float, ...] = BER_GRID, draws: int = 2, seed: int = 0) -> SemanticCurve:
    """Classification error of ``model`` behind ``codec`` on images float32 (N, 3, 28, 28) with
    labels int64 (N,), at each BER: E[e] = P0 e_clean + (1 - P0) E[e | at least one flip]
    (the stratification of :mod:`testbed.systems.mu_ascc.distortion`), ``draws`` decodes per image."""
    rng = np.random.default_rng(seed)
    streams = [codec.encode(img) for img in images]
    clean = classify(model, np.stack([codec.decode(s) for s in streams])) != labels
    points = []
    for ber in bers:
        decoded, owners, p_any = [], [], np.empty(len(streams))
        for i, stream in enumerate(streams):
            counts, p_any[i] = flip_counts(stream.bits, ber, draws, rng)
            decoded += [decode_flipped(codec, stream, int(k), rng) for k in counts]
            owners += [i] * len(counts)
        wrong = classify(model, np.stack(decoded)) != labels[owners]
        flipped = np.bincount(owners, weights=wrong, minlength=len(streams)) / draws
        error = (1.0 - p_any) * clean + p_any * flipped
        points.append(SemanticPoint(ber, float(error.mean()), float(p_any.mean())))
    bits = float(np.mean([s.bits for s in streams]))
    return SemanticCurve(codec.name, bits, bits / IMAGE_PX ** 2, float(clean.mean()), tuple(points))


def fit(curve: SemanticCurve) -> tuple[LogisticParams, float]:
    """Eq. (13) fitted to one curve's classification error; (parameters, R^2)."""
    return fit_logistic(np.array([p.ber for p in curve.points]),
                        np.array([p.classification_error for p in curve.points]))


def report(curves: list[SemanticCurve]) -> dict:
    """JSON-ready {"codecs": [{curve..., "fit": {params..., "r_squared"} or {"error"}}]}, by rate."""
    entries = []
    for curve in sorted(curves, key=lambda c: c.bits_per_image):
        try:
            params, r2 = fit(curve)
            fitted = {**asdict(params), "r_squared": r2}
        except (ValueError, RuntimeError) as err:  # curve_fit's non-convergence is a RuntimeError
            fitted = {"error": str(err)}
        entries.append({**asdict(curve), "fit": fitted})
    return {"ber_grid": list(BER_GRID), "codecs": entries}


def markdown(result: dict) -> str:
    """docs/results table: bits, clean accuracy and the eq. (13) fit with its R^2, per codec."""
    lines = ["# MU-ASCC: the semantic user's classification error under random bit flips", "",
             "Generated by `python -m testbed.systems.mu_ascc.semantic --codecs DIR --out docs/results` "
             "(testbed/systems/mu_ascc/semantic.py): each Fashion-MNIST codec (CompressAI's scale "
             "hyperprior, trained by testbed/systems/mu_ascc/train_codec.py --data fashion-mnist) codes "
             f"the first {result['image_count']} Fashion-MNIST test images; payload bits are flipped at "
             f"BER 10^-9 .. 10^-2 (15 points), {result['draws']} decodes per image and BER given at least "
             "one flip; the classifier (FashionClassifier, fine-tuned on the codecs' reconstructions of "
             "training images) labels each decode; eq. (13) of ../shared/seeds/001_ef80d34948c98c54.txt "
             "is fitted per codec to the classification error.", "",
             f"Classifier accuracy on the clean test images: {result['classifier']['clean_accuracy']:.4f}.", "",
             "| codec | bits per image | clean accuracy | fit: d_s, d_c, a_1, a_0 | R^2 |",
             "|---|---|---|---|---|"]
    for c in result["codecs"]:
        f = c["fit"]
        cells = (f"fit failed: {f['error'][:80]} | -" if "error" in f else
                 f"{f['source_distortion']:.4f}, {f['channel_distortion']:.4f}, {f['slope_per_decade']:.3g}, "
                 f"{f['threshold_log10_ber']:.2f} | {f['r_squared']:.4f}")
        lines.append(f"| {c['codec']} | {c['bits_per_image']:.0f} | {1 - c['clean_classification_error']:.4f} | "
                     f"{cells} |")
    r2 = [c["fit"]["r_squared"] for c in result["codecs"] if "r_squared" in c["fit"]]
    lines += ["", f"Lowest R^2 of the {len(r2)} fits: {min(r2, default=float('nan')):.4f} (the issue asks >= 0.98).",
              "", "![classification error against BER](mu_ascc_semantic.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Measured points and fitted eq. (13) per codec against log10 BER (the paper's Fig. 4(c))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = np.linspace(-9, -2, 200)
    for c in result["codecs"]:
        line = ax.plot(np.log10([p["ber"] for p in c["points"]]), [p["classification_error"] for p in c["points"]],
                       "o", ms=3, label=f"{c['bits_per_image']:.0f} bits/image")
        if "error" not in c["fit"]:
            params = LogisticParams(**{k: v for k, v in c["fit"].items() if k != "r_squared"})
            ax.plot(x, params.distortion(x), "-", color=line[0].get_color(), lw=1)
    ax.set_xlabel("log10 BER")
    ax.set_ylabel("classification error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def load_codecs(folder: Path) -> list[HyperpriorCodec]:
    """The Fashion-MNIST codecs (``hyperprior-fmnist-*.pt``) in ``folder``, by name."""
    paths = sorted(Path(folder).glob("hyperprior-fmnist-*.pt"))
    if not paths:
        raise ConfigError(f"--codecs {str(folder)!r} holds no hyperprior-fmnist-*.pt; allowed: a folder written by "
                          "python -m testbed.systems.mu_ascc.train_codec --data fashion-mnist --out DIR")
    return [HyperpriorCodec.from_file(p) for p in paths]


def write_classifier(model: FashionClassifier, cfg: ClassifierConfig, codecs: list[HyperpriorCodec], out: Path,
                     trained: dict, metrics: dict) -> Path:
    """``<out>/<name>.pt`` ({"name", "model", "config", "codecs", "metrics", "minutes", "log"}), atomically."""
    name = cfg.name([c.name for c in codecs])
    path = Path(out) / f"{name}.pt"
    atomic_torch_save(path, {"name": name, "model": model.state_dict(), "config": asdict(cfg),
                             "codecs": [c.name for c in codecs], "metrics": metrics,
                             "minutes": trained["minutes"], "log": trained["log"], "torch": torch.__version__})
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.semantic",
                                     description=__doc__.split("\n\n")[0])
    defaults = ClassifierConfig()
    parser.add_argument("--codecs", type=Path, required=True, help="folder of the Fashion-MNIST codecs (.pt)")
    parser.add_argument("--clean-steps", type=int, default=defaults.clean_steps)
    parser.add_argument("--finetune-steps", type=int, default=defaults.finetune_steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--images", type=int, default=500, help="Fashion-MNIST test images the curves are measured on")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--classifier-out", type=Path, default=None, help="write the classifier (.pt) here")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    codecs = load_codecs(args.codecs)
    cfg = ClassifierConfig(clean_steps=args.clean_steps, finetune_steps=args.finetune_steps, seed=args.seed)
    trained = train_classifier(cfg, codecs, args.ckpt_dir, args.threads)
    test_images, test_labels = load_fashion_mnist(split="test")
    images = np.repeat(test_images[:args.images], 3, axis=1)
    labels = test_labels[:args.images]
    clean_accuracy = float(np.mean(classify(trained["model"], np.repeat(test_images, 3, axis=1)) == test_labels))
    curves = [measure(c, trained["model"], images, labels, draws=args.draws, seed=args.seed) for c in codecs]
    result = {**report(curves), "draws": args.draws, "image_count": int(args.images),
              "classifier": {"name": cfg.name([c.name for c in codecs]), "config": asdict(cfg),
                             "clean_accuracy": clean_accuracy, "minutes": trained["minutes"]}}
    if args.classifier_out is not None:
        result["classifier"]["file"] = write_classifier(trained["model"], cfg, codecs, args.classifier_out, trained,
                                                        {"clean_test_accuracy": clean_accuracy}).name
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "mu_ascc_semantic.json", result)
    atomic_write_bytes(args.out / "mu_ascc_semantic.md", markdown(result).encode())
    plot(result, args.out / "mu_ascc_semantic.png")
    return result


if __name__ == "__main__":
    for entry in main()["codecs"]:
        print(entry["codec"], f"{entry['bits_per_image']:.0f} bits", entry["fit"].get("r_squared"))
