"""IEEE 802.11n LDPC codes (n = 648 and 1296; rates 1/2, 2/3, 3/4, 5/6) with a fast batched decoder.

The parity-check matrices are lifted from the prototype matrices of IEEE Std 802.11n-2009 Annex R
(= IEEE Std 802.11-2012 Annex F, Tables F-1 and F-2), kept as data in ``ldpc_tables``. Encoding is
systematic, codeword = [info | parity], and uses the dual-diagonal parity part of those matrices
(the linear-time procedure of 802.11-2012 Annex F / 20.3.11.7.4): the first parity block follows
from the sum of all block rows, the others by back-substitution down the staircase.

Decoding is layered (row-serial) normalized min-sum in float32, compiled with numba. Codewords are
decoded in chunks with the codeword index as the contiguous inner dimension, so that each check
update is a vector loop over the chunk; after every iteration the codewords whose hard decisions
satisfy all checks are written out and removed from the chunk (early termination per codeword).

LLR convention: llr = log P(b = 0) / P(b = 1), positive means bit 0. Shortened (known-zero) bits are
given as large positive LLRs; inputs are clipped to +-``LLR_CLIP``.
"""

from functools import lru_cache

import numba
import numpy as np
import scipy.sparse as sp

from testbed.errors import ConfigError
from testbed.phy.ldpc_tables import BASE_MATRICES, BLOCK_COLUMNS, LIFTING_SIZE

RATES = ("1/2", "2/3", "3/4", "5/6")
LENGTHS = tuple(sorted(LIFTING_SIZE))
CODES: dict[str, tuple[int, str]] = {
    f"ldpc_{n}_{rate.replace('/', '_')}": (n, rate) for n in LENGTHS for rate in RATES
}
LLR_CLIP = 1.0e4
MIN_SUM_SCALE = 0.75
CHUNK = 256  # codewords decoded side by side: the length of the inner vector loops


def lift(base: np.ndarray, z: int) -> sp.csr_matrix:
    """Expand a prototype matrix into its binary parity-check matrix.

    Inputs: ``base`` int (mb, nb) shifts, -1 for a zero block; ``z`` the lifting size.
    Outputs: scipy.sparse csr uint8 (mb z, nb z); block (r, c) with shift s has its ones at
    (r z + i, c z + (i + s) mod z).
    """
    block_rows, block_cols = np.nonzero(base >= 0)
    shifts = base[block_rows, block_cols]
    offset = np.arange(z)
    rows = (block_rows[:, None] * z + offset).ravel()
    cols = (block_cols[:, None] * z + (offset + shifts[:, None]) % z).ravel()
    data = np.ones(rows.size, dtype=np.uint8)
    return sp.csr_matrix((data, (rows, cols)), shape=(base.shape[0] * z, base.shape[1] * z))


def _circulant_times(blocks: np.ndarray, shift: int) -> np.ndarray:
    """P^shift x for x of shape (..., z): (P^s x)[i] = x[(i + s) mod z]."""
    return np.roll(blocks, -shift, axis=-1)


@numba.njit(cache=True, fastmath=True)
def _syndrome_ok(post: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray, active: int,
                 ok: np.ndarray) -> None:
    """ok[b] = all checks hold for the hard decisions of post[:, b], for b < active."""
    parity = np.zeros(active, dtype=np.uint8)
    ok[:active] = True
    for r in range(row_ptr.size - 1):
        parity[:] = 0
        for e in range(row_ptr[r], row_ptr[r + 1]):
            p_row = post[cols[e]]
            for b in range(active):
                parity[b] ^= p_row[b] < 0
        for b in range(active):
            ok[b] &= parity[b] == 0


@numba.njit(cache=True, fastmath=True)
def _layer_pass(post: np.ndarray, msg: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray,
                active: int, scale: np.float32, clip: np.float32, q: np.ndarray,
                min1: np.ndarray, min2: np.ndarray, arg1: np.ndarray, sign: np.ndarray) -> None:
    """One row-serial (layered) normalized min-sum iteration over all checks, in place.

    post: float32 (n, B) posterior LLRs; msg: float32 (E, B) check-to-variable messages in CSR
    edge order; q: float32 (max row weight, B) scratch; min1, min2, arg1, sign: float32 (B,)
    scratch, arg1 holding the position (as float) of the smallest |q| of the row.
    """
    for r in range(row_ptr.size - 1):
        start, stop = row_ptr[r], row_ptr[r + 1]
        min1[:active] = np.inf
        min2[:active] = np.inf
        sign[:active] = scale
        for e in range(start, stop):
            p_row = post[cols[e]]
            m_row = msg[e]
            q_row = q[e - start]
            j = np.float32(e - start)
            for b in range(active):
                x = p_row[b] - m_row[b]
                q_row[b] = x
                a = abs(x)
                arg1[b] = j if a < min1[b] else arg1[b]
                min2[b] = min(min2[b], max(min1[b], a))
                min1[b] = min(min1[b], a)
                sign[b] = -sign[b] if x < 0 else sign[b]
        for e in range(start, stop):
            p_row = post[cols[e]]
            m_row = msg[e]
            q_row = q[e - start]
            j = np.float32(e - start)
            for b in range(active):
                x = q_row[b]
                mag = min2[b] if arg1[b] == j else min1[b]
                m = -sign[b] * mag if x < 0 else sign[b] * mag
                m_row[b] = m
                p_row[b] = min(max(x + m, -clip), clip)


@numba.njit(cache=True)
def _retire(post: np.ndarray, msg: np.ndarray, index: np.ndarray, ok: np.ndarray, active: int,
            iteration: int, out_bits: np.ndarray, out_ok: np.ndarray,
            out_iters: np.ndarray, finished: bool) -> int:
    """Write out converged codewords (all when ``finished``) and return the new active count.

    Each retired codeword's first ``out_bits.shape[1]`` hard decisions are written: the
    information bits (k) or the whole codeword (n).

    A retired column b is refilled with the last active column, so that columns [0, active)
    stay the undecided codewords; ``index`` maps a column to its row in the outputs.
    """
    b = 0
    while b < active:
        if not (ok[b] or finished):
            b += 1
            continue
        g = index[b]
        for v in range(out_bits.shape[1]):
            out_bits[g, v] = post[v, b] < 0
        out_ok[g] = ok[b]
        out_iters[g] = iteration
        active -= 1
        if b < active:
            post[:, b] = post[:, active]
            msg[:, b] = msg[:, active]
            index[b] = index[active]
            ok[b] = ok[active]
    return active


@numba.njit(cache=True)
def _decode(llr: np.ndarray, row_ptr: np.ndarray, cols: np.ndarray, max_iter: int,
            scale: np.float32, chunk: int, clip: np.float32, out_bits: np.ndarray,
            out_ok: np.ndarray, out_iters: np.ndarray) -> None:
    """Decode every row of llr (N, n) float32 into out_bits (N, k or n: see ``_retire``),
    out_ok (N,), out_iters (N,)."""
    n_words, n = llr.shape
    chunk = max(1, min(chunk, n_words))  # a few codewords (a frame header) need no 256-wide buffers
    max_degree = np.max(np.diff(row_ptr))
    post = np.empty((n, chunk), dtype=np.float32)
    msg = np.empty((cols.size, chunk), dtype=np.float32)
    q = np.empty((max_degree, chunk), dtype=np.float32)
    scratch = np.empty((4, chunk), dtype=np.float32)
    index = np.empty(chunk, dtype=np.int64)
    ok = np.empty(chunk, dtype=np.bool_)
    for first in range(0, n_words, chunk):
        active = min(chunk, n_words - first)
        for b in range(active):
            index[b] = first + b
            for v in range(n):
                x = llr[first + b, v]
                post[v, b] = 0.0 if np.isnan(x) else min(max(x, -clip), clip)
        msg[:, :active] = 0.0
        for iteration in range(max_iter + 1):
            _syndrome_ok(post, row_ptr, cols, active, ok)
            active = _retire(post, msg, index, ok, active, iteration, out_bits, out_ok,
                             out_iters, iteration == max_iter)
            if active == 0:
                break
            _layer_pass(post, msg, row_ptr, cols, active, scale, clip, q, scratch[0],
                        scratch[1], scratch[2], scratch[3])


class LdpcCode:
    """One IEEE 802.11n LDPC code: encoder, parity-check matrix and batched decoder.

    Parameters
    ----------
    n : int
        Codeword length, 648 or 1296.
    rate : str
        "1/2", "2/3", "3/4" or "5/6".

    Attributes: ``n``, ``k`` (information bits), ``rate``, ``name`` (e.g. "ldpc_648_1_2"),
    ``z`` (lifting size), ``base`` (int (mb, 24) prototype matrix), ``H`` (csr uint8 (n - k, n)).
    """

    def __init__(self, n: int, rate: str) -> None:
        if n not in LENGTHS:
            raise ConfigError(f"n: {n!r} is not an 802.11n LDPC length; allowed: {list(LENGTHS)}")
        if rate not in RATES:
            raise ConfigError(f"rate: {rate!r} is not an 802.11n LDPC rate; allowed: {list(RATES)}")
        self.n = n
        self.rate = rate
        self.name = f"ldpc_{n}_{rate.replace('/', '_')}"
        self.z = LIFTING_SIZE[n]
        self.base = np.array(BASE_MATRICES[(n, rate)], dtype=np.int64)
        self.parity_blocks = self.base.shape[0]
        self.info_blocks = BLOCK_COLUMNS - self.parity_blocks
        self.k = self.info_blocks * self.z
        self.H = lift(self.base, self.z)
        self._h_info = self.H[:, : self.k].tocsr()
        self._row_ptr = self.H.indptr.astype(np.int64)
        self._cols = self.H.indices.astype(np.int64)

    def __repr__(self) -> str:
        return f"LdpcCode(n={self.n}, rate={self.rate!r})"

    def encode(self, info: np.ndarray) -> np.ndarray:
        """Systematic encoding.

        Inputs: ``info`` uint8 (..., k) of 0/1.
        Outputs: uint8 (..., n) codewords [info | parity] with H c = 0 (mod 2).
        """
        info = np.asarray(info, dtype=np.uint8)
        if info.shape[-1] != self.k:
            raise ValueError(f"{self.name}: expected {self.k} info bits, got {info.shape[-1]}")
        flat = info.reshape(-1, self.k)
        z, mb, kb = self.z, self.parity_blocks, self.info_blocks
        lam = (self._h_info @ flat.T.astype(np.int32)) & 1
        lam = np.ascontiguousarray(lam.T.reshape(-1, mb, z), dtype=np.uint8)
        parity = np.zeros((flat.shape[0], mb, z), dtype=np.uint8)
        first_col = self.base[:, kb]
        odd_shifts = [s for s in set(first_col[first_col >= 0]) if np.sum(first_col == s) % 2]
        parity[:, 0] = _circulant_times(np.bitwise_xor.reduce(lam, axis=1), -odd_shifts[0])
        for row in range(mb - 1):
            acc = lam[:, row].copy()
            for col in range(row + 1):
                shift = self.base[row, kb + col]
                if shift >= 0:
                    acc ^= _circulant_times(parity[:, col], shift)
            parity[:, row + 1] = acc
        codeword = np.concatenate([flat, parity.reshape(flat.shape[0], -1)], axis=1)
        return codeword.reshape(info.shape[:-1] + (self.n,))

    def syndrome_ok(self, codewords: np.ndarray) -> np.ndarray:
        """bool (...): whether each hard codeword uint8 (..., n) satisfies H c = 0."""
        flat = np.asarray(codewords, dtype=np.uint8).reshape(-1, self.n)
        syndrome = (self.H @ flat.T.astype(np.int32)) & 1
        return (~syndrome.any(axis=0)).reshape(np.shape(codewords)[:-1])

    def alist(self) -> str:
        """The parity-check matrix in MacKay's alist format (1-based indices, rows padded with 0),
        as other decoders read it (e.g. GNU Radio's gr-fec ``ldpc_decoder``)."""
        by_col, by_row = self.H.tocsc(), self.H.tocsr()
        cols = [sorted(by_col.indices[by_col.indptr[j]: by_col.indptr[j + 1]]) for j in range(self.n)]
        rows = [sorted(by_row.indices[by_row.indptr[i]: by_row.indptr[i + 1]]) for i in range(self.n - self.k)]
        col_max, row_max = max(map(len, cols)), max(map(len, rows))
        lines = [f"{self.n} {self.n - self.k}", f"{col_max} {row_max}",
                 " ".join(str(len(c)) for c in cols), " ".join(str(len(r)) for r in rows)]
        lines += [" ".join([str(i + 1) for i in c] + ["0"] * (col_max - len(c))) for c in cols]
        lines += [" ".join([str(j + 1) for j in r] + ["0"] * (row_max - len(r))) for r in rows]
        return "\n".join(lines) + "\n"

    def decode(self, llr: np.ndarray, max_iter: int = 20, codeword: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layered normalized min-sum decoding with per-codeword early termination.

        Inputs: ``llr`` float (..., n), log P(0)/P(1) per code bit (large positive for shortened
        known-zero bits); ``max_iter`` the most iterations per codeword; ``codeword``: return
        the whole decided codeword instead of its information part (what a receiver remodulates
        for its EVM without encoding again).
        Outputs: ``bits`` uint8 (..., k), or (..., n) with ``codeword``, decided bits; ``ok`` bool (...) whether the
        syndrome of the decided codeword is zero; ``iters`` int32 (...) iterations used (0 when
        the channel decisions already form a codeword).
        """
        llr = np.asarray(llr)
        if llr.shape[-1] != self.n:
            raise ValueError(f"{self.name}: expected {self.n} LLRs, got {llr.shape[-1]}")
        flat = np.ascontiguousarray(llr.reshape(-1, self.n), dtype=np.float32)
        batch = llr.shape[:-1]
        width = self.n if codeword else self.k
        bits = np.empty((flat.shape[0], width), dtype=np.uint8)
        ok = np.empty(flat.shape[0], dtype=np.bool_)
        iters = np.empty(flat.shape[0], dtype=np.int32)
        _decode(flat, self._row_ptr, self._cols, int(max_iter), np.float32(MIN_SUM_SCALE),
                CHUNK, np.float32(LLR_CLIP), bits, ok, iters)
        return bits.reshape(batch + (width,)), ok.reshape(batch), iters.reshape(batch)


@lru_cache(maxsize=None)
def get_code(name: str) -> LdpcCode:
    """The cached ``LdpcCode`` named in ``CODES`` (e.g. "ldpc_648_1_2")."""
    if name not in CODES:
        raise ConfigError(f"code: {name!r} is not a known LDPC code; allowed: {sorted(CODES)}")
    return LdpcCode(*CODES[name])
