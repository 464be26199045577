"""The digital envelope: at each SNR, the best image codec + LDPC + QAM configuration, and the
capacity-achieving ideal beside it.

Every seed paper (../shared/seeds/, e.g. the BPG+LDPC+QAM and SSCC baselines) compares against
the best separate source-channel configuration per SNR, not one fixed MCS. Candidates: codec
(HEVC intra, JPEG 2000) x LDPC code (n = 648, 1296; R = 1/2, 2/3, 3/4, 5/6) x QAM (4 .. 256) x
frame size. For each candidate the source rate fills the channel-use budget of the image
(``bandwidth_ratio`` complex data symbols per source value), and the expected PSNR of the batch
is predicted from

- the codec's rate-distortion curve of each image (HEVC/JPEG 2000 coded at a grid of qualities,
  PSNR interpolated linearly in log bytes between grid points), and
- the probability that every frame of the image arrives, from the PHY's *measured* codeword
  error rates (:mod:`testbed.systems.digital.bler`): AWGN, or Rayleigh block fading with one
  draw per frame;

E[PSNR] = P(image ok) PSNR(codec at budget) + (1 - P(image ok)) PSNR(mid-grey), the quantity the
run reports (mean PSNR over images, a lost image scored as mid-grey). The candidate with the
highest mean E[PSNR] over the batch's images is sent; the image is then coded at the exact
highest quality that fits (bisection between the grid qualities). The choice uses the nominal
SNR of the point (the transmitter knows its link's mean SNR, as the papers' envelopes assume).

Ideal reference (``ideal_psnr_db``): the best codec at the rate of a capacity-achieving code,
n_cu log2(1 + SNR) bits for AWGN and n_cu E[log2(1 + |h|^2 SNR)] (ergodic capacity) for
Rayleigh, with no channel errors and no PHY overhead; no practical code reaches it.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed import metrics, registry
from testbed.phy.frame import FrameJob
from testbed.phy.ldpc import CODES, get_code
from testbed.phy.payload import PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.registry import register
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len
from testbed.systems.digital.bler import QAM_ORDERS, TABLE_PATH, BlerTable, rayleigh_power_quantiles, spectral_efficiency
from testbed.systems.digital.system import (LOST_FILL, _image_metrics, channel_uses, frame_sizes, reconstruct,
                                            source_budget)

CHANNELS = ("awgn", "rayleigh")
QUALITY_GRID = {"hevc": tuple(range(0, 101, 10)), "jpeg2000": tuple(range(10, 81, 5))}


class EnvelopeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codecs: list[str] = ["hevc", "jpeg2000"]
    codes: list[str] = sorted(CODES)
    modulations: list[str] = list(QAM_ORDERS)
    frame_bytes: list[int] = [4000, 16000, 60000]
    bandwidth_ratio: float = Field(default=1 / 6, gt=0, le=4)
    channel: str = "awgn"
    table: str = str(TABLE_PATH)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, v: list[str]) -> list[str]:
        return [check_choice("codecs", c, list(QUALITY_GRID)) for c in v] or _empty("codecs", QUALITY_GRID)

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return [check_choice("codes", c, sorted(CODES)) for c in v] or _empty("codes", CODES)

    @field_validator("modulations")
    @classmethod
    def _mods(cls, v: list[str]) -> list[str]:
        return [check_choice("modulations", m, QAM_ORDERS) for m in v] or _empty("modulations", QAM_ORDERS)

    @field_validator("frame_bytes")
    @classmethod
    def _frames(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not 64 <= b <= 65000]
        if bad or not v:
            raise ValueError(f"frame_bytes = {v!r} is invalid; allowed: a non-empty list of sizes in 64 .. 65000")
        return v

    _channel = field_validator("channel")(lambda cls, v: check_choice("channel", v, CHANNELS))


def _empty(field: str, allowed) -> list[str]:
    raise ValueError(f"{field} is empty; allowed: one or more of {', '.join(allowed)}")


@dataclass(frozen=True)
class Candidate:
    """One configuration the envelope can send."""

    codec: str
    code: str
    modulation: str
    frame_bytes: int

    @property
    def fmt(self) -> PayloadFormat:
        return PayloadFormat(self.modulation, self.code)

    def as_dict(self) -> dict:
        return {"codec": self.codec, "code": self.code, "modulation": self.modulation, "frame_bytes": self.frame_bytes}


@dataclass
class RateDistortion:
    """One image under one codec: file bytes and PSNR at each grid quality (increasing)."""

    qualities: np.ndarray
    sizes: np.ndarray
    psnr_db: np.ndarray

    def psnr_at(self, budget_bytes: float) -> float:
        """PSNR of the best grid quality within the budget, interpolated in log bytes towards the
        next one; -inf when even the lowest quality does not fit."""
        if budget_bytes < self.sizes[0]:
            return -math.inf
        return float(np.interp(math.log(budget_bytes), np.log(self.sizes), self.psnr_db))

    def bracket(self, budget_bytes: int) -> tuple[int, int]:
        """(highest grid quality that fits, the next grid quality) around ``budget_bytes``."""
        fits = int(np.searchsorted(self.sizes, budget_bytes, side="right")) - 1
        low = int(self.qualities[max(fits, 0)])
        return low, int(self.qualities[min(fits + 1, len(self.qualities) - 1)])


def _digest(img: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).hexdigest()


def rate_distortion(codec, img: np.ndarray) -> RateDistortion:
    """Code ``img`` at every grid quality of ``codec`` (sizes made non-decreasing)."""
    rows = []
    for quality in QUALITY_GRID[codec.name]:
        data = codec.encode(img, quality)
        rows.append((quality, len(data), min(float(metrics.psnr_db(img, codec.decode(data))), 100.0)))
    q, size, psnr = (np.array(col, dtype=float) for col in zip(*rows))
    return RateDistortion(q, np.maximum.accumulate(size), np.maximum.accumulate(psnr))


def capacity_bits(snr_db: float, channel: str) -> float:
    """Bits per complex channel use of a capacity-achieving code: log2(1 + SNR), or its mean over
    |h|^2 ~ Exp(1) for Rayleigh (ergodic capacity)."""
    snr = 10.0 ** (snr_db / 10.0)
    if channel == "awgn":
        return math.log2(1.0 + snr)
    return float(np.mean(np.log2(1.0 + rayleigh_power_quantiles() * snr)))


@register("system", "digital-envelope")
class EnvelopeSystem(System):
    """The best codec + LDPC + QAM + frame size per SNR (module docstring); rows carry the choice."""

    name = "digital-envelope"
    system_id = 4
    Params = EnvelopeParams

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        p = self.params
        self.table = BlerTable.load(p.table)
        self.codecs = {name: registry.create("codec", name) for name in p.codecs}
        self.candidates = [Candidate(c, code, mod, fb) for c in p.codecs for code in p.codes
                           for mod in p.modulations for fb in p.frame_bytes]
        self._rd: dict[tuple[str, str], RateDistortion] = {}
        self._budgets: dict[tuple[int, str, str, int], int] = {}
        self._files: dict[tuple[str, str, int], bytes] = {}

    @classmethod
    def check_link(cls, params: EnvelopeParams, link) -> list[str]:
        """The fading the choice assumes must be the link's (a Rayleigh link chosen for as AWGN
        would lose most images, and the reverse would waste rate)."""
        if link.model != params.channel:
            return [f"system_params.channel = {params.channel!r} differs from the link's model "
                    f"{link.model!r}; allowed: {link.model!r}"]
        return []

    def label(self) -> str:
        return f"digital envelope ({self.params.channel})"

    def max_frame_samples(self) -> int:
        slowest = min(QAM_ORDERS.index(m) for m in self.params.modulations)
        code = min(self.params.codes, key=lambda c: get_code(c).k / get_code(c).n)
        fmt = PayloadFormat(QAM_ORDERS[slowest], code)
        return frame_len(FrameJob(b"\0" * max(self.params.frame_bytes), fmt))

    # -- choice ---------------------------------------------------------------------------
    def rd(self, codec: str, img: np.ndarray) -> RateDistortion:
        """The rate-distortion curve of one image, kept by the image's content (not its name)."""
        key = (codec, _digest(img))
        if key not in self._rd:
            self._rd[key] = rate_distortion(self.codecs[codec], img)
        return self._rd[key]

    def coded(self, codec: str, img: np.ndarray, budget: int) -> bytes:
        """The file of ``img`` at the highest quality within ``budget`` bytes (b"" if none fits);
        kept, since batches of a point code the same images at the same budget."""
        key = (codec, _digest(img), budget)
        if key not in self._files:
            low, high = self.rd(codec, img).bracket(budget)
            fitted = (self.codecs[codec].fit_budget(img, budget, (low, high))
                      or self.codecs[codec].fit_budget(img, budget))  # the grid's low quality may not fit
            self._files[key] = fitted[0] if fitted is not None else b""
        return self._files[key]

    def budget(self, n_cu: int, cand: Candidate) -> int:
        key = (n_cu, cand.code, cand.modulation, cand.frame_bytes)
        if key not in self._budgets:
            self._budgets[key] = source_budget(n_cu, cand.fmt, cand.frame_bytes)
        return self._budgets[key]

    def p_image_ok(self, cand: Candidate, n_bytes: int, snr_db: float) -> float:
        """Probability that every frame of an image of ``n_bytes`` arrives."""
        code = get_code(cand.code)
        log_ok = 0.0
        for size in frame_sizes(n_bytes, cand.frame_bytes):
            codewords = -(-(size + 4) * 8 // code.k)
            fer = self.table.frame_error_rate(f"{cand.code}/{cand.modulation}", snr_db, codewords, self.params.channel)
            log_ok += math.log1p(-min(fer, 1.0 - 1e-15))
        return math.exp(log_ok)

    def profiles(self, items: Items) -> list[tuple[int, dict[str, RateDistortion], float]]:
        """Per item: its channel uses, its rate-distortion curve per codec and its mid-grey PSNR."""
        return [(channel_uses(self.params.bandwidth_ratio, img), {c: self.rd(c, img) for c in self.codecs},
                 min(float(metrics.psnr_db(img, np.full_like(img, LOST_FILL))), 100.0)) for _, img in items]

    def expected_psnr(self, cand: Candidate, profiles: list, snr_db: float) -> float:
        """Mean over items (their :meth:`profiles`) of the predicted E[PSNR] of ``cand`` at ``snr_db``."""
        values = []
        for n_cu, curves, grey in profiles:
            budget = self.budget(n_cu, cand)
            psnr = curves[cand.codec].psnr_at(budget)
            p_ok = self.p_image_ok(cand, budget, snr_db) if math.isfinite(psnr) else 0.0
            values.append(p_ok * psnr + (1.0 - p_ok) * grey if p_ok > 0 else grey)
        return float(np.mean(values))

    def choose(self, items: Items, snr_db: float) -> tuple[Candidate, float]:
        """The candidate with the highest predicted mean E[PSNR], and that prediction; among
        equals (e.g. every image lost below the lowest code's threshold) the most robust one:
        the fewest bits per symbol, then the smallest frames."""
        def robustness(c: Candidate) -> tuple[float, int]:
            return -spectral_efficiency(f"{c.code}/{c.modulation}"), -c.frame_bytes

        profiles = self.profiles(items)
        scored = [(round(self.expected_psnr(c, profiles, snr_db), 6), robustness(c), i)
                  for i, c in enumerate(self.candidates)]
        best, _, index = max(scored)
        return self.candidates[index], best

    def ideal_psnr(self, items: Items, snr_db: float) -> float:
        """Mean PSNR of the best codec at the capacity rate (module docstring)."""
        bits = capacity_bits(snr_db, self.params.channel)
        return float(np.mean([max(rd.psnr_at(int(n_cu * bits) // 8) for rd in curves.values())
                              for n_cu, curves, _ in self.profiles(items)]))

    # -- the three steps --------------------------------------------------------------------
    def encode(self, items: Items, snr_db: float = 0.0, batch: int = 0) -> Encoded:
        cand, predicted = self.choose(items, snr_db)
        jobs, plan = [], []
        for name, img in items:
            budget = self.budget(channel_uses(self.params.bandwidth_ratio, img), cand)
            data = self.coded(cand.codec, img, budget)
            sizes = frame_sizes(len(data), cand.frame_bytes)
            seqs = list(range(len(jobs), len(jobs) + len(sizes)))
            offsets = np.cumsum([0, *sizes])
            jobs += [FrameJob(data[offsets[k]:offsets[k + 1]], cand.fmt, self.system_id, seq=s)
                     for k, s in enumerate(seqs)]
            plan.append({"name": name, "shape": list(img.shape), "seqs": seqs, "bytes": len(data)})
        choice = {**cand.as_dict(), "predicted_psnr_db": round(predicted, 3)}
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "items": plan, "choice": choice,
                              "ideal_psnr_db": self.ideal_psnr(items, snr_db)})

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        index = by_seq(frames)
        codec = self.codecs[manifest["choice"]["codec"]]
        return Decoded(images={item["name"]: reconstruct(codec, item, index) for item in manifest["items"]})

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict:
        refs = [img for _, img in items]
        recons = [decoded.images[name] for name, _ in items]
        return {"images_lost": sum(float(np.all(r == LOST_FILL)) for r in recons), **_image_metrics(refs, recons),
                "ideal_psnr_db": manifest["ideal_psnr_db"], "choice": manifest["choice"]}

    def model_files(self) -> list[Path]:
        return [Path(self.params.table)]
