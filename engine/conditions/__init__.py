"""The condition language: each condition says whether it holds for a customer at a time, and
when, at the earliest, the passage of time alone could change its answer. Each class declares
the YAML key that introduces it (``form``) and parses its own body.

One module per family: ``logic`` (all, any, not, segment, always), ``profile`` (trait, age,
known_profile), ``activity`` (count, largest_order, bought, clicks_per_open), ``recency``
(last, quiet, abandoned) and ``split`` (bucket); ``form`` reads YAML values, ``base`` is what
they share.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.buckets import DEFAULT_SALT
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
from engine.conditions.split import Bucket
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
        Bucket,
    )
}


def reader(
    cart_quiet_ms: int, traits: Mapping[str, str] = BUILT_IN, bucket_salt: str = DEFAULT_SALT
) -> Reader:
    """A reader of every condition form, with the deployment's default cart quiet period, the
    traits a profile can hold (name -> type: the built-in ones and the catalog's own) and the
    catalog's salt of A/B buckets."""
    return Reader(FORMS, cart_quiet_ms, traits, bucket_salt)


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
    "Bucket",
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
