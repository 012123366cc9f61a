"""The pure modules import no I/O library: no faust, no aiokafka, no redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_MODULES = (
    "engine.evaluate",
    "engine.step",
    "engine.state",
    "engine.catalog",
    "engine.conditions",
    "engine.conditions.base",
    "engine.conditions.form",
    "engine.conditions.logic",
    "engine.conditions.profile",
    "engine.conditions.activity",
    "engine.conditions.recency",
    "engine.conditions.split",
    "engine.buckets",
    "engine.plan",
    "engine.attribution",
    "engine.deadlines",
    "engine.erasures",
    "engine.changes",
    "engine.definitions",
    "engine.eligibility",
    "engine.explain",
    "engine.identity",
    "engine.webhooks",
    "streams.events",
    "streams.timestamps",
)
IO_LIBRARIES = ("faust", "aiokafka", "redis")

PROBE = """
import importlib, json, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
roots = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps(roots))
"""


def imported_roots(modules: tuple[str, ...]) -> set[str]:
    """Top-level packages in sys.modules of a fresh interpreter after importing ``modules``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    roots: list[str] = json.loads(result.stdout)
    return set(roots)


def test_pure_modules_import_no_io_library() -> None:
    roots = imported_roots(PURE_MODULES)
    assert {"engine", "streams"} <= roots
    assert roots.isdisjoint(IO_LIBRARIES), sorted(roots & set(IO_LIBRARIES))


@pytest.mark.parametrize("module", PURE_MODULES)
def test_each_pure_module_alone_imports_no_io_library(module: str) -> None:
    assert imported_roots((module,)).isdisjoint(IO_LIBRARIES)


def test_the_probe_would_see_an_io_library() -> None:
    """Guard against a probe that can never fail."""
    assert "faust" in imported_roots(("faust",))
