"""GNU Radio Companion factories: scalar (and plain list) parameters in, project blocks out.

GRC block YAML (``flowgraphs/blocks/*.block.yml``) can only pass what a GRC parameter expresses:
strings, numbers, booleans and lists of numbers. The project's blocks take richer arguments
(a :class:`~testbed.phy.payload.PayloadFormat`, a matrix of
:class:`~testbed.channels.spec.ChannelSpec`, a ``FrameReceiver``); these thin functions build
those from scalars and return the block. They hold no signal-processing logic.

Every factory is also usable from plain Python::

    from testbed.gr import grc
    src = grc.framer_source("qpsk", "none")
    chan = grc.channel_single_link("awgn", snr_db=20.0)
    rx = grc.receiver_sink(1e6)
    enc = grc.neural_encoder("deepjscc-r6", snr_db=10.0)   # image PDUs -> framer PDUs
    dec = grc.neural_decoder("deepjscc-r6", 32, 32)        # receiver frames -> image PDUs

The returned blocks keep their Python attributes, so a generated flowgraph exposes the counters
(``framer.frames_sent``, ``framer.pdus_dropped``, ``rx.receiver.counters.frames``, ``rx.errors``)
as attributes of its top block.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from testbed.channels.spec import ChannelSpec
from testbed.errors import ConfigError
from testbed.gr.channel import ChannelBlock
from testbed.gr.framer import FramerSource
from testbed.gr.receiver import ReceiverSink
from testbed.phy.payload import PayloadFormat

if TYPE_CHECKING:  # the neural and image blocks import ONNX Runtime and Pillow: loaded when first made
    from testbed.gr.batch_source import BatchSource
    from testbed.gr.mimo_receiver import MimoReceiverSink
    from testbed.gr.zmq_source import ZmqPullSource
    from testbed.gr.image_io import ImageSink, ImageSource
    from testbed.gr.neural import NeuralDecoder, NeuralEncoder

__all__ = ["anchor_decoder", "anchor_encoder", "batch_source", "channel_broadcast", "channel_matrix", "channel_single_link", "framer_source",
           "image_sink", "image_source", "mimo_receiver_sink", "neural_decoder", "neural_encoder", "receiver_sink",
           "zmq_pull_source"]


def framer_source(modulation: str = "qpsk", code: str = "none", gap_samples: int = 400, idle_zeros: bool = False,
                  burst_tags: bool = False, max_queue: int = 64) -> FramerSource:
    """A :class:`FramerSource` that frames PDUs from its ``pdu`` port.

    Parameters:
        modulation: default payload modulation (analog, bpsk, qpsk, qam16, qam64, qam256); a PDU's
            ``modulation`` metadata overrides it.
        code: default code (none or ldpc_{648,1296}_{1_2,2_3,3_4,5_6}); overridden by PDU ``code``.
        gap_samples: zeros after each frame.
        idle_zeros: emit zeros while no PDU is queued (hardware sinks) instead of waiting.
        burst_tags: tag frames with ``tx_sob``/``tx_eob``.
        max_queue: PDUs held at most; more are dropped and counted in ``pdus_dropped``.

    Outputs: one complex64 stream.
    """
    return FramerSource(fmt=PayloadFormat(str(modulation), str(code)), gap_samples=int(gap_samples),
                        idle_zeros=bool(idle_zeros), burst_tags=bool(burst_tags), max_queue=int(max_queue))


def receiver_sink(sample_rate_sps: float = 1e6, stop_after_samples: int = 0) -> ReceiverSink:
    """A :class:`ReceiverSink`; received frames leave as PDUs on its ``frames`` port.

    Parameters:
        sample_rate_sps: sample rate, used to report the CFO estimate in Hz.
        stop_after_samples: set ``done`` after this many samples (0 = never).

    Inputs: one complex64 stream.
    """
    return ReceiverSink(float(sample_rate_sps), stop_after_samples=int(stop_after_samples))


def _per_rx(name: str, value: float | Sequence[float], n_rx: int) -> list[float]:
    """A scalar repeated n_rx times, or a list of n_rx numbers (one per receiver)."""
    values = [value] if isinstance(value, (int, float)) else list(value)
    if len(values) == 1:
        values = values * n_rx
    if len(values) != n_rx:
        raise ConfigError(f"channel.{name} {value!r} is invalid; allowed: one number or {n_rx} numbers (one per RX)")
    return [float(v) for v in values]


def channel_matrix(n_tx: int = 1, n_rx: int = 1, model: str = "awgn", snr_db: float | Sequence[float] = 20.0,
                   k_factor_db: float = 10.0, cfo_hz: float | Sequence[float] = 0.0, sample_rate_sps: float = 1e6,
                   delay_samples: float | Sequence[float] = 0.0, coherence_samples: int = 0,
                   seed: int = 0) -> ChannelBlock:
    """A :class:`ChannelBlock` joining n_tx TX streams to n_rx RX streams, one model for every link.

    Parameters:
        n_tx, n_rx: numbers of input and output streams.
        model: awgn, rayleigh or rician (each link fades independently).
        snr_db, cfo_hz, delay_samples: one number for every receiver, or a list of n_rx (per RX j,
            applied to all links into RX j).
        k_factor_db, sample_rate_sps, coherence_samples: as in :class:`ChannelSpec`.
        seed: seeds fading and noise.

    Inputs: n_tx complex64 streams. Outputs: n_rx complex64 streams.
    """
    n_tx, n_rx = int(n_tx), int(n_rx)
    if n_tx < 1 or n_rx < 1:
        raise ConfigError(f"channel matrix n_tx={n_tx}, n_rx={n_rx} is invalid; allowed: both >= 1")
    snrs = _per_rx("snr_db", snr_db, n_rx)
    cfos = _per_rx("cfo_hz", cfo_hz, n_rx)
    delays = _per_rx("delay_samples", delay_samples, n_rx)
    specs = [[ChannelSpec(model=str(model), snr_db=snrs[j], k_factor_db=float(k_factor_db), cfo_hz=cfos[j],
                          sample_rate_sps=float(sample_rate_sps), delay_samples=delays[j],
                          coherence_samples=int(coherence_samples)) for _ in range(n_tx)] for j in range(n_rx)]
    return ChannelBlock(specs, seed=int(seed))


def channel_broadcast(n_rx: int = 2, model: str = "awgn", snr_db: float | Sequence[float] = 20.0,
                      k_factor_db: float = 10.0, cfo_hz: float | Sequence[float] = 0.0, sample_rate_sps: float = 1e6,
                      delay_samples: float | Sequence[float] = 0.0, coherence_samples: int = 0,
                      seed: int = 0) -> ChannelBlock:
    """Downlink broadcast: 1 TX stream -> n_rx RX streams, each with its own SNR (list) and fading."""
    return channel_matrix(1, n_rx, model, snr_db, k_factor_db, cfo_hz, sample_rate_sps, delay_samples,
                          coherence_samples, seed)


def channel_single_link(model: str = "awgn", snr_db: float = 20.0, cfo_hz: float = 0.0, sample_rate_sps: float = 1e6,
                        delay_samples: float = 0.0, seed: int = 0, k_factor_db: float = 10.0,
                        coherence_samples: int = 0) -> ChannelBlock:
    """Single link: 1 TX stream -> 1 RX stream."""
    return channel_matrix(1, 1, model, snr_db, k_factor_db, cfo_hz, sample_rate_sps, delay_samples,
                          coherence_samples, seed)


def neural_encoder(model: str = "deepjscc-r6", snr_db: float = 10.0, threads: int = 1) -> "NeuralEncoder":
    """A :class:`~testbed.gr.neural.NeuralEncoder`: ``image`` PDUs in, analog symbol PDUs out on ``pdu``.

    Parameters:
        model: a registered model name (``testbed.registry.names("model")``, e.g. deepjscc-r6);
            an unknown name raises ConfigError listing the allowed ones.
        snr_db: channel SNR given to SNR-adaptive encoders (ADJSCC); plain DeepJSCC ignores it.
        threads: ONNX Runtime intra-op threads.
    """
    from testbed.gr.neural import NeuralEncoder

    return NeuralEncoder(str(model), snr_db=float(snr_db), threads=int(threads))


def neural_decoder(model: str = "deepjscc-r6", height: int = 32, width: int = 32, threads: int = 1) -> "NeuralDecoder":
    """A :class:`~testbed.gr.neural.NeuralDecoder`: receiver ``frames`` PDUs in, ``image`` PDUs out.

    Parameters:
        model: a registered model name (the encoder's); unknown names raise ConfigError.
        height, width: size of the transmitted images (one frame carries one whole image).
        threads: ONNX Runtime intra-op threads.
    """
    from testbed.gr.neural import NeuralDecoder

    return NeuralDecoder(str(model), height=int(height), width=int(width), threads=int(threads))


def anchor_encoder(model: str = "anchor-awgn-two-stage", snr_db: float = 10.0, threads: int = 1) -> "NeuralEncoder":
    """The base-station encoder of an anchor model set as a :class:`~testbed.gr.neural.NeuralEncoder`
    (``image`` PDUs in, analog symbol PDUs out on ``pdu``; one frame per image).

    Parameters:
        model: a registered anchor set (``anchor-{awgn,rayleigh}-{two-stage,iterative,simultaneous}``);
            an unknown name raises ConfigError listing the allowed ones.
        snr_db: the SNR the encoder is told (the weakest user's, as in a network run).
        threads: ONNX Runtime intra-op threads.
    """
    from testbed.gr.neural import NeuralEncoder
    from testbed.systems.anchor.codec import AnchorCodec

    codec = AnchorCodec(str(model), None, int(threads))
    return NeuralEncoder(str(model), snr_db=float(snr_db), threads=int(threads), codec=codec)


def anchor_decoder(model: str = "anchor-awgn-two-stage", decoder: str = "attention", height: int = 128,
                   width: int = 128, threads: int = 1) -> "NeuralDecoder":
    """One user's decoder of an anchor model set as a :class:`~testbed.gr.neural.NeuralDecoder`
    (receiver ``frames`` in, ``image`` PDUs out), told the receiver's own SNR estimate per frame.

    Parameters:
        model: the encoder's anchor set; decoder: its family (``attention``, ``conv``, ``resnet``,
            ``vgg``, or ``anchor`` of a two-stage set); unknown names raise ConfigError.
        height, width: size of the transmitted images (one frame carries one whole image).
        threads: ONNX Runtime intra-op threads.
    """
    from testbed.gr.neural import NeuralDecoder
    from testbed.systems.anchor.codec import AnchorCodec

    codec = AnchorCodec(str(model), str(decoder), int(threads))
    return NeuralDecoder(str(model), height=int(height), width=int(width), threads=int(threads), codec=codec)


def image_source(folder: str = "default", period_ms: int = 200, repeat: bool = False, size: int = 32) -> "ImageSource":
    """An :class:`~testbed.gr.image_io.ImageSource` publishing ``image`` PDUs every ``period_ms``.

    Parameters:
        folder: ``default`` (the embedded images) or a folder of image files.
        period_ms: time between images.
        repeat: loop over the images (a bool, or "true"/"1" from a command-line parameter).
        size: images are centre-cropped and resized to size x size.
    """
    from testbed.gr.image_io import ImageSource

    flag = repeat.strip().lower() in ("1", "true", "yes") if isinstance(repeat, str) else bool(repeat)
    return ImageSource(str(folder), period_ms=int(period_ms), repeat=flag, size=int(size))


def image_sink(out_dir: str = "") -> "ImageSink":
    """An :class:`~testbed.gr.image_io.ImageSink` keeping received ``image`` PDUs (PNG files in ``out_dir`` if set)."""
    from testbed.gr.image_io import ImageSink

    return ImageSink(str(out_dir))


def batch_source(n_outputs: int = 1) -> "BatchSource":
    """A :class:`~testbed.gr.batch_source.BatchSource` (the TX node's source): ``push`` queues
    complex64 (n_outputs, n) waveforms from Python; n_outputs complex64 outputs, one per antenna."""
    from testbed.gr.batch_source import BatchSource

    return BatchSource(int(n_outputs))


def zmq_pull_source(address: str, hwm: int = -1) -> "ZmqPullSource":
    """A :class:`~testbed.gr.zmq_source.ZmqPullSource`: complex64 out of the gr-zeromq push_sink
    bound at ``address`` (the RX side of a virtual radio in a network run)."""
    from testbed.gr.zmq_source import ZmqPullSource

    return ZmqPullSource(str(address), int(hwm))


def mimo_receiver_sink(n_antennas: int = 1) -> "MimoReceiverSink":
    """A :class:`~testbed.gr.mimo_receiver.MimoReceiverSink` of n_antennas complex64 inputs; frames
    go to its ``on_frame`` callback (set it from Python)."""
    from testbed.gr.mimo_receiver import MimoReceiverSink

    return MimoReceiverSink(int(n_antennas))
