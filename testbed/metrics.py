"""The testbed's one vocabulary of metrics and the functions that compute them.

Every report row (``metrics.json``) uses the keys of :data:`METRIC_KEYS`. Image metrics take
float images in [0, 1] (``data_range`` says otherwise), either one image (3, H, W) or a batch
(N, 3, H, W), and return a float for one image and a float64 array (N,) for a batch (one value
per image: average them yourself, so that the averaging is explicit in the report).

SSIM and MS-SSIM are pytorch-msssim's (Gaussian window 11, sigma 1.5, K = (0.01, 0.03)).
MS-SSIM with its 5 scales needs images larger than 160 px per side; on smaller images (e.g.
32x32 CIFAR tiles) :func:`ms_ssim` uses as many scales as fit, ``L = max{l : min(H, W) >
10 * 2**(l-1)}`` (2 scales for 32 px, 4 for 128 px), with the first L standard weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333) rescaled to the same total as all five. Values on images of
different sizes are therefore not comparable; quote the scale count with them.
"""
from __future__ import annotations

import contextlib

import numpy as np

from testbed.errors import TestbedError

METRIC_KEYS = ("psnr_db", "ssim", "ms_ssim", "accuracy", "ber", "bler", "evm_db", "snr_est_db",
               "cpp", "latency_ms")
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WIN_SIZE = 11


def _image_pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as float64 (N, C, H, W) and whether a single image was given."""
    ref, test = np.asarray(ref, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if ref.shape != test.shape or ref.ndim not in (3, 4):
        raise TestbedError(f"images of shapes {ref.shape} and {test.shape} cannot be compared; "
                           f"allowed: two arrays of one shape (3, H, W) or (N, 3, H, W)")
    single = ref.ndim == 3
    return (ref[None], test[None], single) if single else (ref, test, single)


def _per_image(values: np.ndarray, single: bool) -> float | np.ndarray:
    return float(values[0]) if single else values


def psnr_db(ref: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """Peak signal-to-noise ratio per image, 10 log10(data_range^2 / MSE), in dB.

    Inputs: ref, test float (3, H, W) or (N, 3, H, W); the MSE is over channels and pixels.
    Returns: float, or float64 (N,); +inf for identical images.
    """
    ref, test, single = _image_pair(ref, test)
    mse = np.mean((ref - test) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return _per_image(10.0 * np.log10(data_range**2 / mse), single)


def _tensors(ref: np.ndarray, test: np.ndarray):
    import torch

    return torch.from_numpy(ref.astype(np.float32)), torch.from_numpy(test.astype(np.float32))


@contextlib.contextmanager
def _one_torch_thread():
    """SSIM in one torch thread: the runner scores while node processes share its cores, and
    torch's OpenMP threads spinning against them made MS-SSIM of a 256-px image take 1.5 s
    instead of 0.06 s (measured in a demo run)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ssim(ref: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """Structural similarity per image (pytorch-msssim, mean over channels).

    Inputs: ref, test float (3, H, W) or (N, 3, H, W).
    Returns: float, or float64 (N,); 1 for identical images.
    """
    from pytorch_msssim import ssim as _ssim

    ref, test, single = _image_pair(ref, test)
    x, y = _tensors(ref, test)
    with _one_torch_thread():
        values = _ssim(x, y, data_range=data_range, size_average=False, win_size=SSIM_WIN_SIZE)
    return _per_image(values.double().numpy(), single)


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales used for an image of this size (5 above 160 px per side)."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) > (SSIM_WIN_SIZE - 1) * 2**scales:
        scales += 1
    if scales == 0:
        raise TestbedError(f"MS-SSIM of a {height}x{width} image is undefined; "
                           f"allowed: images larger than {SSIM_WIN_SIZE - 1} px per side")
    return scales


def ms_ssim(ref: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float | np.ndarray:
    """Multi-scale SSIM per image, with fewer scales on small images (see the module docstring).

    Inputs: ref, test float (3, H, W) or (N, 3, H, W), H and W above 10 px.
    Returns: float, or float64 (N,); 1 for identical images. For images above 160 px per side
        it equals ``pytorch_msssim.ms_ssim``.
    """
    import torch
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    ref, test, single = _image_pair(ref, test)
    x, y = _tensors(ref, test)
    scales = ms_ssim_scales(*ref.shape[2:])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float32)
    weights = weights * (sum(MS_SSIM_WEIGHTS) / weights.sum())
    win = _fspecial_gauss_1d(SSIM_WIN_SIZE, 1.5).repeat([x.shape[1], 1, 1, 1])
    with _one_torch_thread():
        values = _multi_scale(x, y, scales, weights, win, data_range)
    return _per_image(values.double().numpy(), single)


def _multi_scale(x, y, scales: int, weights, win, data_range: float):
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _ssim

    factors = []
    for scale in range(scales):
        ssim_per_channel, cs = _ssim(x, y, data_range=data_range, win=win, size_average=False)
        if scale < scales - 1:
            factors.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    stacked = torch.stack(factors + [torch.relu(ssim_per_channel)])  # (scale, N, C)
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def _same_shape(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.size == 0:
        raise TestbedError(f"{name} needs two non-empty arrays of one shape; got {a.shape} and {b.shape}")


def ber(bits_tx: np.ndarray, bits_rx: np.ndarray) -> float:
    """Bit error rate: the fraction of positions where the bits differ.

    Inputs: bits_tx, bits_rx, arrays of 0/1 (any int or bool dtype) of one shape.
    """
    bits_tx, bits_rx = np.asarray(bits_tx) != 0, np.asarray(bits_rx) != 0
    _same_shape("ber", bits_tx, bits_rx)
    return float(np.mean(bits_tx != bits_rx))


def bler(ok: np.ndarray) -> float:
    """Block error rate: the fraction of blocks not received correctly.

    Inputs: ok, bool (n_blocks,), True where a block was decoded correctly (e.g. CRC passed).
    """
    ok = np.asarray(ok, dtype=bool)
    if ok.size == 0:
        raise TestbedError("bler needs at least one block")
    return float(1.0 - np.mean(ok))


def evm_db(ref_symbols: np.ndarray, rx_symbols: np.ndarray) -> float:
    """Error vector magnitude in dB: 10 log10(sum |rx - ref|^2 / sum |ref|^2).

    Inputs: ref_symbols, rx_symbols, complex of one shape (e.g. complex64 (n,)); rx after
    equalization. -20 dB is an RMS EVM of 10 %.
    """
    ref, rx = np.asarray(ref_symbols), np.asarray(rx_symbols)
    _same_shape("evm_db", ref, rx)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(np.sum(np.abs(rx - ref) ** 2) / np.sum(np.abs(ref) ** 2)))


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of correct class predictions. Inputs: int (N,) each."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    _same_shape("accuracy", labels, predicted)
    return float(np.mean(labels == predicted))


def cpp(n_channel_uses: int, height: int, width: int) -> float:
    """Channel uses per pixel: complex symbols sent per image pixel, n / (H * W)."""
    return n_channel_uses / (height * width)
