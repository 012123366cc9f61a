"""engine.catalog: parsing and checking segment definitions; digests and sync_catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from config import names
from config.errors import CatalogError, ConfigError, InvalidEvent
from engine import conditions as c
from engine.catalog import DEFAULT_CATALOG, catalog_for, load_catalog, parse_catalog
from engine.changes import ENTER, EXIT
from engine.evaluate import apply_event, sync_catalog
from engine.state import CustomerState
from streams.events import decode
from streams.traits import BUILT_IN as TRAITS
from tests.unit.engine_helpers import (
    CUSTOMER,
    T0,
    at,
    consent,
    email_open,
    feed,
    profile,
    purchase,
    timeline,
    topic_of,
)

SOURCE = "segments.yaml"
FORMS = (
    "all, any, not, segment, trait, age, known_profile, count, largest_order, last, quiet, "
    "abandoned, bought, clicks_per_open, always, viewed, bucket"
)
SEGMENT_KEYS = "cadence, consent_required, description, frequency, holdout, trigger, when"


def seg(when: Any = None, **fields: Any) -> dict[str, Any]:
    """A valid segment definition (``always``) with ``when`` and other fields replaced."""
    body: dict[str, Any] = {"description": "A segment", "when": {"always": True}}
    if when is not None:
        body["when"] = when
    body.update(fields)
    return body


def doc(**segments: Any) -> dict[str, Any]:
    return {"segments": segments}


def catalog_error(document: Any) -> str:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document, SOURCE)
    return str(caught.value)


def in_a(field: str, message: str) -> str:
    return f"{SOURCE}: segment 'a', field '{field}': {message}."


WITHOUT_DESCRIPTION = seg()
del WITHOUT_DESCRIPTION["description"]
WITHOUT_WHEN = seg()
del WITHOUT_WHEN["when"]

BAD = [
    pytest.param(
        doc(a=seg({"often": True})),
        in_a("when.often", f"unknown condition (expected one of {FORMS})"),
        id="unknown-condition",
    ),
    pytest.param(
        doc(a=seg({"all": [{"always": True}, {"nope": 1}]})),
        in_a("when.all[1].nope", f"unknown condition (expected one of {FORMS})"),
        id="unknown-condition-nested",
    ),
    pytest.param(
        doc(a=seg(colour="red")),
        in_a("colour", f"unknown key (expected one of {SEGMENT_KEYS})"),
        id="unknown-segment-key",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "orders", "min": 1, "per": "day"}})),
        in_a("when.count.per", "unknown key (expected one of max, min, of, within)"),
        id="unknown-condition-key",
    ),
    pytest.param(
        doc(a=seg({"last": {"of": "purchase", "within": "30 days"}})),
        in_a("when.last.within", "expected a duration such as 45s, 60m, 12h, 30d or 2w"),
        id="bad-duration",
    ),
    pytest.param(
        doc(a=seg({"quiet": {"of": "open", "for": "0d"}})),
        in_a("when.quiet.for", "expected a duration such as 45s, 60m, 12h, 30d or 2w"),
        id="zero-duration",
    ),
    pytest.param(
        doc(a=seg({"last": {"of": "purchase", "more_than": 30}})),
        in_a("when.last.more_than", "expected a duration such as 45s, 60m, 12h, 30d or 2w"),
        id="duration-without-unit",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "orders", "min": 1, "within": "36h"}})),
        in_a("when.count.within", "windows count whole days: use d or w"),
        id="window-not-whole-days",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "orders", "min": 1, "within": "366d"}})),
        in_a("when.count.within", "windows reach back at most 365d"),
        id="window-366d",
    ),
    pytest.param(
        doc(a=seg({"largest_order": {"within": "53w", "min_total": 1}})),
        in_a("when.largest_order.within", "windows reach back at most 365d"),
        id="window-53w",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "orders", "min": 3, "max": 2}})),
        in_a("when.count.min", "min is greater than max"),
        id="count-min-over-max",
    ),
    pytest.param(
        doc(a=seg({"age": {"min": 30, "max": 20}})),
        in_a("when.age.min", "min is greater than max"),
        id="age-min-over-max",
    ),
    pytest.param(
        doc(a=seg({"all": [{"always": True}, {"segment": "ghost"}]})),
        in_a("when", "refers to unknown segment 'ghost'"),
        id="unknown-reference",
    ),
    pytest.param(
        doc(a=seg({"segment": "b"}), b=seg({"segment": "a"})),
        in_a("when", "segment references form a cycle: a -> b -> a"),
        id="cycle",
    ),
    pytest.param(
        doc(a=seg({"not": {"segment": "a"}})),
        in_a("when", "segment references form a cycle: a -> a"),
        id="self-reference",
    ),
    pytest.param(
        {"segments": {"Big-Spenders": seg()}},
        f"{SOURCE}: segment 'Big-Spenders': segment names are lower-case letters, digits and _.",
        id="bad-segment-name",
    ),
    pytest.param(
        {"segments": {"1st_buyers": seg()}},
        f"{SOURCE}: segment '1st_buyers': segment names are lower-case letters, digits and _.",
        id="name-starts-with-a-digit",
    ),
    pytest.param(doc(a=WITHOUT_DESCRIPTION), in_a("description", "missing"), id="no-description"),
    pytest.param(
        doc(a=seg(description="")),
        in_a("description", "expected a non-empty string"),
        id="empty-description",
    ),
    pytest.param(doc(a=WITHOUT_WHEN), in_a("when", "missing"), id="no-when"),
    pytest.param(
        doc(a=seg(consent_required="yes")),
        in_a("consent_required", "expected true or false"),
        id="consent-not-bool",
    ),
    pytest.param(
        doc(a=seg(trigger="sms_reminder")),
        in_a("trigger", "expected one of cart_abandoned, browse_abandoned"),
        id="unknown-trigger",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "visits", "min": 1}})),
        in_a(
            "when.count.of",
            "expected one of orders, spend, opens, clicks, engagement, support_contacts",
        ),
        id="unknown-metric",
    ),
    pytest.param(
        doc(a=seg({"count": {"of": "orders"}})),
        in_a("when.count", "give min, max or both"),
        id="count-without-bounds",
    ),
    pytest.param(
        doc(a=seg({"trait": {"name": "gender", "equals": "female", "exists": True}})),
        in_a("when.trait", "give exactly one of equals, in, contains, exists, or min/max"),
        id="trait-two-tests",
    ),
    pytest.param(
        doc(a=seg({"trait": {"name": "gendr", "equals": "female"}})),
        in_a(
            "when.trait.name",
            "unknown trait 'gendr' (built in: birth_year, city, country, email_consent, gender, "
            "industry, interests, source, timezone; declared under traits: none yet)",
        ),
        id="unknown-trait",
    ),
    pytest.param(
        doc(a=seg({"not": {"trait": {"name": "email", "exists": True}}})),
        in_a(
            "when.not.trait.name",
            "unknown trait 'email' (built in: birth_year, city, country, email_consent, gender, "
            "industry, interests, source, timezone; declared under traits: none yet)",
        ),
        id="dropped-trait",
    ),
    pytest.param(
        {
            "segments": {"cross_sell_shoes_to_socks": seg()},
            "cross_sell": [{"from": "shoes", "to": "socks"}],
        },
        f"{SOURCE}: segment 'cross_sell_shoes_to_socks': defined twice (once by cross_sell[0]).",
        id="cross-sell-name-taken",
    ),
    pytest.param(
        {"segments": {}, "cross_sell": [{"from": "shoes", "to": "socks"}] * 2},
        f"{SOURCE}: segment 'cross_sell_shoes_to_socks': defined twice (once by cross_sell[1]).",
        id="cross-sell-pair-twice",
    ),
    pytest.param(
        doc(a=seg({"all": []})),
        in_a("when.all", "expected a non-empty list of conditions"),
        id="empty-all",
    ),
    pytest.param(["segments"], f"{SOURCE}: expected a mapping.", id="top-not-a-mapping"),
    pytest.param({}, f"{SOURCE}: field 'segments': missing.", id="no-segments"),
    pytest.param(
        {"segmnts": {}},
        f"{SOURCE}: field 'segmnts': unknown key (expected one of "
        "bucket_salt, cross_sell, segments, traits).",
        id="unknown-top-key",
    ),
    pytest.param(
        {"segments": {}, "cross_sell": [{"from": "shoes"}]},
        f"{SOURCE}: field 'cross_sell[0].to': missing.",
        id="cross-sell-without-to",
    ),
]


@pytest.mark.parametrize(("document", "message"), BAD)
def test_bad_definition_is_one_sentence_naming_file_segment_and_field(
    document: Any, message: str
) -> None:
    assert catalog_error(document) == message


def test_catalog_errors_are_config_errors_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(doc(a=seg({"often": True})), SOURCE)
    text = str(caught.value)
    assert "\n" not in text
    assert text.endswith(".") and not text.endswith("..")


@pytest.mark.parametrize(
    "segments", [5, [{"a": {"description": "x", "when": {"always": True}}}]], ids=["int", "list"]
)
def test_segments_that_are_not_a_mapping_are_a_catalog_error(segments: Any) -> None:
    assert catalog_error({"segments": segments}) == (
        f"{SOURCE}: field 'segments': expected a mapping."
    )


def test_cross_sell_that_is_not_a_list_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match=r"^segments\.yaml: field 'cross_sell"):
        parse_catalog({"segments": {}, "cross_sell": 5}, SOURCE)


# -- files ------------------------------------------------------------------------------------


def file_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / SOURCE
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    return str(caught.value).replace(str(path), SOURCE)


SEGMENT_A = "  a:\n    description: A\n    when: {always: true}\n"

BAD_FILES = [
    pytest.param(
        "segments:\n\ta: 1\n",
        "not valid YAML at line 2, column 1: found character '\\t' that cannot start any token"
        " (YAML indents with spaces, never tabs)",
        id="tab",
    ),
    pytest.param(
        "segments:\n  a: {description: A, when: {always: true}\n",
        "not valid YAML at line 3, column 1: expected ',' or '}', but got '<stream end>'",
        id="unclosed-brace",
    ),
    pytest.param(
        "segments:\n  a:\n    description: A\n   when: {always: true}\n",
        "not valid YAML at line 4, column 4: "
        "expected <block end>, but found '<block mapping start>'",
        id="bad-indent",
    ),
    pytest.param(
        "segments:\n  a: *nowhere\n",
        "not valid YAML at line 2, column 6: found undefined alias 'nowhere'",
        id="undefined-alias",
    ),
    pytest.param(
        f"segments:\n{SEGMENT_A}  b:\n    description: B\n    when: {{always: true}}\n{SEGMENT_A}",
        "segment 'a': segment defined twice, at lines 2 and 8",
        id="segment-twice",
    ),
    pytest.param(
        f"segments:\n{SEGMENT_A}segments:\n{SEGMENT_A}",
        "field 'segments': given twice, at lines 1 and 5",
        id="segments-twice",
    ),
    pytest.param(
        "segments:\n  a:\n    description: A\n    description: B\n    when: {always: true}\n",
        "segment 'a', field 'description': given twice, at lines 3 and 4",
        id="field-twice",
    ),
    pytest.param(
        "segments:\n  a:\n    description: A\n    when: {count: {of: orders, min: 1, min: 2}}\n",
        "segment 'a', field 'when.count.min': given twice, at line 4, columns 32 and 40",
        id="condition-key-twice-on-one-line",
    ),
    pytest.param(
        "segments:\n  a:\n    description: A\n    when:\n      all:\n"
        "        - {always: true}\n        - {bought: {sku: x, sku: y}}\n",
        "segment 'a', field 'when.all[1].bought.sku': given twice, at line 7, columns 21 and 29",
        id="key-twice-in-a-list-item",
    ),
    pytest.param(
        "segments: {}\ncross_sell:\n  - {from: shoes, to: socks, to: bags}\n",
        "field 'cross_sell[0].to': given twice, at line 3, columns 19 and 30",
        id="cross-sell-key-twice",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_one_sentence_with_the_place(tmp_path: Path, text: str, message: str) -> None:
    assert file_error(tmp_path, text) == f"{SOURCE}: {message}."


def test_merge_keys_may_override_what_they_merge(tmp_path: Path) -> None:
    path = tmp_path / SOURCE
    path.write_text(
        "segments:\n  a: &base\n    description: A\n    when: {always: true}\n"
        "  b:\n    <<: *base\n    description: B\n"
    )
    assert [s.description for s in load_catalog(path).segments] == ["A", "B"]


def test_trait_conditions_know_every_trait_the_decoder_keeps() -> None:
    # One list for both: the catalog accepts exactly the traits a profile update can set.
    typed = {
        "birth_year": 1990,
        "interests": ["running"],
        "email_consent": True,
        "timezone": "Europe/Berlin",
    }
    every = {name: typed.get(name, "x") for name in TRAITS}
    raw = orjson.dumps({"event_id": "e", "customer_id": "c", "ts": T0, "traits": every})
    kept = decode(names.PROFILE_UPDATES, b"c", raw).traits  # type: ignore[attr-defined]
    assert set(kept) == set(TRAITS)
    for name in TRAITS:
        parse_catalog(doc(a=seg({"trait": {"name": name, "exists": True}})), SOURCE)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("missing.yaml", "No such file or directory", id="missing"),
        pytest.param("", "Is a directory", id="directory"),
    ],
)
def test_unreadable_file(tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / name if name else tmp_path
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value) == f"{path}: cannot be read ({reason})."


def test_an_empty_file_is_not_a_catalog(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value) == f"{path}: expected a mapping."


def test_errors_name_the_file_they_came_from(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("segments:\n  a:\n    description: A\n    when: {age: {min: 5, max: 1}}\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value) == (
        f"{path}: segment 'a', field 'when.age.min': min is greater than max."
    )


# -- forms ------------------------------------------------------------------------------------

PARSED = [
    pytest.param({"always": True}, c.Always(), id="always"),
    pytest.param({"segment": "b"}, c.InSegment("b"), id="segment"),
    pytest.param({"not": {"always": True}}, c.Not(c.Always()), id="not"),
    pytest.param(
        {"all": [{"always": True}, {"segment": "b"}]},
        c.All((c.Always(), c.InSegment("b"))),
        id="all",
    ),
    pytest.param({"any": [{"segment": "b"}]}, c.Any((c.InSegment("b"),)), id="any"),
    pytest.param(
        {"trait": {"name": "country", "in": ["DE", "fr"]}},
        c.Trait("country", one_of=frozenset({"de", "fr"})),
        id="trait-in",
    ),
    pytest.param(
        {"trait": {"name": "interests", "contains": "Running"}},
        c.Trait("interests", contains="running"),
        id="trait-contains",
    ),
    pytest.param({"age": {"min": 18}}, c.Age(18, None), id="age"),
    pytest.param({"known_profile": True}, c.KnownProfile(), id="known_profile"),
    pytest.param(
        {"count": {"of": "spend", "within": "2w", "min": 100}},
        c.Count("spend", 14, 100.0, None),
        id="count",
    ),
    pytest.param(
        {"largest_order": {"within": "30d", "min_total": 500}},
        c.LargestOrder(30, None, 500.0),
        id="largest_order",
    ),
    pytest.param(
        {"last": {"of": "cart", "within": "2h"}}, c.Last("cart", 7_200_000, None), id="last"
    ),
    pytest.param({"quiet": {"of": "click", "for": "1d"}}, c.Quiet("click", 86_400_000), id="quiet"),
    pytest.param(
        {"abandoned": {"did": "cart", "then_not": "purchase"}},
        c.Abandoned("cart", ("purchase",), 3_600_000),
        id="abandoned-default-quiet",
    ),
    pytest.param(
        {"abandoned": {"did": "view", "then_not": ["cart", "purchase"], "quiet": "2h"}},
        c.Abandoned("view", ("cart", "purchase"), 7_200_000),
        id="abandoned-browse",
    ),
    pytest.param(
        {"viewed": {"category": "outdoor", "within": "14d", "min": 3}},
        c.Viewed("category:outdoor", 14, 3),
        id="viewed",
    ),
    pytest.param(
        {"bought": {"category": "shoes", "min_orders": 2}},
        c.Bought(category="shoes", min_orders=2),
        id="bought",
    ),
    pytest.param(
        {"clicks_per_open": {"max": 0.1, "min_opens": 5}},
        c.ClicksPerOpen(None, None, 0.1, 5),
        id="clicks_per_open",
    ),
    pytest.param({"bucket": {"min": 0, "max": 4999}}, c.Bucket(0, 4999), id="bucket"),
]


@pytest.mark.parametrize(("when", "expected"), PARSED)
def test_each_form_parses_into_the_condition_that_declares_it(
    when: dict[str, Any], expected: c.Condition
) -> None:
    segment = parse_catalog(doc(a=seg(when), b=seg()), SOURCE).get("a")
    assert segment is not None
    assert segment.when == expected
    assert type(segment.when).form == next(iter(when))


def test_every_condition_class_is_registered_under_its_form() -> None:
    def concrete(cls: type[c.Condition]) -> set[type[c.Condition]]:
        below = set().union(*(concrete(sub) for sub in cls.__subclasses__()))
        return below | ({cls} if "form" in vars(cls) else set())

    assert {cls.form: cls for cls in concrete(c.Condition)} == c.FORMS
    assert ", ".join(c.FORMS) == FORMS


def test_a_catalog_of_every_form_keeps_its_digest() -> None:
    # Pinned: customers' states store the digest, and a new one re-evaluates every customer
    # (changed once on purpose: segments are ordered by name, whatever order they come in).
    # The forms pinned then (later ones pin their own digest below).
    pinned = [p for p in PARSED if p.id not in ("abandoned-browse", "viewed", "bucket")]
    every = {f"s{i}": seg(param.values[0]) for i, param in enumerate(pinned)}
    assert parse_catalog(doc(b=seg(), **every), SOURCE).digest == "498ae312bfa3"
    later = {f"s{i}": seg(p.values[0]) for i, p in enumerate(PARSED) if p.id != "bucket"}
    assert parse_catalog(doc(b=seg(), **later), SOURCE).digest == "6460bef3ffa7"
    latest = {f"s{i}": seg(param.values[0]) for i, param in enumerate(PARSED)}
    assert parse_catalog(doc(b=seg(), **latest), SOURCE).digest == "896ad5fea8c5"


# -- structure --------------------------------------------------------------------------------


def test_references_come_before_their_users() -> None:
    catalog = parse_catalog(
        doc(
            top=seg({"all": [{"segment": "middle"}, {"segment": "base"}]}),
            middle=seg({"segment": "base"}),
            lone=seg(),
            base=seg({"count": {"of": "orders", "min": 1}}),
        ),
        SOURCE,
    )
    order = catalog.names()
    assert sorted(order) == ["base", "lone", "middle", "top"]
    assert order.index("base") < order.index("middle") < order.index("top")


def test_the_shipped_catalog_orders_lapsed_before_winback() -> None:
    order = load_catalog().names()
    assert order.index("lapsed_customers") < order.index("winback_candidates")


def test_topics_include_references_and_consent() -> None:
    catalog = parse_catalog(
        doc(
            buyers=seg({"count": {"of": "orders", "min": 1}}, consent_required=False),
            openers=seg({"last": {"of": "open", "within": "30d"}}),
            open_buyers=seg(
                {"all": [{"segment": "buyers"}, {"segment": "openers"}]},
                consent_required=False,
            ),
            free_buyers=seg({"not": {"segment": "buyers"}}, consent_required=False),
            quiet=seg({"quiet": {"of": "click", "for": "30d"}}, consent_required=False),
            everyone=seg(consent_required=False),
        ),
        SOURCE,
    )

    def topics(name: str) -> frozenset[str]:
        segment = catalog.get(name)
        assert segment is not None
        return segment.topics

    assert topics("buyers") == {names.PURCHASES}
    assert topics("openers") == {names.EMAIL_OPENS, names.PROFILE_UPDATES}
    assert topics("open_buyers") == {names.PURCHASES, names.EMAIL_OPENS, names.PROFILE_UPDATES}
    assert topics("free_buyers") == {names.PURCHASES}
    assert topics("quiet") == set(names.EVENT_TOPICS)
    assert topics("everyone") == set()
    assert [s.name for s in catalog.for_topic(names.EMAIL_OPENS)] == [
        "openers",
        "open_buyers",
        "quiet",
    ]


def test_the_shipped_winback_topics() -> None:
    winback = load_catalog().get("winback_candidates")
    assert winback is not None
    assert winback.topics == {names.PURCHASES, names.EMAIL_OPENS, names.PROFILE_UPDATES}


# -- digests ----------------------------------------------------------------------------------

SHIPPED = DEFAULT_CATALOG.read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_unchanged_file_keeps_its_digest(tmp_path: Path) -> None:
    first = load_catalog(write(tmp_path, "one.yaml", SHIPPED))
    again = load_catalog(write(tmp_path, "two.yaml", SHIPPED))
    commented = load_catalog(write(tmp_path, "three.yaml", "# reviewed\n" + SHIPPED))
    assert first.digest == again.digest == commented.digest == load_catalog().digest
    assert catalog_for("", 60).digest == first.digest
    assert len(first.digest) == 12


def test_a_changed_definition_changes_the_digest(tmp_path: Path) -> None:
    before = load_catalog(write(tmp_path, "one.yaml", SHIPPED))
    edited = SHIPPED.replace(
        "{count: {of: orders, within: 90d, min: 3}}", "{count: {of: orders, within: 90d, min: 4}}"
    )
    assert edited != SHIPPED
    after = load_catalog(write(tmp_path, "two.yaml", edited))
    assert after.digest != before.digest
    changed = {
        s.name
        for s in after.segments
        if s.digest != before.get(s.name).digest  # type: ignore[union-attr]
    }
    assert changed == {"frequent_buyers"}


def test_a_changed_quiet_period_changes_the_digest() -> None:
    assert catalog_for("", 15).digest != catalog_for("", 60).digest
    assert load_catalog(cart_quiet_ms=60 * 60_000).digest == catalog_for("", 60).digest


# -- sync_catalog -----------------------------------------------------------------------------

OLD = parse_catalog(
    doc(
        buyers=seg({"count": {"of": "orders", "min": 1}}, consent_required=False),
        everyone=seg(consent_required=False),
        consented=seg(),
    ),
    "old.yaml",
)
NEW = parse_catalog(
    doc(
        buyers=seg({"count": {"of": "orders", "min": 2}}, consent_required=False),
        consented=seg(),
        openers=seg({"count": {"of": "opens", "min": 1}}, consent_required=False),
    ),
    "new.yaml",
)


def old_customer() -> CustomerState:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(T0), purchase(at(hours=1)), email_open(at(hours=2))], OLD)
    assert state.segments == {"buyers", "everyone", "consented"}
    assert state.catalog_digest == OLD.digest
    return state


def test_sync_catalog_re_evaluates_everything_and_exits_removed_segments() -> None:
    state = old_customer()
    outcome = sync_catalog(state, state.clock, NEW)
    now = at(hours=2)
    assert timeline(outcome.changes) == [
        ("everyone", EXIT, now, None),
        ("buyers", EXIT, now, None),
        ("openers", ENTER, now, None),
    ]
    assert [c.version for c in outcome.changes] == [4, 5, 6]
    assert state.segments == {"consented", "openers"}
    assert state.catalog_digest == NEW.digest
    assert not sync_catalog(state, state.clock, NEW)


def test_sync_catalog_with_the_same_catalog_changes_nothing() -> None:
    state = old_customer()
    assert not sync_catalog(state, state.clock, OLD)


def test_an_event_for_a_customer_of_an_older_catalog_syncs_first() -> None:
    state = old_customer()
    update = profile(at(days=1), city="Berlin")
    outcome = apply_event(state, update, topic_of(update), NEW)
    assert timeline(outcome.changes) == [
        ("everyone", EXIT, at(hours=2), None),
        ("buyers", EXIT, at(hours=2), None),
        ("openers", ENTER, at(hours=2), None),
    ]
    assert state.catalog_digest == NEW.digest


# -- evaluation never crashes on a valid catalog ---------------------------------------------


def test_trait_in_on_a_list_trait_does_not_crash() -> None:
    catalog = parse_catalog(
        doc(a=seg({"trait": {"name": "interests", "in": ["running", "yoga"]}})), SOURCE
    )
    state = CustomerState(CUSTOMER)
    feed(state, [consent(T0, interests=["running"])], catalog)
    assert state.segments <= {"a"}


# -- declared traits ----------------------------------------------------------------------------

TRAITS_DECLARED = {
    "income_band": "string",
    "children": "number",
    "vip": "boolean",
    "vip_since": "date",
    "lifestyle": "list",
}


def with_traits(condition: dict[str, Any], traits: Any = TRAITS_DECLARED) -> dict[str, Any]:
    return {"traits": traits, **doc(a=seg(condition))}


@pytest.mark.parametrize(
    ("traits", "field", "reason"),
    [
        (
            "income",
            "traits",
            "expected a mapping of trait names to types (string, number, boolean, date, list)",
        ),
        (
            {"Income": "string"},
            "traits.Income",
            "trait names are lower-case letters, digits and _ (64 at most)",
        ),
        ({"email": "string"}, "traits.email", "email is personal data that segstream never stores"),
        (
            {"gender": "string"},
            "traits.gender",
            "gender is built in (a string); declare only your own traits",
        ),
        (
            {"income": "money"},
            "traits.income",
            "expected one of string, number, boolean, date, list",
        ),
        ({f"t{i}": "string" for i in range(51)}, "traits", "at most 50 traits may be declared"),
    ],
)
def test_a_bad_trait_declaration_names_the_field(traits: Any, field: str, reason: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(with_traits({"always": True}, traits), SOURCE)
    assert str(caught.value) == f"{SOURCE}: field '{field}': {reason}."


@pytest.mark.parametrize(
    ("condition", "field", "reason"),
    [
        (
            {"name": "income", "equals": "high"},
            "name",
            "unknown trait 'income' (built in: birth_year, city, country, email_consent, gender, "
            "industry, interests, source, timezone; declared under traits: children, income_band, "
            "lifestyle, vip, vip_since)",
        ),
        (
            {"name": "lifestyle", "equals": "outdoor"},
            "equals",
            "lifestyle is a list trait; equals tests a string or number or boolean trait",
        ),
        (
            {"name": "income_band", "contains": "high"},
            "contains",
            "income_band is a string trait; contains tests a list trait",
        ),
        (
            {"name": "income_band", "min": 3},
            "min",
            "income_band is a string trait; min/max tests a number or date trait",
        ),
        (
            {"name": "children", "equals": "two"},
            "equals",
            "expected a number, as the trait is declared",
        ),
        (
            {"name": "vip", "equals": "yes"},
            "equals",
            "expected a boolean, as the trait is declared",
        ),
        ({"name": "vip_since", "min": "last year"}, "min", "expected a date such as 2024-01-31"),
    ],
)
def test_trait_conditions_check_declared_traits(
    condition: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(with_traits({"trait": condition}), SOURCE)
    assert str(caught.value) == f"{SOURCE}: segment 'a', field 'when.trait.{field}': {reason}."


def kept_traits(traits: dict[str, Any], declared: Any = TRAITS_DECLARED) -> dict[str, Any]:
    raw = orjson.dumps({"event_id": "e", "customer_id": "c", "ts": T0, "traits": traits})
    return decode(names.PROFILE_UPDATES, b"c", raw, traits=declared).traits  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("condition", "traits", "holds"),
    [
        ({"name": "income_band", "in": ["high", "top"]}, {"income_band": "High"}, True),
        ({"name": "income_band", "in": ["high", "top"]}, {"income_band": "low"}, False),
        ({"name": "children", "min": 2}, {"children": 3}, True),
        ({"name": "children", "min": 2}, {"children": 1}, False),
        ({"name": "vip", "equals": True}, {"vip": True}, True),
        ({"name": "vip_since", "max": "2024-01-31"}, {"vip_since": "2023-06-01"}, True),
        ({"name": "vip_since", "max": "2024-01-31"}, {"vip_since": "2024-02-01T00:00:00Z"}, False),
        ({"name": "lifestyle", "contains": "outdoor"}, {"lifestyle": ["Outdoor", "family"]}, True),
        ({"name": "lifestyle", "contains": "outdoor"}, {"lifestyle": ["urban"]}, False),
        ({"name": "lifestyle", "exists": False}, {}, True),
    ],
)
def test_declared_traits_are_kept_and_segmented_on(
    condition: dict[str, Any], traits: dict[str, Any], holds: bool
) -> None:
    catalog = parse_catalog(with_traits({"trait": condition}), SOURCE)
    assert catalog.traits == TRAITS_DECLARED
    state = CustomerState("c", traits=kept_traits(traits, catalog.traits))
    assert catalog.segments[0].when.holds(state, T0) is holds


def test_undeclared_traits_are_dropped_and_declared_ones_typed() -> None:
    kept = kept_traits({"income_band": "high", "job_title": "cto", "lifestyle": ["A", "b", "a"]})
    assert kept == {"income_band": "high", "lifestyle": ["a", "b"]}
    assert kept_traits({"income_band": "high"}, declared={}) == {}


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({"income_band": 3}, "traits.income_band: expected a string of 1 to 256 characters"),
        (
            {"income_band": "x" * 257},
            "traits.income_band: expected a string of 1 to 256 characters",
        ),
        ({"children": "2"}, "traits.children: expected a number"),
        ({"children": True}, "traits.children: expected a number"),
        ({"children": 1e16}, "traits.children: expected a number within ±1e+15"),
        ({"vip": "yes"}, "traits.vip: expected true or false"),
        (
            {"vip_since": "soon"},
            "traits.vip_since: expected a date (YYYY-MM-DD), an RFC 3339 "
            "time or epoch milliseconds",
        ),
        ({"vip_since": "1899-12-31"}, "traits.vip_since: expected a date from 1900 to 2199"),
        ({"lifestyle": "outdoor"}, "traits.lifestyle: expected a list of strings"),
        ({"lifestyle": [f"l{i}" for i in range(21)]}, "traits.lifestyle: at most 20 items"),
    ],
)
def test_a_declared_trait_of_the_wrong_shape_is_refused_with_the_reason(
    traits: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        kept_traits(traits)
    assert caught.value.reason == reason


def test_declared_traits_change_the_catalog_digest_and_none_keeps_it() -> None:
    plain = parse_catalog(doc(a=seg({"always": True})), SOURCE)
    assert parse_catalog({"traits": {}, **doc(a=seg({"always": True}))}, SOURCE).digest == (
        plain.digest
    )
    assert parse_catalog(with_traits({"always": True}), SOURCE).digest != plain.digest
