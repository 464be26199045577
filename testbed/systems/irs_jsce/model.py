"""The user-independent JSCE encoder and decoder of IRS-JSCE, the IRS phases as trainable weights,
and one half-duplex slot of the IRS channel in torch.

Reference: Wang et al., "Learning Joint Source-Channel Encoding in IRS-assisted Multi-User
Semantic Communications", ../shared/seeds/000_5c86833aa1606c01.txt (Sec. II-B/C, III-A, eqs.
(3)-(8), (16)).

Networks (width W, c latent channels; basic residual blocks BRB, inverted ones IBRB with
transposed convolutions, channel attention blocks CAB, as Sec. III-A after [4], [13]):

    encoder: conv3x3/2 3->W PReLU | BRB | conv3x3/2 W->W PReLU | BRB | BRB | conv3x3 W->c | CAB
    decoder: CAB | conv3x3 c->W PReLU | BRB | BRB | IBRB/2 | IBRB/2 | conv3x3 W->3 sigmoid

CAB (eq. (16)): a = c softmax(beta MLP(mean_hw(s) + C2V(p_k) + S C2V(p_r) + W slot)) over the c
channels (scaled by c so a channel kept alone is passed at its size; beta a learnt sharpness,
:data:`SHARPNESS` at the start), s^a = a * s channel-wise (eq. (5)). C2V (Sec. III-A, after
[14]) is the sinusoidal 2-D position embedding: "in a 2-D environment with all users on the same
plane" the paper's e_k = C2V(g_k) embeds the receiver's position p_k, which fixes the LoS part
of g_k; S C2V(p_r) (S learnt) adds the transmitter's, so that two transmitters sending to one
receiver can use different channels, and W slot a learnt embedding of the slot's schedule (the
K-vector with 1 for each transmitter): the paper fine-tunes the networks for each schedule B_t
from a pre-trained start (Sec. III-B, after Algorithm 1); one network told the schedule stands
in for those per-schedule weights. Measured why positions and not the link's CSI h_{r,k}: with
C2V of (Re h, Im h) the networks stayed at the mean image (12 dB) for 1500 steps of mixed slots
and 250 steps of a 1 -> 2 broadcast; with the receiver's position a 1 -> 4 broadcast learnt
(20 dB at 1000 steps of the curriculum) but several transmitters to one receiver collided (the
mean image), which the transmitter's position lifts. The IRS acts through h_{r,k}: the SINR of
each link and the MMSE scaling the decoder sees.

Bandwidth: stride 4 and c = 16 give L = H W / 2 complex symbols per image, ratio 1/6 (as the
testbed's other systems). Symbols are real tensors (N, L, 2), I/Q last, in the order (row,
column, channel pair) of the latent.

A slot (eqs. (6), (7)): TX user r sends s_r = sum_k s^a_{r,k} over its scheduled receivers,
power-normalised per slot; RX user k receives y_k = sum_{r in TX} h_{r,k} s_r + n (every
transmitter of the slot reaches every receiver, which is eq. (7) when each TX addresses every
non-TX user, :func:`testbed.systems.irs_jsce.channel.slot_links`); the decoder of link (r, k)
gets the MMSE-scaled y_k conj(h_{r,k}) / (|h_{r,k}|^2 + sigma^2), the link and the schedule. The cascaded
channel h = g Phi g^H + h^d is :func:`cascaded` (the torch face of
:func:`testbed.systems.irs_jsce.channel.cascaded`, the same sum).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

STRIDE = 4
LATENT_CHANNELS = 16
BANDWIDTH_RATIO = "1/6"
WIDTH = 64
N_USERS = 5
SHARPNESS = 5.0
"""Initial scale of the CAB logits (learnt): measured on a 1 -> 4 broadcast, 32 px crops, batch 8,
with 1 the networks were still at the mean image (12 dB) after 800 steps, with 5 they reached
19.9 dB: sharper initial masks give the users' features distinct channels to start from."""


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def _upconv(cin: int, cout: int, stride: int = 1) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1, output_padding=stride - 1)


class ResidualBlock(nn.Module):
    """BRB (convolutions) or IBRB (transposed convolutions): x + conv(PReLU(conv(x))), then PReLU;
    with ``stride`` 2 the IBRB first upsamples by a transposed convolution. (N, W, H, W) float32."""

    def __init__(self, width: int, inverted: bool = False, stride: int = 1) -> None:
        super().__init__()
        layer = _upconv if inverted else _conv
        self.up = nn.Sequential(_upconv(width, width, stride), nn.PReLU(width)) if stride > 1 else nn.Identity()
        self.body = nn.Sequential(layer(width, width), nn.PReLU(width), layer(width, width))
        self.act = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.act(x + self.body(x))


def c2v(point: torch.Tensor, channels: int) -> torch.Tensor:
    """The C2V embedding of a 2-D point: float32 (N, 2) metres -> (N, channels), channels a multiple of 4.

    For each coordinate x and frequency w_i = pi 2^(i - 1) (i = 0 .. channels/4 - 1): sin(w_i x),
    cos(w_i x) (Vaswani's sinusoidal position code on the plane)."""
    freqs = math.pi * 2.0 ** (torch.arange(channels // 4, dtype=torch.float32) - 1.0)
    angles = point[:, :, None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=2).reshape(point.shape[0], channels)


class ChannelAttention(nn.Module):
    """CAB, eq. (16): features float32 (N, c, h, w), link (N, 4), slot (N, K) -> a * features (module docstring)."""

    def __init__(self, channels: int, n_users: int = N_USERS, hidden: int = 64, sharpness: float = SHARPNESS) -> None:
        super().__init__()
        self.channels = channels
        self.schedule = nn.Linear(n_users, channels, bias=False)
        self.source = nn.Linear(channels, channels, bias=False)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(sharpness)))

    def weights(self, x: torch.Tensor, link: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """a_{r,k}: float32 (N, c), positive, summing to c."""
        context = (x.mean(dim=(2, 3)) + c2v(link[:, :2], self.channels) + self.source(c2v(link[:, 2:], self.channels))
                   + self.schedule(slot))
        return self.channels * torch.softmax(self.mlp(context) * self.log_sharpness.exp(), dim=1)

    def forward(self, x: torch.Tensor, link: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x, link, slot)[:, :, None, None]


def to_symbols(latent: torch.Tensor) -> torch.Tensor:
    """(N, c, h, w) -> (N, L, 2), L = c h w / 2, order (row, column, channel pair)."""
    return latent.permute(0, 2, 3, 1).reshape(latent.shape[0], -1, 2)


def from_symbols(symbols: torch.Tensor, height: int, width: int, channels: int = LATENT_CHANNELS) -> torch.Tensor:
    """(N, L, 2) of an image of height x width px (multiples of 4) -> latent (N, c, H/4, W/4)."""
    return symbols.reshape(symbols.shape[0], height // STRIDE, width // STRIDE, channels).permute(0, 3, 1, 2)


class Encoder(nn.Module):
    """E_theta(h_{r,k}, w_{r,k}): image float32 (N, 3, H, W) in [0, 1] (H, W multiples of 4), link
    (N, 4) (:func:`link_features`), slot (N, K) -> s^a float32 (N, L, 2), not power-normalised (the
    TX normalises the sum, eq. (6))."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS, n_users: int = N_USERS) -> None:
        super().__init__()
        self.width, self.latent_channels, self.n_users = width, latent_channels, n_users
        self.body = nn.Sequential(
            _conv(3, width, 2), nn.PReLU(width), ResidualBlock(width),
            _conv(width, width, 2), nn.PReLU(width), ResidualBlock(width), ResidualBlock(width),
            _conv(width, latent_channels))
        self.attention = ChannelAttention(latent_channels, n_users)

    def config(self) -> dict:
        return {"width": self.width, "latent_channels": self.latent_channels, "n_users": self.n_users}

    def forward(self, image: torch.Tensor, link: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        return to_symbols(self.attention(self.body(image - 0.5), link, slot))


class Decoder(nn.Module):
    """E^-1(s_hat_k, h_{r,k}), eq. (8): symbols float32 (N, L, 2) (MMSE-scaled by the link's h),
    link (N, 4), slot (N, K), the image size -> image float32 (N, 3, H, W) in [0, 1]."""

    def __init__(self, width: int = WIDTH, latent_channels: int = LATENT_CHANNELS, n_users: int = N_USERS) -> None:
        super().__init__()
        self.width, self.latent_channels, self.n_users = width, latent_channels, n_users
        self.attention = ChannelAttention(latent_channels, n_users)
        self.body = nn.Sequential(
            _conv(latent_channels, width), nn.PReLU(width), ResidualBlock(width), ResidualBlock(width),
            ResidualBlock(width, inverted=True, stride=2), ResidualBlock(width, inverted=True, stride=2),
            _conv(width, 3), nn.Sigmoid())

    def config(self) -> dict:
        return {"width": self.width, "latent_channels": self.latent_channels, "n_users": self.n_users}

    def forward(self, symbols: torch.Tensor, link: torch.Tensor, slot: torch.Tensor, height: int,
                width: int) -> torch.Tensor:
        return self.body(self.attention(from_symbols(symbols, height, width, self.latent_channels), link, slot))


class IrsPhases(nn.Module):
    """The IRS phases phi_n as weights of the network (Sec. III-A): float32 (N,) radians, trained
    continuous, then quantised to {0, pi} (14b) by :func:`testbed.systems.irs_jsce.channel.one_bit`."""

    def __init__(self, n_elements: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.phases = nn.Parameter(2 * math.pi * torch.rand(n_elements, generator=generator))

    def forward(self) -> torch.Tensor:
        return self.phases


def cascaded(g: torch.Tensor, h_direct: torch.Tensor, phases: torch.Tensor | None) -> torch.Tensor:
    """Eq. (3) for every ordered pair: h[b, r, k] = sum_n conj(g[b, r, n]) e^{j phi_n} g[b, k, n] + h^d[b, r, k].

    g: complex64 (B, K, N); h_direct: complex64 (B, K, K); phases: float32 (N,), or None for no
    IRS (h = h^d). Returns complex64 (B, K, K) with a zero diagonal apart from h^d's (zero)."""
    if phases is None:
        return h_direct
    reflection = torch.polar(torch.ones_like(phases), phases).to(g.dtype)
    h = torch.einsum("brn,n,bkn->brk", g.conj(), reflection, g)
    eye = torch.eye(g.shape[1], dtype=torch.bool)
    return h.masked_fill(eye, 0) + h_direct


def as_complex(symbols: torch.Tensor) -> torch.Tensor:
    """(..., L, 2) float32 -> complex64 (..., L)."""
    return torch.complex(symbols[..., 0].contiguous(), symbols[..., 1].contiguous())


def as_real(symbols: torch.Tensor) -> torch.Tensor:
    """complex64 (..., L) -> (..., L, 2) float32."""
    return torch.stack([symbols.real, symbols.imag], dim=-1)


def slot_indicator(transmitters: Sequence[int], n_users: int) -> torch.Tensor:
    """The slot's schedule as the networks see it: float32 (1, K), 1 for each transmitter."""
    slot = torch.zeros(1, n_users)
    slot[0, list(transmitters)] = 1.0
    return slot


def link_features(positions_m: torch.Tensor, links: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The link input of the networks: float32 (n_links, 4), the receiver's then the transmitter's
    2-D position in metres (positions_m: float32 (K, 2), the users' (x, y))."""
    index_r = torch.tensor([r for r, _ in links])
    index_k = torch.tensor([k for _, k in links])
    return torch.cat([positions_m[index_k], positions_m[index_r]], dim=1)


def transmit_slot(encoder: Encoder, decoder: Decoder, images: torch.Tensor, links: Sequence[tuple[int, int]],
                  h: torch.Tensor, noise_var: float, positions_m: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One slot through the torch channel (module docstring, eqs. (6), (7)).

    images: float32 (B, n_links, 3, H, W), image j from links[j] = (tx r, rx k); h: complex64
    (B, K, K) the slot's cascaded channels; noise_var: sigma^2 per complex symbol (unit power per
    TX); positions_m: float32 (K, 2) the users' positions (:func:`link_features`). Returns the decoded images float32 (B, n_links, 3, H, W).
    """
    n_b, n_links, _, height, width = images.shape
    index_r = torch.tensor([r for r, _ in links])
    index_k = torch.tensor([k for _, k in links])
    h_links = h[:, index_r, index_k]                                   # (B, n_links)
    link = link_features(positions_m, links).repeat(n_b, 1)
    txs, rxs = sorted({r for r, _ in links}), sorted({k for _, k in links})
    slot = slot_indicator(txs, h.shape[1]).expand(n_b * n_links, -1)
    sent = as_complex(encoder(images.reshape(n_b * n_links, 3, height, width), link, slot)).reshape(n_b, n_links, -1)
    signals = {}
    for r in txs:
        s_r = sent[:, [j for j, (t, _) in enumerate(links) if t == r]].sum(dim=1)
        signals[r] = s_r * torch.rsqrt(s_r.abs().pow(2).mean(dim=1, keepdim=True) + 1e-12)
    received = {}
    for k in rxs:
        y = sum(h[:, r, k, None] * signals[r] for r in txs)
        noise = torch.randn((n_b, y.shape[1], 2), generator=generator) * math.sqrt(noise_var / 2)
        received[k] = y + as_complex(noise)
    y_links = torch.stack([received[k] for _, k in links], dim=1)      # (B, n_links, L)
    scaled = y_links * h_links.conj()[..., None] / (h_links.abs().pow(2)[..., None] + noise_var)
    decoded = decoder(as_real(scaled).reshape(n_b * n_links, -1, 2), link, slot, height, width)
    return decoded.reshape(n_b, n_links, 3, height, width)
