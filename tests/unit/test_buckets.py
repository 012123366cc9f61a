"""A/B buckets, holdouts and enforceable cadences: engine.buckets, the ``bucket:`` condition, the
catalog's ``bucket_salt`` and the segment keys ``frequency`` and ``holdout`` (tables of cases)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from config.errors import CatalogError
from engine.buckets import BUCKETS, DEFAULT_SALT, bucket, held_out
from engine.catalog import Frequency, Segment, parse_catalog, yaml_document
from engine.conditions import Bucket
from engine.definitions import Definition, catalog_of, checked_body, first_version
from engine.explain import explain_segment
from engine.state import CustomerState
from tests.unit.engine_helpers import CUSTOMER, DAY, T0

SOURCE = "segments.yaml"
IDS = [f"c{i:06d}" for i in range(10_000)]


def seg(when: Any = None, **fields: Any) -> dict[str, Any]:
    """A valid segment definition (``always``) with ``when`` and other fields replaced."""
    return {"description": "A segment", "when": when or {"always": True}, **fields}


def doc(salt: Any = None, **segments: Any) -> dict[str, Any]:
    return {"segments": segments} | ({} if salt is None else {"bucket_salt": salt})


def only(document: dict[str, Any], name: str = "a") -> Segment:
    segment = parse_catalog(document, SOURCE).get(name)
    assert segment is not None
    return segment


# -- engine.buckets -----------------------------------------------------------------------------

# Pinned: a customer's bucket may never change with the process, the platform or Python.
PINNED = [
    pytest.param(DEFAULT_SALT, "c000001", 6986, id="default-salt"),
    pytest.param(DEFAULT_SALT, "c000002", 8837, id="another-customer"),
    pytest.param("spring-test", "c000001", 9565, id="another-salt"),
    pytest.param(DEFAULT_SALT, "", 2420, id="empty-id"),
]


@pytest.mark.parametrize(("salt", "customer_id", "expected"), PINNED)
def test_a_bucket_is_pinned(salt: str, customer_id: str, expected: int) -> None:
    assert bucket(salt, customer_id) == expected


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_a_bucket_is_the_same_in_another_process(seed: str) -> None:
    probe = "from engine.buckets import bucket; print(bucket('segstream', 'c000001'))"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    found = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert int(found.stdout) == bucket(DEFAULT_SALT, "c000001")


def test_buckets_cover_their_range_evenly() -> None:
    buckets = [bucket(DEFAULT_SALT, customer_id) for customer_id in IDS]
    assert all(0 <= b < BUCKETS for b in buckets)
    halves = sum(b < BUCKETS // 2 for b in buckets)
    assert 4_850 <= halves <= 5_150  # 10,000 coins: 5,000 give or take 3 standard deviations


# 10,000 customers, each held out with probability p: p * 10,000 give or take 5 deviations.
SHARES = [
    pytest.param(10, 850, 1_150, id="10%"),
    pytest.param(2.5, 170, 330, id="2.5%"),
    pytest.param(50, 4_750, 5_250, id="50%"),
]


@pytest.mark.parametrize(("percent", "low", "high"), SHARES)
def test_a_holdout_holds_out_its_share(percent: float, low: int, high: int) -> None:
    held = sum(held_out(DEFAULT_SALT, "winback", customer_id, percent) for customer_id in IDS)
    assert low <= held <= high


# Two 10% groups of 10,000 customers overlap by 100 by chance (give or take 10).
INDEPENDENT = [
    pytest.param(
        lambda i: held_out(DEFAULT_SALT, "winback", i, 10),
        lambda i: held_out(DEFAULT_SALT, "lapsed", i, 10),
        id="holdouts-of-two-segments",
    ),
    pytest.param(
        lambda i: held_out(DEFAULT_SALT, "winback", i, 10),
        lambda i: bucket(DEFAULT_SALT, i) < 1_000,
        id="holdout-and-bucket",
    ),
    pytest.param(
        lambda i: held_out(DEFAULT_SALT, "winback", i, 10),
        lambda i: held_out("spring-test", "winback", i, 10),
        id="holdouts-of-two-salts",
    ),
]


@pytest.mark.parametrize(("one", "other"), INDEPENDENT)
def test_groups_overlap_as_chance_says(one: Any, other: Any) -> None:
    both = sum(one(customer_id) and other(customer_id) for customer_id in IDS)
    assert 50 <= both <= 150


def test_a_holdout_keeps_its_customers_as_it_grows() -> None:
    small = {i for i in IDS if held_out(DEFAULT_SALT, "winback", i, 5)}
    large = {i for i in IDS if held_out(DEFAULT_SALT, "winback", i, 10)}
    assert small < large


# -- the bucket condition -----------------------------------------------------------------------

CUSTOMER_BUCKET = 6986  # of CUSTOMER with the default salt (PINNED)

BOUNDS = [
    pytest.param(CUSTOMER_BUCKET, CUSTOMER_BUCKET, True, id="exactly"),
    pytest.param(0, CUSTOMER_BUCKET, True, id="at-max"),
    pytest.param(CUSTOMER_BUCKET, BUCKETS - 1, True, id="at-min"),
    pytest.param(0, BUCKETS - 1, True, id="everyone"),
    pytest.param(0, CUSTOMER_BUCKET - 1, False, id="just-below"),
    pytest.param(CUSTOMER_BUCKET + 1, BUCKETS - 1, False, id="just-above"),
]


@pytest.mark.parametrize(("low", "high", "holds"), BOUNDS)
def test_a_bucket_condition_includes_its_bounds(low: int, high: int, holds: bool) -> None:
    segment = only(doc(a=seg({"bucket": {"min": low, "max": high}}, consent_required=False)))
    state = CustomerState(CUSTOMER)
    assert segment.holds(state, T0) is holds
    assert segment.deadline(state, T0) is None
    assert not segment.timed
    assert segment.holds(state, T0 + 400 * DAY) is holds


@pytest.mark.parametrize(
    ("salt", "expected"),
    [
        pytest.param(None, Bucket(0, 4999, DEFAULT_SALT), id="default"),
        pytest.param("spring-test", Bucket(0, 4999, "spring-test"), id="own-salt"),
    ],
)
def test_a_bucket_condition_hashes_with_the_catalog_salt(
    salt: str | None, expected: Bucket
) -> None:
    catalog = parse_catalog(doc(salt, a=seg({"bucket": {"min": 0, "max": 4999}})), SOURCE)
    assert catalog.bucket_salt == (salt or DEFAULT_SALT)
    assert catalog.segments[0].when == expected


EXPLAINED = [
    pytest.param(0, 4999, None, "A/B bucket between 0 and 4999 (of 0 to 9999)", 6986, False),
    pytest.param(5000, 9999, None, "A/B bucket between 5000 and 9999 (of 0 to 9999)", 6986, True),
    pytest.param(9565, 9565, "spring-test", "A/B bucket exactly 9565 (of 0 to 9999)", 9565, True),
]


@pytest.mark.parametrize(("low", "high", "salt", "rule", "value", "holds"), EXPLAINED)
def test_explain_says_the_bucket_and_whether_it_holds(
    low: int, high: int, salt: str | None, rule: str, value: int, holds: bool
) -> None:
    catalog = parse_catalog(
        doc(salt, a=seg({"bucket": {"min": low, "max": high}}, consent_required=False)), SOURCE
    )
    explained = explain_segment(catalog.segments[0], CustomerState(CUSTOMER), T0, catalog)
    assert explained["why"] == {"rule": rule, "holds": holds, "value": value}
    assert explained["holds"] is holds


# -- errors -------------------------------------------------------------------------------------


def in_a(field: str, message: str) -> str:
    return f"{SOURCE}: segment 'a', field '{field}': {message}."


def bucketed(body: Any) -> dict[str, Any]:
    return doc(a=seg({"bucket": body}))


BAD = [
    pytest.param(bucketed(50), in_a("when.bucket", "expected a mapping"), id="bucket-number"),
    pytest.param(bucketed({"min": 0}), in_a("when.bucket.max", "missing"), id="bucket-no-max"),
    pytest.param(
        bucketed({"min": 0, "max": 1, "of": 2}),
        in_a("when.bucket.of", "unknown key (expected one of max, min)"),
        id="bucket-unknown-key",
    ),
    pytest.param(
        bucketed({"min": -1, "max": 5}),
        in_a("when.bucket.min", "expected a whole number of at least 0"),
        id="bucket-negative",
    ),
    pytest.param(
        bucketed({"min": 0, "max": 49.5}),
        in_a("when.bucket.max", "expected a whole number of at least 0"),
        id="bucket-fraction",
    ),
    pytest.param(
        bucketed({"min": 0, "max": 10_000}),
        in_a("when.bucket.max", "buckets run from 0 to 9999"),
        id="bucket-beyond-9999",
    ),
    pytest.param(
        bucketed({"min": 5000, "max": 4999}),
        in_a("when.bucket.min", "min is greater than max"),
        id="bucket-min-above-max",
    ),
    pytest.param(
        doc(a=seg(frequency="weekly")),
        in_a("frequency", "expected a mapping"),
        id="frequency-words",
    ),
    pytest.param(
        doc(a=seg(frequency={"max": 1})), in_a("frequency.per", "missing"), id="frequency-no-per"
    ),
    pytest.param(
        doc(a=seg(frequency={"per": "14d"})),
        in_a("frequency.max", "missing"),
        id="frequency-no-max",
    ),
    pytest.param(
        doc(a=seg(frequency={"max": 1, "per": "14d", "within": "30d"})),
        in_a("frequency.within", "unknown key (expected one of max, per)"),
        id="frequency-unknown-key",
    ),
    pytest.param(
        doc(a=seg(frequency={"max": 0, "per": "14d"})),
        in_a("frequency.max", "expected a whole number of at least 1"),
        id="frequency-zero",
    ),
    pytest.param(
        doc(a=seg(frequency={"max": 1, "per": "fortnight"})),
        in_a("frequency.per", "expected a duration such as 45s, 60m, 12h, 30d or 2w"),
        id="frequency-not-a-duration",
    ),
    pytest.param(
        doc(a=seg(frequency={"max": 1, "per": "36h"})),
        in_a("frequency.per", "a frequency counts whole days: use d or w"),
        id="frequency-not-whole-days",
    ),
    pytest.param(
        doc(a=seg(holdout="ten percent")),
        in_a("holdout", "expected a percentage such as 10% or 2.5%"),
        id="holdout-words",
    ),
    pytest.param(
        doc(a=seg(holdout=True)),
        in_a("holdout", "expected a percentage such as 10% or 2.5%"),
        id="holdout-bool",
    ),
    pytest.param(
        doc(a=seg(holdout="-5%")),
        in_a("holdout", "expected a percentage such as 10% or 2.5%"),
        id="holdout-negative",
    ),
    pytest.param(
        doc(a=seg(holdout="0%")),
        in_a("holdout", "expected a percentage above 0% and below 100%"),
        id="holdout-none",
    ),
    pytest.param(
        doc(a=seg(holdout=100)),
        in_a("holdout", "expected a percentage above 0% and below 100%"),
        id="holdout-everyone",
    ),
    pytest.param(
        doc(a=seg(holdout="10.005%")),
        in_a("holdout", "percentages go in steps of 0.01%"),
        id="holdout-too-fine",
    ),
    pytest.param(
        doc("", a=seg()),
        f"{SOURCE}: field 'bucket_salt': expected a non-empty string.",
        id="salt-empty",
    ),
    pytest.param(
        doc(42, a=seg()),
        f"{SOURCE}: field 'bucket_salt': expected a non-empty string.",
        id="salt-number",
    ),
]


@pytest.mark.parametrize(("document", "message"), BAD)
def test_a_bad_split_or_cadence_is_one_sentence(document: Any, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document, SOURCE)
    assert str(caught.value) == message


# -- frequency and holdout on the segment -------------------------------------------------------

KEPT = [
    pytest.param({}, None, None, id="neither"),
    pytest.param(
        {"frequency": {"max": 1, "per": "60d"}}, Frequency(1, 60 * DAY), None, id="frequency"
    ),
    pytest.param(
        {"frequency": {"max": 2, "per": "2w"}}, Frequency(2, 14 * DAY), None, id="in-weeks"
    ),
    pytest.param({"holdout": "10%"}, None, 10.0, id="holdout"),
    pytest.param({"holdout": "2.5%"}, None, 2.5, id="holdout-fraction"),
    pytest.param({"holdout": " 0.01 %"}, None, 0.01, id="holdout-smallest"),
    pytest.param({"holdout": 10}, None, 10.0, id="holdout-number"),
    pytest.param({"holdout": 99.99}, None, 99.99, id="holdout-largest"),
]


@pytest.mark.parametrize(("fields", "frequency", "holdout"), KEPT)
def test_frequency_and_holdout_are_kept(
    fields: dict[str, Any], frequency: Frequency | None, holdout: float | None
) -> None:
    segment = only(doc(a=seg(**fields)))
    assert (segment.frequency, segment.holdout) == (frequency, holdout)
    assert dict(segment.body) == seg(**fields)


DESCRIBED = [
    pytest.param({}, None, None, id="neither"),
    pytest.param(
        {"frequency": {"max": 1, "per": "14d"}, "holdout": "12.5%"},
        {"max": 1, "per": "2w"},
        12.5,
        id="both",
    ),
    pytest.param({"frequency": {"max": 3, "per": "30d"}}, {"max": 3, "per": "30d"}, None, id="30d"),
]


@pytest.mark.parametrize(("fields", "frequency", "holdout"), DESCRIBED)
def test_describe_shows_frequency_and_holdout(
    fields: dict[str, Any], frequency: dict[str, Any] | None, holdout: float | None
) -> None:
    described = only(doc(a=seg(**fields))).describe()
    assert (described["frequency"], described["holdout"]) == (frequency, holdout)


YAML_SEGMENT = """\
segments:
  a:
    description: A segment
    frequency: {max: 1, per: 14d}
    holdout: 12.5%
    when: {bucket: {min: 0, max: 4999}}
"""


def test_frequency_and_holdout_round_trip_through_yaml_and_live_definitions() -> None:
    segment = only(yaml_document(YAML_SEGMENT, SOURCE))
    written = yaml.safe_dump(dict(segment.body))
    posted = checked_body(written, "a", "api")  # a body posted as YAML text
    definition = Definition.decode("a", first_version("a", posted, "me", T0).encode())
    again = catalog_of({"a": definition.body}, {}).get("a")
    assert again is not None
    assert dict(again.body) == dict(segment.body) == posted
    assert (again.frequency, again.holdout) == (Frequency(1, 14 * DAY), 12.5)
    assert again.digest == segment.digest


# -- digests ------------------------------------------------------------------------------------


def test_a_catalog_without_the_new_keys_keeps_its_digest() -> None:
    plain = parse_catalog(doc(a=seg()), SOURCE)
    assert plain.digest == "7a65ed0e9fe2"  # pinned before buckets existed
    assert parse_catalog(doc(DEFAULT_SALT, a=seg()), SOURCE).digest == plain.digest


SEGMENT_DIGESTS = [
    pytest.param({"frequency": {"max": 1, "per": "14d"}}, id="frequency"),
    pytest.param({"holdout": "10%"}, id="holdout"),
]


@pytest.mark.parametrize("fields", SEGMENT_DIGESTS)
def test_frequency_and_holdout_are_part_of_the_segment_digest(fields: dict[str, Any]) -> None:
    assert only(doc(a=seg(**fields))).digest != only(doc(a=seg())).digest


def test_a_new_salt_changes_the_digest_and_re_evaluates_every_segment() -> None:
    before = parse_catalog(doc(a=seg(), b=seg({"bucket": {"min": 0, "max": 4999}})), SOURCE)
    after = parse_catalog(
        doc("spring-test", a=seg(), b=seg({"bucket": {"min": 0, "max": 4999}})), SOURCE
    ).following(before)
    assert after.digest != before.digest
    assert [s.digest for s in after.segments] == [s.digest for s in before.segments]
    assert after.changed_since(before.digest) == after.segments
