"""The digital side information of one adaptive-rate item: what the base station needs to put the
item's analog symbols back in place and decode them.

../shared/seeds/004_04072a72b64c0519.txt sends the selection and the pruning index matrix M_p as
real bits through a digital code (Sec. III-B, LDPC rate 3/4 and 64-QAM); here they travel in
one digital frame per item ahead of its analog frames (system.py). Layout, little endian:

- the context the transmitter used: ``snr_db`` float32 and its CSI column as M (re, im) float32
  pairs (the base station fed them back; the decoder takes the same context as the encoder);
- per tile: selected maps uint8 (0 .. C/2), pruning ratio index uint8, power float32 (the mean
  power of the sent symbols before normalisation, :class:`~testbed.systems.adaptive_rate.onnx_user.TxDecision`);
- then one bit string, zero-padded to whole bytes: for every tile that prunes (ratio index > 0),
  for each of its selected maps in order, the 2L kept flags of the map (1 = sent). The selection
  itself is a thermometer code, so the count is enough: the last ``selected`` maps are sent.
"""
from __future__ import annotations

import numpy as np

from testbed.errors import FrameError
from testbed.systems.adaptive_rate.onnx_user import TxDecision

_TILE = np.dtype([("selected", "u1"), ("ratio_index", "u1"), ("power", "<f4")])


def pack(decision: TxDecision, csi: np.ndarray, snr_db: float) -> bytes:
    """Bytes of ``decision`` (N tiles) with the transmitter's context: csi complex (M,), snr_db."""
    tiles = np.empty(len(decision.kept), _TILE)
    tiles["selected"], tiles["ratio_index"], tiles["power"] = decision.selected, decision.ratio_index, decision.power
    csi = np.asarray(csi, np.complex64)
    context = np.concatenate([[np.float32(snr_db)], np.stack([csi.real, csi.imag], -1).ravel()]).astype("<f4")
    bits = [decision.kept[n][decision.mask[n]].ravel() for n in range(len(tiles)) if decision.ratio_index[n] > 0]
    flags = np.packbits(np.concatenate(bits).astype(np.uint8)) if bits else np.zeros(0, np.uint8)
    return context.tobytes() + tiles.tobytes() + flags.tobytes()


def unpack(data: bytes, tiles: int, antennas: int, maps_half: int, length: int,
           pruning_ratios: np.ndarray) -> tuple[TxDecision, np.ndarray, float]:
    """Inverse of :func:`pack` for ``tiles`` tiles of C/2 = ``maps_half`` maps of ``length`` (2L)
    reals: (decision, csi complex64 (M,), snr_db). FrameError when the bytes do not fit."""
    head = 4 * (1 + 2 * antennas)
    need = head + tiles * _TILE.itemsize
    if len(data) < need:
        raise FrameError(f"side information of {len(data)} bytes; allowed: at least {need} for {tiles} tiles")
    context = np.frombuffer(data[:head], "<f4")
    csi = (context[1::2] + 1j * context[2::2]).astype(np.complex64)
    table = np.frombuffer(data[head:need], _TILE)
    selected, ratio_index = table["selected"].astype(np.int64), table["ratio_index"].astype(np.int64)
    if selected.max(initial=0) > maps_half or ratio_index.max(initial=0) >= len(pruning_ratios):
        raise FrameError(f"side information selects {selected.max()} maps / ratio index {ratio_index.max()}; "
                         f"allowed: at most {maps_half} maps and an index below {len(pruning_ratios)}")
    mask = np.arange(maps_half)[None, :] >= (maps_half - selected)[:, None]
    pruned = ratio_index > 0
    flags = np.unpackbits(np.frombuffer(data[need:], np.uint8))
    count = int((selected * pruned).sum()) * length
    if flags.size < count:
        raise FrameError(f"side information holds {flags.size} kept flags; allowed: {count} for these tiles")
    kept = np.repeat(mask[:, :, None], length, axis=2)
    kept[pruned[:, None] & mask] = flags[:count].reshape(-1, length).astype(bool)
    decision = TxDecision(mask=mask, ratio_index=ratio_index, ratio=pruning_ratios[ratio_index].astype(np.float32),
                          kept=kept, power=table["power"].astype(np.float32))
    return decision, csi, float(context[0])
