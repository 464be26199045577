"""An adaptive-rate user run from its ONNX export (:mod:`testbed.systems.adaptive_rate.export`):
ONNX Runtime for the two graphs, numpy for the symbols. What a user's TX process and the base
station's receiver call.

:meth:`OnnxAdaptiveRateUser.transmit` is ``AdaptiveRateUser.transmit`` at temperature 0 followed by
``transceiver.to_symbols``, keeping only the symbols actually sent; :meth:`~OnnxAdaptiveRateUser.receive`
puts them back in place and is ``transceiver.from_symbols`` followed by
``AdaptiveRateUser.receive``. Symbols and the decision:

- complex map i of an image is real row i of the graph's ``rows`` (C/2 rows of 2L reals): its
  first L values are the real parts, the last L the imaginary parts of L complex symbols; an
  image's C/2 * L symbols are these, map after map;
- a complex symbol is sent when either of its two reals is kept (a pruned half is sent as 0 and
  zeroed again at the receiver); the sent symbols of an image keep their order, and those of a
  batch follow each other image after image (:attr:`TxDecision.counts` each);
- they are scaled to unit mean power over the image's sent symbols; ``power`` is the mean power
  before, which the receiver needs (it travels in the header with the decision's bits: the
  selected maps, the pruning ratio index and the kept entries of each selected map).

No torch here (the nodes need not import it): the pruning ratios and the index-row size come from
the transmitter's card.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testbed.errors import ConfigError, ModelError
from testbed.onnx.session import OnnxModel

ROLES = ("transmitter", "receiver")
# Images per transmitter run: the graph ranks the 2L values of every map against each other in
# (N, C/2, 2L, 2L) tensors, 34 MB for the int64 one at N = 32.
TX_BATCH = 32


@dataclass(frozen=True)
class TxDecision:
    """What the transmitter chose for each of N images, and what the receiver needs.

    Attributes: mask bool (N, C/2), the complex maps sent (a thermometer code: the last
        ``selected`` maps); ratio_index int64 (N,) into ``pruning_ratios``; ratio float32 (N,),
        that pruning ratio; kept bool (N, C/2, 2L), True where a real value is sent; power float32
        (N,), the mean power of the sent symbols before normalisation; batched, whether the images
        came as a batch (N, 3, 32, 32) rather than one (3, 32, 32) (then N = 1).
    """

    mask: np.ndarray
    ratio_index: np.ndarray
    ratio: np.ndarray
    kept: np.ndarray
    power: np.ndarray
    batched: bool = True

    @property
    def selected(self) -> np.ndarray:
        """int64 (N,): the number of complex maps sent."""
        return self.mask.sum(-1).astype(np.int64)

    @property
    def sent(self) -> np.ndarray:
        """bool (N, C/2 * L): the complex symbols sent (either real of the pair kept)."""
        half = self.kept.shape[-1] // 2
        return (self.kept[..., :half] | self.kept[..., half:]).reshape(len(self.kept), -1)

    @property
    def counts(self) -> np.ndarray:
        """int64 (N,): symbols sent per image."""
        return self.sent.sum(-1).astype(np.int64)

    def cpp(self, index_symbols: int, height: int = 32, width: int = 32) -> np.ndarray:
        """float64 (N,): the paper's CPP per image, as ``UserDecision.cpp``
        (:func:`~testbed.systems.adaptive_rate.rate_control.cpp`): C_k (L_k + L'_k) / (2HW) with
        L_k = round((1 - ratio) 2L) and L'_k = ``index_symbols`` (the card's) when pruning."""
        length = self.kept.shape[-1]
        out = []
        for maps, ratio in zip(self.selected.tolist(), self.ratio.tolist()):
            kept = int(round((1 - ratio) * length)) if maps else length
            out.append(maps * (kept + (index_symbols if kept < length else 0)) / (2 * height * width))
        return np.asarray(out, dtype=np.float64)


class OnnxAdaptiveRateUser:
    """The user ``name`` exported to ``directory``: images <-> complex symbols and a decision.

    Parameters: directory holding ``<name>.transmitter.onnx`` and ``<name>.receiver.onnx`` with
        their cards; name; threads, ONNX Runtime's intra-op threads per session.
    Attributes: antennas (M), maps (C), length (2L reals per complex map), pruning_ratios,
        index_symbols (L'_k), card (the transmitter's), sessions {role: OnnxModel}.
    Raises: ModelError naming the file that is missing or does not match its card, or when the
        two cards are not of one model.
    """

    def __init__(self, directory: str | Path, name: str, threads: int = 1) -> None:
        directory = Path(directory)
        self.name = name
        self.sessions = {role: OnnxModel(directory / f"{name}.{role}.onnx", threads=threads,
                                         batch_size=TX_BATCH if role == "transmitter" else 256) for role in ROLES}
        tx, rx = (self.sessions[role].card for role in ROLES)
        if (tx["name"], tx["architecture"]) != (rx["name"], rx["architecture"]):
            raise ModelError(f"{self.sessions['receiver'].path}: card name/architecture differ from "
                             f"{self.sessions['transmitter'].path}'s; allowed: the two graphs of one model")
        self.card = tx
        arch = tx["architecture"]
        try:
            self.antennas, self.maps = int(arch["antennas"]), int(arch["maps"])
            self.length = 2 * int(arch["feature_side"]) ** 2
            self.side = int(arch["image_side"])
            self.pruning_ratios = np.asarray(arch["pruning_ratios"], dtype=np.float32)
            self.index_symbols = int(arch["index_symbols"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{self.sessions['transmitter'].path}: card architecture lacks {err}") from None

    # -- inputs ---------------------------------------------------------------------------------

    def _images(self, image) -> tuple[np.ndarray, bool]:
        image = np.asarray(image)
        shape = (3, self.side, self.side)
        if image.shape == shape:
            image, batched = image[None], False
        elif image.ndim == 4 and image.shape[1:] == shape and len(image):
            batched = True
        else:
            raise ConfigError(f"image of shape {image.shape}; allowed: {shape} or (N, {', '.join(map(str, shape))}), "
                              "float32 in [0, 1]")
        if not np.issubdtype(image.dtype, np.floating):
            raise ConfigError(f"image of dtype {image.dtype}; allowed: float32 in [0, 1]")
        image = image.astype(np.float32, copy=False)
        if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
            raise ConfigError(f"image values in [{image.min()}, {image.max()}]; allowed: finite, in [0, 1]")
        return image, batched

    def _csi(self, csi, n: int) -> np.ndarray:
        """complex (M,) or (N, M) -> float32 I/Q (N, M, 2)."""
        csi = np.asarray(csi)
        if csi.shape == (self.antennas,):
            csi = np.broadcast_to(csi, (n, self.antennas))
        if csi.shape != (n, self.antennas):
            raise ConfigError(f"csi of shape {csi.shape}; allowed: ({self.antennas},) or ({n}, {self.antennas}), "
                              f"complex: the user's column of H_hat for M = {self.antennas} antennas")
        if not np.all(np.isfinite(csi)):
            raise ConfigError("csi has non-finite entries; allowed: finite complex values")
        return np.stack([csi.real, csi.imag], axis=-1).astype(np.float32)

    @staticmethod
    def _snr(snr_db, n: int) -> np.ndarray:
        """A number or (N,) -> float32 (N,)."""
        snr = np.asarray(snr_db, dtype=np.float64)
        if snr.ndim == 0:
            snr = np.full(n, float(snr))
        if snr.shape != (n,) or not np.all(np.isfinite(snr)):
            raise ConfigError(f"snr_db of shape {snr.shape}, values {snr.ravel()[:4].tolist()}; allowed: a finite "
                              f"number or ({n},) finite values in dB")
        return snr.astype(np.float32)

    # -- transmit / receive ---------------------------------------------------------------------

    def transmit(self, image, csi, snr_db) -> tuple[np.ndarray, TxDecision]:
        """One image float32 (3, 32, 32) or N images (N, 3, 32, 32) in [0, 1], the user's fed-back
        CSI complex (M,) or (N, M) and SNR in dB (a number or (N,)) -> (symbols complex64 (S,), the
        sent ones, image after image, unit mean power over each image's; decision).

        S = ``decision.counts.sum()``. Raises: ConfigError naming the field, its value and what is
        allowed.
        """
        images, batched = self._images(image)
        n = len(images)
        out = self.sessions["transmitter"].run(image=images, csi=self._csi(csi, n), snr_db=self._snr(snr_db, n))
        kept = out["kept"] > 0.5
        rows = out["rows"]
        half = rows.shape[-1] // 2
        symbols = np.empty(rows.shape[:-1] + (half,), dtype=np.complex64)
        symbols.real, symbols.imag = rows[..., :half], rows[..., half:]
        symbols = symbols.reshape(n, -1)
        sent = (kept[..., :half] | kept[..., half:]).reshape(n, -1)
        power = ((np.abs(symbols) ** 2).sum(-1, dtype=np.float32)
                 / np.maximum(sent.sum(-1), 1).astype(np.float32)).astype(np.float32)
        scaled = symbols / np.sqrt(np.maximum(power, np.float32(1e-12)))[:, None]
        decision = TxDecision(mask=out["mask"] > 0.5, ratio_index=out["ratio_index"].astype(np.int64),
                              ratio=out["ratio"].astype(np.float32), kept=kept, power=power, batched=batched)
        return scaled[sent].astype(np.complex64), decision

    def receive(self, symbols, decision: TxDecision, csi, snr_db) -> np.ndarray:
        """The detected symbols complex (S,) of :meth:`transmit` (unit power, S =
        ``decision.counts.sum()``), its ``decision`` and the base station's CSI of the user (complex
        (M,) or (N, M)) and SNR in dB -> images float32 (N, 3, 32, 32) in [0, 1], or (3, 32, 32)
        when one image was sent. Entries not sent are zeros, as in the torch receiver.

        Raises: ConfigError when the symbols' count or the CSI/SNR shapes do not fit the decision.
        """
        symbols = np.asarray(symbols)
        n = len(decision.kept)
        total = int(decision.counts.sum())
        if symbols.shape != (total,):
            raise ConfigError(f"symbols of shape {symbols.shape}; allowed: ({total},), the decision's sent symbols "
                              "(decision.counts.sum())")
        full = np.zeros(decision.sent.shape, dtype=np.complex64)
        full[decision.sent] = symbols
        full = full * np.sqrt(np.maximum(decision.power, np.float32(1e-12)))[:, None]
        grid = full.reshape(n, decision.kept.shape[1], -1)
        rows = np.concatenate([grid.real, grid.imag], axis=-1).astype(np.float32)
        image = self.sessions["receiver"].run(rows=rows, kept=decision.kept.astype(np.float32),
                                              csi=self._csi(csi, n), snr_db=self._snr(snr_db, n))["image"]
        return image if decision.batched else image[0]

    def cpp(self, decision: TxDecision) -> np.ndarray:
        """float64 (N,): the paper's CPP of each image of ``decision`` (:meth:`TxDecision.cpp`)."""
        return decision.cpp(self.index_symbols, self.side, self.side)

    def __repr__(self) -> str:
        return f"OnnxAdaptiveRateUser({self.name!r}, antennas={self.antennas}, maps={self.maps})"
