"""DeepSCM networks in PyTorch: two joint coding-modulation (JCM) blocks in a superposition
structure, the LMMSE decorrelator, and each receiver's image decoder and classifier; and the
unstructured coded-modulation (CM) baseline with one encoder.

Bo, Shao, Tao, "Deep learning based superposition coded modulation for hierarchical semantic
communications over broadcast channels" (../shared/seeds/003_75f868b86f184b01.txt): Fig. 1,
Fig. 3, eqs. (2)-(7), (10) and (12), Table II, scaled from CIFAR-100 (32x32x3, 3 x 3 ResNet
blocks per stage, 100 M parameters) to Fashion-MNIST (28x28x1, one block per stage, about 1 M).

Shapes (B = batch, n = channel uses per image, all float32):
    image (B, 1, 28, 28) in [0, 1]
    U1, U2, R: (B, 2n) real encoded feature vectors
    logits of a modulator: (B, 2n, L) over the L = sqrt(M) PAM levels of each real dimension
        (an M-QAM symbol is two independent sqrt(M)-PAM levels, I and Q: "n * 2 sqrt(M)" outputs)
    symbols Y, Z: (B, n, 2) (I, Q) with unit mean power
    recovered image (B, 1, 28, 28); class logits (B, classes)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from testbed.systems.superposition import constellation
from testbed.systems.superposition.constellation import RECTANGULAR_ALPHA

IMAGE_SIZE = 28


def pam_levels(order: int) -> torch.Tensor:
    """The sqrt(order) PAM levels (float32, ascending) of a square ``order``-QAM with unit power."""
    return torch.from_numpy(constellation.pam_levels(order))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and PReLU, identity (or 1x1 strided) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class SemanticEncoder(nn.Module):
    """Image (B, 1, 28, 28) -> EFV (B, 2n): conv + BN + PReLU, ResNet stages to 4x4, average pool."""

    def __init__(self, n: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width),
            ResBlock(width, 2 * width, 2),          # 14x14
            ResBlock(2 * width, 4 * width, 2),      # 7x7
            ResBlock(4 * width, 2 * n, 2),          # 4x4
            nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class Modulator(nn.Module):
    """EFV (B, 2n) -> log transition probabilities (B, 2n, L) over the PAM levels of M-QAM:
    an MLP with PReLU (the paper's "MLP + PReLU" of n * 2 sqrt(M) outputs), then log-softmax
    (the normalisation layer)."""

    def __init__(self, n: int, order: int) -> None:
        super().__init__()
        self.n, self.levels = n, math.isqrt(order)
        self.register_buffer("points", pam_levels(order))
        self.net = nn.Sequential(nn.Linear(2 * n, 2 * n), nn.PReLU(), nn.Linear(2 * n, 2 * n * self.levels))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.net(u).view(-1, 2 * self.n, self.levels), dim=-1)

    def sample(self, log_q: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Eq. (10): a Gumbel-max sample of each level, straight-through (softmax) gradient.
        Returns: PAM values (B, 2n) of a unit-power M-QAM."""
        one_hot = F.gumbel_softmax(log_q, tau=tau, hard=True, dim=-1)
        return one_hot @ self.points

    def symbols(self, indices: torch.Tensor) -> torch.Tensor:
        """PAM level indices (B, 2n) int64 -> values (B, 2n)."""
        return self.points[indices]


def superpose(y1: torch.Tensor, y2: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (4): sqrt(alpha) Y1 + sqrt(1 - alpha) Y2, both unit power; (B, 2n) -> (B, n, 2)."""
    y = math.sqrt(alpha) * y1 + math.sqrt(1.0 - alpha) * y2
    return y.view(y.shape[0], -1, 2)


class ImageDecoder(nn.Module):
    """Z (B, n, 2) -> image (B, 1, 28, 28): FC to 7x7, ResNet blocks with depth-to-space
    upsampling (Table II's decoder, 4x4 base replaced by 7x7 for 28-px images), sigmoid."""

    def __init__(self, n: int, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(2 * n, 4 * width * 49), nn.PReLU())
        self.net = nn.Sequential(
            ResBlock(4 * width, 4 * width),
            nn.Conv2d(4 * width, 8 * width, 3, 1, 1), nn.PixelShuffle(2), nn.BatchNorm2d(2 * width), nn.ReLU(),
            ResBlock(2 * width, 2 * width),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 1, 3, 1, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z.reshape(z.shape[0], -1)).view(-1, 4 * self.width, 7, 7)
        return self.net(h)


class SpinalClassifier(nn.Module):
    """Z (B, n, 2) -> class logits: SpinalNet (four spinal layers, each fed one half of the input
    and the previous layer's output, then an MLP over all four outputs)."""

    def __init__(self, n: int, classes: int, width: int = 128, layers: int = 4) -> None:
        super().__init__()
        self.half = n
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(n + (width if i else 0), width), nn.BatchNorm1d(width), nn.ReLU())
            for i in range(layers))
        self.head = nn.Sequential(nn.Linear(layers * width, width), nn.ReLU(), nn.Linear(width, classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.reshape(z.shape[0], -1)
        halves = (x[:, :self.half], x[:, self.half:])
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            inp = halves[i % 2] if not outs else torch.cat([halves[i % 2], outs[-1]], dim=1)
            outs.append(layer(inp))
        return self.head(torch.cat(outs, dim=1))


class Receiver(nn.Module):
    """One receiver: image decoder g_eta and classifier g_psi in parallel on Z (eqs. 6-7)."""

    def __init__(self, n: int, classes: int, width: int = 32) -> None:
        super().__init__()
        self.image = ImageDecoder(n, width)
        self.classify = SpinalClassifier(n, classes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(z), self.classify(z)


def awgn(y: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Z = Y + CN(0, 10^(-snr/10)) for unit-power symbols (B, n, 2)."""
    sigma = math.sqrt(0.5 * 10.0 ** (-snr_db / 10.0))
    return y + sigma * torch.randn_like(y)


class DeepSCM(nn.Module):
    """The DeepSCM transmitter (two JCM blocks, decorrelator, superposition) and both receivers.

    Args: n channel uses; order1, order2 the inner and outer QAM orders (4, 16); classes
        (coarse, fine); alpha the power allocation factor (default: rectangular super-constellation).
    """

    kind = "deepscm"

    def __init__(self, n: int = 128, order1: int = 4, order2: int = 16, classes: tuple[int, int] = (4, 10),
                 alpha: float | None = None, width: int = 32) -> None:
        super().__init__()
        self.n, self.order1, self.order2, self.classes, self.width = n, order1, order2, tuple(classes), width
        self.alpha = RECTANGULAR_ALPHA[(order1, order2)] if alpha is None else float(alpha)
        self.encoder1, self.encoder2 = SemanticEncoder(n, width), SemanticEncoder(n, width)
        self.modulator1, self.modulator2 = Modulator(n, order1), Modulator(n, order2)
        self.decorrelator = nn.Linear(2 * n, 2 * n)  # F(U1) = W U1 + b, eq. (12)
        self.rx1, self.rx2 = Receiver(n, classes[0], width), Receiver(n, classes[1], width)

    def config(self) -> dict:
        return {"n": self.n, "order1": self.order1, "order2": self.order2, "classes": list(self.classes),
                "alpha": self.alpha, "width": self.width}

    @property
    def order(self) -> int:
        """Order of the super-constellation (M = M1 M2)."""
        return self.order1 * self.order2

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U1, R): the basic EFV and the successive refinement R = U2 - F(U1) (B, 2n).

        In training (:meth:`transmit`) W and b learn only from the ||R||^2 term, with U1 and U2
        detached there: they are an SGD solution of the LMMSE problem (15), so R is uncorrelated
        with U1 (18), while the encoders still get the task's and the rate term's gradients."""
        u1, u2 = self.encoder1(image), self.encoder2(image)
        return u1, u2 - self.decorrelator(u1)

    def transmit_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log transition probabilities of both layers: (B, 2n, sqrt(M1)), (B, 2n, sqrt(M2))."""
        u1, r = self.features(image)
        return self.modulator1(u1), self.modulator2(r)

    def transmit(self, image: torch.Tensor, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled super-constellation symbols Y (B, n, 2) and the rate term of eq. (20),
        mean R^2 over the batch and the 2n dimensions."""
        u1, u2 = self.encoder1(image), self.encoder2(image)
        fit = u2.detach() - self.decorrelator(u1.detach())  # trains W, b only: the LMMSE fit (15)
        r = u2 - F.linear(u1, self.decorrelator.weight.detach(), self.decorrelator.bias.detach())
        y1 = self.modulator1.sample(self.modulator1(u1), tau)
        y2 = self.modulator2.sample(self.modulator2(r), tau)
        return superpose(y1, y2, self.alpha), (fit ** 2).mean() + (r ** 2).mean()

    def symbols_from_indices(self, i1: torch.Tensor, i2: torch.Tensor) -> torch.Tensor:
        """Level indices (B, 2n) of each layer -> super-constellation symbols (B, n, 2)."""
        return superpose(self.modulator1.symbols(i1), self.modulator2.symbols(i2), self.alpha)


class CodedModulation(nn.Module):
    """The unstructured CM baseline: one semantic encoder, one modulator over the whole M-QAM,
    the same two receivers."""

    kind = "cm"

    def __init__(self, n: int = 128, order: int = 64, classes: tuple[int, int] = (4, 10), width: int = 32) -> None:
        super().__init__()
        self.n, self.order_, self.classes, self.width = n, order, tuple(classes), width
        self.encoder = SemanticEncoder(n, width)
        self.modulator = Modulator(n, order)
        self.rx1, self.rx2 = Receiver(n, classes[0], width), Receiver(n, classes[1], width)

    def config(self) -> dict:
        return {"n": self.n, "order": self.order_, "classes": list(self.classes), "width": self.width}

    @property
    def order(self) -> int:
        return self.order_

    def transmit_logits(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.modulator(self.encoder(image)),)

    def transmit(self, image: torch.Tensor, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.modulator.sample(self.modulator(self.encoder(image)), tau)
        return y.view(y.shape[0], -1, 2), torch.zeros(())
