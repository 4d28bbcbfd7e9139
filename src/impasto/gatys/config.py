"""PaintConfig: every neural-style-pt option with its meaning and default, plus impasto's extras (off by default).

The CLI (``impasto paint``) generates its options from these fields: ``metadata["help"]`` is the help text,
``metadata["cli"] = False`` hides a field. Values that need the loaded network (layer names, the multi-device
split) are checked again once it is known; :meth:`PaintConfig.validate` checks everything else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = [
    "BACKENDS", "CHECKPOINTING", "HISTORY_DTYPES", "LINE_SEARCHES", "NEURAL_STYLE_DEFAULTS", "STYLE_LOSSES",
    "PaintConfig", "auto_scales", "parse_list", "parse_memory",
]  # fmt: skip

STYLE_LOSSES = ("gram", "w2")
BACKENDS = ("nn", "cudnn", "mkl", "mkldnn", "openmp", "mkl,cudnn", "cudnn,mkl")
LINE_SEARCHES = ("none", "strong_wolfe")
CHECKPOINTING = ("auto", "on", "off")
HISTORY_DTYPES = ("auto", "float32", "bfloat16")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str | int) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GB"``, ``"2GiB"`` or a byte count -> bytes; else ConfigError naming the value."""
    raw = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in _UNITS and raw[-1:] else ""
    number = raw[: len(raw) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"max_memory must be a size like 8G, 512M or 1.5GB, not {text!r}")
    return int(value)


# neural-style-pt's values for the fields whose default is "the network's": a feature network may recommend others
# (FeatureSource.recommended; the MobileNetV2 takes its values from impasto.nets.magenta.PAINT_DEFAULTS).
# ``init`` and ``style_loss`` are the choices that decide what is painted (they are in a checkpoint's settings, see
# :meth:`PaintConfig.resolve_choices`); the weights follow from them. A network may recommend a style weight per
# style loss (``recommended["style_weights"]``, e.g. the W2 loss is ~10x the Gram loss at the same match).
NEURAL_STYLE_DEFAULTS: dict[str, Any] = {
    "init": "random",
    "style_loss": "gram",
    "content_weight": 5.0,
    "style_weight": 100.0,
    "tv_weight": 1e-3,
    "lbfgs_line_search": "none",
}
_CHOICES = ("init", "style_loss")


def _f(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - "help" reads best here
    return field(default=default, metadata={"help": help, **extra})


def parse_list(value: str | Sequence[Any] | None, cast: type = str) -> tuple[Any, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``("a", "b")`` (items cast); None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if not item:
                continue
        try:
            out.append(cast(item))
        except (TypeError, ValueError):
            raise ConfigError(f"cannot read {item!r} as {cast.__name__} in {value!r}") from None
    return tuple(out)


def auto_scales(image_size: int, start: int = 128) -> tuple[int, ...]:
    """``scales="auto"``: sizes growing by sqrt(2) from ``start`` up to ``image_size`` (128, 181, 256, 362, 512).

    A step within 10% of ``image_size`` is dropped (it would repeat the last scale); ``image_size`` <= ``start``
    gives the single scale ``(image_size,)``.
    """
    sizes: list[int] = []
    s = float(start)
    while s < image_size / 1.1:
        sizes.append(round(s))
        s *= math.sqrt(2)
    return (*sizes, int(image_size))


@dataclass(frozen=True)
class PaintConfig:
    """Options for painting by optimisation; names, meanings and defaults are neural-style-pt's.

    Departures, none of which changes a VGG/NIN run:

    * ``init``, ``style_loss``, ``content_weight``, ``style_weight``, ``tv_weight``, ``lbfgs_line_search``,
      ``content_layers`` and ``style_layers`` default to None, "what the feature network recommends"
      (:meth:`resolve`): for VGG and NIN exactly neural-style-pt's random init, Gram loss, 5, 100, 1e-3, no line
      search, ``relu4_2`` and ``relu1_1,...,relu5_1`` (NIN: impasto's layer defaults, since upstream's VGG names
      do not exist there); the offline MobileNetV2 needs other values (it paints strokes from the fast network's
      stylised start with the W2 loss: :data:`impasto.nets.magenta.PAINT_DEFAULTS`).
    * ``gpu`` defaults to ``"auto"``: GPU 0 when there is one, else the CPU (upstream's ``0`` fails without CUDA).
    * ``model`` picks a registry weight set; ``model_file`` still takes any file.
    """

    # --- basic -------------------------------------------------------------------------------------------------
    image_size: int = _f(512, "longest side of the painting in pixels")
    style_blend_weights: tuple[float, ...] | None = _f(None, "weight per style image, normalised to sum to 1")
    style_scale: float = _f(1.0, "style images are resized to image_size * style_scale")
    original_colors: bool = _f(False, "keep the content image's colours (luminance transfer)")
    gpu: str = _f("auto", "device: auto, c/cpu, a GPU number, or a list like 0,1,c to split layers over devices")
    # --- optimisation ------------------------------------------------------------------------------------------
    content_weight: float | None = _f(None, "content loss weight (default: the network's; 5 for VGG/NIN)")
    style_weight: float | None = _f(None, "style loss weight (default: the network's; 100 for VGG/NIN)")
    tv_weight: float | None = _f(
        None, "total-variation weight, 0 turns it off (default: the network's; 1e-3 for VGG/NIN)"
    )
    normalize_weights: bool = _f(False, "divide each layer's weight by the largest dimension of its target")
    normalize_gradients: bool = _f(False, "neural-style-pt's gradient scaling (scales each layer's gradient by w^2)")
    num_iterations: int = _f(1000, "number of optimisation steps")
    init: str | None = _f(
        None,
        "start from random noise, an image, or the fast network's stylised result: Magenta's arbitrary network "
        "applied to the content at image_size (random|image|stylized; default: the network's, random for VGG/NIN)",
    )
    init_image: str | None = _f(None, "image to start from with init=image (default: the content image)")
    optimizer: str = _f("lbfgs", "lbfgs or adam")
    learning_rate: float = _f(1.0, "Adam's learning rate")
    lbfgs_num_correction: int = _f(100, "L-BFGS history size")
    lbfgs_line_search: str | None = _f(
        None, "L-BFGS line search: none or strong_wolfe (default: the network's; none for VGG/NIN, as neural-style-pt)"
    )
    # --- output ------------------------------------------------------------------------------------------------
    print_iter: int = _f(50, "report per-layer losses every N steps (0: never)")
    save_iter: int = _f(100, "save an intermediate image every N steps (0: never)")
    # --- network -----------------------------------------------------------------------------------------------
    model: str | None = _f(None, "registry weight set (vgg19.caffe, vgg16.caffe, nin.caffe, vgg19.torch, ...)")
    model_file: str | None = _f(None, "a VGG/NIN .pth file (layout recognised from its keys)")
    pooling: str = _f("max", "max or avg pooling in the network")
    content_layers: tuple[str, ...] | None = _f(None, "comma-separated content layers (default: the network's)")
    style_layers: tuple[str, ...] | None = _f(None, "comma-separated style layers (default: the network's)")
    disable_check: bool = _f(False, "ignore unexpected keys in the model file")
    backend: str = _f("nn", "accepted for compatibility; cuDNN is always used on CUDA")
    cudnn_autotune: bool = _f(False, "let cuDNN benchmark convolution algorithms (CUDA only)")
    seed: int = _f(-1, "random seed (-1: a new one each run)")
    multidevice_strategy: str = _f(
        "4,7,29",
        "where to split the network over the devices in gpu (indices as neural-style-pt counts, or layer names)",
    )
    # --- impasto extras: off by default (see gatys.optimize, gatys.fastpath, gatys.checkpoint) --------------------
    scales: tuple[int, ...] | None = _f(
        None,
        "coarse-to-fine sizes ending at image_size, e.g. 128,181,256,362,512, or auto (steps of sqrt(2) from 128)",
    )
    scale_iterations: tuple[int, ...] | None = _f(
        None,
        "iterations per scale, one number or one per scale (default: num_iterations is one budget split over the "
        "scales, each scale's share inversely proportional to its size, so the coarse scales are cheap)",
    )
    fast: bool = _f(False, "fast path: bf16 channels_last network where the hardware has it, losses in fp32")
    checkpoint_every: int = _f(0, "save a checkpoint every N steps (0: never)")
    checkpoint_path: str | None = _f(None, "checkpoint file (the CLI's default: OUT.ckpt beside the output)")
    resume: bool = _f(False, "continue from the checkpoint at checkpoint_path (from the start if none yet)")
    style_loss: str | None = _f(
        None,
        "style loss: gram (neural-style-pt's Gram matrices) or w2 (Wasserstein-2 distance between the features' "
        "means and covariances, as crowsonkb's style-transfer-pytorch); default: the network's, gram for VGG/NIN",
    )
    average: bool = _f(False, "the result of each scale is an exponential moving average of its iterates")
    average_decay: float = _f(0.99, "decay of the moving average (average): closer to 1 averages more steps")
    save_all_scales: bool = _f(False, "with scales, save intermediate images at every scale (default: the last only)")
    # --- print size: the memory plan (gatys.memory) and the exact tiled loss pass (gatys.tiled) -----------------
    max_memory: str | None = _f(None, "cap on the run's peak memory, e.g. 8G or 512M (default: what the device has)")
    tile_size: int = _f(0, "tile side in pixels for the exact tiled loss pass (0: the memory plan chooses, -1: never)")
    network_checkpointing: str = _f(
        "auto", "gradient checkpointing through the network: auto (when the memory plan needs it), on or off"
    )
    lbfgs_history_dtype: str = _f(
        "auto", "storage of the L-BFGS history: float32, bfloat16, or auto (the memory plan chooses)"
    )

    def __post_init__(self) -> None:
        # Accept neural-style-pt spellings: "0,1" strings for lists, 0/1 for original_colors, ints for gpu.
        fix = object.__setattr__
        fix(self, "style_blend_weights", parse_list(self.style_blend_weights, float))
        fix(self, "content_layers", parse_list(self.content_layers, str) or None)
        fix(self, "style_layers", parse_list(self.style_layers, str) or None)
        if isinstance(self.scales, str) and self.scales.strip().lower() == "auto":
            fix(self, "scales", auto_scales(self.image_size))
        fix(self, "scales", parse_list(self.scales, int) or None)
        fix(self, "scale_iterations", parse_list(self.scale_iterations, int) or None)
        fix(self, "gpu", str(self.gpu).strip())
        fix(self, "multidevice_strategy", str(self.multidevice_strategy).strip())
        if isinstance(self.original_colors, int) and not isinstance(self.original_colors, bool):
            if self.original_colors not in (0, 1):
                raise ConfigError(f"original_colors must be 0 or 1, not {self.original_colors}")
            fix(self, "original_colors", bool(self.original_colors))

    def replace(self, **changes: Any) -> PaintConfig:
        """A copy with ``changes``; unknown names raise ConfigError listing the fields."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown paint option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def validate(self, num_styles: int | None = None) -> PaintConfig:
        """Raise ConfigError (one sentence) for any value out of range; returns self."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(
            isinstance(self.image_size, int) and self.image_size >= 16,
            f"image_size must be at least 16, not {self.image_size}",
        )
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            need(value is None or (math.isfinite(value) and value >= 0), f"{name} must be a number >= 0, not {value}")
        need(
            self.lbfgs_line_search is None or self.lbfgs_line_search in LINE_SEARCHES,
            f"lbfgs_line_search must be one of {', '.join(LINE_SEARCHES)}, not {self.lbfgs_line_search!r}",
        )
        need(
            math.isfinite(self.style_scale) and self.style_scale > 0, f"style_scale must be > 0, not {self.style_scale}"
        )
        need(self.num_iterations >= 1, f"num_iterations must be at least 1, not {self.num_iterations}")
        need(
            self.init in (None, "random", "image", "stylized"),
            f"init must be random, image or stylized, not {self.init!r}",
        )
        need(self.optimizer in ("lbfgs", "adam"), f"optimizer must be 'lbfgs' or 'adam', not {self.optimizer!r}")
        need(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"learning_rate must be > 0, not {self.learning_rate}",
        )
        need(
            self.lbfgs_num_correction >= 1, f"lbfgs_num_correction must be at least 1, not {self.lbfgs_num_correction}"
        )
        need(self.print_iter >= 0, f"print_iter must be >= 0, not {self.print_iter}")
        need(self.save_iter >= 0, f"save_iter must be >= 0, not {self.save_iter}")
        need(self.pooling in ("max", "avg"), f"pooling must be 'max' or 'avg', not {self.pooling!r}")
        need(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        need(
            self.style_loss is None or self.style_loss in STYLE_LOSSES,
            f"style_loss must be one of {', '.join(STYLE_LOSSES)}, not {self.style_loss!r}",
        )
        need(
            math.isfinite(self.average_decay) and 0 < self.average_decay < 1,
            f"average_decay must be between 0 and 1 (exclusive), not {self.average_decay}",
        )
        need(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, not {self.checkpoint_every}")
        need(
            isinstance(self.tile_size, int) and (self.tile_size in (0, -1) or self.tile_size >= 64),
            f"tile_size must be 0 (auto), -1 (never tile) or at least 64 pixels, not {self.tile_size}",
        )
        need(
            self.network_checkpointing in CHECKPOINTING,
            f"network_checkpointing must be one of {', '.join(CHECKPOINTING)}, not {self.network_checkpointing!r}",
        )
        need(
            self.lbfgs_history_dtype in HISTORY_DTYPES,
            f"lbfgs_history_dtype must be one of {', '.join(HISTORY_DTYPES)}, not {self.lbfgs_history_dtype!r}",
        )
        if self.max_memory is not None:
            parse_memory(self.max_memory)  # raises ConfigError naming the value
        if self.style_blend_weights is not None:
            bad = [w for w in self.style_blend_weights if not (math.isfinite(w) and w >= 0)]
            need(not bad, f"style_blend_weights must be numbers >= 0, got {bad[0] if bad else ''}")
            need(sum(self.style_blend_weights) > 0, "style_blend_weights must not all be zero")
            if num_styles is not None:
                need(
                    len(self.style_blend_weights) == num_styles,
                    f"{len(self.style_blend_weights)} style_blend_weights given for {num_styles} style image(s); "
                    "give one weight per style image",
                )
        if num_styles is not None:
            need(num_styles >= 1, "at least one style image is needed")
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            need(value is None or len(value) > 0, f"{name} must name at least one layer")
        if self.scales is not None:
            bad_scale = [s for s in self.scales if s < 16]
            need(not bad_scale, f"every scale must be at least 16 pixels, got {bad_scale[0] if bad_scale else ''}")
            need(
                self.scales[-1] == self.image_size,
                f"the last scale must be image_size ({self.image_size}), not {self.scales[-1]}; "
                "list the sizes coarse to fine ending at image_size",
            )
        if self.scales is not None and self.scale_iterations is None:
            need(
                self.num_iterations >= len(self.scales),
                f"num_iterations {self.num_iterations} is split over the {len(self.scales)} scales and must be at "
                f"least {len(self.scales)}; give more iterations, fewer scales or scale_iterations",
            )
        if self.scale_iterations is not None:
            need(self.scales is not None, "scale_iterations needs scales")
            bad_iters = [n for n in self.scale_iterations if n < 1]
            need(not bad_iters, f"scale_iterations must be at least 1, got {bad_iters[0] if bad_iters else ''}")
            need(
                len(self.scale_iterations) in (1, len(self.scales or ())),
                f"{len(self.scale_iterations)} scale_iterations given for {len(self.scales or ())} scales; "
                "give one number or one per scale",
            )
        return self

    def resolve_choices(self, recommended: Mapping[str, Any] | None = None) -> PaintConfig:
        """A copy with ``init`` and ``style_loss`` filled when None ("the network's") from ``recommended``, else
        neural-style-pt's (random, gram). Done before anything is painted: the start image and the checkpoint's
        settings depend on them."""
        rec = recommended or {}
        changes = {n: rec.get(n, NEURAL_STYLE_DEFAULTS[n]) for n in _CHOICES if getattr(self, n) is None}
        return dataclasses.replace(self, **changes) if changes else self

    def resolve(self, recommended: Mapping[str, Any] | None = None) -> PaintConfig:
        """A copy with every "the network's" field (None) filled from ``recommended``, else neural-style-pt's.

        The style weight is the network's for the resolved style loss (``recommended["style_weights"][loss]``),
        else its single ``style_weight``, else neural-style-pt's 100."""
        cfg = self.resolve_choices(recommended)
        rec = recommended or {}
        changes = {}
        for name, fallback in NEURAL_STYLE_DEFAULTS.items():
            if getattr(cfg, name) is None:
                value = rec.get(name, fallback)
                if name == "style_weight":
                    value = dict(rec.get("style_weights") or {}).get(cfg.style_loss, value)
                changes[name] = value
        return dataclasses.replace(cfg, **changes) if changes else cfg

    def blend_weights(self, num_styles: int) -> list[float]:
        """Per-style weights normalised to sum to 1 (equal when none are given), as neural-style-pt does."""
        raw = list(self.style_blend_weights) if self.style_blend_weights is not None else [1.0] * num_styles
        total = 0.0
        for w in raw:
            total = float(total) + float(w)
        return [float(w) / float(total) for w in raw]
