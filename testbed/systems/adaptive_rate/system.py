"""Entropy-and-channel-adaptive rate control on the network: each user's TX node runs the exported
transmitter on the CSI and SNR the base station fed back, and sends a variable number of maps and
pruned symbols; the base station's RX node detects the K streams (LMMSE) and decodes each user
(../shared/seeds/004_04072a72b64c0519.txt, Figs. 1, 8, 10).

TX (``encode_with_csi``, per batch, in the user's TX node; docs/architecture.md "closed loop"):

1. Each item (a float32 (3, H, W) image) is cut into 32x32 tiles (``testbed.data.images.tile``).
2. The transmitter graph (:class:`~testbed.systems.adaptive_rate.onnx_user.OnnxAdaptiveRateUser`)
   chooses per tile the maps and the pruning ratio from the fed-back CSI column and SNR, and gives
   the symbols actually sent (unit mean power per tile).
3. Per item one digital frame carries the side information (:mod:`side_info`: the context, each
   tile's selection, ratio and power, the index matrix bits), then analog frames carry the
   symbols, ``tiles_per_frame`` tiles each. The number of frames of an item depends only on its
   size, so every user of the uplink makes as many frames per batch (one K-stream frame per frame
   index); their lengths follow the decisions.
4. The side information's scheme is the paper's (LDPC rate 3/4 and 64-QAM) when ``side_info_mcs``
   names it, or with ``adaptive`` (the default) the densest of the PHY's schemes whose measured
   codeword error rate (``models/digital/bler-awgn.json``) is below 1e-3 at the post-LMMSE SINR
   of the user's probe stream (fed back by the base station; the nominal SNR without it) minus
   ``side_info_margin_db``: 64-QAM rate 3/4 cannot be decoded below about 18 dB, and without the
   side information nothing of the item can be placed. Below every measured scheme it goes as
   BPSK on the strongest code, then with that codeword sent twice or four times
   (``ROBUST_SIDE_SCHEMES``).

RX (``decode``, per user, in the base station's RX node): the side information gives the
decision and the context; the analog frames' detected symbols are put back in place and the
receiver graph decodes the tiles. An item whose side information is lost or fails its CRC, or
an analog frame lost, leaves mid-grey tiles (what a receiver that got nothing shows; the frame
counts say why).

Without a closed loop (``encode``) the transmitter is told the nominal SNR and a unit channel
column (1, ..., 1), whose energy M is the mean of a Rayleigh column's.
"""
from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from testbed.data.images import tile, untile
from testbed.errors import ConfigError, FrameError
from testbed.models_registry import MODELS_DIR
from testbed.onnx.card import read_card
from testbed.phy.frame import FrameJob
from testbed.phy.payload import MAX_LENGTH, PayloadFormat
from testbed.phy.receiver import ReceivedFrame
from testbed.registry import register
from testbed.systems.adaptive_rate import side_info
from testbed.systems.adaptive_rate.onnx_user import OnnxAdaptiveRateUser, TxDecision
from testbed.systems.base import Decoded, Encoded, Items, System, by_seq, check_choice, frame_len
from testbed.systems.digital import LOST_FILL, _image_metrics
from testbed.systems.digital.bler import BlerTable, mcs_names, spectral_efficiency, split_mcs

MODEL_DIR = MODELS_DIR / "adaptive_rate"
ANALOG = PayloadFormat("analog", "none")
PAPER_SIDE_MCS = "ldpc_648_3_4/qam64"
SIDE_CODEWORD_ERROR = 1e-3
ROBUST_SIDE_CODE = "ldpc_1296_1_2"
ROBUST_SIDE_SCHEMES = (f"{ROBUST_SIDE_CODE}/bpsk", f"{ROBUST_SIDE_CODE}_x2/bpsk", f"{ROBUST_SIDE_CODE}_x4/bpsk")
"""Below every measured scheme's threshold (the measured table holds QPSK and denser only): BPSK
on the strongest code, then its codeword repeated (``testbed.phy.payload.REPEATED_CODES``), each
with its energy gain over QPSK on that code: 2 r (BPSK: the same bits on one axis, 2x; r copies
whose LLRs add, r times more). Their thresholds are the measured QPSK one less 10 log10(2 r). Without
them a deep fade of the probe stream lost the side information, and with it the whole item
(docs/adaptive_rate.md)."""
ROBUST_SIDE_MCS = ROBUST_SIDE_SCHEMES[-1]
"""The most robust side scheme."""
TILE = 32


def shipped_models(folder: Path = MODEL_DIR) -> list[str]:
    """Names of the exported users in ``folder`` (from their transmitter cards); the complete ones
    first, then the ablations (cards whose architecture lacks a part), each group by name. The
    first is the system's default."""
    names = []
    for card in sorted(Path(folder).glob("*.transmitter.json")):
        content = read_card(card.with_suffix(".onnx"))
        if content.get("system") == "adaptive_rate":
            arch = content.get("architecture", {})
            ablated = not all(arch.get(f, True) for f in ("entropy", "attention", "feedback", "pruning"))
            names.append((ablated, card.name[: -len(".transmitter.json")]))
    return [name for _, name in sorted(names)]


class AdaptiveRateParams(BaseModel):
    """``model``: an exported user in ``models_dir``; ``side_info_mcs``: ``adaptive`` or a scheme
    ``<code>/<modulation>``; ``side_info_margin_db``: SNR margin of the adaptive choice;
    ``max_frame_symbols``: analog symbols per frame at most (whole tiles)."""

    model_config = ConfigDict(extra="forbid")
    model: str = ""
    side_info_mcs: str = "adaptive"
    side_info_margin_db: float = Field(default=2.0, ge=0.0, le=30.0)
    max_frame_symbols: int = Field(default=8192, ge=512, le=MAX_LENGTH)
    models_dir: str = str(MODEL_DIR)
    threads: int = Field(default=1, ge=1, le=64)

    @field_validator("side_info_mcs")
    @classmethod
    def _mcs(cls, v: str) -> str:
        return v if v == "adaptive" else check_choice("side_info_mcs", v, mcs_names())


@register("system", "adaptive_rate")
class AdaptiveRateSystem(System):
    """K adaptive-rate users on a MU-MIMO uplink (module docstring)."""

    name = "adaptive_rate"
    system_id = 7
    Params = AdaptiveRateParams

    def __init__(self, params: dict, seed: int = 0) -> None:
        super().__init__(params, seed)
        found = shipped_models(Path(self.params.models_dir))
        if not found:
            raise ConfigError(f"system_params.models_dir {self.params.models_dir!r} holds no exported adaptive-rate "
                              "model; allowed: a folder written by python -m testbed.systems.adaptive_rate.export")
        if self.params.model and self.params.model not in found:
            raise ConfigError(f"system_params.model {self.params.model!r} is unknown; allowed: {', '.join(found)}")
        self.model_name = self.params.model or found[0]

    @cached_property
    def user(self) -> OnnxAdaptiveRateUser:
        return OnnxAdaptiveRateUser(self.params.models_dir, self.model_name, threads=self.params.threads)

    def label(self) -> str:
        return self.model_name

    def model_files(self) -> list[Path]:
        return [Path(self.params.models_dir) / f"{self.model_name}.{role}.onnx" for role in ("transmitter", "receiver")]

    @property
    def symbols_per_tile(self) -> int:
        """Complex symbols of a tile when every map is sent unpruned (C/2 * L)."""
        return self.user.maps // 2 * self.user.length // 2

    @property
    def tiles_per_frame(self) -> int:
        return max(1, self.params.max_frame_symbols // self.symbols_per_tile)

    def max_frame_samples(self) -> int:
        return frame_len(FrameJob(np.zeros(self.tiles_per_frame * self.symbols_per_tile, np.complex64), ANALOG))

    # -- TX -------------------------------------------------------------------------------------

    def side_mcs(self, sinr_db: float) -> str:
        """The side information's scheme for a stream of ``sinr_db`` (module docstring, step 4)."""
        if self.params.side_info_mcs != "adaptive":
            return self.params.side_info_mcs
        return adaptive_scheme(sinr_db - self.params.side_info_margin_db)

    def encode(self, items: Items, snr_db: float, batch: int = 0) -> Encoded:
        """Without feedback: the nominal SNR and a unit channel column (module docstring)."""
        return self.encode_with_csi(items, None, snr_db, batch)

    def encode_with_csi(self, items: Items, csi: np.ndarray | None, snr_db: float, batch: int = 0,
                        sinr_db: float | None = None) -> Encoded:
        """Frames of one batch for the fed-back ``csi`` complex (M,) (None: not known), ``snr_db``
        and the probe stream's ``sinr_db`` (None: the side scheme is chosen at ``snr_db``). Manifest items: name, shape, tiles, side (seq of the side-information frame),
        frames ([seq, first tile, end tile] of the analog frames) and the TX's decision figures
        for the scorer (cpp, selected_maps, pruning_ratio, symbols)."""
        column = np.ones(self.user.antennas, np.complex64) if csi is None else np.asarray(csi, np.complex64)
        mcs = self.side_mcs(snr_db if sinr_db is None else sinr_db)
        code, _, modulation = mcs.partition("/")  # a measured scheme (validated) or a robust one
        jobs, plan = [], []
        for name, img in items:
            tiles = tile(img, TILE)
            symbols, decision = self.user.transmit(tiles, column, snr_db)
            side = FrameJob(side_info.pack(decision, column, snr_db), PayloadFormat(modulation, code), self.system_id,
                            seq=len(jobs))
            jobs.append(side)
            frames, first_symbol = [], np.concatenate([[0], np.cumsum(decision.counts)])
            for first in range(0, len(tiles), self.tiles_per_frame):
                end = min(first + self.tiles_per_frame, len(tiles))
                chunk = symbols[first_symbol[first]:first_symbol[end]]
                # an empty chunk (no map selected) still sends one symbol: every user makes as many frames
                payload = chunk if chunk.size else np.zeros(1, np.complex64)
                frames.append([len(jobs), first, end])
                jobs.append(FrameJob(payload, ANALOG, self.system_id, seq=len(jobs)))
            cpp = self.user.cpp(decision)
            plan.append({"name": name, "shape": list(img.shape), "tiles": len(tiles), "side": side.seq,
                         "frames": frames, "cpp": float(cpp.mean()), "selected_maps": float(decision.selected.mean()),
                         "pruning_ratio": float(decision.ratio.mean()), "symbols": int(decision.counts.sum()),
                         "side_symbols": int(side.fmt.n_symbols(len(side.payload)))})
        return Encoded(jobs, {"batch": batch, "frames": len(jobs), "snr_db": float(snr_db), "side_info_mcs": mcs,
                              "csi_known": csi is not None, "items": plan})

    # -- RX -------------------------------------------------------------------------------------

    def decode(self, frames: list[ReceivedFrame], manifest: dict) -> Decoded:
        index = by_seq(frames)
        images, side_ok = {}, []
        for item in manifest["items"]:
            image, ok = self._reconstruct(item, index)
            images[item["name"]] = image
            side_ok.append(ok)
        return Decoded(images=images, arrays={"side_info_ok": np.asarray(side_ok, np.float32)})

    def _reconstruct(self, item: dict, index: dict[int, ReceivedFrame]) -> tuple[np.ndarray, bool]:
        """One item's image and whether its side information arrived."""
        shape, n = tuple(item["shape"]), int(item["tiles"])
        tiles = np.full((n, 3, TILE, TILE), LOST_FILL, np.float32)
        side = index.get(int(item["side"]))
        if side is None or not side.payload_ok:
            return untile(tiles, shape), False
        user = self.user
        try:
            decision, csi, snr_db = side_info.unpack(bytes(side.payload), n, user.antennas, user.maps // 2,
                                                     user.length, user.pruning_ratios)
        except FrameError:
            return untile(tiles, shape), False
        for seq, first, end in item["frames"]:
            frame = index.get(int(seq))
            part = _part(decision, first, end)
            count = int(part.counts.sum())
            if frame is not None and frame.payload.size >= count:  # no map sent: the decoder's all-zero picture
                tiles[first:end] = user.receive(frame.payload[:count], part, csi, snr_db)
        return untile(tiles, shape), True

    def score(self, items: Items, manifest: dict, decoded: Decoded) -> dict[str, float]:
        """Image metrics, and the TX's decisions: CPP (the paper's formula), selected maps and
        pruning ratio (means over tiles), channel uses per pixel actually sent (analog and side
        information symbols) and the fraction of items whose side information arrived."""
        plan = manifest["items"]
        tiles = np.array([p["tiles"] for p in plan], np.float64)
        pixels = sum(p["shape"][1] * p["shape"][2] for p in plan)

        def mean(key: str) -> float:
            return float(np.sum([p[key] for p in plan] * tiles) / tiles.sum())

        return {**_image_metrics([img for _, img in items], [decoded.images[name] for name, _ in items]),
                "cpp": mean("cpp"), "selected_maps": mean("selected_maps"), "pruning_ratio": mean("pruning_ratio"),
                "channel_uses_per_pixel": sum(p["symbols"] + p["side_symbols"] for p in plan) / pixels,
                "side_info_ok": float(np.mean(decoded.arrays["side_info_ok"]))}


def _part(decision: TxDecision, first: int, end: int) -> TxDecision:
    """The decision of tiles first .. end - 1 (a batched decision)."""
    return TxDecision(mask=decision.mask[first:end], ratio_index=decision.ratio_index[first:end],
                      ratio=decision.ratio[first:end], kept=decision.kept[first:end], power=decision.power[first:end])


def adaptive_scheme(snr_db: float) -> str:
    """The densest scheme of the PHY's measured table with codeword error rate at most
    SIDE_CODEWORD_ERROR at ``snr_db``; when none is, the least robust of ROBUST_SIDE_SCHEMES
    whose threshold ``snr_db`` reaches, or ROBUST_SIDE_MCS."""
    table = BlerTable.load()
    names = sorted(table.curves, key=spectral_efficiency)
    fit = [n for n in names if table.codeword_error_rate(n, snr_db) <= SIDE_CODEWORD_ERROR]
    if fit:
        return fit[-1]
    return next((n for n, t in _robust_thresholds_db() if snr_db >= t), ROBUST_SIDE_MCS)


@lru_cache(maxsize=1)
def _robust_thresholds_db() -> tuple[tuple[str, float], ...]:
    """(scheme, threshold dB) of ROBUST_SIDE_SCHEMES, from the shipped table's measured QPSK
    threshold of their code less 10 log10(2 r), r the repetitions their code name gives
    (``PayloadFormat.ldpc``); computed once, not per batch."""
    qpsk_db = BlerTable.load().threshold_db(f"{ROBUST_SIDE_CODE}/qpsk", SIDE_CODEWORD_ERROR)
    out = []
    for name in ROBUST_SIDE_SCHEMES:
        code, modulation = name.split("/")
        out.append((name, qpsk_db - 10 * np.log10(2 * PayloadFormat(modulation, code).ldpc[1])))
    return tuple(out)
