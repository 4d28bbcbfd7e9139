"""The web studio: ``impasto serve``. A FastAPI server that calls :mod:`impasto.api` only, a SQLite job store,
one worker thread per device, and a static page (``web/static/``, no build step).

Needs the ``web`` extra (``pip install 'impasto[web]'``): FastAPI, uvicorn, python-multipart. Importing this
package does not import them; :func:`create_app` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "default_data_dir"]


def default_data_dir() -> Path:
    """``~/.local/share/impasto/studio`` (the platform's user data folder)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("impasto", appauthor=False)) / "studio"


def create_app(data_dir: Path, **options: Any) -> FastAPI:
    """See :func:`impasto.web.server.create_app`."""
    from .server import create_app as _create_app

    return _create_app(data_dir, **options)
