"""Format checks run before a file is accepted into the cache (by download or import) and by ``verify``.

One checker per upstream format; each raises WeightsError with one sentence naming what is wrong. The keys of
:data:`CHECKERS` are the upstream formats impasto knows: a registry record naming another one is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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


def _lazy(module: str, func: str) -> Callable[[WeightSet, list[Path]], None]:
    """A checker that lives in a converter module, imported only when needed."""

    def check(ws: WeightSet, paths: list[Path]) -> None:
        fn = getattr(importlib.import_module(f"impasto.zoo.{module}"), func)
        fn(ws, paths)

    return check


CHECKERS: dict[str, Callable[[WeightSet, list[Path]], None]] = {
    "onnx-qdq": _check_onnx,
    "onnx-float": _check_onnx,
    "torch-vgg-caffe": _lazy("torch_formats", "check_weight_set"),
    "torch-nin-caffe": _lazy("torch_formats", "check_weight_set"),
    "torch-vgg-torchvision": _lazy("torch_formats", "check_weight_set"),
    "biggan-pytorch": _lazy("biggan_format", "check_weight_set"),
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
