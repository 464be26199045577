"""The ``fitted`` estimator of the adaptive-rate policies: search, then fit.

../shared/seeds/004_04072a72b64c0519.txt trains P1 and P2 through straight-through
Gumbel-softmax on eq. (21). Measured here (docs/adaptive_rate.md), that and a self-critical
policy gradient both left the policies at one decision for every SNR, although the codec's best
decision does change with the SNR. This estimator finds that decision directly and teaches it:

1. On training crops (never held-out ones), each image of each user goes through the uplink
   under every decision the system allows: 1 .. C/2 maps x every pruning ratio (ratio 0 only
   without the pruning module). All decisions of an image meet one channel draw and one noise
   draw (common random numbers), so they differ by the decision alone.
2. The per-image label is the decision with the least eq. (21) rate-distortion loss, MSE +
   alpha * usage (:func:`transceiver.per_image_costs`).
3. P1 and P2 are fitted to the labels by cross-entropy on exactly what they see at run time
   (:meth:`AdaptiveRateUser.features`: row means, entropies, CSI and SNR). P2 sees the maps its
   label selects.

Everything in step 1 is evaluation, so the codec is not changed. The summary reports, per SNR
band of a held-back quarter of the samples, the labels' and the fitted policies' mean map count
and pruning ratio, and the regret: how much more loss the fitted greedy decisions cost than
the per-image best ones.
"""
from __future__ import annotations

import torch

from testbed.systems.adaptive_rate import channel as uplink_channel
from testbed.systems.adaptive_rate import rate_control as rc
from testbed.systems.adaptive_rate.model import to_complex
from testbed.systems.adaptive_rate.transceiver import AdaptiveRateUser, per_image_costs, run_users

FIT_BATCHES = 24        # batches of labelled crops (each K users x ``batch`` images)
FIT_STEPS = 600         # full-batch Adam steps on the cross-entropy
FIT_LR = 1e-3
HELD_BACK = 0.25        # fraction of the samples kept out of the fit, for the summary
SNR_BANDS_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def decisions(model: AdaptiveRateUser) -> list[tuple[int, int]]:
    """Every (maps, pruning ratio index) the model can send, maps 1 .. C/2."""
    half = model.select.mlp[-1].out_features - 1
    ratios = range(len(rc.PRUNING_RATIOS)) if model.pruning else range(1)
    return [(maps, r) for maps in range(1, half + 1) for r in ratios]


@torch.no_grad()
def decision_costs(model: AdaptiveRateUser, images: torch.Tensor, snr_db: torch.Tensor, antennas: int,
                   imperfect: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple]]:
    """Per-image MSE and eq. (21) usage, float (D, K, B) each, of images (K, B, 3, 32, 32) at
    snr_db (B,) under each of the D :func:`decisions`, all on one channel and noise draw; and per
    user :meth:`AdaptiveRateUser.features` (the encoder runs once for all D decisions)."""
    users, batch = images.shape[:2]
    draw = uplink_channel.draw(batch, antennas, users, snr_db, imperfect, torch.Generator().manual_seed(seed))
    features = [model.features(images[k], draw.h_hat[:, :, k], snr_db) for k in range(users)]
    mse, usage = [], []
    for fixed in decisions(model):
        recon, chosen = run_users(model, images, snr_db, antennas, imperfect, 0.0,
                                  torch.Generator().manual_seed(seed + 1), channel=draw, fixed=fixed,
                                  features=features)
        costs = per_image_costs(images, recon, chosen)
        mse.append(costs[0])
        usage.append(costs[1])
    return torch.stack(mse), torch.stack(usage), features


@torch.no_grad()
def label_batch(model: AdaptiveRateUser, images: torch.Tensor, snr_db: torch.Tensor, antennas: int,
                imperfect: bool, seed: int) -> dict[str, torch.Tensor]:
    """Policy inputs and costs of K x B images, flattened to N = K B samples: ``z0`` (N, C, 8, 8),
    ``weights`` (N, C), ``csi`` (N, M), ``snr_db`` (N,) as the transmitter sees them, ``band_db``
    (N,) the channel's SNR, ``mse`` and ``usage`` (N, D) per :func:`decisions`."""
    mse, usage, parts = decision_costs(model, images, snr_db, antennas, imperfect, seed)
    z0, _, weights, csi, told = (torch.cat([p[i] for p in parts]) for i in range(5))
    return {"z0": z0, "weights": weights, "csi": csi, "snr_db": told, "band_db": snr_db.repeat(images.shape[0]),
            "mse": mse.permute(1, 2, 0).reshape(-1, mse.shape[0]),
            "usage": usage.permute(1, 2, 0).reshape(-1, usage.shape[0])}


def label_batches(model: AdaptiveRateUser, batches: list[tuple[torch.Tensor, torch.Tensor]], antennas: int,
                  imperfect: bool, seed: int) -> dict[str, torch.Tensor]:
    """:func:`label_batch` of every (images (K, B, 3, 32, 32), snr_db (B,)) of ``batches``,
    concatenated, with ``decisions`` (D, 2) the (maps, ratio index) of the cost columns."""
    model.eval()
    parts = [label_batch(model, images, snr, antennas, imperfect, seed + 2 * i)
             for i, (images, snr) in enumerate(batches)]
    return {**{key: torch.cat([p[key] for p in parts]) for key in parts[0]},
            "decisions": torch.tensor(decisions(model))}


def _selected(z0: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """P2's input: the last ``maps`` (N,) complex maps of z0 (N, C, 8, 8), the others zeroed (N, C/2, 2L)."""
    half = z0.shape[1] // 2
    return to_complex(z0) * (torch.arange(half)[None, :] >= (half - maps)[:, None])[..., None]


def _policy_log_probs(model: AdaptiveRateUser, data: dict[str, torch.Tensor], table: torch.Tensor) -> torch.Tensor:
    """Log-probabilities P1 gives its label class and P2 its label ratio, (N,) each."""
    half = data["z0"].shape[1] // 2
    maps, ratio = table[data["label"], 0], table[data["label"], 1]
    p1 = model.select(data["z0"], data["weights"], data["csi"], data["snr_db"])
    log_p = torch.log(p1.gather(1, (half - maps)[:, None]).squeeze(1).clamp_min(1e-20))
    if model.pruning:
        p2 = model.prune(_selected(data["z0"], maps), data["csi"], data["snr_db"])
        log_p = log_p + torch.log(p2.gather(1, ratio[:, None]).squeeze(1).clamp_min(1e-20))
    return log_p


@torch.no_grad()
def greedy(model: AdaptiveRateUser, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """Index into :func:`decisions` (model) of the policies' most probable decision per sample (N,)."""
    half = data["z0"].shape[1] // 2
    maps = half - model.select(data["z0"], data["weights"], data["csi"], data["snr_db"]).argmax(-1)
    maps = maps.clamp(1, half)  # the no-map class is not in the table; it was never a label either
    ratio = torch.zeros_like(maps)
    if model.pruning:
        ratio = model.prune(_selected(data["z0"], maps), data["csi"], data["snr_db"]).argmax(-1)
    return (maps - 1) * (len(rc.PRUNING_RATIOS) if model.pruning else 1) + ratio


def fit(model: AdaptiveRateUser, batches: list[tuple[torch.Tensor, torch.Tensor]], antennas: int, imperfect: bool,
        alpha: float, seed: int, log=print) -> dict:
    """Label ``batches`` of (images (K, B, 3, 32, 32), snr_db (B,)) and fit P1/P2 to them
    (module docstring); the summary of :func:`fit_to`."""
    return fit_to(model, label_batches(model, batches, antennas, imperfect, seed), alpha, log)


def fit_to(model: AdaptiveRateUser, data: dict[str, torch.Tensor], alpha: float, log=print) -> dict:
    """Fit P1/P2 of ``model`` to the least-loss decisions of ``data`` (:func:`label_batches`, of
    this codec) at ``alpha``, among the decisions ``model`` allows: without its pruning module only
    ratio 0, without its entropy mechanism P1 sees zeros for the entropies (the ablations).

    Returns ``bands`` (per SNR band of the held-back samples: label and policy mean maps and
    pruning ratio, regret), ``held_back_accuracy`` and ``regret`` overall."""
    allowed = set(decisions(model))
    columns = [i for i, d in enumerate(data["decisions"].tolist()) if tuple(d) in allowed]
    table = data["decisions"][columns]
    losses = (data["mse"] + alpha * data["usage"])[:, columns]
    data = {**data, "losses": losses, "label": losses.argmin(-1),
            "weights": data["weights"] if model.entropy else torch.zeros_like(data["weights"])}
    n_fit = int(round(len(data["label"]) * (1.0 - HELD_BACK)))
    keys = ("z0", "weights", "csi", "snr_db", "band_db", "losses", "label")
    train = {k: data[k][:n_fit] for k in keys}
    test = {k: data[k][n_fit:] for k in keys}
    params = [p for m in (model.select, model.prune) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=FIT_LR)
    for _ in range(FIT_STEPS):
        loss = -_policy_log_probs(model, train, table).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    summary = summarise(model, test, table)
    log(f"fitted policies: cross-entropy {loss.item():.4g}, held-back accuracy {summary['held_back_accuracy']:.3f}, "
        f"regret {summary['regret']:.3g}; " + "; ".join(
            f"{b['snr_db'][0]:g}-{b['snr_db'][1]:g} dB maps {b['label_maps']:.2f}/{b['policy_maps']:.2f}"
            for b in summary["bands"]))
    return summary


@torch.no_grad()
def summarise(model: AdaptiveRateUser, data: dict[str, torch.Tensor], table: torch.Tensor) -> dict:
    """Per SNR band: the labels' and the greedy policies' mean maps and ratio, and the regret."""
    chosen = greedy(model, data)  # decisions(model) is the order of table's rows
    ratios = torch.tensor(rc.PRUNING_RATIOS)
    regret = data["losses"].gather(1, chosen[:, None]).squeeze(1) - data["losses"].min(-1).values
    bands = []
    for lo, hi in zip(SNR_BANDS_DB[:-1], SNR_BANDS_DB[1:]):
        inside = (data["band_db"] >= lo) & (data["band_db"] < hi)
        if not inside.any():
            continue
        label, pick = data["label"][inside], chosen[inside]
        bands.append({"snr_db": [lo, hi], "samples": int(inside.sum()),
                      "label_maps": float(table[label, 0].float().mean()),
                      "policy_maps": float(table[pick, 0].float().mean()),
                      "label_ratio": float(ratios[table[label, 1]].mean()),
                      "policy_ratio": float(ratios[table[pick, 1]].mean()),
                      "regret": float(regret[inside].mean())})
    return {"bands": bands, "held_back_accuracy": float((chosen == data["label"]).float().mean()),
            "regret": float(regret.mean()), "samples": int(len(data["label"]))}

