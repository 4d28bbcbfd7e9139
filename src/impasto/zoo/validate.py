"""Format checks run before a file is accepted into the cache (by download or import) and by ``verify``.

One checker per upstream format; each raises WeightsError with one sentence naming what is wrong. The keys of
:data:`CHECKERS` are the upstream formats impasto knows: a registry record naming another one is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WeightsError

if TYPE_CHECKING:  # the registry imports this module (for CHECKERS); only the type comes back here
    from .registry import WeightSet


def _check_onnx(ws: WeightSet, paths: list[Path]) -> None:
    import onnx

    for p in paths:
        try:
            model = onnx.load(str(p), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - onnx raises many types for a corrupt file
            raise WeightsError(f"{p.name} is not a readable ONNX model ({type(exc).__name__})") from None
        if not model.graph.node:
            raise WeightsError(f"{p.name} is an ONNX file with an empty graph")


def _lazy(module: str, func: str) -> Callable[..., Any]:
    """A checker (or importer) that lives in a converter module, imported only when needed."""

    def call(ws: WeightSet, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(importlib.import_module(f"impasto.zoo.{module}"), func)
        return fn(ws, *args, **kwargs)

    return call


CHECKERS: dict[str, Callable[[WeightSet, list[Path]], None]] = {
    "onnx-qdq": _check_onnx,
    "onnx-float": _check_onnx,
    "torch-vgg-caffe": _lazy("torch_formats", "check_weight_set"),
    "torch-nin-caffe": _lazy("torch_formats", "check_weight_set"),
    "torch-vgg-torchvision": _lazy("torch_formats", "check_weight_set"),
    "biggan-pytorch": _lazy("biggan_format", "check_weight_set"),
    "linear-pth": _lazy("linear_format", "check_weight_set"),  # LinearStyleTransfer's models.zip files
    "torch-alexnet-torchvision": _lazy("lpips_format", "check_weight_set"),  # LPIPS's AlexNet trunk
    "lpips-linear": _lazy("lpips_format", "check_weight_set"),  # the lpips package's weights/v0.1/*.pth
}

# Upstream formats whose files do not arrive one URL per file: their converter module imports and downloads them
# (``impasto.zoo.store`` hands ``import_files`` / ``download`` over to these). LinearStyleTransfer publishes one zip
# holding every record's files, and its sets import from the zip, the unzipped folder or one member file.
IMPORTERS: dict[str, Callable[..., list[Path]]] = {
    "linear-pth": _lazy("linear_format", "import_files"),  # (ws, source, *, force) -> installed files
}
DOWNLOADERS: dict[str, Callable[..., list[Path]]] = {
    "linear-pth": _lazy("linear_format", "download"),  # (ws, *, urls, force, progress) -> installed files
}


def check_format(ws: WeightSet, paths: list[Path]) -> None:
    """Raise WeightsError unless ``paths`` hold a valid file set for ``ws``'s upstream format."""
    checker = CHECKERS.get(ws.upstream_format)
    if checker is None:  # records are checked when made; this catches a format removed from the table since
        raise WeightsError(
            f"weight set {ws.name!r} has upstream format {ws.upstream_format!r}, which impasto cannot check; "
            f"known: {', '.join(sorted(CHECKERS))}"
        )
    checker(ws, paths)
