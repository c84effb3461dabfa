"""Fixtures several test files share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory of the test's own, and no ambient data root ($FILTERPRIOR_DATA unset), so
    a data test reads only what it wrote. Data test files use it for every test (`usefixtures`)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FILTERPRIOR_CACHE", str(path))
    monkeypatch.delenv("FILTERPRIOR_DATA", raising=False)
    return path
