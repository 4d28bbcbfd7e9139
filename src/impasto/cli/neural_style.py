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
* Ctrl-C stops after the current step and saves the latest image to ``-output_image``.
* ``-backend``/``-cudnn_autotune`` are accepted; cuDNN is always used on CUDA, autotune sets cudnn.benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from ..events import Progress, Started
from ..media import IMAGE_EXTENSIONS, save_image, tensor_to_pil
from ..zoo.registry import CAFFE_BGR

_UNSET = object()
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
    existing = [p for p in [*steps.values(), final] if p.exists()]
    for p in existing:
        if p.is_dir():
            raise ConfigError(f"output path {p} is a folder")
    return existing


def original_colors_pil(content: Image.Image, generated: Image.Image) -> Image.Image:
    """neural-style-pt's colour transfer: Y of ``generated`` with Cb, Cr of ``content`` (PIL's 8-bit YCbCr)."""
    channels = list(content.convert("YCbCr").split())
    channels[0] = generated.convert("YCbCr").split()[0]
    return Image.merge("YCbCr", channels).convert("RGB")


def content_as_saved(path: str, image_size: int, contract: str) -> Image.Image:
    """The content image as neural-style-pt hands it to the colour transfer: sized, preprocessed, deprocessed, 8-bit."""
    from ..gatys.preprocess import deprocess, neural_style_size, preprocess, resize_like_neural_style, truncate_to_8bit
    from ..imaging import load_image

    img = load_image(path)
    x = resize_like_neural_style(img, neural_style_size(img.size, image_size))
    return tensor_to_pil(truncate_to_8bit(deprocess(preprocess(x, contract), contract)))


def run(args: argparse.Namespace) -> int:
    from ..api import paint
    from ..events import CancelToken
    from ..gatys.config import PaintConfig
    from ..gatys.preprocess import truncate_to_8bit
    from .paint import SigintCancel, progress_callback

    quiet = bool(getattr(args, "quiet", False))
    model, model_file = args.model, args.model_file
    if model_file is _UNSET:
        model_file = None
        if model is None and Path(NS_DEFAULT_MODEL).is_file():
            model_file = NS_DEFAULT_MODEL
    config = PaintConfig(
        image_size=args.image_size,
        style_blend_weights=args.style_blend_weights,
        style_scale=args.style_scale,
        original_colors=False,  # applied here, on 8-bit images with PIL, exactly as neural-style-pt does
        gpu=_gpu(args.gpu),
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        normalize_weights=args.normalize_weights,
        normalize_gradients=args.normalize_gradients,
        num_iterations=args.num_iterations,
        init=args.init,
        init_image=args.init_image,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        lbfgs_num_correction=args.lbfgs_num_correction,
        print_iter=args.print_iter,
        save_iter=args.save_iter,
        model=model,
        model_file=model_file,
        pooling=args.pooling,
        content_layers=None if args.content_layers is _UNSET else args.content_layers,
        style_layers=None if args.style_layers is _UNSET else args.style_layers,
        disable_check=args.disable_check,
        backend=args.backend,
        cudnn_autotune=args.cudnn_autotune,
        seed=args.seed,
        multidevice_strategy=args.multidevice_strategy,
    )
    styles = style_list(args.style_image)
    config.validate(num_styles=len(styles))
    final, steps = output_paths(args.output_image, config.num_iterations, config.save_iter)
    existing = _check_outputs(final, steps)
    for old in existing:  # the command line stays neural-style-pt's, but nothing the user had is lost
        kept = _backup(old)
        if not quiet:
            print(f"impasto: kept the existing {old} as {kept} (neural-style-pt would overwrite it)", file=sys.stderr)

    keep_colors = bool(args.original_colors)
    colour_source: dict[str, Any] = {}

    def to_pil(image: Any) -> Any:
        """(1, 3, H, W) in [0, 1] -> 8-bit PIL as neural-style-pt saves it (truncated; original colours)."""
        pil = tensor_to_pil(truncate_to_8bit(image))
        content = colour_source.get("content")
        return original_colors_pil(content, pil) if keep_colors and content is not None else pil

    def on_started(event: Started) -> None:
        if keep_colors:
            colour_source["content"] = content_as_saved(
                args.content_image, config.image_size, str(event.info.get("preprocessing", CAFFE_BGR))
            )
        if not quiet:
            print(f"impasto neural-style: {event.info.get('model')} on {event.info.get('device')}", file=sys.stderr)

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

    def on_preview(event: Any) -> None:
        path = steps.get(event.step)
        if path is not None:
            save_image(to_pil(event.image), path)

    bar_callback, close = progress_callback(quiet, config.num_iterations, on_preview, report)

    def callback(event: Any) -> None:
        if isinstance(event, Started):
            on_started(event)
        bar_callback(event)

    keep_freed_memory()  # big activations are reused across steps instead of page-faulted in each time
    token = CancelToken()
    try:
        with SigintCancel(token):
            result = paint(args.content_image, styles, config, callback=callback, cancel=token)
    except Cancelled as exc:
        close()
        if exc.partial is not None:
            save_image(to_pil(exc.partial), final)
            print(f"impasto: interrupted; saved the latest image to {final}", file=sys.stderr)
        return 130
    finally:
        close()
    save_image(to_pil(result.image), final)
    if quiet:
        print(final)
    return 0
