"""Training your own linear transformation module (``Train.py``) and SPN filter (``TrainSPN.py``).

Li, Liu, Kautz, Yang (CVPR 2019) train only the transformation module: the encoder, the decoder and the loss
network (VGG-19 to relu5_1) stay frozen. One step, as the reference's ``Train.py`` and ``libs/Criterion.py``::

    cF, sF  = encoder(content), encoder(style)                    # (B, C, h, w) at the transform layer
    out     = decoder(transform(cF, sF))                          # (B, 3, H, W), unclamped
    content = content_weight * sum_{l in content_layers} mean((phi_l(out) - phi_l(content))^2)
    style   = style_weight * sum_{l in style_layers} w_l * (||mu_l(out) - mu_l(style)||^2
                                                            + ||G_l(out) - G_l(style)||^2) / B
    G_l(x)  = phi_l(x) phi_l(x)^T / (c h w)                       # (B, c, c), not mean-removed

``phi`` is the r51 loss network; ``mu`` the per-channel mean; ``||.||^2`` a sum of squares over the batch (the
reference's ``MSELoss(size_average=False)``, then divided by the batch size). The content target is the content
image's own loss-network features (``cF_loss`` in Train.py), not the transformed features. Defaults as the
reference: content at r41, style at r11, r21, r31, r41 with equal weights (``style_layer_weights`` lets you change
them), ``style_weight`` 0.02, ``content_weight`` 1, Adam at 1e-4 and the learning rate of step ``i`` (1-based)
``lr / (1 + (i - 1) * 1e-5)`` (``adjust_learning_rate`` runs after each step), batch 8 of 256x256 crops.

The SPN (``TrainSPN.py``) learns to filter the r41 decoder's reconstruction of a photo back into the photo:
``loss = sum((spn(decoder(encoder(x)), x) - x)^2)`` (``MSELoss(size_average=False)``: a sum over the batch), Adam at
1e-3 with the same schedule; the reference trains it for r41 only (its r31 branch cannot run).

Images as the reference's ``libs/Loader.py``: the shorter side resized to ``image_size`` (bilinear), a random
``crop_size`` square, a random horizontal flip, RGB in [0, 1].

Departures from the reference, at the lines that make them:

- Randomness is stateless: the image order of each pass over a folder and each crop/flip come from sha256 of
  ``(seed, stream, index)``, never from the global RNG, so a resumed run draws exactly what the straight run
  would (bit-identical weights) and the next batch can be read while this one trains.
- The image order runs on across passes (``drop_last`` without dropping): a folder smaller than the batch works.
- The reference's ``Loader`` ignores ``loadSize`` (it resizes to ``fineSize``): ``image_size`` defaults to
  ``crop_size`` to match; set it larger to crop from a larger picture, as the option's name meant.
- An unreadable image is skipped for the next one in the folder (the reference's ``except: continue`` skips the
  whole step); a warning names it once.
- The trained module starts from PyTorch's default initialisation drawn from ``seed`` (the reference: the global
  RNG, unseeded).

Nothing here prints, parses arguments or writes files except through a :class:`Checkpointer` (the caller decides
where snapshots go; :class:`FileCheckpointer` is the one the CLI uses, atomic like every impasto file).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..devices import resolve_device
from ..errors import ConfigError, ImageError, WeightsError
from ..events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from ..imaging import load_image, pil_to_tensor
from ..media import make_grid, tensor_to_pil
from ..modelcache import ModelCache
from ..nets.linear import LAYERS, SPN, Decoder, Encoder, Transform, encoder_taps
from ..snapshots import Checkpointer, MemoryCheckpointer, read_state, save_state

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpointer",
    "FileCheckpointer",
    "FrozenNets",
    "MemoryCheckpointer",
    "TrainLinearConfig",
    "TrainResult",
    "TrainSPNConfig",
    "checkpoint_step",
    "frozen_file",
    "train_linear",
    "train_spn",
]

CHECKPOINT_FORMAT = "impasto-train-1"
_LR_DECAY = 1e-5  # Train.py / TrainSPN.py adjust_learning_rate: lr / (1 + iteration * 1e-5)


# --- configuration ------------------------------------------------------------------------------------------


def _check_common(cfg: TrainLinearConfig | TrainSPNConfig) -> None:
    if cfg.layer not in LAYERS:
        raise ConfigError(f"unknown layer {cfg.layer!r}; use one of {', '.join(LAYERS)}")
    if cfg.steps < 1:
        raise ConfigError(f"steps must be at least 1, got {cfg.steps}")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {cfg.batch_size}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ConfigError(f"learning rate must be a positive number, got {cfg.lr}")
    if cfg.lr_decay < 0:
        raise ConfigError(f"lr decay must be 0 or more, got {cfg.lr_decay}")
    if cfg.crop_size < 16 or cfg.crop_size % 8:
        raise ConfigError(f"crop size must be a multiple of 8 and at least 16, got {cfg.crop_size}")
    if cfg.image_size is not None and cfg.image_size < cfg.crop_size:
        raise ConfigError(f"image size ({cfg.image_size}) must be at least the crop size ({cfg.crop_size})")
    for name in ("checkpoint_every", "preview_every"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name.replace('_', ' ')} must be 0 (never) or more, got {getattr(cfg, name)}")


@dataclass(frozen=True)
class TrainLinearConfig:
    """How to train a transformation module (defaults: the reference's ``Train.py``)."""

    layer: str = "r41"  # the transform layer: r31 or r41
    steps: int = 100_000  # Train.py --niter
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = _LR_DECAY  # lr of step i = lr / (1 + (i - 1) * lr_decay)
    style_weight: float = 0.02
    content_weight: float = 1.0
    style_layers: tuple[str, ...] = ("r11", "r21", "r31", "r41")
    content_layers: tuple[str, ...] = ("r41",)  # through the loss network, whatever the transform layer
    style_layer_weights: tuple[float, ...] | None = None  # multi-level style weights; None: 1 each (reference)
    crop_size: int = 256  # Train.py --fineSize
    image_size: int | None = None  # shorter side before cropping; None: crop_size (what Loader.py really does)
    flip: bool = True  # RandomHorizontalFlip
    seed: int = 0
    checkpoint_every: int = 0  # steps between snapshots (0: only on cancel)
    preview_every: int = 0  # steps between Preview events (0: none)
    device: str = "auto"

    def replace(self, **changes: Any) -> TrainLinearConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> TrainLinearConfig:
        """Raise ConfigError (one sentence) for a value that is not allowed; returns self."""
        _check_common(self)
        taps = encoder_taps("r51")
        for what, names in (("style", self.style_layers), ("content", self.content_layers)):
            bad = [n for n in names if n not in taps]
            if bad or not names:
                got = ", ".join(bad) if bad else "none"
                raise ConfigError(f"{what} layers must be among {', '.join(taps)}; got {got}")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers "
                f"({', '.join(self.style_layers)}); give one per layer"
            )
        if self.style_weight < 0 or self.content_weight < 0:
            raise ConfigError("style and content weights must be 0 or more")
        return self

    @property
    def layer_weights(self) -> tuple[float, ...]:
        return self.style_layer_weights or (1.0,) * len(self.style_layers)


@dataclass(frozen=True)
class TrainSPNConfig:
    """How to train the SPN filter (defaults: the reference's ``TrainSPN.py``)."""

    layer: str = "r41"  # whose reconstruction the SPN learns to filter (the reference: r41 only)
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 1e-3
    lr_decay: float = _LR_DECAY
    crop_size: int = 256
    image_size: int | None = None  # TrainSPN.py passes loadSize=512, which Loader.py ignores
    flip: bool = True
    seed: int = 0
    checkpoint_every: int = 0
    preview_every: int = 0
    device: str = "auto"

    def replace(self, **changes: Any) -> TrainSPNConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> TrainSPNConfig:
        _check_common(self)
        return self


# Fields that do not change what is learnt: they may differ between a run and its resumption (``steps`` too: the
# schedule does not depend on the total, so a finished run can be continued for more steps).
_FREE = {"steps", "checkpoint_every", "preview_every", "device"}


def _settings(cfg: TrainLinearConfig | TrainSPNConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if f.name not in _FREE:
            value = getattr(cfg, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# --- checkpoints --------------------------------------------------------------------------------------------


class FileCheckpointer:
    """Snapshots in one file at ``path``, replaced atomically (:func:`impasto.media.atomic_write`); read back
    with ``torch.load(weights_only=True)``. A full or read-only disk raises (the caller decides what to do)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def save(self, state: dict[str, Any]) -> None:
        from ..media import atomic_write

        atomic_write(self.path, lambda tmp: save_state(state, tmp))

    def load(self) -> dict[str, Any] | None:
        return read_state(self.path, CHECKPOINT_FORMAT, "training")


def checkpoint_step(checkpointer: Checkpointer, kind: str) -> int | None:
    """The step a resumed run of ``kind`` (``linear`` or ``spn``) would continue from, None with no snapshot."""
    state = checkpointer.load()
    if state is None:
        return None
    if state.get("kind") != kind:
        raise ConfigError(f"the checkpoint is of a {state.get('kind')} training run, not {kind}")
    return int(state["step"])


def _to_cpu(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# --- frozen networks ----------------------------------------------------------------------------------------

# reference file -> (the weight set it is installed with, the CLI option that gives it directly)
_FROZEN_SOURCE = {
    "vgg_r31.pth": ("linear.r31", "--vgg"),
    "vgg_r41.pth": ("linear.r41", "--vgg"),
    "dec_r31.pth": ("linear.r31", "--decoder"),
    "dec_r41.pth": ("linear.r41", "--decoder"),
    "vgg_r51.pth": ("linear.vgg_r51", "--loss-net"),
}

NetSource = str | os.PathLike[str] | nn.Module | None


def frozen_file(file: str) -> Path:
    """The installed copy of reference file ``file`` (e.g. ``vgg_r41.pth``); WeightsError saying how to get it.

    Looked up in its weight set's cache folder whether or not the set's other files are there: training needs
    the encoder and decoder, not the transformation module of the same set.
    """
    from ..zoo import store

    name, flag = _FROZEN_SOURCE[file]
    path = store.weights_dir(name) / file
    if path.is_file():
        return path
    raise WeightsError(
        f"training needs {file}, which is not installed; run 'impasto models download {name}' on a connected "
        f"machine, 'impasto models import {name} models.zip' with the reference's models.zip, or pass {flag} PATH"
    )


def _load_frozen(file: str, source: NetSource, device: torch.device, models: ModelCache) -> nn.Module:
    """A frozen (eval, no grad) module for reference file ``file`` on ``device``, cached in ``models``."""
    if isinstance(source, nn.Module):
        return source.to(device).eval().requires_grad_(False)
    from ..zoo import linear_format

    path = Path(source) if source is not None else frozen_file(file)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    key: Hashable = ("linear-frozen", file, str(path.resolve()), path.stat().st_mtime_ns, str(device))
    return models.get(key, lambda: linear_format.load_file(path, file).to(device).eval().requires_grad_(False))


@dataclass(frozen=True)
class FrozenNets:
    """Where the frozen networks come from: a file path, a module, or None for the installed copy."""

    vgg: NetSource = None
    decoder: NetSource = None
    loss_net: NetSource = None


def _digest(*modules: nn.Module) -> str:
    """sha256 of the frozen weights (a resumed run must train against the same networks)."""
    h = hashlib.sha256()
    for m in modules:
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- data ---------------------------------------------------------------------------------------------------


def _draw(seed: int, *parts: object) -> int:
    """A 63-bit number from sha256 of (seed, parts): the stateless source of every random choice here."""
    text = ":".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _generator(seed: int, *parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(_draw(seed, *parts))


@dataclass(frozen=True)
class _Sample:
    index: int  # which file of the folder
    crop_u: tuple[float, float]  # where the crop sits, as fractions of the free room (y, x)
    flip: bool


class _Folder:
    """The images of one folder as the reference's ``Dataset``: resize the shorter side, random crop, flip."""

    def __init__(self, files: Sequence[Path], stream: str, cfg: TrainLinearConfig | TrainSPNConfig) -> None:
        self.files = list(files)
        self.stream, self.seed, self.batch = stream, cfg.seed, cfg.batch_size
        self.crop, self.short = cfg.crop_size, cfg.image_size or cfg.crop_size
        self.flip = cfg.flip
        self._perm: tuple[int, torch.Tensor] | None = None
        self._bad: set[int] = set()

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:  # shuffle=True: a new order on every pass
            self._perm = (epoch, torch.randperm(len(self.files), generator=_generator(self.seed, self.stream, epoch)))
        return self._perm[1]

    def plan(self, step: int) -> list[_Sample]:
        """The samples of ``step`` (1-based): the same for a given seed however the run got there."""
        n, out = len(self.files), []
        for i in range(self.batch):
            k = (step - 1) * self.batch + i  # the k-th image drawn by this run
            epoch, pos = divmod(k, n)
            u = torch.rand(3, generator=_generator(self.seed, self.stream, "crop", k)).tolist()
            out.append(_Sample(int(self._order(epoch)[pos]), (u[0], u[1]), self.flip and u[2] < 0.5))
        return out

    def resized(self, index: int) -> Image.Image:
        """File ``index`` with its shorter side at ``image_size`` (torchvision ``Resize(int)``: bilinear, the
        longer side truncated)."""
        img = load_image(self.files[index])
        w, h = img.size
        if w <= h:
            size = (self.short, int(self.short * h / w))
        else:
            size = (int(self.short * w / h), self.short)
        return img if img.size == size else img.resize(size, Image.Resampling.BILINEAR)

    def _readable(self, index: int) -> Image.Image:
        for j in range(len(self.files)):  # an unreadable file: the next one instead (departure, see the top)
            i = (index + j) % len(self.files)
            if i in self._bad:
                continue
            try:
                return self.resized(i)
            except ImageError as exc:
                self._bad.add(i)
                log.warning("skipping an image that cannot be used: %s", exc)
        raise ImageError(f"none of the {len(self.files)} images in the {self.stream} folder can be read")

    def load(self, sample: _Sample) -> torch.Tensor:
        """One sample as ``(3, crop, crop)`` float in [0, 1]."""
        img = self._readable(sample.index)
        w, h = img.size
        top = min(int(sample.crop_u[0] * (h - self.crop + 1)), h - self.crop)
        left = min(int(sample.crop_u[1] * (w - self.crop + 1)), w - self.crop)
        img = img.crop((left, top, left + self.crop, top + self.crop))
        if sample.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(img)[0]

    def centre(self, index: int = 0) -> torch.Tensor:
        """File ``index`` resized and centre-cropped: ``(1, 3, crop, crop)`` (the fixed preview input)."""
        img = self._readable(index)
        w, h = img.size
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        return pil_to_tensor(img.crop((left, top, left + self.crop, top + self.crop)))

    def fingerprint(self) -> list[str]:
        return [f"{p.name}:{p.stat().st_size}" for p in self.files]


class _Batches:
    """Reads the batch of step ``s + 1`` in threads while step ``s`` trains (PIL decodes without the GIL)."""

    def __init__(self, folders: Sequence[_Folder], device: torch.device, workers: int) -> None:
        self.folders, self.device = folders, device
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="impasto-train")
        self.pending: dict[int, list[list[concurrent.futures.Future[torch.Tensor]]]] = {}

    def _submit(self, step: int) -> None:
        if step not in self.pending:
            self.pending[step] = [[self.pool.submit(f.load, s) for s in f.plan(step)] for f in self.folders]

    def get(self, step: int, prefetch: bool) -> list[torch.Tensor]:
        self._submit(step)
        futures = self.pending.pop(step)
        if prefetch:
            self._submit(step + 1)
        return [torch.stack([f.result() for f in group]).to(self.device) for group in futures]

    def close(self) -> None:
        for groups in self.pending.values():
            for group in groups:
                for f in group:
                    f.cancel()
        self.pool.shutdown(wait=True)


# --- losses -------------------------------------------------------------------------------------------------


def _gram(f: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, C)`` ``F F^T / (C H W)`` (Criterion.py's GramMatrix; not mean-removed)."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)  # (B, C, HW)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def _style_term(out: torch.Tensor, target_mean: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Criterion.py's styleLoss: (sum of squared mean differences + sum of squared Gram differences) / B."""
    mean = out.mean(dim=(2, 3))  # (B, C)
    return ((mean - target_mean) ** 2).sum() / out.shape[0] + ((_gram(out) - target_gram) ** 2).sum() / out.shape[0]


# --- the loop -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """A trained module: ``state_dict`` with the reference's keys (CPU float32; ``torch.save`` it and the
    reference loads it), ``step`` steps done in all (resumed ones included), the ``losses`` of the last step."""

    kind: str  # "linear" or "spn"
    layer: str
    file: str  # the reference file it replaces: r31.pth, r41.pth or r41_spn.pth
    state_dict: Mapping[str, torch.Tensor]
    step: int
    losses: Mapping[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)


def _init_from(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """PyTorch's default init of every Conv2d/Linear (kaiming_uniform with a=sqrt(5): U(+-1/sqrt(fan_in)) for
    weight and bias), drawn from ``gen`` instead of the global RNG."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=gen)
    return module


def _fresh(make: Callable[[], nn.Module], seed: int, device: torch.device) -> nn.Module:
    with torch.device("meta"):  # built without touching the global RNG, then initialised from the seed
        module = make()
    module = module.to_empty(device="cpu")
    return _init_from(module, _generator(seed, "init")).to(device)


@dataclass
class _Run:
    """What the generic loop needs from one kind of training."""

    kind: str
    cfg: TrainLinearConfig | TrainSPNConfig
    model: nn.Module
    folders: list[_Folder]
    loss: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]]  # batches -> {"loss": total, ...}
    preview: Callable[[], Image.Image]
    fingerprint: str
    info: dict[str, Any]
    file: str


def _snapshot(run: _Run, step: int, optimizer: torch.optim.Optimizer, losses: Mapping[str, float]) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": run.kind,
        "layer": run.cfg.layer,
        "step": step,
        "model": _to_cpu(run.model.state_dict()),
        "optimizer": _to_cpu(optimizer.state_dict()),
        # the data order and crops are functions of (seed, index): the seed and the step are the whole RNG state
        "rng": {"seed": run.cfg.seed, "scheme": "sha256(seed, stream, index)"},
        "fingerprint": run.fingerprint,
        "settings": _settings(run.cfg),
        "losses": dict(losses),
    }


def _restore(run: _Run, state: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> int:
    if state.get("kind") != run.kind:
        raise ConfigError(f"the checkpoint is of a {state.get('kind')} training run, not {run.kind}")
    if state.get("fingerprint") != run.fingerprint:
        then, now = state.get("settings") or {}, _settings(run.cfg)
        changed = [f"{k} {then.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(then) | set(now))
                   if then.get(k) != now.get(k)]  # fmt: skip
        what = "; ".join(changed) if changed else "the images or the frozen networks differ"
        raise ConfigError(f"the checkpoint was made with different settings ({what}); resume with the same ones")
    run.model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def _lr(cfg: TrainLinearConfig | TrainSPNConfig, step: int) -> float:
    """The learning rate of step ``step`` (1-based): the reference sets lr / (1 + i * decay) after step i."""
    return cfg.lr / (1.0 + (step - 1) * cfg.lr_decay)


def _result(run: _Run, step: int, losses: Mapping[str, float], elapsed: float) -> TrainResult:
    sd = {k: v.detach().float().cpu().clone() for k, v in run.model.state_dict().items()}
    return TrainResult(run.kind, run.cfg.layer, run.file, sd, step, dict(losses), elapsed, dict(run.info))


def _loop(
    run: _Run, device: torch.device, checkpointer: Checkpointer | None, resume: bool,
    callback: Callback | None, cancel: CancelToken | None,
) -> TrainResult:  # fmt: skip
    cfg, clock = run.cfg, Stopwatch()
    optimizer = torch.optim.Adam([p for p in run.model.parameters() if p.requires_grad], lr=cfg.lr)
    start = 0
    if resume and checkpointer is not None:
        state = checkpointer.load()
        if state is not None:
            start = _restore(run, state, optimizer)
    info = {**run.info, "device": str(device), **({"resumed_at": start} if start else {})}
    emit(callback, Started(total=cfg.steps, info=info))
    losses: dict[str, float] = {}
    saved_at = start
    batches = _Batches(run.folders, device, workers=min(8, max(2, 2 * cfg.batch_size)))
    run.model.train()
    try:
        for step in range(start + 1, cfg.steps + 1):
            if cancel is not None and cancel.cancelled:
                partial = None if step - 1 == start else _result(run, step - 1, losses, clock())
                if partial is not None and checkpointer is not None and saved_at != step - 1:
                    checkpointer.save(_snapshot(run, step - 1, optimizer, losses))
                cancel.check(partial)
            data = batches.get(step, prefetch=step < cfg.steps)
            lr = _lr(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            terms = run.loss(data)
            terms["loss"].backward()
            optimizer.step()
            losses = {k: float(v.detach()) for k, v in terms.items()}
            if not math.isfinite(losses["loss"]):
                raise ConfigError(f"the loss became {losses['loss']} at step {step}; lower the learning rate")
            emit(callback, Progress(step, cfg.steps, losses, clock(), info={"lr": lr}))
            if cfg.checkpoint_every and checkpointer is not None and step % cfg.checkpoint_every == 0:
                checkpointer.save(_snapshot(run, step, optimizer, losses))
                saved_at = step
            if cfg.preview_every and step % cfg.preview_every == 0:
                run.model.eval()
                with torch.no_grad():
                    emit(callback, Preview(step, run.preview(), info={"kind": run.kind}))
                run.model.train()
    finally:
        batches.close()
    end = max(start, cfg.steps)
    if cfg.checkpoint_every and checkpointer is not None and saved_at != end and end > start:
        checkpointer.save(_snapshot(run, end, optimizer, losses))  # the end too, so a run can be continued
    result = _result(run, end, losses, clock())
    emit(callback, Finished(result, clock()))
    return result


def _folder(files: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError(f"no {what} images to train on")
    return paths


def _strip(pil: Image.Image, *rest: Image.Image) -> Image.Image:
    return make_grid([pil, *rest], ncol=1 + len(rest), padding=2)


def train_linear(
    content_files: Sequence[str | os.PathLike[str]],
    style_files: Sequence[str | os.PathLike[str]],
    config: TrainLinearConfig,
    *,
    nets: FrozenNets | None = None,
    checkpointer: Checkpointer | None = None,
    resume: bool = False,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
) -> TrainResult:
    """Train a transformation module at ``config.layer`` on random crops of ``content_files`` x ``style_files``.

    Frozen networks from ``nets`` (the installed ``linear.<layer>`` encoder/decoder and ``linear.vgg_r51`` by
    default). Events: Started (``info``: model, layer, resumed_at), Progress per step (``losses``: loss, content,
    style; ``info["lr"]``), Preview every ``preview_every`` steps (content | style | result of the first content
    and style images, centre-cropped), Finished. ``resume``: continue from ``checkpointer``'s snapshot (settings,
    images and frozen networks must match). ``cancel``: a checkpoint is saved (with a checkpointer) and
    Cancelled(partial=TrainResult) raised; ``partial`` is None when this call took no step.
    """
    cfg = config.validate()
    device = resolve_device(cfg.device)
    cache = models if models is not None else ModelCache()
    nets = nets or FrozenNets()
    layer = cfg.layer
    contents = _Folder(_folder(content_files, "content"), "content", cfg)
    styles = _Folder(_folder(style_files, "style"), "style", cfg)
    encoder = _load_frozen(f"vgg_{layer}.pth", nets.vgg, device, cache)
    decoder = _load_frozen(f"dec_{layer}.pth", nets.decoder, device, cache)
    loss_net = _load_frozen("vgg_r51.pth", nets.loss_net, device, cache)
    if not (isinstance(encoder, Encoder) and encoder.layer == layer and isinstance(decoder, Decoder)):
        raise WeightsError(f"the encoder and decoder given are not the {layer} ones")
    if not isinstance(loss_net, Encoder) or loss_net.layer != "r51":
        raise WeightsError("the loss network given is not the r51 encoder (vgg_r51.pth)")
    transform = _fresh(lambda: Transform(layer), cfg.seed, device)
    style_layers, content_layers = cfg.style_layers, cfg.content_layers
    taps = sorted(set(style_layers) | set(content_layers), key=encoder_taps("r51").index)
    weights = cfg.layer_weights

    def loss(data: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        content, style = data
        with torch.no_grad():  # everything on the inputs' side is a constant of the step
            cF, sF = encoder(content), encoder(style)
            c_loss = loss_net.features(content, content_layers)
            s_loss = loss_net.features(style, style_layers)
            s_mean = {k: v.mean(dim=(2, 3)) for k, v in s_loss.items()}
            s_gram = {k: _gram(v) for k, v in s_loss.items()}
        out = decoder(transform(cF, sF))  # (B, 3, H, W), unclamped into the loss network (as the reference)
        t_feats = loss_net.features(out, taps)
        content_term = sum(
            (nn.functional.mse_loss(t_feats[k], c_loss[k]) for k in content_layers), torch.zeros((), device=device)
        )
        style_term = sum(
            (w * _style_term(t_feats[k], s_mean[k], s_gram[k]) for k, w in zip(style_layers, weights, strict=True)),
            torch.zeros((), device=device),
        )
        content_term = content_term * cfg.content_weight
        style_term = style_term * cfg.style_weight
        return {"loss": content_term + style_term, "content": content_term, "style": style_term}

    c_fixed, s_fixed = contents.centre(0), styles.centre(0)

    def preview() -> Image.Image:
        c, s = c_fixed.to(device), s_fixed.to(device)
        out = decoder(transform(encoder(c), encoder(s))).clamp(0, 1)
        return _strip(tensor_to_pil(c_fixed), tensor_to_pil(s_fixed), tensor_to_pil(out.cpu()))

    fingerprint = hashlib.sha256(
        repr((_settings(cfg), contents.fingerprint(), styles.fingerprint(), _digest(encoder, decoder, loss_net)))
        .encode()
    ).hexdigest()  # fmt: skip
    run = _Run(
        "linear", cfg, transform, [contents, styles], loss, preview, fingerprint,
        {"model": f"linear {layer} transformation module (training)", "layer": layer}, f"{layer}.pth",
    )  # fmt: skip
    return _loop(run, device, checkpointer, resume, callback, cancel)


def train_spn(
    content_files: Sequence[str | os.PathLike[str]],
    config: TrainSPNConfig,
    *,
    nets: FrozenNets | None = None,
    checkpointer: Checkpointer | None = None,
    resume: bool = False,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
) -> TrainResult:
    """Train the SPN filter to turn the ``config.layer`` decoder's reconstruction of a photo back into the photo.

    Frozen encoder/decoder from ``nets`` (default: the installed ``linear.<layer>`` ones; ``loss_net`` unused).
    Events as :func:`train_linear` (``losses``: loss); Preview: photo | reconstruction | filtered, of the first
    content image. Returns a TrainResult whose ``state_dict`` has ``r41_spn.pth``'s keys.
    """
    cfg = config.validate()
    device = resolve_device(cfg.device)
    cache = models if models is not None else ModelCache()
    nets = nets or FrozenNets()
    layer = cfg.layer
    contents = _Folder(_folder(content_files, "content"), "content", cfg)
    encoder = _load_frozen(f"vgg_{layer}.pth", nets.vgg, device, cache)
    decoder = _load_frozen(f"dec_{layer}.pth", nets.decoder, device, cache)
    if not (isinstance(encoder, Encoder) and encoder.layer == layer and isinstance(decoder, Decoder)):
        raise WeightsError(f"the encoder and decoder given are not the {layer} ones")
    spn = _fresh(SPN, cfg.seed, device)

    def loss(data: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        (content,) = data
        with torch.no_grad():
            rebuilt = decoder(encoder(content))  # (B, 3, H, W): what the SPN learns to clean up
        filtered = spn(rebuilt, content)
        return {"loss": ((filtered - content) ** 2).sum()}  # MSELoss(size_average=False): a sum, batch included

    c_fixed = contents.centre(0)

    def preview() -> Image.Image:
        c = c_fixed.to(device)
        rebuilt = decoder(encoder(c))
        filtered = spn(rebuilt, c)
        return _strip(*(tensor_to_pil(x.clamp(0, 1).cpu()) for x in (c, rebuilt, filtered)))

    fingerprint = hashlib.sha256(
        repr((_settings(cfg), contents.fingerprint(), _digest(encoder, decoder))).encode()
    ).hexdigest()
    run = _Run(
        "spn", cfg, spn, [contents], loss, preview, fingerprint,
        {"model": f"SPN filter on the {layer} reconstruction (training)", "layer": layer}, "r41_spn.pth",
    )  # fmt: skip
    return _loop(run, device, checkpointer, resume, callback, cancel)
