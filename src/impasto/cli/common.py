"""Pieces the subcommands share: output planning, progress bars, number lists."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..events import Event, Progress, Started
from ..imaging import check_output_path


def float_list(text: str) -> list[float]:
    """``"0.7,0.3"`` -> [0.7, 0.3] (argparse type)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def plan_outputs(
    inputs: list[Path], out: str | None, out_dir: str | None, tag: str, overwrite: bool, ext: str = ".png"
) -> list[Path]:
    """Where each input's result goes; every path is checked before any work starts."""
    if out and out_dir:
        raise ConfigError("give either -o/--output or --out-dir, not both")
    if out:
        if len(inputs) != 1:
            raise ConfigError(f"-o names one file but there are {len(inputs)} inputs; use --out-dir DIR")
        return [check_output_path(out, overwrite=overwrite)]
    folder = Path(out_dir) if out_dir else Path(".")
    if not folder.is_dir():
        raise ConfigError(
            f"output folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
        )
    paths = [folder / f"{p.stem}_{tag}{ext}" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dest in zip(inputs, paths, strict=True):
        if dest in seen:
            raise ConfigError(f"{seen[dest]} and {src} would both be written to {dest}; rename one")
        seen[dest] = src
        check_output_path(dest, overwrite=overwrite)
    return paths


def progress_bar(
    quiet: bool, unit: str = "img", desc: str | None = None
) -> tuple[Callable[[Event], None], Callable[[], None]]:
    """A tqdm bar driven by Started/Progress events (to stderr); returns (callback, close)."""
    from tqdm import tqdm

    state: dict[str, object] = {}

    def callback(event: Event) -> None:
        if quiet:
            return
        if isinstance(event, Started):
            state["bar"] = tqdm(total=event.total or None, unit=unit, desc=desc, file=sys.stderr, leave=False)
        elif isinstance(event, Progress) and "bar" in state:
            bar = state["bar"]
            bar.n = event.step  # type: ignore[attr-defined]
            if event.losses:
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(event.losses.items())[:3]}, refresh=False)  # type: ignore[attr-defined]
            bar.refresh()  # type: ignore[attr-defined]

    def close() -> None:
        bar = state.pop("bar", None)
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]

    return callback, close
