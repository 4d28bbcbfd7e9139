"""Random weights in the exact file formats of LinearStyleTransfer's ``models.zip`` (full-size architectures).

Each file is a ``torch.save``d state dict with the reference's key names (``conv1.weight``, ``snet.convs.0.weight``,
``decoder.layer2.0.bias``, ...), made by instantiating impasto's key-compatible modules. Weights are He-initialised
and the learned matrices start near the identity so that images stay in a sensible range (random VGG stacks give
either saturated or flat pictures otherwise); they are still random enough that a wrong key, transpose or order
shows in the output.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from impasto.nets.linear import SPN, Decoder, Encoder, Transform

FILES = (
    "vgg_r31.pth", "vgg_r41.pth", "vgg_r51.pth", "dec_r31.pth", "dec_r41.pth", "r31.pth", "r41.pth", "r41_spn.pth",
)  # fmt: skip


def module_for(file: str) -> nn.Module:
    """The impasto module whose state dict has ``file``'s keys and shapes."""
    stem = file.removesuffix(".pth")
    if stem.startswith("vgg_"):
        return Encoder(stem[4:])
    if stem.startswith("dec_"):
        return Decoder(stem[4:])
    if stem == "r41_spn":
        return SPN()
    return Transform(stem)


def _he(module: nn.Module, gen: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)


def state(file: str, seed: int = 0, spread: float = 0.25) -> dict[str, torch.Tensor]:
    """A random state dict for one of :data:`FILES`; ``spread`` scales the decoders' last conv (larger: more
    contrast, pixels clipped at 0 and 1)."""
    gen = torch.Generator().manual_seed(seed + FILES.index(file))
    module = module_for(file)
    _he(module, gen)
    with torch.no_grad():
        if isinstance(module, Encoder):  # conv1: a near-identity colour mix, as the real one is a fixed affine map
            module.conv1.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1) + 0.1 * torch.randn(3, 3, 1, 1, generator=gen))
        if isinstance(module, Decoder):  # the last conv: outputs around 0.5 with a spread of about 0.25
            last = getattr(module, module._convs[-1][0])
            last.weight.mul_(spread)
            last.bias.fill_(0.5)
        if isinstance(module, Transform):  # matrices = I + a random part of about a third of it
            for net in (module.snet, module.cnet):
                k = net.matrix_size
                net.fc.weight.copy_(torch.randn(net.fc.weight.shape, generator=gen) * (0.3 / k))
                net.fc.bias.copy_(torch.eye(k).reshape(-1))
                net.convs[-1].weight.mul_(0.3)
        if isinstance(module, SPN):  # small gates keep the propagation stable
            module.decoder.layer7.weight.mul_(0.1)
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def write(file: str, folder: Path, seed: int = 0) -> Path:
    """Write ``folder/file`` (a reference-format state dict)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    torch.save(state(file, seed), path)
    return path


def write_all(folder: Path, files: tuple[str, ...] = FILES, seed: int = 0) -> Path:
    """Every file of ``models.zip`` (or ``files``) in ``folder``, as the reference's unzipped ``models/``."""
    for f in files:
        write(f, folder, seed)
    return folder


def write_zip(path: Path, files: tuple[str, ...] = FILES, seed: int = 0, prefix: str = "models/") -> Path:
    """A ``models.zip`` like the reference's: the files under ``models/`` (stored, not deflated: quick to write)."""
    tmp = path.parent / (path.stem + "-files")
    write_all(tmp, files, seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(prefix, "") if prefix else None
        for f in files:
            zf.write(tmp / f, prefix + f)
    for f in files:
        (tmp / f).unlink()
    tmp.rmdir()
    return path
