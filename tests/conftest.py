"""Shared fixtures: every test runs with its own impasto cache (never the user's) and no network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One cache for the session so converted offline models are made once; zoo tests use their own.
    import os

    os.environ["IMPASTO_HOME"] = str(tmp_path_factory.mktemp("impasto-home"))


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """An empty IMPASTO_HOME for this test only."""
    home = tmp_path / "home"
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    return home
