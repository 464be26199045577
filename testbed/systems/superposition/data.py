"""Hierarchically labelled images for DeepSCM: Fashion-MNIST (trained on here) and CIFAR-100.

Fashion-MNIST (Debian ``dataset-fashion-mnist``, offline): the fine labels S2 are its ten classes,
the coarse labels S1 the four groups of ``testbed.data.loaders.FASHION_MNIST_COARSE`` (tops;
bottoms and dresses; footwear; bags), so S1 -> S2 -> X is a Markov chain as the paper requires
(eq. 1). The paper's CIFAR-100 (20 super-classes / 100 classes) cannot be had offline; for users
who have it, :func:`cifar100` returns the same triple (grey-scale is not applied: its models are
3-channel and 32 px, so they need their own training run).

Splits: the first 55000 Fashion-MNIST training images train, the last 5000 validate (the only
numbers looked at while training); the 10000 test images are evaluated, never trained or tuned on.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from testbed.data.loaders import (FASHION_MNIST_COARSE, FASHION_MNIST_DIR, FASHION_MNIST_ITEM_PREFIX as PREFIX,
                                  load_cifar100, load_fashion_mnist)
from testbed.errors import ConfigError

VALIDATION = 5000
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Labelled:
    """Images float32 (N, C, H, W) in [0, 1], coarse labels S1 and fine labels S2 int64 (N,)."""

    images: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@lru_cache(maxsize=4)
def fashion_mnist(split: str, root: str | Path = FASHION_MNIST_DIR) -> Labelled:
    """One split of Fashion-MNIST with its coarse and fine labels (see the module docstring).
    Read once per process (the scorer looks labels up every batch); treat the arrays as read-only."""
    if split not in SPLITS:
        raise ConfigError(f"split = {split!r} is unknown; allowed: {', '.join(SPLITS)}")
    images, fine = load_fashion_mnist(root, "test" if split == "test" else "train")
    if split == "train":
        images, fine = images[:-VALIDATION], fine[:-VALIDATION]
    elif split == "validation":
        images, fine = images[-VALIDATION:], fine[-VALIDATION:]
    return Labelled(images, FASHION_MNIST_COARSE[fine], fine)


def cifar100(root: str | Path, split: str = "test") -> Labelled:
    """CIFAR-100 (``load_cifar100``): 20 super-classes as S1, 100 classes as S2."""
    images, fine, coarse = load_cifar100(root, split)
    return Labelled(images, coarse, fine)


def item_labels(names: list[str], root: str | Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(coarse, fine) int64 labels of items of the ``fashion-mnist`` image set (by name).

    Raises: ConfigError naming an item that is not a Fashion-MNIST test image.
    """
    data = fashion_mnist("test", root)
    index = []
    for name in names:
        tail = name[len(PREFIX):] if name.startswith(PREFIX) else ""
        if not tail.isdigit() or int(tail) >= len(data):
            raise ConfigError(f"item {name!r} has no label; allowed: {PREFIX}00000 .. "
                              f"{PREFIX}{len(data) - 1:05d} (images: fashion-mnist)")
        index.append(int(tail))
    return data.coarse[index], data.fine[index]
