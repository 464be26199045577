"""DeepJSCC for the semantic user of MU-ASCC's ZF-WF-DJSCC benchmark: Fashion-MNIST items sent as
analog symbols, trained at one SNR (section V-A of ../shared/seeds/001_ef80d34948c98c54.txt: "a
pre-trained DJSCC model, trained at 10 dB SNR"; the DJSCC is reference [7], Bourtsoulatze et al.).

:class:`FashionJSCC` has the layer layout of the testbed's tiled DeepJSCC
(:class:`testbed.systems.deepjscc.model.DeepJSCC`: 5x5 convolutions, GDN, PReLU, two stride-2
stages) on a 28 x 28 grey item, so an item is a 7 x 7 latent of ``c`` channels, k = 49 c / 2
complex symbols. The bandwidth ratio counts, as the MU-ASCC tables do, channel uses per real
dimension of the (3, 28, 28) item: k = ratio x 2352, so 0.25 gives c = 24 and k = 588, what the
semantic user's codec gets at the paper's point (testbed/systems/mu_ascc/compare.py). The loss
is MSE (the classical DJSCC); the semantic decoder is its decoder followed by the shipped
classifier, which is not retrained. The data user's DJSCC is the tiled DeepJSCC itself
(``testbed train deepjscc --ratio 1/24 --snr-db 10 10 --channels awgn``).

Two ONNX graphs (constant folding off, weights named ``model.<state_dict key>``):

    <name>.jscc_encoder.onnx   image float32 (N, 3, 28, 28) in [0, 1] -> symbols float32 (N, k, 2),
                               unit average power per item (Es/N0 = the SNR)
    <name>.jscc_decoder.onnx   symbols float32 (N, k, 2) -> image float32 (N, 3, 28, 28) in [0, 1]

    python -m testbed.systems.mu_ascc.djscc --steps 3000 --out models/mu_ascc
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from testbed.data.loaders import load_fashion_mnist
from testbed.errors import ConfigError
from testbed.onnx.card import machine, write_card
from testbed.onnx.export import OPSET, export_graph
from testbed.runner.files import atomic_torch_save
from testbed.systems.deepjscc.model import _Stage, through_channel
from testbed.systems.mu_ascc.export import _Transform
from testbed.systems.mu_ascc.semantic import DEFAULT_CKPT_DIR, IMAGE_PX

LATENT_SIDE = IMAGE_PX // 4
ITEM_DIMENSIONS = 3 * IMAGE_PX * IMAGE_PX  # real dimensions of a (3, 28, 28) item
ROLES = ("jscc_encoder", "jscc_decoder")
CHECKPOINT_STEPS = 250
DATA = ("the 60000 Fashion-MNIST training images (Debian dataset-fashion-mnist), random horizontal flips; "
        "the 10000 test images never trained or tuned on")


def latent_channels(bandwidth_ratio: float) -> int:
    """Latent channels c of a 7 x 7 latent that sends ``bandwidth_ratio`` x 2352 complex symbols."""
    c = 2.0 * bandwidth_ratio * ITEM_DIMENSIONS / LATENT_SIDE ** 2
    if bandwidth_ratio <= 0 or abs(c - round(c)) > 1e-9:
        raise ConfigError(f"bandwidth_ratio {bandwidth_ratio!r} is not sendable; allowed: a multiple of "
                          f"{LATENT_SIDE ** 2 / (2 * ITEM_DIMENSIONS):g} (c / 96 for c latent channels)")
    return int(round(c))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=stride, padding=2)


def _upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class FashionJSCC(nn.Module):
    """DeepJSCC for (3, 28, 28) Fashion-MNIST items (channels averaged to grey).

    encode(image float32 (N, 3, 28, 28) in [0, 1]) -> symbols float32 (N, k, 2), unit power per item;
    decode(symbols float32 (N, k, 2)) -> image float32 (N, 3, 28, 28) in [0, 1] (grey in all three);
    forward(image, snr_db, generator) -> reconstruction through AWGN at ``snr_db`` (training).
    """

    def __init__(self, bandwidth_ratio: float = 0.25, width: int = 64) -> None:
        super().__init__()
        self.bandwidth_ratio, self.width = bandwidth_ratio, width
        self.latent_channels = c = latent_channels(bandwidth_ratio)
        self.k = c * LATENT_SIDE ** 2 // 2
        w = width
        self.encoder = nn.Sequential(_Stage(_conv(1, w, 2), w, False, False), _Stage(_conv(w, w, 2), w, False, False),
                                     _Stage(_conv(w, w), w, False, False), _conv(w, c))
        self.decoder = nn.Sequential(_Stage(_conv(c, w), w, True, False), _Stage(_conv(w, w), w, True, False),
                                     _Stage(_upconv(w, w), w, True, False), _upconv(w, 1))

    def config(self) -> dict:
        """Constructor arguments: ``FashionJSCC(**model.config())`` rebuilds the module."""
        return {"bandwidth_ratio": self.bandwidth_ratio, "width": self.width}

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        x = image.mean(dim=1, keepdim=True) - 0.5
        for stage in self.encoder:
            x = stage(x, None) if isinstance(stage, _Stage) else stage(x)
        z = x.reshape(x.shape[0], self.k, 2)
        return z * torch.rsqrt(z.pow(2).sum(dim=(1, 2), keepdim=True) / self.k + 1e-12)

    def decode(self, symbols: torch.Tensor) -> torch.Tensor:
        x = symbols.reshape(symbols.shape[0], self.latent_channels, LATENT_SIDE, LATENT_SIDE)
        for stage in self.decoder:
            x = stage(x, None) if isinstance(stage, _Stage) else stage(x)
        return torch.sigmoid(x).expand(-1, 3, -1, -1)

    def forward(self, image: torch.Tensor, snr_db: float, generator: torch.Generator | None = None) -> torch.Tensor:
        symbols = self.encode(image)
        snr = torch.full((image.shape[0], 1), float(snr_db))
        received, _ = through_channel(symbols, snr, "awgn", generator)
        return self.decode(received)


@dataclass(frozen=True)
class JsccConfig:
    """``steps`` Adam steps of ``batch`` items at ``lr`` (cosine decay), AWGN at ``snr_db``."""

    bandwidth_ratio: float = 0.25
    width: int = 64
    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3
    snr_db: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        latent_channels(self.bandwidth_ratio)
        for name in ("width", "steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; allowed: >= 1")

    def name(self) -> str:
        return (f"fmnist-deepjscc-ratio{self.bandwidth_ratio:g}-awgn-{self.snr_db:g}db-w{self.width}"
                f"-seed{self.seed}-{self.steps}steps")


def train(cfg: JsccConfig, ckpt_dir: Path = DEFAULT_CKPT_DIR, threads: int = 1, log=print) -> dict:
    """Train (or resume from ``ckpt_dir``) to ``cfg.steps``; {"model" (eval mode), "minutes", "log"}."""
    torch.set_num_threads(threads)
    path = Path(ckpt_dir) / f"{cfg.name()}.ckpt"
    torch.manual_seed(cfg.seed)
    model = FashionJSCC(cfg.bandwidth_ratio, cfg.width)
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    images = torch.from_numpy(load_fashion_mnist(split="train")[0])
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    state = {"step": 0, "seconds": 0.0, "log": []}
    if path.is_file():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["np_rng"]
        generator.set_state(state["generator"])
    started, window = time.monotonic() - state["seconds"], []
    model.train()
    while state["step"] < cfg.steps:
        for group in opt.param_groups:  # cosine decay to 5% of lr over the whole run
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * state["step"] / cfg.steps)))
        x = images[rng.integers(0, len(images), cfg.batch)]
        x = torch.where(torch.from_numpy(rng.random(cfg.batch) < 0.5)[:, None, None, None], x.flip(-1), x)
        loss = torch.mean((model(x, cfg.snr_db, generator)[:, :1] - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["step"] += 1
        window.append(loss.item())
        if state["step"] % CHECKPOINT_STEPS == 0 or state["step"] == cfg.steps:
            state["log"].append({"step": state["step"], "mse": float(np.mean(window))})
            window.clear()
            state.update(model=model.state_dict(), opt=opt.state_dict(), np_rng=rng.bit_generator.state,
                         generator=generator.get_state(), seconds=time.monotonic() - started)
            atomic_torch_save(path, state)
            log(f"fashion jscc step {state['step']}/{cfg.steps}: mse {state['log'][-1]['mse']:.5f}")
    return {"model": model.eval(), "minutes": state["seconds"] / 60.0, "log": state["log"]}


def io_spec(k: int) -> dict[str, dict]:
    """The named inputs and outputs of both graphs (``"N"``: the dynamic batch axis)."""
    image = {"name": "image", "shape": ["N", 3, IMAGE_PX, IMAGE_PX], "dtype": "float32"}
    symbols = {"name": "symbols", "shape": ["N", k, 2], "dtype": "float32"}
    return {"jscc_encoder": {"inputs": [image], "outputs": [symbols]},
            "jscc_decoder": {"inputs": [symbols], "outputs": [image]}}


def export(model: FashionJSCC, cfg: JsccConfig, out_dir: Path, *, minutes: float, training_log: list[dict],
           metrics: dict) -> dict[str, Path]:
    """Write both graphs of ``model`` and their cards to ``out_dir``; {role: ONNX path}."""
    spec = io_spec(model.k)
    examples = {"jscc_encoder": torch.rand(2, 3, IMAGE_PX, IMAGE_PX), "jscc_decoder": torch.randn(2, model.k, 2)}
    parts = {"jscc_encoder": "encode", "jscc_decoder": "decode"}
    paths = {}
    for role in ROLES:
        path = export_graph(_Transform(model.eval(), parts[role]), (examples[role],),
                            Path(out_dir) / f"{cfg.name()}.{role}.onnx", spec[role])
        write_card(path, {
            "name": cfg.name(), "system": "mu_ascc", "role": role, "file": path.name,
            "bandwidth_ratio": cfg.bandwidth_ratio, "variant": "fashion-deepjscc",
            "architecture": {"class": "testbed.systems.mu_ascc.djscc.FashionJSCC", **model.config(),
                             "symbols_per_item": model.k},
            "data": DATA, "command": command_line(cfg), "seed": cfg.seed, "snr_range_db": [cfg.snr_db, cfg.snr_db],
            "channels": ["awgn"], "training_minutes": round(minutes, 2), "training_steps": cfg.steps,
            "training_config": asdict(cfg), "machine": machine(),
            "metrics": {**metrics, "final_training": training_log[-1] if training_log else None},
            "opset": OPSET, "inputs": spec[role]["inputs"], "outputs": spec[role]["outputs"],
            "snr_convention": "Es/N0 per complex symbol in dB, unit average symbol power per item",
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
        })
        paths[role] = path
    return paths


@torch.no_grad()
def held_out_metrics(model: FashionJSCC, snrs_db: tuple[float, ...] = (0.0, 10.0, 20.0), count: int = 500,
                     seed: int = 0) -> dict:
    """PSNR (dB) of the first ``count`` Fashion-MNIST test items through AWGN at each SNR."""
    images = torch.from_numpy(load_fashion_mnist(split="test")[0][:count])
    generator = torch.Generator().manual_seed(seed)
    psnr = [float(torch.mean(-10 * torch.log10(torch.mean((model(images, s, generator)[:, :1] - images) ** 2,
                                                              dim=(1, 2, 3)))))
            for s in snrs_db]
    return {"data": "fashion-mnist test", "n_images": count, "snr_db": list(snrs_db),
            "psnr_db": [round(p, 3) for p in psnr]}


def command_line(cfg: JsccConfig) -> str:
    """The command that reproduces ``cfg``'s model (the output folder is written DIR)."""
    defaults = JsccConfig()
    extra = "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in asdict(cfg).items()
                    if k not in ("steps", "seed") and v != getattr(defaults, k))
    return f"python -m testbed.systems.mu_ascc.djscc --steps {cfg.steps} --seed {cfg.seed}{extra} --out DIR"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m testbed.systems.mu_ascc.djscc", description=__doc__.split("\n\n")[0])
    defaults = JsccConfig()
    for field in ("bandwidth_ratio", "width", "steps", "batch", "lr", "snr_db", "seed"):
        kind = type(getattr(defaults, field))
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=getattr(defaults, field))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--out", type=Path, default=Path("models/mu_ascc"))
    args = parser.parse_args(argv)
    cfg = JsccConfig(**{k: getattr(args, k) for k in asdict(defaults)})
    trained = train(cfg, args.ckpt_dir, args.threads)
    metrics = {"fashion_awgn": held_out_metrics(trained["model"])}
    print(metrics)
    return export(trained["model"], cfg, args.out, minutes=trained["minutes"], training_log=trained["log"],
                  metrics=metrics)


if __name__ == "__main__":
    main()
