"""``BigGAN``: a drop-in for pytorch-pretrained-BigGAN's class, on impasto's generator and weight zoo.

    from impasto.gan import BigGAN, one_hot_from_names, truncated_noise_sample
    model = BigGAN.from_pretrained("biggan-deep-256")   # or "biggan-deep.256", or a folder
    z = torch.from_numpy(truncated_noise_sample(truncation=0.4, batch_size=3))
    y = torch.from_numpy(one_hot_from_names(["soap bubble", "coffee", "mushroom"], batch_size=3))
    with torch.no_grad():
        images = model(z, y, 0.4)   # (3, 3, 256, 256) in [-1, 1]

Unlike the reference, the returned model is already in eval mode with spectral norm folded: the reference, left in
train mode (as its README example does), runs one power iteration per call and so drifts very slightly.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch

from ..devices import cpu_has_fast_bf16, resolve_device
from ..errors import ConfigError
from ..nets.biggan import BigGANDeep, Precision
from ..zoo import biggan_format

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# On CPUs with AMX/AVX-512 BF16, the generator runs ~2.4x faster in bf16 than in fp32. Measured on full-size
# BigGAN-deep 128 and 256 with random weights, its output contrast scaled to that of real images (std ~0.5 in [-1, 1]):
# bf16 vs fp32 PSNR 49.5-53.7 dB, mean |diff| 0.003-0.005 (under an 8-bit level), max |diff| 0.03-0.04; 45 dB is the
# usual "indistinguishable" line, so "auto" uses bf16 on such CPUs and fp32 elsewhere (benchmarks/biggan.py
# re-measures it as "bf16_quality"). Pass precision="fp32" for outputs within 1e-5 of the reference.
CPU_AUTO_BF16 = True


def resolve_precision(device: torch.device, precision: str = "auto", bn_stats: str = "reference") -> Precision:
    """The compute policy for ``device``: "auto" is fp16 on CUDA, bf16 on CPUs with fast bf16 (see above), else
    fp32; channels_last everywhere (faster with oneDNN and cuDNN alike)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        elif device.type == "cpu" and CPU_AUTO_BF16 and cpu_has_fast_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision fp16 is only offered on CUDA; use fp32 or bf16 on the CPU")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Precision(dtype=dtype, channels_last=device.type in ("cuda", "cpu"), bn_stats=bn_stats)


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    return x


class BigGAN(BigGANDeep):
    """BigGAN-deep, called like the reference: ``model(z, class_vector, truncation) -> (N, 3, H, W)`` in [-1, 1].

    z: (N, 128) float (tensor or NumPy); class_vector: (N, 1000) one-hot or mixed; truncation: float in (0, 1].
    The output is a float32 tensor on the model's device.
    """

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        cache_dir: str | None = None,
        *,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        bn_stats: str = "reference",
    ) -> BigGAN:
        """Load ``biggan-deep.128/256/512`` (reference spellings ``biggan-deep-256`` accepted) or a folder with
        ``config.json`` + ``pytorch_model.bin``. Nothing is downloaded: a missing weight set raises WeightsError
        naming ``impasto models download``. ``cache_dir`` is accepted for compatibility and ignored (impasto's
        cache is ``$IMPASTO_HOME``).
        """
        if cache_dir is not None:
            log.info("cache_dir=%r ignored; impasto keeps weights under $IMPASTO_HOME", cache_dir)
        dev = resolve_device(device if device is not None else "cpu")
        folder = biggan_format.resolve(pretrained_model_name_or_path)
        model = biggan_format.load_biggan_dir(folder, resolve_precision(dev, precision, bn_stats), model_cls=cls)
        return model.to(dev)

    def forward(self, z: torch.Tensor, class_vector: torch.Tensor, truncation: float) -> torch.Tensor:  # type: ignore[override]
        return super().forward(_as_tensor(z), _as_tensor(class_vector), truncation)


def load_model(
    name_or_dir: str | os.PathLike[str] = "biggan-deep.256",
    device: str | torch.device = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
) -> BigGAN:
    """A ready BigGAN on ``device`` ("auto": CUDA when present) with the precision policy applied."""
    dev = resolve_device(device)
    folder = biggan_format.resolve(name_or_dir)
    model = biggan_format.load_biggan_dir(folder, resolve_precision(dev, precision, bn_stats), model_cls=BigGAN)
    return model.to(dev)
