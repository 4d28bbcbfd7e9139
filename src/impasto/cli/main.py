"""The ``impasto`` command. One module per subcommand, each with ``add_parser(sub)`` and ``run(args) -> int``.

Errors: an ImpastoError prints one line and exits with its ``exit_code`` (2 usage, 1 other); ``--debug``
shows the traceback instead. Ctrl-C exits 130 after the subcommand has saved what it had.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ImpastoError

# name -> module under impasto.cli; the module is imported only when its command runs (fast --help).
COMMANDS: dict[str, tuple[str, str]] = {
    "stylize": ("stylize", "fast arbitrary / preset style transfer (Magenta, offline)"),
    "presets": ("presets", "contact sheet of the 26 built-in styles on a photo"),
    "video": ("video", "stylise a video or a folder of frames (keeps frame rate, frame count and audio)"),
    "models": ("models", "list, download, import and verify weight sets"),
    "paint": ("paint", "painting by optimisation (Gatys et al.; every neural-style-pt option)"),
    "train": ("train", "train your own linear transformation module or SPN filter (Li et al. 2019)"),
    "neural-style": ("neural_style", "neural-style-pt's command line, unchanged (drop-in for neural_style.py)"),
    "compare-optimizers": ("compare_optimizers", "the optimiser study: GD, Adadelta, RMSProp, Adam, Adagrad, L-BFGS"),
    "generate": ("generate", "BigGAN samples of ImageNet classes: grid and/or one file per sample"),
    "interpolate": ("interpolate", "BigGAN interpolation between two classes/seeds: GIF, MP4 or grid"),
    "classes": ("classes", "list or search the 1000 ImageNet classes BigGAN draws"),
    "score": ("score", "quality scores: content SSIM/PSNR, style Gram/W2 and colour distances"),
    "sweep": ("sweep", "paint every combination of some settings: ranked results, contact sheet, index.html"),
    "bench": ("bench", "the benchmark suite on this machine: stylise, paint, BigGAN, workers; JSON and a table"),
    "serve": ("serve", "the web studio: every capability in the browser, live previews, resumable jobs"),
}


GLOBAL_FLAGS = {"--debug": "--debug", "-q": "--quiet", "--quiet": "--quiet"}


class UsageError(ImpastoError):
    exit_code = 2


class Parser(argparse.ArgumentParser):
    """argparse that raises one-line UsageErrors instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _load(name: str):  # noqa: ANN202
    return importlib.import_module(f"impasto.cli.{COMMANDS[name][0]}")


def build_parser(only: str | None = None) -> Parser:
    parser = Parser(prog="impasto", description="Neural art: painting by optimisation, fast style transfer, GANs.")
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors and output paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (_module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        _load(name).add_parser(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (sys.argv[1:] when None); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # the global flags may also follow the command: lift them out wherever they stand (before a "--")
    cut = argv.index("--") if "--" in argv else len(argv)
    flags = {a for a in argv[:cut] if a in GLOBAL_FLAGS}
    argv = [a for a in argv[:cut] if a not in GLOBAL_FLAGS] + argv[cut:]
    argv = [f for f in ("--debug", "--quiet") if f in {GLOBAL_FLAGS[x] for x in flags}] + argv
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        parser = build_parser(only=command)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(_load(args.command).run(args) or 0)
    except ImpastoError as exc:
        if debug:
            raise
        print(f"impasto: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("impasto: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError, RuntimeError) as exc:
        line = outside_failure(exc)
        if line is None or debug:
            raise
        print(f"impasto: error: {line}", file=sys.stderr)
        return 1


def outside_failure(exc: BaseException) -> str | None:
    """One line for a failure from outside impasto (disk full, folder not writable, out of memory), or None for a
    bug (which keeps its traceback)."""
    if type(exc).__name__ == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc)):
        return (
            "the device ran out of memory; try a smaller --size/--image-size, --fast, fewer --batch-size images, "
            "or --device cpu"
        )
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller --size/--image-size or --batch-size"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
