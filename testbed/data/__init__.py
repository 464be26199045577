"""Data: the embedded default images, user image folders, the offline photo corpus, tiling, and
loaders for the standard on-disk data sets (CIFAR-10/100, Kodak, DIV2K, CUB-200-2011)."""
from testbed.data.images import default_images, load_folder, load_image, photo_corpus, tile, untile
from testbed.data.loaders import (genuine_cifar_samples, load_cifar10, load_cifar100, load_cub,
                                  load_div2k, load_kodak)

__all__ = ["default_images", "genuine_cifar_samples", "load_cifar10", "load_cifar100", "load_cub",
           "load_div2k", "load_folder", "load_image", "load_kodak", "photo_corpus", "tile", "untile"]
