"""The condition language: each condition says whether it holds for a customer at a time, and
when, at the earliest, the passage of time alone could change its answer. Each class declares
the YAML key that introduces it (``form``) and parses its own body.

One module per family: ``logic`` (all, any, not, segment, always), ``profile`` (trait, age,
known_profile), ``activity`` (count, largest_order, bought, clicks_per_open) and ``recency``
(last, quiet, abandoned); ``form`` reads YAML values, ``base`` is what they share.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.conditions.activity import (
    METRICS,
    Bought,
    ClicksPerOpen,
    Count,
    LargestOrder,
    Viewed,
)
from engine.conditions.base import Condition, Reader
from engine.conditions.logic import All, Always, Any, InSegment, Not
from engine.conditions.profile import Age, KnownProfile, Trait
from engine.conditions.recency import LAST_OF, Abandoned, Last, Quiet
from streams.traits import BUILT_IN

# The order catalog errors list the forms in ("expected one of all, any, ...").
FORMS: dict[str, type[Condition]] = {
    cls.form: cls
    for cls in (
        All,
        Any,
        Not,
        InSegment,
        Trait,
        Age,
        KnownProfile,
        Count,
        LargestOrder,
        Last,
        Quiet,
        Abandoned,
        Bought,
        ClicksPerOpen,
        Always,
        Viewed,
    )
}


def reader(cart_quiet_ms: int, traits: Mapping[str, str] = BUILT_IN) -> Reader:
    """A reader of every condition form, with the deployment's default cart quiet period and
    the traits a profile can hold (name -> type: the built-in ones and the catalog's own)."""
    return Reader(FORMS, cart_quiet_ms, traits)


__all__ = [
    "FORMS",
    "LAST_OF",
    "METRICS",
    "Abandoned",
    "Age",
    "All",
    "Always",
    "Any",
    "Bought",
    "ClicksPerOpen",
    "Condition",
    "Count",
    "InSegment",
    "KnownProfile",
    "LargestOrder",
    "Last",
    "Not",
    "Quiet",
    "Reader",
    "Trait",
    "Viewed",
    "reader",
]
