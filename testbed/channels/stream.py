"""Streaming channel emulator: the numpy core of the GNU Radio channel block.

One emulator process joins the TX sample streams of the virtual radios to their RX streams
through a matrix of links (docs/architecture.md "Topologies"):

    y_j = sum_i impair_ji(x_i) + noise_j,   i < n_tx, j < n_rx

which serves the single link (1 x 1), downlink broadcast (1 x N, each receiver with its own SNR
and fading), MU-MISO downlink (Nt x N) and the MU-MIMO uplink (K x M). Each link is a
:class:`LinkImpairment` applying one :class:`~testbed.channels.spec.ChannelSpec` with state kept
across calls, so splitting a stream into chunks of any size gives the same output as one call:
the delay line and the FIR history carry over, the CFO phase keeps turning, and block fading is
redrawn every ``coherence_samples`` output samples. The fading is counter-based: block b of link
(j, i) is :func:`~testbed.channels.realization.draw_block` ``(spec, seed, j, i, b)``, the value the
numpy and torch faces get from :func:`~testbed.channels.realization.generate_matrix`.

At run time (the control port of the GNU Radio channel block) a link can be replaced
(:meth:`ChannelMatrixEmulator.set_link`), a receiver's noise changed
(:meth:`~ChannelMatrixEmulator.set_noise_var`), the phases of a software IRS
(:mod:`testbed.channels.irs`) set, and the links without a coherence time moved to another
fading block (:meth:`~ChannelMatrixEmulator.set_fading_block`: one block per batch, the closed
CSI loop of the runner); each change takes effect at the next output sample and is
logged with that sample's index, and :meth:`~ChannelMatrixEmulator.realised_h` gives genie CSI.

The linear part (timing-offset interpolator convolved with the taps), the fading law and the CFO
rotation come from :mod:`testbed.channels.realization`, as in the block faces. The stream face is
causal: when the delay is fractional and smaller than the interpolator's group delay, the link
delays by ``LinkImpairment.delay_samples`` (more than asked) instead of looking ahead.
"""
from __future__ import annotations

import collections
import functools
import math
from typing import Any, Callable

import numpy as np
import scipy.signal

from testbed.channels.irs import IrsChannel
from testbed.channels.realization import cfo_rotation, check_seed, draw_block, response
from testbed.channels.spec import ChannelSpec
from testbed.errors import ConfigError

SHIFT_ADD_MAX_TAPS = 48
"""Longest FIR filtered by summing shifted copies; longer ones use FFT convolution."""
H_LOG_LENGTH = 10_000
"""Entries kept in ``ChannelMatrixEmulator.h_log``."""


FlatCoefficient = Callable[[int], complex]
"""Flat coefficient of a link as a function of its fading block index (amplitude gain included)."""


def fading(spec: ChannelSpec, seed: int, rx: int = 0, tx: int = 0) -> FlatCoefficient:
    """The counter-based fading of link TX ``tx`` -> RX ``rx``: block b -> draw_block(spec, seed, rx, tx, b)."""
    return functools.partial(draw_block, spec, seed, rx, tx)


class LinkImpairment:
    """One TX -> RX link of a stream, without noise: delay, FIR, flat block coefficient, CFO.

    Parameters:
        spec: the link.
        flat: the flat coefficient of fading block b (output samples b * coherence_samples ..
            (b + 1) * coherence_samples - 1; one block, ``fading_block``, when coherence_samples
            is 0), e.g. :func:`fading`. It is evaluated once per block and cached.
        start: index of the first output sample (a link rebuilt mid-stream keeps the numbering).
        fading_block: the block of a link whose coherence_samples is 0 (:meth:`set_fading_block`).

    Attributes:
        delay_samples: total delay of the stream (input sample t appears at output
            t + delay_samples); ``spec.delay_samples`` unless causality forces more.
        sample: index of the next output sample.
    """

    def __init__(self, spec: ChannelSpec, flat: FlatCoefficient, start: int = 0, fading_block: int = 0) -> None:
        self.spec = spec
        self.fading_block = fading_block
        resp = response(spec)
        self._fir = resp.fir
        self._prepend = max(resp.shift, 0)
        self.delay_samples = spec.delay_samples + max(-resp.shift, 0)
        self._history = np.zeros(self._prepend + len(self._fir) - 1, np.complex64)
        self._flat = flat
        self._cached: tuple[int, np.complex64] | None = None
        self.sample = start
        self._phase = 0.0
        self._rotation = np.zeros(0, np.complex64)

    @property
    def h(self) -> np.complex64:
        """The flat coefficient in force at the next output sample (constant for awgn and fixed)."""
        return self.coefficient_at(self.sample)

    def coefficient_at(self, sample: int) -> np.complex64:
        """The flat coefficient at output sample ``sample`` (complex64 scalar)."""
        block = self.block_of(sample)
        if self._cached is None or self._cached[0] != block:
            self._cached = (block, np.complex64(self._flat(block)))
        return self._cached[1]

    def block_of(self, sample: int) -> int:
        """Fading block index of output sample ``sample``."""
        coherence = self.spec.coherence_samples
        return sample // coherence if coherence else self.fading_block

    def set_fading_block(self, block: int) -> None:
        """From the next output sample on, a link whose coherence_samples is 0 takes fading block
        ``block``; a link with its own coherence time keeps its blocks by output sample."""
        self.fading_block = block
        self.refresh()

    def same_geometry(self, spec: ChannelSpec) -> bool:
        """Whether ``spec`` has this link's delay and taps (so its delay line carries over)."""
        return (spec.delay_samples, spec.taps) == (self.spec.delay_samples, self.spec.taps)

    def retune(self, spec: ChannelSpec, flat: FlatCoefficient) -> None:
        """Apply ``spec`` from the next output sample on, keeping delay line and CFO phase.

        Raises ValueError unless :meth:`same_geometry` (rebuild the link instead).
        """
        if not self.same_geometry(spec):
            raise ValueError("retune needs the same delay_samples and taps; rebuild the link")
        self.spec, self._flat = spec, flat
        self._rotation = np.zeros(0, np.complex64)
        self.refresh()

    def refresh(self) -> None:
        """Forget the cached coefficient (the flat function now answers differently)."""
        self._cached = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Impair the next ``m`` samples of the link; complex64 (m,) in, new complex64 (m,) out."""
        y = self._delay_and_filter(x)
        flat = self._flat_segments(len(x))
        if np.ndim(flat) or flat != 1:
            y = y * flat
        if self.spec.cfo_hz:
            y = self._rotate(y)
        return y

    def _delay_and_filter(self, x: np.ndarray) -> np.ndarray:
        """sum_k fir[k] x[t - prepend - k] with the previous inputs as history; complex64 (m,)."""
        if not self._history.size:
            return x * self._fir[0] if self._fir[0] != 1 else x
        m = len(x)
        buffer = np.concatenate([self._history, x])
        self._history = buffer[m:].copy()
        if len(self._fir) == 1 or m == 0:
            return buffer[:m] * self._fir[0]
        return _fir_valid(buffer[: m + len(self._fir) - 1], self._fir)

    def _flat_segments(self, m: int) -> np.complex64 | np.ndarray:
        """The coefficient of the next ``m`` output samples: a scalar, or complex64 (m,) across blocks."""
        start, self.sample = self.sample, self.sample + m
        first, last = self.block_of(start), self.block_of(max(start + m - 1, start))
        if first == last:
            return self.coefficient_at(start)
        coherence = self.spec.coherence_samples
        edges = np.clip(np.arange(first, last + 2) * coherence, start, start + m)
        values = [self.coefficient_at(block * coherence) for block in range(first, last + 1)]
        return np.repeat(np.array(values, np.complex64), np.diff(edges))

    def _rotate(self, y: np.ndarray) -> np.ndarray:
        """y * exp(j (phase + 2 pi cfo/fs t)), the phase carried over between calls; new array."""
        m = len(y)
        if len(self._rotation) < m:
            self._rotation = cfo_rotation(self.spec, m)
        y = y * self._rotation[:m]
        y *= np.complex64(np.exp(1j * self._phase))
        self._phase = (self._phase + self.spec.cfo_rad_per_sample * m) % (2.0 * math.pi)
        return y


def _fir_valid(buffer: np.ndarray, fir: np.ndarray) -> np.ndarray:
    """np.convolve(buffer, fir, "valid") for complex64; (len(buffer) - len(fir) + 1,).

    Short FIRs are summed as shifted copies (numpy's complex convolve costs ~25 ns a sample
    whatever the length); long ones use overlap-add FFT convolution.
    """
    if len(fir) > SHIFT_ADD_MAX_TAPS:
        return scipy.signal.oaconvolve(buffer, fir, "valid").astype(np.complex64, copy=False)
    last = len(fir) - 1
    m = len(buffer) - last
    y = fir[0] * buffer[last:]
    for k in range(1, len(fir)):
        y += fir[k] * buffer[last - k : last - k + m]
    return y


class ChannelMatrixEmulator:
    """n_tx sample streams -> n_rx sample streams through a matrix of links plus receiver noise.

    Parameters:
        n_tx: number of transmit streams.
        n_rx: number of receive streams.
        specs: n_rx rows of n_tx :class:`ChannelSpec`; ``specs[j][i]`` is the link TX i -> RX j.
        seed: integer >= 0; link (j, i) takes fading block b from ``default_rng([seed, j, i, b])``
            (:func:`~testbed.channels.realization.draw_block`, as every face), receiver noise
            comes from independent generators spawned from ``seed``.
        noise_var: noise variance per complex sample of each RX stream (n_rx values >= 0); None:
            RX stream j follows ``specs[j][0].snr_db`` (``no = 10**(-snr_db/10)``), also when
            :meth:`set_link` changes that link, until :meth:`set_noise_var` sets it explicitly.
        irs: a software IRS whose cascaded channel replaces the fading of the links in ``irs_links``:
            an IrsChannel, or any object with its emulator face (``n_tx``, ``n_rx``, ``phases``,
            ``set_phases(phases, reflecting)``, ``cascaded(block=b)`` complex (n_rx, n_tx)), such as
            a registered ``irs-channel``.
        irs_links: emulator link (j, i) -> (rx node, tx node) of ``irs``; None with an ``irs``: every
            link (j, i) is IRS node pair (j, i). On these links the flat coefficient is the cascaded
            h of fading block b (``spec.coherence_samples`` as for any link) times the link's
            amplitude gain; the spec's model and K factor are not used, its delay, taps and CFO are.
        log_h: keep :attr:`h_log`.

    Attributes:
        sample: index of the next output sample of every RX stream.
        samples_in: samples consumed so far, summed over the TX streams.
        samples_out: samples produced so far, summed over the RX streams.
        noise_var: current noise variance of each RX stream.
        changes: every run-time change, ``{"sample": s, "what": ..., ...}`` in force from output
            sample s on; ``what`` is ``"set_link"`` (with rx, tx, spec, rebuilt and noise_var when
            RX noise follows the spec), ``"set_noise_var"`` (rx, noise_var) or ``"set_irs_phases"``
            (phases).
        h_log: with ``log_h``, the last ``H_LOG_LENGTH`` pairs (s, H complex64 (n_rx, n_tx)): H is
            :meth:`realised_h` from output sample s on, logged at sample 0, at every fading redraw
            and at every change; None without ``log_h``.
    """

    def __init__(
        self,
        n_tx: int,
        n_rx: int,
        specs: list[list[ChannelSpec]],
        seed: int,
        noise_var: list[float] | None = None,
        irs: IrsChannel | None = None,
        irs_links: dict[tuple[int, int], tuple[int, int]] | None = None,
        log_h: bool = False,
    ) -> None:
        _check_matrix(n_tx, n_rx, specs)
        self.n_tx, self.n_rx, self.seed = n_tx, n_rx, check_seed("seed", seed)
        self.irs = irs
        self.irs_links = _check_irs_links(irs, irs_links, n_tx, n_rx)
        self.links = [[LinkImpairment(specs[j][i], self._flat(j, i, specs[j][i])) for i in range(n_tx)]
                      for j in range(n_rx)]
        self._noise_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_rx)]
        self._explicit_noise = [noise_var is not None] * n_rx
        if noise_var is None:
            self.noise_var = [row[0].no for row in specs]
        else:
            self.noise_var = _check_noise_vars(noise_var, n_rx)
        self.changes: list[dict[str, Any]] = []
        self.fading_block = 0
        self.h_log: collections.deque[tuple[int, np.ndarray]] | None = None
        self.sample = self.samples_in = self.samples_out = 0
        if log_h:
            self.h_log = collections.deque(maxlen=H_LOG_LENGTH)
            self._log_h()

    def process(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The next ``m`` samples of every RX stream from the next ``m`` of every TX stream.

        Parameters:
            inputs: n_tx arrays complex64 (m,), one per TX stream, all of one length.

        Returns:
            n_rx new arrays complex64 (m,).
        """
        xs = self._check_inputs(inputs)
        m = len(xs[0])
        outputs = []
        for j in range(self.n_rx):
            y = self._noise(j, m)
            for i, x in enumerate(xs):
                y += self.links[j][i].process(x)
            outputs.append(y)
        start, self.sample = self.sample, self.sample + m
        self.samples_in += self.n_tx * m
        self.samples_out += self.n_rx * m
        if self.h_log is not None:
            for sample in self._redraws(start, m):
                self._log_h(sample)
        return outputs

    def realised_h(self) -> np.ndarray:
        """Genie CSI: the flat coefficient (fading or cascaded IRS h, times amplitude gain) of every
        link at the next output sample; complex64 (n_rx, n_tx)."""
        return self._h_at(self.sample)

    def spec(self, rx: int, tx: int) -> ChannelSpec:
        """The spec of link TX ``tx`` -> RX ``rx`` in force; ConfigError on a bad index."""
        return self.links[_check_index("rx", rx, self.n_rx)][_check_index("tx", tx, self.n_tx)].spec

    def set_link(self, rx: int, tx: int, spec: ChannelSpec) -> None:
        """Replace link TX ``tx`` -> RX ``rx`` by ``spec`` from the next output sample on.

        With the same delay_samples and taps the link keeps its delay line and CFO phase;
        otherwise it is rebuilt (empty delay line, CFO phase 0). Fading blocks keep their
        numbering by output sample. Raises ConfigError on a bad index or spec.
        """
        j, i = _check_index("rx", rx, self.n_rx), _check_index("tx", tx, self.n_tx)
        if not isinstance(spec, ChannelSpec):
            raise ConfigError(f"channel control spec {spec!r} is invalid; allowed: a ChannelSpec")
        link, flat = self.links[j][i], self._flat(j, i, spec)
        rebuilt = not link.same_geometry(spec)
        if rebuilt:
            self.links[j][i] = LinkImpairment(spec, flat, start=self.sample, fading_block=self.fading_block)
        else:
            link.retune(spec, flat)
        change = {"sample": self.sample, "what": "set_link", "rx": j, "tx": i, "spec": spec, "rebuilt": rebuilt}
        if i == 0 and not self._explicit_noise[j]:
            self.noise_var[j] = change["noise_var"] = spec.no
        self._record(change)

    def set_noise_var(self, rx: int, noise_var: float) -> None:
        """Set RX stream ``rx``'s noise variance per complex sample from the next output sample on."""
        j = _check_index("rx", rx, self.n_rx)
        self.noise_var[j] = _check_noise_var("control noise_var", noise_var)
        self._explicit_noise[j] = True
        self._record({"sample": self.sample, "what": "set_noise_var", "rx": j, "noise_var": self.noise_var[j]})

    def set_irs_phases(self, phases: np.ndarray, reflecting: bool = True) -> None:
        """Set the IRS element phases (radians, (n_elements,)) from the next output sample on;
        ``reflecting`` False takes the surface away (its links keep their direct paths only)."""
        if self.irs is None:
            raise ConfigError("channel control set_irs_phases is invalid here; allowed: an emulator built with an irs")
        if not isinstance(reflecting, bool):
            raise ConfigError(f"channel control set_irs reflecting {reflecting!r} is invalid; allowed: true or false")
        self.irs.set_phases(phases, reflecting=reflecting)
        for j, i in self.irs_links:
            self.links[j][i].refresh()
        self._record({"sample": self.sample, "what": "set_irs_phases", "phases": self.irs.phases.tolist(),
                      "reflecting": reflecting})

    def set_fading_block(self, block: int) -> None:
        """From the next output sample on, every link whose coherence_samples is 0 takes its flat
        coefficient from fading block ``block`` (``draw_block(spec, seed, j, i, block)``, or the
        cascaded IRS h of that block); links with coherence_samples > 0 keep their own blocks,
        numbered by output sample, and links that do not fade stay as they are. ConfigError
        unless ``block`` is an integer >= 0."""
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 0:
            raise ConfigError(f"channel control set_fading_block block {block!r} is invalid; allowed: an integer >= 0")
        self.fading_block = int(block)
        for row in self.links:
            for link in row:
                link.set_fading_block(self.fading_block)
        self._record({"sample": self.sample, "what": "set_fading_block", "block": self.fading_block})

    def _flat(self, j: int, i: int, spec: ChannelSpec) -> FlatCoefficient:
        """Flat coefficient of link (j, i) per fading block: counter-based fading or cascaded IRS h."""
        if (j, i) not in self.irs_links:
            return fading(spec, self.seed, j, i)
        irs, (r, t), gain = self.irs, self.irs_links[(j, i)], spec.amplitude_gain
        return lambda block: gain * irs.cascaded(block=block)[r, t]

    def _h_at(self, sample: int) -> np.ndarray:
        return np.array([[link.coefficient_at(sample) for link in row] for row in self.links], np.complex64)

    def _redraws(self, start: int, m: int) -> list[int]:
        """Output samples in [start, start + m) where some link starts a new fading block (not 0)."""
        coherences = {link.spec.coherence_samples for row in self.links for link in row} - {0}
        samples = set()
        for coherence in coherences:
            first = max(-(-start // coherence), 1) * coherence
            samples.update(range(first, start + m, coherence))
        return sorted(samples)

    def _log_h(self, sample: int | None = None) -> None:
        """Append (sample, H in force from sample on) to h_log, replacing an entry of the same sample."""
        sample = self.sample if sample is None else sample
        if self.h_log and self.h_log[-1][0] == sample:
            self.h_log.pop()
        self.h_log.append((sample, self._h_at(sample)))

    def _record(self, change: dict[str, Any]) -> None:
        self.changes.append(change)
        if self.h_log is not None:
            self._log_h()

    def _noise(self, j: int, m: int) -> np.ndarray:
        """Receiver j's next ``m`` noise samples; new complex64 (m,)."""
        noise = np.empty(m, np.complex64)
        self._noise_rngs[j].standard_normal(out=noise.view(np.float32), dtype=np.float32)
        noise *= np.float32(math.sqrt(self.noise_var[j] / 2.0))
        return noise

    def _check_inputs(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != self.n_tx:
            raise ValueError(f"expected {self.n_tx} input streams, got {len(inputs)}")
        xs = [np.asarray(x, np.complex64) for x in inputs]
        if any(x.ndim != 1 or len(x) != len(xs[0]) for x in xs):
            raise ValueError(f"input streams must be 1-D of one length; got shapes {[x.shape for x in xs]}")
        return xs


def _check_index(field: str, value: Any, n: int) -> int:
    """``value`` as an index 0..n-1; ConfigError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise ConfigError(f"channel control {field} {value!r} is invalid; allowed: an integer 0..{n - 1}")
    return int(value)


def _check_noise_vars(noise_var: Any, n_rx: int) -> list[float]:
    """``noise_var`` as n_rx floats >= 0; ConfigError naming the field otherwise."""
    if not isinstance(noise_var, (list, tuple, np.ndarray)) or len(noise_var) != n_rx:
        raise ConfigError(
            f"channel noise_var {noise_var!r} is invalid; allowed: {n_rx} numbers >= 0, one per RX stream")
    return [_check_noise_var("noise_var", value) for value in noise_var]


def _check_noise_var(field: str, value: Any) -> float:
    """``value`` as a finite float >= 0; ConfigError naming the field otherwise."""
    number = value if isinstance(value, (int, float, np.integer, np.floating)) else math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ConfigError(f"channel {field} {value!r} is invalid; allowed: a finite number >= 0")
    return float(number)


def _check_irs_links(
    irs: IrsChannel | None, irs_links: dict[tuple[int, int], tuple[int, int]] | None, n_tx: int, n_rx: int
) -> dict[tuple[int, int], tuple[int, int]]:
    """The validated link -> IRS node map (identity when only ``irs`` is given, {} without IRS)."""
    if irs is None:
        if irs_links:
            raise ConfigError(f"channel irs_links {irs_links!r} is invalid without an irs; allowed: irs_links with irs")
        return {}
    if irs_links is None:
        irs_links = {(j, i): (j, i) for j in range(n_rx) for i in range(n_tx)}
    checked = {}
    for link, nodes in irs_links.items():
        try:
            (j, i), (r, t) = link, nodes
            checked[(_check_index("rx", j, n_rx), _check_index("tx", i, n_tx))] = (
                _check_index("irs rx node", r, irs.n_rx), _check_index("irs tx node", t, irs.n_tx))
        except (TypeError, ValueError, ConfigError) as err:
            raise ConfigError(
                f"channel irs_links {link!r}: {nodes!r} is invalid ({err}); allowed: (rx, tx) of the matrix: "
                f"(rx node < {irs.n_rx}, tx node < {irs.n_tx}) of the irs"
            ) from None
    return checked


def _check_matrix(n_tx: int, n_rx: int, specs: list[list[ChannelSpec]]) -> None:
    """ConfigError unless ``specs`` is n_rx rows of n_tx ChannelSpec and n_tx, n_rx >= 1."""
    if n_tx < 1 or n_rx < 1:
        raise ConfigError(f"channel matrix n_tx={n_tx}, n_rx={n_rx} is invalid; allowed: both >= 1")
    shape = [len(row) for row in specs]
    if shape != [n_tx] * n_rx:
        raise ConfigError(
            f"channel matrix has rows of lengths {shape}; allowed: {n_rx} rows (n_rx) of {n_tx} links (n_tx)"
        )
    for row in specs:
        for spec in row:
            if not isinstance(spec, ChannelSpec):
                raise ConfigError(f"channel matrix entry {spec!r} is invalid; allowed: a ChannelSpec")
