"""Random feature networks written in the exact upstream file formats (tiny widths unless asked otherwise).

``features.N.weight/bias`` at the positions neural-style-pt's ``nn.Sequential`` gives each conv, optional
``classifier.*``; saved with ``torch.save`` like the real files.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VGG19_FULL = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512, "P")
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG19_BLOCKS = (2, 2, 4, 4, 4)
NIN_POSITIONS = (0, 2, 4, 7, 9, 11, 14, 16, 18, 22, 24, 26)
NIN_KERNELS = (11, 1, 1, 5, 1, 1, 3, 1, 1, 3, 1, 1)


def _conv(sd: dict, pos: int, cin: int, cout: int, k: int, gen: torch.Generator) -> None:
    std = (2.0 / (cin * k * k)) ** 0.5
    sd[f"features.{pos}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * std
    sd[f"features.{pos}.bias"] = torch.randn(cout, generator=gen) * 0.01


def vgg_state(blocks=VGG19_BLOCKS, widths=(4, 6, 8, 8, 8), classifier: bool = True, seed: int = 0) -> dict:
    """A VGG state dict with ``blocks`` convs per block of ``widths`` channels, in neural-style-pt's key layout."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict = OrderedDict()
    pos, cin = 0, 3
    for n, width in zip(blocks, widths, strict=True):
        for _ in range(n):
            _conv(sd, pos, cin, width, 3, gen)
            pos, cin = pos + 2, width
        pos += 1
    if classifier:
        sd["classifier.0.weight"] = torch.randn(5, cin * 1, generator=gen)
        sd["classifier.0.bias"] = torch.zeros(5)
        sd["classifier.3.weight"] = torch.randn(5, 5, generator=gen)
        sd["classifier.3.bias"] = torch.zeros(5)
        sd["classifier.6.weight"] = torch.randn(3, 5, generator=gen)
        sd["classifier.6.bias"] = torch.zeros(3)
    return sd


def nin_state(widths=(6, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 10), seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    sd: dict = OrderedDict()
    cin = 3
    for pos, k, width in zip(NIN_POSITIONS, NIN_KERNELS, widths, strict=True):
        _conv(sd, pos, cin, width, k, gen)
        cin = width
    return sd


def write(sd: dict, path: Path) -> Path:
    torch.save(sd, path)
    return path


def image(path: Path | None = None, size=(40, 32), seed: int = 0) -> Image.Image:
    """A smooth random RGB test image (W, H) = ``size``; saved to ``path`` when given."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack(
        [
            127 + 100 * np.sin(xx / (3 + seed) + rng.uniform(0, 6)),
            127 + 100 * np.cos(yy / (4 + seed) + rng.uniform(0, 6)),
            rng.uniform(0, 255, (h, w)),
        ],
        axis=-1,
    )
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if path is not None:
        img.save(path)
    return img
