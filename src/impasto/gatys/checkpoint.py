"""Checkpoints of a painting run, so that a run killed at any moment resumes from its last checkpoint.

The optimisation loop (:mod:`impasto.gatys.optimize`) never touches the file system: every ``checkpoint_every``
steps it builds a snapshot of plain tensors and dicts and hands it to a :class:`Checkpointer`'s ``save``, and on
``resume`` asks its ``load``. :class:`FileCheckpointer` -- what ``paint()`` uses when ``config.checkpoint_path``
is set -- writes the snapshot with ``torch.save`` to a temporary file beside the target and ``os.replace``s it in
(atomic: a kill mid-write leaves the previous checkpoint intact), and reads it with ``torch.load(weights_only=True)``.
Tests pass an in-memory checkpointer; a web job could keep them in its own store.

A snapshot (format 1): ``image`` (1, 3, H, W) the optimised tensor in network space (after the optimiser's last
update), ``evaluated`` the last image whose loss was computed (the result if the scale ends there),
``optimizer`` the optimiser's ``state_dict()``, ``step`` steps done in this scale, ``scale_index``, ``history``
(one loss dict per step, all scales), ``fingerprint`` and ``settings`` (see :func:`fingerprint`); with
``average`` also ``average``, the moving average's state (``decay``, ``accum`` and the ``biased`` (1, 3, H, W) sum;
see :class:`impasto.gatys.optimize.IterateAverage`), so a resumed run averages on exactly.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ConfigError
from ..snapshots import Checkpointer, MemoryCheckpointer, read_state, save_state

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "Checkpointer", "FileCheckpointer", "MemoryCheckpointer", "check_resumable", "fingerprint"]

FORMAT = 1

# Options that do not change the painting: they may differ between a run and its resumption.
_FREE = {
    "print_iter", "save_iter", "checkpoint_every", "checkpoint_path", "resume", "gpu", "backend",
    "cudnn_autotune", "multidevice_strategy", "disable_check",
    # how the memory is spent, not what is painted: the tiled pass and checkpointing are exact
    "max_memory", "tile_size", "network_checkpointing", "save_all_scales",
}  # fmt: skip

# Options added after checkpoints were first written: left out of the settings (and so of the fingerprint) while at
# these defaults, so a checkpoint made before they existed still resumes. average_decay counts only with average.
_ADDED_DEFAULTS: dict[str, Any] = {
    "style_loss": "gram", "average": False, "average_decay": 0.99, "lbfgs_history_dtype": "auto",
}  # fmt: skip


class FileCheckpointer:
    """Snapshots in one file at ``path``, replaced atomically (temporary file + ``os.replace``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.failures = 0  # saves that could not be written (disk full, read-only): the run went on without them

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint atomically. A destination that cannot take it (disk full, read-only) does not end
        the run: the previous checkpoint stays intact, a warning is logged (once) and painting goes on."""
        from ..media import atomic_write, is_unwritable

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda tmp: save_state(state, tmp))
        except OSError as exc:
            if not is_unwritable(exc):
                raise
            self.failures += 1
            if self.failures == 1:
                log.warning("could not write checkpoint %s (%s); painting on without it", self.path, exc.strerror)
            return
        log.debug("checkpoint written to %s (step %s)", self.path, state.get("step"))

    def load(self) -> dict[str, Any] | None:
        state = read_state(self.path, FORMAT, "paint")
        if state is None:
            log.info("no checkpoint at %s: starting from the beginning", self.path)
        return state


def settings(config: Any) -> dict[str, Any]:
    """The config fields that decide the painting, as plain values (tuples -> lists)."""
    out: dict[str, Any] = {}
    for name, value in sorted(vars(config).items()):
        if name in _FREE:
            continue
        if name in _ADDED_DEFAULTS and value == _ADDED_DEFAULTS[name]:
            continue
        if name == "average_decay" and not getattr(config, "average", False):
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _image_digest(img: Image.Image | None) -> str:
    if img is None:
        return "none"
    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def fingerprint(config: Any, content: Image.Image, styles: Sequence[Image.Image], init: Image.Image | None) -> str:
    """sha256 over the deciding settings and the pixels of every input image."""
    h = hashlib.sha256(repr(settings(config)).encode())
    for img in (content, *styles, init):
        h.update(_image_digest(img).encode())
    return h.hexdigest()


def check_resumable(state: Mapping[str, Any], expected: str, config: Any, where: str) -> None:
    """Raise a one-line ConfigError unless ``state`` was made by the same settings and inputs."""
    if state.get("fingerprint") == expected:
        return
    then, now = state.get("settings") or {}, settings(config)
    keys = sorted(set(then) | set(now))
    # a missing added option was at its default (see _ADDED_DEFAULTS)
    then = {k: then.get(k, _ADDED_DEFAULTS.get(k)) for k in keys}
    now = {k: now.get(k, _ADDED_DEFAULTS.get(k)) for k in keys}
    changed = [f"{k} {then[k]!r} -> {now[k]!r}" for k in keys if then[k] != now[k]]
    what = "; ".join(changed) if changed else "the input images differ"
    raise ConfigError(f"checkpoint {where} was made with different settings ({what}); resume with the same ones")
