"""One user's adaptive-rate transmitter and receiver, end to end through the MU-MIMO uplink
(torch, for training and for the reference evaluation).

Implements the pipeline of ../shared/seeds/004_04072a72b64c0519.txt, Figs. 1, 8, 10 and eq. (21):

    image -> encoder(ctx) -> Z0 (C maps) -> 2-D entropies -> P1 -> thermometer mask M (C/2)
          -> Z1 (selected complex maps) -> P2 -> pruning ratio -> Z2 (l1-pruned) + index matrix
          -> power-normalised symbols -> uplink (H, noise, LMMSE) -> zero-fill of the pruned and
          unselected entries -> decoder(ctx) -> image

``ctx`` is what the base station feeds back to the user: its column of the estimated H and the
estimated SNR (:func:`testbed.systems.adaptive_rate.model.context`). All K users share one set
of weights (each TX process runs its own copy); the paper gives every user its own parameters,
which K = 2..4 would multiply by up to four trainings on a CPU.

Pruned and unselected entries are not sent (the receiver knows where they are from the
selection vector and the index matrix, which travel as digital bits). In training they ride the
channel as zeros and are zeroed again at the receiver, which is the same thing; the power is
normalised over the entries actually sent.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from testbed.systems.adaptive_rate import channel as uplink_channel
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate.model import (FEATURE_MAPS, SemanticDecoder, SemanticEncoder, context,
                                                 from_complex, to_complex)


@dataclass
class UserDecision:
    """Per-image choices (straight-through, so they carry gradients): ``mask`` (B, C/2) the
    selected complex maps, ``ratio`` (B,) the pruning ratio, ``pruning`` (B,) 1 when a non-zero
    ratio was chosen (index rows are then sent), ``kept`` (B, C/2, 2L) 1 where an entry is sent,
    ``entropy_bits`` (B, C) the maps' 2-D entropies, ``log_prob`` (B,) the log-probability the
    policies gave the decision (zeros when they did not make it)."""

    mask: torch.Tensor
    ratio: torch.Tensor
    pruning: torch.Tensor
    kept: torch.Tensor
    entropy_bits: torch.Tensor
    log_prob: torch.Tensor | None = None

    @property
    def selected(self) -> torch.Tensor:
        """(B,) number of complex maps sent."""
        return self.mask.sum(-1)

    def usage(self) -> torch.Tensor:
        """(B,) eq. (21)'s channel-usage term: sum over the selected maps of (L_k + L'_k) / 2L."""
        length = self.kept.shape[-1]
        overhead = rc.index_symbols(length) * self.pruning[:, None] * self.mask
        return (self.kept.sum(-1) + overhead).sum(-1) / length

    def cpp(self, height: int = 32, width: int = 32) -> torch.Tensor:
        """(B,) the paper's CPP of each image (:func:`rate_control.cpp`), a number, no gradient."""
        length = self.kept.shape[-1]
        return torch.tensor([rc.cpp(int(m), int(round((1 - float(r)) * length)) if m else length, length, height,
                                    width) for m, r in zip(self.selected.detach(), self.ratio.detach())])


class AdaptiveRateUser(nn.Module):
    """Encoder, policies and decoder of one user (shared by all users)."""

    def __init__(self, antennas: int, maps: int = FEATURE_MAPS, entropy: bool = True, attention: bool = True,
                 feedback: bool = True, pruning: bool = True) -> None:
        super().__init__()
        self.encoder = SemanticEncoder(antennas, maps, attention)
        self.decoder = SemanticDecoder(antennas, maps, attention)
        self.select = rc.SelectionPolicy(maps, antennas)
        self.prune = rc.PruningPolicy(maps, antennas)
        self.entropy, self.feedback, self.pruning = entropy, feedback, pruning
        self.register_buffer("ratios", torch.tensor(rc.PRUNING_RATIOS))

    def features(self, images: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the policies decide from: (Z0 float (B, C, 8, 8), 2-D entropies (B, C), P1's
        entropy input (B, C): normalised, or zeros without the entropy mechanism, and the CSI
        complex (B, M) and SNR (B,) the transmitter sees: zeros without feedback)."""
        if not self.feedback:
            csi, snr_db = torch.zeros_like(csi), torch.zeros_like(snr_db)
        z0 = self.encoder(images, context(csi, snr_db))
        entropy = rc.entropy_2d(z0, soft=True)
        weights = rc.normalised_entropy(entropy) if self.entropy else torch.zeros_like(entropy)
        return z0, entropy, weights, csi, snr_db

    def transmit(self, images: torch.Tensor, csi: torch.Tensor, snr_db: torch.Tensor,
                 tau: float, explore: bool = False, fixed: tuple[int, int] | None = None,
                 straight_through: bool = True, features: tuple | None = None) -> tuple[torch.Tensor, UserDecision]:
        """images (B, 3, 32, 32), csi complex (B, M), snr_db (B,) -> (rows (B, C/2, 2L) of
        what is sent, zeros elsewhere, decision). Without feedback (the ablation) the transmitter
        sees zeros for the CSI and the SNR. With ``explore`` the policies are bypassed: every
        image gets a uniformly random number of maps (1 .. C/2) and pruning ratio, so that the
        codec learns every rate before the policies learn to choose one (train.py). With ``fixed``
        = (maps, pruning ratio index) every image gets that decision (the fixed-rate baseline).
        Without ``straight_through`` the decisions carry no gradient (sampled from the detached
        probabilities); their ``log_prob`` does (the policy gradient of train.py). ``features``: what
        :meth:`features` returned for these inputs (one encoder pass serves many decisions)."""
        z0, entropy, weights, csi, snr_db = features or self.features(images, csi, snr_db)
        half, n = z0.shape[1] // 2, images.shape[0]
        log_prob = torch.zeros(n)
        if fixed is not None:
            select = _constant(n, half - fixed[0], half + 1, z0)
        elif explore:
            select = _uniform(n, half, half + 1, z0)
        else:
            p1 = self.select(z0, weights, csi, snr_db) if straight_through else \
                self.select(z0.detach(), weights.detach(), csi, snr_db)
            select = rc.sample_one_hot(p1 if straight_through else p1.detach(), tau)
            log_prob = log_prob + torch.log((p1 * select).sum(-1).clamp_min(1e-20))
        mask = rc.thermometer(select)                                                          # (B, C/2)
        z1 = to_complex(z0) * mask[..., None]
        if self.pruning:
            if fixed is not None:
                choice = _constant(n, fixed[1], len(self.ratios), z0)
            elif explore:
                choice = _uniform(n, len(self.ratios), len(self.ratios), z0)
            else:
                p2 = self.prune(z1 if straight_through else z1.detach(), csi, snr_db)
                choice = rc.sample_one_hot(p2 if straight_through else p2.detach(), tau)       # (B, T)
                log_prob = log_prob + torch.log((p2 * choice).sum(-1).clamp_min(1e-20))
            keeps = rc.keep_masks(z1)
            kept = (choice[:, :, None, None] * keeps).sum(1) * mask[..., None]                 # straight-through
            ratio, pruning = choice @ self.ratios, 1.0 - choice[:, 0]
        else:
            kept = mask[..., None].expand_as(z1)
            ratio = pruning = torch.zeros_like(snr_db)
        decision = UserDecision(mask, ratio, pruning, kept, entropy, log_prob)
        return z1 * kept, decision

    def receive(self, rows: torch.Tensor, decision: UserDecision, csi: torch.Tensor,
                snr_db: torch.Tensor) -> torch.Tensor:
        """Detected rows (B, C/2, 2L) -> image (B, 3, 32, 32); entries not sent are zeroed."""
        return self.decoder(from_complex(rows * decision.kept), context(csi, snr_db))


def _uniform(batch: int, drawn: int, classes: int, like: torch.Tensor) -> torch.Tensor:
    """(batch, classes) one-hots, hot at a uniformly random one of the first ``drawn`` classes."""
    return torch.nn.functional.one_hot(torch.randint(0, drawn, (batch,)), classes).to(like.dtype)


def _constant(batch: int, hot: int, classes: int, like: torch.Tensor) -> torch.Tensor:
    """(batch, classes) one-hots, all hot at ``hot``."""
    return torch.nn.functional.one_hot(torch.full((batch,), hot), classes).to(like.dtype)


def to_symbols(rows: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Rows (B, C/2, 2L) -> complex symbols (B, C/2 * L) with unit mean power over the sent ones
    (a complex symbol counts as sent when either of its two reals is)."""
    half = rows.shape[-1] // 2
    symbols = torch.complex(rows[..., :half], rows[..., half:]).flatten(1)
    sent = torch.maximum(kept[..., :half], kept[..., half:]).flatten(1)
    power = (symbols.abs() ** 2).sum(-1) / sent.sum(-1).clamp_min(1.0)
    return symbols / torch.sqrt(power.clamp_min(1e-12))[:, None], power


def from_symbols(symbols: torch.Tensor, power: torch.Tensor, maps_half: int) -> torch.Tensor:
    """Inverse of :func:`to_symbols` (the receiver knows the power from the header): (B, C/2, 2L)."""
    scaled = symbols * torch.sqrt(power.clamp_min(1e-12))[:, None]
    rows = scaled.reshape(scaled.shape[0], maps_half, -1)
    return torch.cat([rows.real, rows.imag], dim=-1)


def run_users(model: AdaptiveRateUser, images: torch.Tensor, snr_db: torch.Tensor, antennas: int,
              imperfect: bool, tau: float, generator: torch.Generator | None = None, explore: bool = False,
              channel: uplink_channel.UplinkDraw | None = None, fixed: tuple[int, int] | None = None,
              straight_through: bool = True, contexts: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
              features: list[tuple] | None = None) -> tuple[torch.Tensor, list[UserDecision]]:
    """K users' images (K, B, 3, 32, 32) through one shared uplink per batch item at snr_db (B,);
    ``explore``: random decisions (:meth:`AdaptiveRateUser.transmit`); ``channel``: these draws
    (e.g. a network run's H) instead of fresh Rayleigh ones; ``fixed``: one decision for all
    (:meth:`AdaptiveRateUser.transmit`, as ``straight_through``); ``contexts``: per user the (CSI
    complex (B, M), SNR dB (B,)) its transmitter and receiver are told instead of its column of
    H_hat and ``snr_db`` (a network run's feedback; detection still uses H_hat); ``features``: per
    user :meth:`AdaptiveRateUser.features` of its images and context, computed once by the caller.

    Returns the reconstructions (K, B, 3, 32, 32) and each user's decision.
    """
    users, batch = images.shape[:2]
    draw = channel or uplink_channel.draw(batch, antennas, users, snr_db, imperfect, generator)
    told = contexts or [(draw.h_hat[:, :, k], snr_db) for k in range(users)]
    sent, decisions, powers = [], [], []
    for k in range(users):
        rows, decision = model.transmit(images[k], *told[k], tau, explore, fixed, straight_through,
                                        features[k] if features else None)
        symbols, power = to_symbols(rows, decision.kept)
        sent.append(symbols)
        decisions.append(decision)
        powers.append(power)
    detected = uplink_channel.uplink(torch.stack(sent, 1), draw, generator)           # (B, K, T)
    maps_half = decisions[0].kept.shape[1]
    out = [model.receive(from_symbols(detected[:, k], powers[k], maps_half), decisions[k], *told[k])
           for k in range(users)]
    return torch.stack(out), decisions


def per_image_costs(images: torch.Tensor, recon: torch.Tensor, decisions: list[UserDecision]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE, usage), (K, B) each, per user and image: the two parts of eq. (21)'s rate-distortion term."""
    return ((images - recon) ** 2).flatten(2).mean(-1), torch.stack([d.usage() for d in decisions])


def per_image_loss(images: torch.Tensor, recon: torch.Tensor, decisions: list[UserDecision],
                   alpha: float) -> torch.Tensor:
    """(K, B) eq. (21)'s rate-distortion part per user and image: MSE + alpha * usage."""
    mse, usage = per_image_costs(images, recon, decisions)
    return mse + alpha * usage


def loss(images: torch.Tensor, recon: torch.Tensor, decisions: list[UserDecision], alpha: float,
         beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. (21): MSE + alpha * (length ratio x selected maps) - beta * mean exp(entropy)."""
    mse = torch.mean((images - recon) ** 2)
    usage = torch.stack([d.usage() for d in decisions]).mean()
    entropy = torch.stack([d.entropy_bits.exp().mean() for d in decisions]).mean()
    total = mse + alpha * usage - beta * entropy
    return total, {"mse": mse.item(), "usage": usage.item(), "exp_entropy": entropy.item()}
