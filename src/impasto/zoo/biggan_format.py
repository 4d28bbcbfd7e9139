"""pytorch-pretrained-BigGAN's checkpoint format: a folder with ``config.json`` + ``pytorch_model.bin``.

The ``.bin`` is a pickled state dict (read with ``torch.load(weights_only=True)`` only) whose spectrally normalised
layers carry ``weight_orig`` (W), ``weight_u`` (u, out) and ``weight_v`` (v, in*kh*kw). At inference the reference
uses ``W / sigma`` with ``sigma = u . (W_mat v)`` (no power iteration in eval mode), so conversion folds that
division once and yields impasto's layout, which is the same key set with a plain ``weight``.

Every key and shape is checked: a folder that does not match its own ``config.json`` raises WeightsError naming
the keys, before any weight is used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar, overload

import torch
from torch import nn

from ..errors import UnknownModelError, WeightsError
from ..nets.biggan import BigGANConfig, BigGANDeep, Precision, check_keys
from . import registry, store

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
KIND = "biggan-deep"


def _sn_prefixes(model: BigGANDeep) -> set[str]:
    """Module paths whose ``weight`` is spectrally normalised in the reference (every Linear/Conv of the generator)."""
    return {
        name
        for name, mod in model.named_modules()
        if name.startswith("generator.") and isinstance(mod, nn.Linear | nn.Conv2d)
    }


M = TypeVar("M", bound=BigGANDeep)


@overload
def _meta_model(config: BigGANConfig) -> BigGANDeep: ...
@overload
def _meta_model(config: BigGANConfig, model_cls: type[M]) -> M: ...
def _meta_model(config: BigGANConfig, model_cls: type[BigGANDeep] = BigGANDeep) -> BigGANDeep:
    with torch.device("meta"):
        return model_cls(config)


def reference_key_shapes(config: BigGANConfig) -> dict[str, tuple[int, ...]]:
    """The reference checkpoint's key -> shape map for ``config``."""
    model = _meta_model(config)
    sn = _sn_prefixes(model)
    out: dict[str, tuple[int, ...]] = {}
    for key, t in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and prefix in sn:
            out[f"{prefix}.weight_orig"] = tuple(t.shape)
            out[f"{prefix}.weight_u"] = (t.shape[0],)
            out[f"{prefix}.weight_v"] = (t[0].numel(),)
        else:
            out[key] = tuple(t.shape)
    return out


def read_config(path: str | os.PathLike[str]) -> BigGANConfig:
    """Parse a reference ``config.json``; WeightsError for a missing, unreadable or invalid file."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"BigGAN config file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read BigGAN config {p}: {exc}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"BigGAN config {p} is not a JSON object")
    try:
        return BigGANConfig.from_dict(data)
    except WeightsError as exc:
        raise WeightsError(f"{p}: {exc}") from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a ``pytorch_model.bin`` safely (tensors only) on the CPU."""
    return store.read_tensors(path)


def fold_spectral_norm(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``W / sigma`` with ``sigma = u . (W_mat v)``, ``W_mat`` = W reshaped to (out, -1): torch's eval-mode rule."""
    w_mat = weight_orig.reshape(weight_orig.shape[0], -1)
    sigma = torch.dot(u, torch.mv(w_mat, v))
    return weight_orig / sigma


def convert_state_dict(
    ref: Mapping[str, torch.Tensor], config: BigGANConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Reference layout -> impasto's folded layout, after a strict check of every key and shape."""
    check_keys(reference_key_shapes(config), {k: tuple(v.shape) for k, v in ref.items()}, source)
    sn = _sn_prefixes(_meta_model(config))
    out: dict[str, torch.Tensor] = {}
    for key, t in ref.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in sn and leaf in ("weight_u", "weight_v"):
            continue
        if prefix in sn and leaf == "weight_orig":
            w, u, v = t.float(), ref[prefix + ".weight_u"].float(), ref[prefix + ".weight_v"].float()
            folded = fold_spectral_norm(w, u, v)
            if not torch.isfinite(folded).all():
                raise WeightsError(f"{source}: {prefix} has a zero or invalid spectral norm (weight_u/weight_v)")
            out[prefix + ".weight"] = folded
        else:
            out[key] = t.float()
    return out


def _require_files(path: str | os.PathLike[str]) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise WeightsError(f"expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, but {folder} is not a folder")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise WeightsError(
            f"{folder} lacks {' and '.join(missing)} (a BigGAN folder holds {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    return folder


def check_biggan_dir(path: str | os.PathLike[str]) -> BigGANConfig:
    """Validate a folder holding ``config.json`` + ``pytorch_model.bin`` (config fields, every weight key/shape).

    Returns the config; raises WeightsError with one sentence otherwise. Used by ``impasto models import``.
    """
    folder = _require_files(path)
    config = read_config(folder / CONFIG_NAME)
    sd = read_state_dict(folder / WEIGHTS_NAME)
    check_keys(reference_key_shapes(config), {k: tuple(v.shape) for k, v in sd.items()}, str(folder / WEIGHTS_NAME))
    return config


def check_weight_set(ws: registry.WeightSet, paths: list[Path]) -> None:
    """The zoo's format check (download, import, verify): ``paths`` = [config.json, pytorch_model.bin].

    Besides the folder checks of ``check_biggan_dir``, a ``biggan-deep.N`` entry must hold an N-pixel model.
    """
    by_name = {Path(p).name: Path(p) for p in paths}
    if CONFIG_NAME not in by_name or WEIGHTS_NAME not in by_name:
        raise WeightsError(f"{ws.name!r} needs {CONFIG_NAME} and {WEIGHTS_NAME}; got {', '.join(sorted(by_name))}")
    config = read_config(by_name[CONFIG_NAME])
    sd = read_state_dict(by_name[WEIGHTS_NAME])
    check_keys(reference_key_shapes(config), {k: tuple(v.shape) for k, v in sd.items()}, str(by_name[WEIGHTS_NAME]))
    suffix = ws.name.rpartition(".")[2]
    if suffix.isdigit() and int(suffix) != config.output_dim:
        raise WeightsError(
            f"{by_name[CONFIG_NAME]} describes a {config.output_dim}px model, not the {suffix}px one {ws.name!r} names"
        )


@overload
def load_biggan_dir(path: str | os.PathLike[str], precision: Precision | None = None) -> BigGANDeep: ...
@overload
def load_biggan_dir(path: str | os.PathLike[str], precision: Precision | None, model_cls: type[M]) -> M: ...
@overload
def load_biggan_dir(path: str | os.PathLike[str], precision: Precision | None = None, *, model_cls: type[M]) -> M: ...
def load_biggan_dir(
    path: str | os.PathLike[str], precision: Precision | None = None, model_cls: type[BigGANDeep] = BigGANDeep
) -> BigGANDeep:
    """Build a BigGANDeep (or ``model_cls``) from a folder's own config; load its weights strictly, on the CPU."""
    folder = _require_files(path)
    config = read_config(folder / CONFIG_NAME)
    sd = convert_state_dict(read_state_dict(folder / WEIGHTS_NAME), config, str(folder / WEIGHTS_NAME))
    model = _meta_model(config, model_cls)
    model.load_weights(sd, source=str(folder / WEIGHTS_NAME), assign=True)
    if precision is not None:
        model.precision = precision
    log.debug("loaded BigGAN-deep %dpx from %s", config.output_dim, folder)
    return model.eval().requires_grad_(False)


def canonical_name(name: str) -> str:
    """Accept the reference's names too: ``biggan-deep-256`` -> ``biggan-deep.256``."""
    if name.startswith("biggan-deep-") and name.removeprefix("biggan-deep-").isdigit():
        return "biggan-deep." + name.removeprefix("biggan-deep-")
    return name


def resolve(name_or_dir: str | os.PathLike[str]) -> Path:
    """A folder for ``name_or_dir``: the folder itself, or a registered weight set's cache folder.

    WeightsError (naming ``impasto models download/import``) when a registered set is not installed;
    UnknownModelError for a name that is neither a folder nor registered.
    """
    p = Path(name_or_dir)
    if p.is_dir():
        return p
    name = canonical_name(str(name_or_dir))
    if name in registry.REGISTRY:
        ws = registry.get(name)
        if ws.kind != KIND:
            raise UnknownModelError(f"{name!r} is a {ws.kind} weight set, not a BigGAN; use one of {biggan_names()}")
        try:
            return store.files_for(ws)[0].parent
        except WeightsError:
            raise WeightsError(
                f"weight set {name!r} is not installed; run 'impasto models download {name}' on a connected machine, "
                f"or 'impasto models import {name} DIR' with a folder holding {CONFIG_NAME} + {WEIGHTS_NAME}"
            ) from None
    if os.sep in str(name_or_dir) or p.exists():
        raise WeightsError(f"{p} is not a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    raise UnknownModelError(f"unknown BigGAN model {str(name_or_dir)!r}; use one of {biggan_names()} or a folder")


def biggan_names() -> str:
    return ", ".join(registry.names(KIND))


def load(name_or_dir: str | os.PathLike[str], precision: Precision | None = None) -> BigGANDeep:
    """Load a registered BigGAN (``biggan-deep.256``) or a folder in the reference format; CPU, eval mode."""
    return load_biggan_dir(resolve(name_or_dir), precision)


# --- writing the reference format (tests, benchmarks, the verification script) ------------------------------


def random_reference_state_dict(config: BigGANConfig, seed: int = 0, power_iterations: int = 3) -> dict:
    """Random weights in the reference layout, with ``weight_u``/``weight_v`` from a few power iterations.

    Batch-norm statistics are drawn per truncation level (means ~ N(0, 0.1), variances in [0.5, 1.5]) so that
    truncation visibly matters. Values are random; speed and shapes are those of a real checkpoint.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in reference_key_shapes(config).items():
        leaf = key.rpartition(".")[2]
        if leaf in ("weight_u", "weight_v"):
            continue
        if leaf == "running_means":
            t = 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "running_vars":
            t = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "gamma":
            t = torch.full(shape, 0.5)
        elif key == "embeddings.weight":
            t = 0.5 * torch.randn(shape, generator=gen)
        elif key == "generator.bn.weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "bias":
            t = 0.05 * torch.randn(shape, generator=gen)
        else:
            t = torch.randn(shape, generator=gen) / max(1, int(torch.tensor(shape[1:]).prod())) ** 0.5
        out[key] = t
        if leaf == "weight_orig":
            w_mat = t.reshape(shape[0], -1)
            u = torch.nn.functional.normalize(torch.randn(shape[0], generator=gen), dim=0)
            v = torch.nn.functional.normalize(w_mat.t() @ u, dim=0)
            for _ in range(power_iterations):
                u = torch.nn.functional.normalize(w_mat @ v, dim=0)
                v = torch.nn.functional.normalize(w_mat.t() @ u, dim=0)
            prefix = key.rpartition(".")[0]
            out[prefix + ".weight_u"] = u
            out[prefix + ".weight_v"] = v
    return out


def write_reference_dir(folder: str | os.PathLike[str], config: BigGANConfig, state_dict: Mapping) -> Path:
    """Write ``config.json`` + ``pytorch_model.bin`` as pytorch-pretrained-BigGAN reads them."""
    from ..media import atomic_write, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / CONFIG_NAME, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: torch.save(dict(state_dict), tmp))
    return folder
