"""``impasto generate --class NAME|N [--class ...] --samples N --truncation T --seed S -o grid.png [--each DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import api
from ..errors import Cancelled, ConfigError
from ..media import STILL_EXTENSIONS, check_output_path, save_image, slug
from .common import ProgressBar, add_device, add_overwrite, cancel_on_sigint


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default="biggan-deep.256", help="biggan-deep.128, .256 or .512 (default: .256)")
    g.add_argument("--model-dir", help="a folder with config.json + pytorch_model.bin (pytorch-pretrained-BigGAN)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: fp16 on CUDA, bf16 on CPUs with AMX/AVX-512 BF16, else fp32")  # fmt: skip
    p.add_argument("--bn-stats", default="reference", choices=("reference", "linear"),
                   help="how batch-norm statistics are interpolated between truncation grid points "
                   "(reference: as pytorch-pretrained-BigGAN, the default)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: 8)")
    add_device(p)
    add_overwrite(p)


def model_source(args: argparse.Namespace) -> str:
    if args.model_dir:
        d = Path(args.model_dir)
        if not d.is_dir():
            raise ConfigError(f"--model-dir {d} is not a folder")
        return str(d)
    return args.model


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class", dest="classes", action="append", required=True, metavar="NAME|N",
                   help="ImageNet class by name, synonym or number 0-999; repeat for several")  # fmt: skip
    p.add_argument("--samples", type=int, default=4, help="samples per class (default: 4)")
    p.add_argument("--truncation", type=float, default=0.4, help="truncation in (0, 1] (default: 0.4)")
    p.add_argument("--seed", type=int, help="noise seed (default: a fresh one, printed)")
    p.add_argument("-o", "--output", help="grid image: one row per class, one column per sample")
    p.add_argument("--each", metavar="DIR", help="also write every sample to DIR (created if missing)")
    add_model_options(p)


def run(args: argparse.Namespace) -> int:
    from ..gan.classes import name_of, resolve
    from ..gan.export import grid_of, to_pil

    if not args.output and not args.each:
        raise ConfigError("give -o/--output GRID.png and/or --each DIR")
    indices = [resolve(c) for c in args.classes]  # unknown class -> exit 2 with suggestions, before any work
    grid = check_output_path(args.output, overwrite=args.overwrite, allowed=STILL_EXTENSIONS) if args.output else None
    each = Path(args.each) if args.each else None
    if each is not None:
        if each.exists() and not each.is_dir():
            raise ConfigError(f"--each {each} is a file, not a folder")
        if not each.parent.exists():
            raise ConfigError(f"folder {each.parent} does not exist")
    bar = ProgressBar(args.quiet, unit="batch", desc="generate")
    try:
        with cancel_on_sigint("this batch") as token:
            result = api.generate(
                indices, samples=args.samples, truncation=args.truncation, seed=args.seed, model=model_source(args),
                device=args.device, precision=args.precision, bn_stats=args.bn_stats, batch_size=args.batch_size,
                callback=bar, cancel=token,
            )  # fmt: skip
    except Cancelled as exc:  # Ctrl-C: keep the samples made so far in the grid, then exit 130
        partial = exc.partial
        if grid is not None and partial is not None and partial.images.shape[0]:
            print(save_image(grid_of(partial.images, ncol=partial.samples), grid))
        raise
    finally:
        bar.close()
    written = []
    if grid is not None:
        written.append(save_image(grid_of(result.images, ncol=result.samples), grid))
    if each is not None:
        names = [
            f"{c:03d}-{slug(name_of(c))}-seed{result.seed}-{j}.png"
            for c in result.classes
            for j in range(result.samples)
        ]
        clash = [n for n in names if (each / n).exists()]
        if clash and not args.overwrite:
            raise ConfigError(f"{each / clash[0]} already exists; pass --overwrite to replace it")
        each.mkdir(exist_ok=True)
        written.extend(save_image(im, each / n) for im, n in zip(to_pil(result.images), names, strict=True))
    if not args.quiet and args.seed is None:
        print(f"seed {result.seed}")
    for path in written[:1] if each is None else written:
        print(path)
    return 0
