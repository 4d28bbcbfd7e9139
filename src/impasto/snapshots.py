"""Snapshots of a long run (painting, training), so that a stopped or killed run resumes where it was.

The algorithms never touch the file system: every few steps they hand a snapshot of plain tensors and dicts to a
:class:`Checkpointer`'s ``save`` and, on resume, ask its ``load``. Each area keeps its own file checkpointer (its own
format tag and failure policy) built on :func:`save_state` and :func:`read_state` here: files are written through
:func:`impasto.media.atomic_write` and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import ConfigError


class Checkpointer(Protocol):
    """Where snapshots go: ``save(state)`` replaces the previous one; ``load()`` returns it or None."""

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


class MemoryCheckpointer:
    """Keeps the latest snapshot in memory (tests; callers with their own storage)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.saves = 0

    def save(self, state: dict[str, Any]) -> None:
        self.state = state
        self.saves += 1

    def load(self) -> dict[str, Any] | None:
        return self.state


def save_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save(state)`` into ``path`` (the temporary file of an atomic write) through a file object: a full
    disk then raises OSError with its errno (torch.save to a path raises a RuntimeError without one)."""
    with open(path, "wb") as fh:
        torch.save(state, fh)


def read_state(path: str | os.PathLike[str], fmt: object, what: str) -> dict[str, Any] | None:
    """The snapshot at ``path`` (None when there is none), checked to be a dict with ``format == fmt``.

    ConfigError naming the file for anything unreadable or of another kind (``what``: e.g. "paint").
    """
    p = Path(path)
    if not p.exists():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise ConfigError(f"cannot read checkpoint {p}: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ConfigError(f"{p} is not an impasto {what} checkpoint (format {fmt})")
    return state
