"""Segment definitions as data: records, versions and history, plans of a change, and the
catalog they make; a changed catalog re-evaluates only what changed (and what refers to it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from config.errors import CatalogError
from engine.buckets import DEFAULT_SALT
from engine.catalog import Catalog
from engine.definitions import (
    MAX_HISTORY,
    SALT_KEY,
    TRAITS_KEY,
    Definition,
    Live,
    catalog_of,
    checked_body,
    first_version,
    plan,
    records_for,
)
from engine.evaluate import advance, sync_catalog
from engine.state import CustomerState
from streams import codec
from tests.unit.engine_helpers import CUSTOMER, T0, feed, purchase

# No consent needed: the customers here only buy.
OPEN = {"consent_required": False}
BUYERS = {**OPEN, "description": "Bought once", "when": {"count": {"of": "orders", "min": 1}}}
REPEAT = {**OPEN, "description": "Bought twice", "when": {"count": {"of": "orders", "min": 2}}}
BIG = {**OPEN, "description": "Spent 100", "when": {"count": {"of": "spend", "min": 100}}}
LOYAL = {
    **OPEN,
    "description": "Repeat and big",
    "when": {"all": [{"segment": "repeat"}, {"segment": "big"}]},
}


def live_of(bodies: dict[str, dict[str, Any]], traits: dict[str, str] | None = None) -> Live:
    definitions = {name: first_version(name, body, "seed", T0) for name, body in bodies.items()}
    return Live(definitions, traits or {}, len(bodies))


def catalog(bodies: dict[str, dict[str, Any]], traits: dict[str, str] | None = None) -> Catalog:
    return catalog_of(bodies, traits or {})


def test_a_definition_record_round_trips_with_its_history() -> None:
    first = first_version("buyers", BUYERS, "ann", T0)
    second = first.revised(REPEAT, "bob", T0 + 1)
    decoded = Definition.decode("buyers", second.encode())
    assert decoded == second
    assert (decoded.version, decoded.changed_by, decoded.body) == (2, "bob", REPEAT)
    assert [item["version"] for item in decoded.history] == [1]
    assert decoded.version_body(1) == BUYERS
    assert decoded.version_body(2) == REPEAT
    assert decoded.version_body(3) is None


def test_history_keeps_the_newest_versions_only() -> None:
    definition = first_version("buyers", BUYERS, "ann", T0)
    for n in range(MAX_HISTORY + 5):
        definition = definition.revised({**BUYERS, "description": f"v{n + 2}"}, "ann", T0 + n)
    kept = [item["version"] for item in definition.history]
    assert len(kept) == MAX_HISTORY
    assert kept[0] == definition.version - 1 and kept == sorted(kept, reverse=True)


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("buyers", b"not json", "not a segment definition record"),
        ("buyers", b'{"version": 1}', "not a segment definition record"),
        (TRAITS_KEY, b'{"income": 3}', "traits record"),
    ],
)
def test_a_record_that_is_not_a_definition_is_skipped_with_a_reason(
    key: str, raw: bytes, reason: str
) -> None:
    before = live_of({"buyers": BUYERS})
    after, skipped = before.after([(key, raw, 7)])
    assert after.definitions == before.definitions and after.traits == before.traits
    assert after.offset == 8
    assert len(skipped) == 1 and reason in skipped[0] and skipped[0].startswith("record 7")


def test_records_fold_into_the_live_definitions() -> None:
    one = first_version("buyers", BUYERS, "ann", T0).encode()
    two = first_version("repeat", REPEAT, "ann", T0).encode()
    live, skipped = Live().after(
        [
            ("buyers", one, 0),
            ("repeat", two, 1),
            (TRAITS_KEY, codec.dumps({"income": "number"}), 2),
            ("buyers", None, 3),  # a tombstone deletes
            (None, b"{}", 4),  # no key: not a definition, the offset moves on
        ]
    )
    assert skipped == []
    assert sorted(live.definitions) == ["repeat"]
    assert dict(live.traits) == {"income": "number"}
    assert live.offset == 5


@pytest.mark.parametrize(
    ("wanted", "traits", "removing", "expected"),
    [
        ({"buyers": BUYERS, "repeat": REPEAT}, {}, True, ((), (), (), False)),
        ({"buyers": BUYERS, "repeat": REPEAT, "big": BIG}, {}, True, (("big",), (), (), False)),
        ({"buyers": REPEAT, "repeat": REPEAT}, {}, True, ((), ("buyers",), (), False)),
        ({"buyers": BUYERS}, {}, True, ((), (), ("repeat",), False)),
        ({"buyers": BUYERS}, {}, False, ((), (), (), False)),
        ({"buyers": BUYERS, "repeat": REPEAT}, {"income": "number"}, True, ((), (), (), True)),
    ],
)
def test_a_plan_names_what_a_change_adds_changes_and_removes(
    wanted: dict[str, Any],
    traits: dict[str, str],
    removing: bool,
    expected: tuple[Any, ...],
) -> None:
    change = plan(live_of({"buyers": BUYERS, "repeat": REPEAT}), wanted, traits, removing=removing)
    assert (change.added, change.changed, change.removed, change.traits_changed) == expected
    assert change.empty == (expected == ((), (), (), False))


def test_records_of_a_plan_version_each_segment_and_delete_with_tombstones() -> None:
    live = live_of({"buyers": BUYERS, "repeat": REPEAT})
    wanted = {"buyers": {**BUYERS, "description": "Bought"}, "big": BIG}
    change = plan(live, wanted, {"income": "number"})
    records = dict(records_for(live, change, wanted, {"income": "number"}, "ann", T0 + 5))
    assert codec.loads(records[TRAITS_KEY]) == {"income": "number"}
    buyers = Definition.decode("buyers", records["buyers"])
    assert (buyers.version, buyers.changed_by, buyers.changed_at) == (2, "ann", T0 + 5)
    assert buyers.version_body(1) == BUYERS
    assert Definition.decode("big", records["big"]).version == 1
    assert records["repeat"] is None
    folded, _ = live.after((key, value, 10 + n) for n, (key, value) in enumerate(records.items()))
    assert folded.bodies() == wanted


@pytest.mark.parametrize(
    ("salt", "live_salt", "changed"),
    [
        ("spring-test", DEFAULT_SALT, True),
        (DEFAULT_SALT, "spring-test", True),  # back to the default: the record is deleted
        ("spring-test", "spring-test", False),
        (None, "spring-test", False),  # one segment's edit leaves the salt as it is
    ],
)
def test_the_bucket_salt_travels_with_the_definitions(
    salt: str | None, live_salt: str, changed: bool
) -> None:
    live = replace(live_of({"buyers": BUYERS}), bucket_salt=live_salt)
    change = plan(live, {"buyers": BUYERS}, {}, bucket_salt=salt)
    assert (change.salt_changed, change.empty) == (changed, not changed)
    records = records_for(live, change, {"buyers": BUYERS}, {}, "ann", T0, salt or DEFAULT_SALT)
    assert [key for key, _ in records] == ([SALT_KEY] if changed else [])
    folded, skipped = live.after((key, value, 10 + n) for n, (key, value) in enumerate(records))
    assert skipped == [] and folded.bucket_salt == (salt if changed else live_salt)
    assert folded.catalog(3_600_000).bucket_salt == folded.bucket_salt


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("Buyers", BUYERS, "request: segment 'Buyers': segment names are lower-case"),
        ("buyers", [1], "request: segment 'buyers': expected a mapping."),
        ("buyers", {"when": BUYERS["when"]}, "request: segment 'buyers'"),
        ("buyers", {**BUYERS, "colour": "red"}, "field 'colour': unknown key"),
    ],
)
def test_a_posted_body_is_checked_with_one_sentence(name: str, body: Any, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        checked_body(body, name, "request")
    assert message in str(caught.value)


def test_definitions_that_refer_to_a_missing_segment_make_no_catalog() -> None:
    with pytest.raises(CatalogError, match=r"segment 'loyal'.*unknown segment"):
        catalog({"loyal": LOYAL, "repeat": REPEAT})


def test_the_file_and_the_topic_make_the_same_catalog_whatever_the_order(
    catalog: Catalog,
) -> None:
    # A compacted topic keeps each segment at its newest record: the order varies from worker
    # to worker, the catalog (its order of evaluation and its digest) may not.
    bodies = [(segment.name, segment.body) for segment in catalog.segments]
    for order in (bodies, bodies[::-1], bodies[1::2] + bodies[::2]):
        made = catalog_of(dict(order), catalog.traits)
        assert (made.digest, made.names()) == (catalog.digest, catalog.names())


V1 = {"buyers": BUYERS, "repeat": REPEAT, "big": BIG, "loyal": LOYAL}


@pytest.mark.parametrize(
    ("v2", "traits", "re_evaluated"),
    [
        (V1, {}, []),
        ({**V1, "buyers": {**BUYERS, "description": "Bought at least once"}}, {}, ["buyers"]),
        # A changed segment re-evaluates the segments that refer to it.
        (
            {
                **V1,
                "big": {"description": "Spent 50", "when": {"count": {"of": "spend", "min": 50}}},
            },
            {},
            ["big", "loyal"],
        ),
        ({**V1, "new": REPEAT}, {}, ["new"]),
        # Declared traits can change what every segment sees.
        (V1, {"income": "number"}, ["buyers", "repeat", "big", "loyal"]),
    ],
)
def test_a_changed_catalog_names_the_segments_to_re_evaluate(
    v2: dict[str, Any], traits: dict[str, str], re_evaluated: list[str]
) -> None:
    old = catalog(V1)
    new = catalog(v2, traits).following(old)
    assert sorted(s.name for s in new.changed_since(old.digest)) == sorted(re_evaluated)
    assert new.changed_since(new.digest) == ()
    assert new.changed_since("unknown") == new.segments


def test_changes_since_an_older_catalog_add_up_and_going_back_changes_nothing() -> None:
    v1 = catalog(V1)
    v2 = catalog({**V1, "buyers": REPEAT}).following(v1)
    v3 = catalog({**V1, "buyers": REPEAT, "repeat": BUYERS}).following(v2)
    assert {s.name for s in v3.changed_since(v1.digest)} == {"buyers", "repeat", "loyal"}
    assert {s.name for s in v3.changed_since(v2.digest)} == {"repeat", "loyal"}
    back = catalog(V1).following(v3)
    assert back.digest == v1.digest
    assert back.changed_since(v1.digest) == ()
    # Through v3, the way back covers what changed since v2 (and may re-evaluate more).
    assert {"buyers", "loyal"} <= {s.name for s in back.changed_since(v2.digest)}


def test_a_customer_is_re_evaluated_on_the_changed_segments_only() -> None:
    v1 = catalog(V1)
    state = CustomerState(CUSTOMER)
    feed(state, [purchase(T0, total=150), purchase(T0 + 1000, total=10)], v1)
    assert state.segments == {"buyers", "repeat", "big", "loyal"}
    # v2 raises the spend bar: big (and loyal, through it) exit; nothing else is looked at.
    stricter = {**OPEN, "description": "Spent 500", "when": {"count": {"of": "spend", "min": 500}}}
    v2 = catalog({**V1, "big": stricter}).following(v1)
    outcome = sync_catalog(state, state.clock, v2, catalog_at=T0 + 5000)
    assert [(c.segment, c.change, c.cause, c.at) for c in outcome.changes] == [
        ("big", "exit", "catalog", T0 + 5000),
        ("loyal", "exit", "catalog", T0 + 5000),
    ]
    assert state.catalog_digest == v2.digest
    assert advance(state, state.clock, v2).changes == []


def test_a_removed_segment_exits_whatever_else_changed() -> None:
    v1 = catalog(V1)
    state = CustomerState(CUSTOMER)
    feed(state, [purchase(T0, total=150)], v1)
    assert "buyers" in state.segments
    v2 = catalog({k: v for k, v in V1.items() if k != "buyers"}).following(v1)
    outcome = sync_catalog(state, state.clock, v2)
    assert [(c.segment, c.change) for c in outcome.changes] == [("buyers", "exit")]


def test_preview_counts_add_up_across_workers() -> None:
    from serving.preview import SAMPLE, Counts

    one, two = Counts(), Counts()
    for n, (holds, member) in enumerate(
        [(True, False), (True, True), (False, True), (False, False)]
    ):
        one.count(f"a{n}", holds, member)
    for n in range(SAMPLE + 2):
        two.count(f"b{n:02}", True, True)
    one.add(two.as_dict())
    assert (one.customers, one.members, one.entering, one.leaving) == (
        4 + SAMPLE + 2,
        2 + SAMPLE + 2,
        1,
        1,
    )
    assert one.sample == sorted(["a0", "a1", *(f"b{n:02}" for n in range(SAMPLE))])[:SAMPLE]


def test_a_posted_body_may_be_yaml_as_the_catalog_writes_a_segment() -> None:
    text = (
        "description: Bought once\nconsent_required: false\nwhen: {count: {of: orders, min: 1}}\n"
    )
    assert checked_body(text, "buyers", "request") == {
        "description": "Bought once",
        "consent_required": False,
        "when": {"count": {"of": "orders", "min": 1}},
    }
    with pytest.raises(
        CatalogError, match=r"request \(segment 'buyers'\): not valid YAML at line 3"
    ):
        checked_body("description: x\nwhen: {count: [\n", "buyers", "request")


def test_a_segment_shows_its_rule_in_words(catalog: Catalog) -> None:
    from engine.explain import rule_tree

    repeat = catalog.get("repeat_buyers")
    assert repeat is not None
    assert rule_tree(repeat) == {
        "rule": "all of",
        "parts": [
            {"rule": "email consent given (the segment requires it)"},
            {"rule": "orders ever at least 2"},
        ],
    }
