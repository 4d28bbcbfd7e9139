"""``impasto generate --class NAME|N [--class ...] --samples N --truncation T --seed S -o grid.png [--each DIR]``.

Every output is known and checked before the work starts: the seed is drawn first (when no ``--seed`` is given),
so the per-sample names ``CCC-name-seedS-J.png`` are known, and a clash, a read-only folder or a missing one
is reported in one line before the model loads. With ``--each`` every sample is written (atomically) as soon as
its batch is done, so Ctrl-C or a kill keeps the samples made so far, and ``--resume`` makes only the missing
ones (their noise does not depend on which are skipped, so the images are those of an uninterrupted run).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import api
from ..errors import Cancelled, ConfigError, ImageError
from ..events import Event, Preview, Started
from ..media import (
    STILL_EXTENSIONS,
    SavedElsewhere,
    atomic_write,
    check_output_path,
    check_writable,
    make_grid,
    save_image,
    save_or_fallback,
    slug,
    stray_parts,
)
from .common import (
    ProgressBar,
    add_device,
    add_overwrite,
    add_worker_options,
    cancel_on_sigint,
    open_executor_from_args,
)

META_KEY = "impasto"  # PNG text chunk of a per-sample file: what made it, checked by --resume


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
        return str(d.resolve())
    return args.model


def check_batch_size(value: int) -> int:
    if value < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {value}")
    return value


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class", dest="classes", action="append", required=True, metavar="NAME|N",
                   help="ImageNet class by name, synonym, word or number 0-999; repeat for several")  # fmt: skip
    p.add_argument("--samples", type=int, default=4, help="samples per class (default: 4)")
    p.add_argument("--truncation", type=float, default=0.4, help="truncation in (0, 1] (default: 0.4)")
    p.add_argument("--seed", type=int, help="noise seed, 0 or more (default: a fresh one, printed first)")
    p.add_argument("-o", "--output", help="grid image: one row per class, one column per sample")
    p.add_argument("--each", metavar="DIR", help="also write every sample to DIR (created if missing)")
    p.add_argument("--resume", action="store_true",
                   help="with --each: keep the samples already in DIR (same seed), make the missing ones")  # fmt: skip
    add_model_options(p)
    add_worker_options(p)  # --each: batches of samples spread over worker processes or a Ray cluster


def sample_name(index: int, seed: int, j: int) -> str:
    """The file name of sample ``j`` of class ``index`` under ``seed``."""
    return f"{index:03d}-{slug(api.class_name(index))}-seed{seed}-{j}.png"


def check_each_folder(each: str) -> Path:
    """``--each DIR``: a folder (or a name to create in an existing folder) that can be written to."""
    folder = Path(each)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--each {folder} is a file, not a folder")
    if folder.is_dir():
        check_writable(folder)
    else:
        parent = folder.parent if str(folder.parent) else Path(".")
        if not parent.is_dir():
            raise ConfigError(f"folder {parent} does not exist (for --each {folder})")
        check_writable(parent)
    return folder


def seed_to_resume(folder: Path, indices: list[int]) -> int | None:
    """The one seed whose samples ``folder`` holds for these classes (None when it holds none)."""
    if not folder.is_dir():
        return None
    found: set[int] = set()
    for index in set(indices):
        rx = re.compile(rf"{index:03d}-{re.escape(slug(api.class_name(index)))}-seed(\d+)-\d+\.png")
        found.update(int(m.group(1)) for p in folder.iterdir() if (m := rx.fullmatch(p.name)))
    if len(found) > 1:
        shown = ", ".join(str(s) for s in sorted(found)[:5])
        raise ConfigError(f"--each {folder} holds samples of seeds {shown}; pass --seed to say which to resume")
    return found.pop() if found else None


def read_done(path: Path, truncation: float, model: str) -> Image.Image:
    """A sample a previous run wrote, checked to come from the same truncation and model."""
    try:
        with Image.open(path) as im:
            im.load()
            picture = im.convert("RGB")
            meta = im.info.get(META_KEY)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {path} to resume ({exc}); remove it or pass --overwrite") from None
    if meta:
        made = json.loads(meta)
        if made.get("truncation") != truncation or made.get("model") != model:
            raise ConfigError(
                f"{path} was made with truncation {made.get('truncation')} and model {made.get('model')}, not "
                f"{truncation:g} and {model}; resume with the same options or pass --overwrite"
            )
    return picture


def write_sample(picture: Image.Image, path: Path, meta: dict[str, Any]) -> Path:
    """One sample as PNG (atomically), with what made it in a text chunk."""
    info = PngInfo()
    info.add_text(META_KEY, json.dumps(meta))
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", pnginfo=info))


def save_grid(picture: Image.Image, dest: Path) -> Path:
    """The grid at ``dest``, or (disk full, read-only) in a fallback folder: SavedElsewhere says where."""
    return save_or_fallback(lambda p: save_image(picture, p), dest)


def announce(args: argparse.Namespace, seed: int, done: int, total: int, each: Path | None) -> None:
    """What the words became and which seed this is (printed first, so a killed run can be resumed with it)."""
    if args.quiet:
        return
    for c in args.classes:
        line = api.explain_class(c)  # e.g. "dog" is not an ImageNet class name; using 253 basenji (...)
        if line:
            print(f"impasto: {line}", file=sys.stderr)
    if args.seed is None:
        print(f"seed {seed}", flush=True)
    if done:
        print(f"impasto: resuming: {done} of {total} samples already in {each}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    # 1. Every check before any work: options, classes, every output name.
    if not args.output and not args.each:
        raise ConfigError("give -o/--output GRID.png and/or --each DIR")
    if args.resume and not args.each:
        raise ConfigError("--resume keeps the samples already in --each DIR; give --each DIR")
    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more (leave it out for a fresh one); got {args.seed}")
    check_batch_size(args.batch_size)
    indices = [api.resolve_class(c) for c in args.classes]  # unknown class -> exit 2 with suggestions
    source = model_source(args)
    grid = check_output_path(args.output, overwrite=args.overwrite, allowed=STILL_EXTENSIONS) if args.output else None
    each = check_each_folder(args.each) if args.each else None
    seed = args.seed
    if seed is None and args.resume and each is not None:
        seed = seed_to_resume(each, indices)
    if seed is None:
        seed = api.new_seed()
    names: dict[int, Path] = {}
    if each is not None:
        twice = next((c for i, c in enumerate(indices) if c in indices[:i]), None)
        if twice is not None:  # its samples would have the same file names
            raise ConfigError(f"class {twice} ({api.class_name(twice)}) is given twice; with --each give each once")
        rows = ((i * args.samples + j, c, j) for i, c in enumerate(indices) for j in range(max(args.samples, 0)))
        names = {row: each / sample_name(c, seed, j) for row, c, j in rows}
    done: dict[int, Image.Image] = {}
    for row, path in names.items():
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; move it out of --each {each}")
        if not path.exists():
            continue
        if args.resume:
            done[row] = read_done(path, args.truncation, source)
        elif not args.overwrite:
            raise ConfigError(f"{path} already exists; pass --overwrite to replace it or --resume to keep it")
    if args.resume and each is not None:  # the temporaries a killed run left while writing these samples
        for part in stray_parts(each):
            if any(part.name.startswith(f".{path.name}.") for path in names.values()):
                part.unlink(missing_ok=True)
    if grid is not None and grid in names.values():
        raise ConfigError(f"-o {grid} is also the name of a sample in --each; choose another grid name")

    if args.workers is not None or args.ray is not None:
        if each is None:
            raise ConfigError("--workers/--ray: every worker writes its samples to --each DIR; give --each DIR")
        return _run_on_workers(args, indices, names, done, seed, source, grid, each)

    # 2. The work: each sample is written as soon as its batch is done.
    bar = ProgressBar(args.quiet, unit="batch", desc="generate")
    written: list[Path] = []
    meta = {"seed": seed, "truncation": args.truncation, "model": source}

    def on_event(event: Event) -> None:
        if isinstance(event, Started):  # the options were valid and the model loaded
            announce(args, seed, len(done), len(names), each)
        elif isinstance(event, Preview) and each is not None and "row" in event.info:
            row = event.info["row"]
            each.mkdir(exist_ok=True)
            sample = {"class": event.info["class"], "sample": event.info["sample"]}
            written.append(write_sample(event.image, names[row], {**meta, **sample}))
        bar(event)

    try:
        with cancel_on_sigint("this batch") as token:
            result = api.generate(
                indices, samples=args.samples, truncation=args.truncation, seed=seed, model=source,
                device=args.device, precision=args.precision, bn_stats=args.bn_stats, batch_size=args.batch_size,
                skip=set(done), callback=on_event, cancel=token,
            )  # fmt: skip
    except Cancelled as exc:  # Ctrl-C: the samples so far are in --each already; the grid gets them too
        bar.close()
        partial = exc.partial
        made = len(partial.rows) if partial is not None else 0
        total = len(indices) * args.samples
        print(f"impasto: stopped: {made + len(done)} of {total} samples made", file=sys.stderr)
        if grid is not None and partial is not None and (partial.rows or done):
            try:
                print(save_grid(partial.grid(fill=done), grid))
            except SavedElsewhere as moved:
                print(f"impasto: {moved}", file=sys.stderr)
        for path in written:
            print(path)
        raise
    finally:
        bar.close()

    # 3. The grid, then every output path.
    if grid is not None:
        print(save_grid(result.grid(fill=done), grid))
    for path in written:
        print(path)
    return 0


def _run_on_workers(
    args: argparse.Namespace, indices: list[int], names: dict[int, Path], done: dict[int, Image.Image], seed: int,
    source: str, grid: Path | None, each: Path,
) -> int:  # fmt: skip
    """``--workers``/``--ray``: one task per batch of ``--batch-size`` samples, each written to --each by its worker.

    The batches are those of the single-process run (so the pictures are the same bit for bit); the grid is made
    at the end from the files. Ctrl-C stops every worker: the finished samples stay (and go into the grid), exit
    130; a worker that dies has its batch redone by a fresh one.
    """
    todo = {row: path for row, path in names.items() if row not in done}
    meta = {"seed": seed, "truncation": args.truncation, "model": source}
    tasks = api.generate_tasks(
        indices, todo, samples=args.samples, seed=seed, truncation=args.truncation, model=source, device=args.device,
        precision=args.precision, bn_stats=args.bn_stats, batch_size=args.batch_size, meta=meta,
    )  # fmt: skip
    announce(args, seed, len(done), len(names), each)
    each.mkdir(exist_ok=True)
    bar = ProgressBar(args.quiet, unit="batch", desc="generate", total=len(tasks))
    written: list[Path] = []

    def the_grid() -> None:
        pictures = {**done}
        rows = {str(path): row for row, path in todo.items()}
        for path in written:
            with Image.open(path) as im:
                pictures[rows[str(path)]] = im.convert("RGB")
        if grid is not None and pictures:
            print(save_grid(make_grid([pictures[r] for r in sorted(pictures)], args.samples, 2), grid))

    try:
        with cancel_on_sigint("this batch") as token, open_executor_from_args(args) as executor:
            if not args.quiet:
                bar.write(f"impasto generate: {len(tasks)} batches on {executor.description}")
            for result in executor.run(tasks, callback=bar, cancel=token):
                written.extend(Path(p) for p in result.value)
    except Cancelled:
        bar.close()
        for part in stray_parts(each):  # what the stopped workers were writing
            if any(part.name.startswith(f".{path.name}.") for path in todo.values()):
                part.unlink(missing_ok=True)
        print(f"impasto: stopped: {len(written) + len(done)} of {len(names)} samples made", file=sys.stderr)
        try:
            the_grid()
        except SavedElsewhere as moved:
            print(f"impasto: {moved}", file=sys.stderr)
        for path in sorted(written):
            print(path)
        raise
    finally:
        bar.close()
    the_grid()
    for path in sorted(written):
        print(path)
    return 0
