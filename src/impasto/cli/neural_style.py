"""``impasto neural-style``: neural-style-pt's command line, unchanged.

Replace ``python neural_style.py`` with ``impasto neural-style`` and keep every flag: single-dash options, the same
defaults, comma-separated ``-style_image`` lists (folders too), ``-gpu 0|c|0,1,c`` with ``-multidevice_strategy``,
the same console report every ``-print_iter`` steps and the same files (``out_100.png`` every ``-save_iter``
steps, ``out.png`` at the end; images truncated to 8 bits as upstream's ToPILImage does, and ``-original_colors``
done on those 8-bit images with PIL's YCbCr, as upstream does -- outputs are bit-identical on the same weights).

Where it differs, on purpose:

* ``-gpu`` left at its default (0) uses the CPU when the machine has no CUDA GPU (upstream crashes); an explicit
  ``-gpu N`` that does not exist is a one-line error, exit 2.
* ``-model_file`` left at its default (``models/vgg19-d01eb7cb.pth``) falls back to impasto's installed weights
  when that file is not there (``vgg19.caffe``, else the offline MobileNetV2 -- which is said on stderr).
* ``-content_layers``/``-style_layers`` left at their defaults mean "the network's defaults", which for VGG are
  upstream's; for NIN upstream's VGG names would not exist.
* Output files: the same names as neural-style-pt, and a rerun of the same command line works, but an existing
  output is never destroyed: before the run starts it is moved aside to ``out.~1~.png`` (the first free number)
  and named on stderr. impasto also checks first that the output folder exists and the extension is an image
  format. ``impasto paint`` refuses instead (unless ``--overwrite``).
* Images are read with impasto's loader: EXIF orientation applied, transparency composited on white (upstream
  ignores the orientation tag and drops alpha). Identical for ordinary RGB files.
* Ctrl-C stops after the current step and saves the latest image to ``-output_image`` (nothing when no step was
  taken yet). The output folder is checked for writing before the run; if the final image still cannot be written
  (disk full) it is saved in the temporary folder, one line says where, exit code 1.
* ``-num_iterations 1`` evaluates once (upstream's loop runs L-BFGS twice then).
* ``-backend``/``-cudnn_autotune`` are accepted; cuDNN is always used on CUDA, autotune sets cudnn.benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from ..events import Event, Preview, Progress, Started
from ..media import IMAGE_EXTENSIONS, check_writable
from .common import ProgressBar, cancel_on_sigint
from .paint import StepImages, cancelled, save_result, seeded_determinism

_UNSET = object()
NO_PROFILE = b""  # media.save_image: embed no ICC profile
NS_DEFAULT_MODEL = "models/vgg19-d01eb7cb.pth"
NS_STYLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tiff")
_BACKENDS = ["nn", "cudnn", "mkl", "mkldnn", "openmp", "mkl,cudnn", "cudnn,mkl"]


def add_parser(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    # Basic options
    a(
        "-style_image",
        help="Style target image(s), comma-separated; folders allowed",
        default="examples/inputs/seated-nude.jpg",
    )
    a("-style_blend_weights", default=None)
    a("-content_image", help="Content target image", default="examples/inputs/tubingen.jpg")
    a("-image_size", help="Maximum height / width of generated image", type=int, default=512)
    a("-gpu", help="Zero-indexed ID of the GPU to use; for CPU mode set -gpu = c", default=_UNSET)
    # Optimization options
    a("-content_weight", type=float, default=5e0)
    a("-style_weight", type=float, default=1e2)
    a("-normalize_weights", action="store_true")
    a("-normalize_gradients", action="store_true")
    a("-tv_weight", type=float, default=1e-3)
    a("-num_iterations", type=int, default=1000)
    a("-init", choices=["random", "image"], default="random")
    a("-init_image", default=None)
    a("-optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    a("-learning_rate", type=float, default=1e0)
    a("-lbfgs_num_correction", type=int, default=100)
    # Output options
    a("-print_iter", type=int, default=50)
    a("-save_iter", type=int, default=100)
    a("-output_image", default="out.png")
    # Other options
    a("-style_scale", type=float, default=1.0)
    a("-original_colors", type=int, choices=[0, 1], default=0)
    a("-pooling", choices=["avg", "max"], default="max")
    a("-model_file", type=str, default=_UNSET)
    a("-disable_check", action="store_true")
    a("-backend", choices=_BACKENDS, default="nn")
    a("-cudnn_autotune", action="store_true")
    a("-seed", type=int, default=-1)
    a("-content_layers", help="layers for content", default=_UNSET)
    a("-style_layers", help="layers for style", default=_UNSET)
    a("-multidevice_strategy", default="4,7,29")
    # impasto additions (not in neural-style-pt)
    a(
        "-model",
        default=None,
        help="impasto: a registry weight set (vgg19.caffe, nin.caffe, ...) instead of -model_file",
    )


def style_list(spec: str) -> list[str]:
    """neural-style-pt's ``-style_image`` parsing: comma-separated files and folders (.jpg/.jpeg/.png/.tiff)."""
    out: list[str] = []
    for item in spec.split(","):
        if os.path.isdir(item):
            out.extend(
                os.path.join(item, f)
                for f in sorted(os.listdir(item))
                if os.path.splitext(f)[1].lower() in NS_STYLE_EXTENSIONS
            )
        else:
            out.append(item)
    if not out:
        raise ConfigError(f"-style_image {spec!r} names no images")
    return out


def output_paths(output_image: str, num_iterations: int, save_iter: int) -> tuple[Path, dict[int, Path]]:
    """The final file and the step files neural-style-pt would write: ``out.png``, ``{100: out_100.png, ...}``."""
    stem, ext = os.path.splitext(output_image)
    steps = range(save_iter, num_iterations, save_iter) if save_iter > 0 else range(0)
    return Path(output_image), {t: Path(f"{stem}_{t}{ext}") for t in steps}


def _gpu(value: Any) -> str:
    import torch

    if value is _UNSET:
        return "0" if torch.cuda.is_available() else "c"
    text = str(value).strip()
    if any(part.strip().isdigit() for part in text.split(",")) and not torch.cuda.is_available():
        raise ConfigError(f"-gpu {text} asks for a CUDA GPU but this machine has none; use -gpu c for the CPU")
    return text


def _backup(path: Path) -> Path:
    """Move ``path`` aside to the first free ``stem.~N~.ext`` (numbered, like GNU backups) and return it."""
    n = 1
    while (dest := path.with_name(f"{path.stem}.~{n}~{path.suffix}")).exists():
        n += 1
    os.replace(path, dest)
    return dest


def _check_outputs(final: Path, steps: dict[int, Path]) -> list[Path]:
    if final.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"cannot tell the image format from -output_image {str(final)!r}; use .png or .jpg")
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"output folder {parent} does not exist")
    check_writable(parent)  # before the backups are made and the work starts
    existing = [p for p in [*steps.values(), final] if p.exists()]
    for p in existing:
        if p.is_dir():
            raise ConfigError(f"output path {p} is a folder")
    return existing


# Flags whose value needs more than a copy into the PaintConfig field of the same name (every other neural-style-pt
# flag is named exactly like its field and copied as argparse parsed it; see config_from_args).
_SPECIAL = {"gpu", "model_file", "content_layers", "style_layers", "original_colors"}


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - api.PaintConfig
    """The PaintConfig of a neural-style-pt command line: each flag goes to the field of the same name."""
    from ..api import PaintConfig

    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PaintConfig)
        if hasattr(args, f.name) and f.name not in _SPECIAL
    }
    model_file = args.model_file
    if model_file is _UNSET:
        model_file = None
        if args.model is None and Path(NS_DEFAULT_MODEL).is_file():
            model_file = NS_DEFAULT_MODEL
    return PaintConfig(
        **values,
        gpu=_gpu(args.gpu),
        model_file=model_file,
        content_layers=None if args.content_layers is _UNSET else args.content_layers,
        style_layers=None if args.style_layers is _UNSET else args.style_layers,
        original_colors=False,  # applied on the 8-bit images with PIL, exactly as neural-style-pt does
    )


def run(args: argparse.Namespace) -> int:
    from .. import api

    quiet = bool(getattr(args, "quiet", False))
    config = config_from_args(args)
    styles = style_list(args.style_image)
    config.validate(num_styles=len(styles))
    final, steps = output_paths(args.output_image, config.num_iterations, config.save_iter)
    existing = _check_outputs(final, steps)
    bar = ProgressBar(quiet, total=config.num_iterations, loss_key="total", announce="impasto neural-style")
    for old in existing:  # the command line stays neural-style-pt's, but nothing the user had is lost
        kept = _backup(old)
        if not quiet:
            bar.write(f"impasto: kept the existing {old} as {kept} (neural-style-pt would overwrite it)")

    pictures: dict[str, Any] = {}

    def to_pil(image: Any) -> Any:
        """(3, H, W) or (1, 3, H, W) in [0, 1] -> 8-bit PIL as neural-style-pt saves it (truncated; colours)."""
        return pictures["make"](image)

    def report(event: Progress) -> None:
        if quiet or not event.info.get("print"):
            return
        from tqdm import tqdm

        lines = [f"Iteration {event.step} / {event.total}"]
        content = [v for k, v in event.losses.items() if k.startswith("content:")]
        style = [v for k, v in event.losses.items() if k.startswith("style:")]
        lines += [f"  Content {i} loss: {v}" for i, v in enumerate(content, 1)]
        lines += [f"  Style {i} loss: {v}" for i, v in enumerate(style, 1)]
        lines.append(f"  Total loss: {event.losses['total']}")
        tqdm.write("\n".join(lines), file=sys.stdout)

    # neural-style-pt's files carry no colour profile; neither do these (byte for byte the same PNGs)
    step_images = StepImages(steps.get, bar, picture=lambda e: to_pil(e.raw), icc_profile=NO_PROFILE)

    def callback(event: Event) -> None:
        if isinstance(event, Started):
            pictures["make"] = api.neural_style_pictures(
                args.content_image, image_size=config.image_size,
                preprocessing=str(event.info["preprocessing"]), original_colors=bool(args.original_colors),
            )  # fmt: skip
        if isinstance(event, Preview):
            step_images(event)
            return
        bar(event)
        if isinstance(event, Progress):
            report(event)

    keep_freed_memory()  # big activations are reused across steps instead of page-faulted in each time
    seeded_determinism(config.seed)
    near: list[str | None] = []  # no checkpoint: the fallback is the temporary folder
    try:
        with cancel_on_sigint() as token:
            result = api.paint(args.content_image, styles, config, callback=callback, cancel=token)
    except Cancelled as exc:
        bar.close()
        return cancelled(exc, final, lambda img, dest: save_result(to_pil(img), dest, near, NO_PROFILE), None)
    finally:
        bar.close()
    saved = save_result(to_pil(result.image), final, near, NO_PROFILE)
    if quiet:
        print(saved)
    return 0
