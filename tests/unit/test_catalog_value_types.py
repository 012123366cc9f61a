"""Catalog values must be plain scalars: a nested list is refused naming its field, and a
number too large for a machine integer is still a number."""

from __future__ import annotations

from typing import Any

import pytest

from config.errors import CatalogError
from engine.catalog import parse_catalog


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            {"trait": {"name": "city", "in": [[1]]}},
            "segments.yaml: segment 's', field 'when.trait.in': "
            "expected a list of strings or numbers.",
        ),
    ],
)
def test_a_value_that_is_not_a_scalar_is_refused_naming_its_field(
    when: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog({"segments": {"s": {"description": "S", "when": when}}}, "segments.yaml")
    assert str(caught.value) == message


def test_a_huge_number_in_a_catalog_is_accepted() -> None:
    doc = {
        "segments": {"s": {"description": "S", "when": {"count": {"of": "spend", "min": 10**20}}}}
    }
    assert parse_catalog(doc, "segments.yaml").names() == ["s"]
