"""The README stays true and short: its settings table, its commands and its metrics match the
code, and the lab notebook lives in docs/."""

from __future__ import annotations

import re
from pathlib import Path

from config.settings import Settings, env_name
from serving import metrics

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
MOST_BYTES = 30_000


def test_settings_table_lists_exactly_the_settings() -> None:
    documented = re.findall(r"^\| `(SEGSTREAM_[A-Z_]+)` \|", README, flags=re.MULTILINE)
    assert sorted(documented) == sorted(env_name(field) for field in Settings.model_fields)


def test_settings_table_shows_the_real_defaults() -> None:
    for field, info in Settings.model_fields.items():
        default = info.default
        shown = default.get_secret_value() if hasattr(default, "get_secret_value") else default
        row = re.search(rf"^\| `{env_name(field)}` \| (.*?) \|", README, flags=re.MULTILINE)
        assert row is not None, field
        assert row.group(1) == (f"`{shown}`" if shown != "" else "(empty)"), field


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^(\./dev \w+)", README, flags=re.MULTILINE)
    assert commands == ["./dev demo", "./dev test"]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "./dev test" in ci_lines


def exported_names() -> list[str]:
    """Every metric a worker serves, as Prometheus shows it (counters with ``_total``)."""
    return [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in metrics.registry.collect()
    ]


def test_readme_and_operations_name_every_metric() -> None:
    for name in exported_names():
        assert f"`{name}`" in README, name
        assert f"`{name}`" in OPERATIONS, name


def test_readme_stays_short() -> None:
    size = len(README.encode())
    assert size <= MOST_BYTES, f"README.md is {size} bytes; move details to docs/"
