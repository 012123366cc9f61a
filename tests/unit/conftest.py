"""What the unit tests share: the default catalog, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.catalog import Catalog, load_catalog

DEFAULT_CATALOG = Path(__file__).parents[2] / "config" / "segments.yaml"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """``config/segments.yaml``, as a worker with default settings loads it."""
    return load_catalog(DEFAULT_CATALOG)
