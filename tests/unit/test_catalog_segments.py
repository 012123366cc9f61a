"""Every segment of the shipped catalog (config/segments.yaml), driven by events and a clock.

Each case: the events a new customer sends, the time the clock is moved to, and whether the
customer is then a member. Expectations come from the segment descriptions and the documented
rules: windows are whole UTC days with today included (``within: 90d`` covers
day(now)-89..day(now)); ``last ... more_than`` counts "exactly" as more; ``last ... within``
counts "exactly" as out; ages are calendar-year differences.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.catalog import load_catalog
from engine.changes import ENTER, EXIT
from engine.evaluate import advance, apply_event
from engine.state import CustomerState
from streams.events import Event, Purchase
from tests.unit.engine_helpers import (
    CUSTOMER,
    MINUTE,
    NEW_YEAR_2027,
    T0,
    at,
    cart,
    consent,
    email_click,
    email_open,
    feed,
    item,
    member_at,
    profile,
    purchase,
    support,
    timeline,
    topic_of,
    view,
)

CATALOG = load_catalog()
CART = "cart_abandoners"
BROWSE = "browse_abandoners"
OUTDOOR = "browsing_outdoor"
QUIET = 60 * MINUTE  # the default cart quiet period


def buy(
    ts: int, sku: str = "sku-lamp", category: str = "outdoor", qty: int = 1, price: float = 10.0
) -> Purchase:
    return purchase(ts, item(sku, category, qty, price))


def opens(*days: float) -> list[Event]:
    return [email_open(at(days=d)) for d in days]


def clicks(*days: float) -> list[Event]:
    return [email_click(at(days=d)) for d in days]


def case(case_id: str, segment: str, events: list[Event], now: int, member: bool) -> Any:
    return pytest.param(segment, events, now, member, id=f"{segment}-{case_id}")


def with_consent(**traits: Any) -> list[Event]:
    return [consent(T0, **traits)]


CASES = [
    # --- age bands: calendar year of now minus birth year (2026 for T0) ---
    case("18", "age_18_24", with_consent(birth_year=2008), T0, True),
    case("17", "age_18_24", with_consent(birth_year=2009), T0, False),
    case("24", "age_18_24", with_consent(birth_year=2002), T0, True),
    case("25", "age_18_24", with_consent(birth_year=2001), T0, False),
    case("no-birth-year", "age_18_24", with_consent(gender="male"), T0, False),
    case("no-consent", "age_18_24", [profile(T0, birth_year=2005, email_consent=False)], T0, False),
    case("consent-not-given", "age_18_24", [profile(T0, birth_year=2005)], T0, False),
    case(
        "24-on-new-years-eve", "age_18_24", with_consent(birth_year=2002), NEW_YEAR_2027 - 1, True
    ),
    case("25-on-new-year", "age_18_24", with_consent(birth_year=2002), NEW_YEAR_2027, False),
    case("25", "age_25_34", with_consent(birth_year=2001), T0, True),
    case("34", "age_25_34", with_consent(birth_year=1992), T0, True),
    case("35", "age_25_34", with_consent(birth_year=1991), T0, False),
    case("24", "age_25_34", with_consent(birth_year=2002), T0, False),
    case("not-yet-25", "age_25_34", with_consent(birth_year=2002), NEW_YEAR_2027 - 1, False),
    case("25-on-new-year", "age_25_34", with_consent(birth_year=2002), NEW_YEAR_2027, True),
    case("35", "age_35_54", with_consent(birth_year=1991), T0, True),
    case("54", "age_35_54", with_consent(birth_year=1972), T0, True),
    case("55", "age_35_54", with_consent(birth_year=1971), T0, False),
    case("34", "age_35_54", with_consent(birth_year=1992), T0, False),
    case("55", "age_55_plus", with_consent(birth_year=1971), T0, True),
    case("96", "age_55_plus", with_consent(birth_year=1930), T0, True),
    case("54", "age_55_plus", with_consent(birth_year=1972), T0, False),
    case("55-on-new-year", "age_55_plus", with_consent(birth_year=1972), NEW_YEAR_2027, True),
    # --- traits ---
    case("female", "gender_female", with_consent(gender="female"), T0, True),
    case("any-case", "gender_female", with_consent(gender="Female"), T0, True),
    case("male", "gender_female", with_consent(gender="male"), T0, False),
    case("unknown", "gender_female", with_consent(), T0, False),
    case("no-consent", "gender_female", [profile(T0, gender="female")], T0, False),
    case("male", "gender_male", with_consent(gender="male"), T0, True),
    case("other", "gender_male", with_consent(gender="other"), T0, False),
    # --- declared traits: demographic, geographic, psychographic ---
    case("high", "high_income", with_consent(income_band="high"), T0, True),
    case("top-any-case", "high_income", with_consent(income_band="TOP"), T0, True),
    case("middle", "high_income", with_consent(income_band="middle"), T0, False),
    case("north", "region_north", with_consent(region="north"), T0, True),
    case("south", "region_north", with_consent(region="south"), T0, False),
    case("outdoor", "outdoor_lifestyle", with_consent(lifestyle=["family", "outdoor"]), T0, True),
    case("urban", "outdoor_lifestyle", with_consent(lifestyle=["urban"]), T0, False),
    case("berlin-de", "berlin_locals", with_consent(country="DE", city="Berlin"), T0, True),
    case("any-case", "berlin_locals", with_consent(country="de", city="BERLIN"), T0, True),
    case("munich", "berlin_locals", with_consent(country="DE", city="Munich"), T0, False),
    case("other-country", "berlin_locals", with_consent(country="US", city="Berlin"), T0, False),
    case("city-only", "berlin_locals", with_consent(city="Berlin"), T0, False),
    case(
        "moved-away",
        "berlin_locals",
        [consent(T0, country="DE", city="Berlin"), profile(at(days=1), city="Hamburg")],
        at(days=1),
        False,
    ),
    case("named", "interest_running", with_consent(interests=["hiking", "running"]), T0, True),
    case("not-named", "interest_running", with_consent(interests=["hiking"]), T0, False),
    case("no-interests", "interest_running", with_consent(), T0, False),
    case("named", "interest_hiking", with_consent(interests=["hiking"]), T0, True),
    case("not-named", "interest_hiking", with_consent(interests=["running", "yoga"]), T0, False),
    # --- purchases ---
    case("profile-no-order", "never_purchased", with_consent(), at(days=3), True),
    case("bought", "never_purchased", [consent(), buy(at(days=1))], at(days=1), False),
    case("one", "first_time_buyers", [consent(), buy(at(hours=1))], at(hours=1), True),
    case("none", "first_time_buyers", with_consent(), T0, False),
    case(
        "two",
        "first_time_buyers",
        [consent(), buy(at(hours=1)), buy(at(days=200))],
        at(days=200),
        False,
    ),
    case("two", "repeat_buyers", [consent(), buy(at(hours=1)), buy(at(days=200))], at(200), True),
    case("one", "repeat_buyers", [consent(), buy(at(hours=1))], at(days=400), False),
    case(
        "two-lifetime",
        "repeat_buyers",
        [consent(), buy(at(hours=1)), buy(at(days=1))],
        at(days=700),
        True,
    ),
    case(
        "three-in-20-days",
        "frequent_buyers",
        [consent(), buy(T0), buy(at(days=10)), buy(at(days=20))],
        at(days=20),
        True,
    ),
    case(
        "oldest-on-day-89",
        "frequent_buyers",
        [consent(), buy(T0), buy(at(days=10)), buy(at(days=20))],
        at(days=89, hours=23, minutes=59),
        True,
    ),
    case(
        "oldest-out-on-day-90",
        "frequent_buyers",
        [consent(), buy(T0), buy(at(days=10)), buy(at(days=20))],
        at(days=90),
        False,
    ),
    case(
        "late-in-the-day-still-out-on-day-90",
        "frequent_buyers",
        [consent(), buy(at(hours=23)), buy(at(days=10)), buy(at(days=20))],
        at(days=90),
        False,
    ),
    case("two", "frequent_buyers", [consent(), buy(T0), buy(at(days=10))], at(days=10), False),
    case(
        "ten-items",
        "bulk_buyers",
        [consent(), buy(at(hours=1), qty=10, price=1.0)],
        at(hours=1),
        True,
    ),
    case(
        "nine-items", "bulk_buyers", [consent(), buy(at(hours=1), qty=9, price=1.0)], at(1), False
    ),
    case(
        "ten-over-two-lines",
        "bulk_buyers",
        [
            consent(),
            purchase(at(hours=1), item("sku-a", "shoes", 4, 1.0), item("sku-b", "socks", 6, 1.0)),
        ],
        at(hours=1),
        True,
    ),
    case(
        "five-and-five-in-two-orders",
        "bulk_buyers",
        [consent(), buy(at(hours=1), qty=5, price=1.0), buy(at(hours=2), qty=5, price=1.0)],
        at(hours=2),
        False,
    ),
    case("total-500", "bulk_buyers", [consent(), buy(at(hours=1), price=500.0)], at(1), True),
    case("total-499.99", "bulk_buyers", [consent(), buy(at(hours=1), price=499.99)], at(1), False),
    case(
        "on-day-364",
        "bulk_buyers",
        [consent(), buy(at(hours=1), qty=10, price=1.0)],
        at(days=364, hours=23),
        True,
    ),
    case(
        "out-on-day-365",
        "bulk_buyers",
        [consent(), buy(at(hours=1), qty=10, price=1.0)],
        at(days=365),
        False,
    ),
    case(
        "same-sku-two-orders",
        "repeat_product_buyers",
        [consent(), buy(at(hours=1), sku="sku-x"), buy(at(days=3), sku="sku-x")],
        at(days=3),
        True,
    ),
    case(
        "two-units-one-order",
        "repeat_product_buyers",
        [consent(), buy(at(hours=1), sku="sku-x", qty=2)],
        at(hours=1),
        False,
    ),
    case(
        "same-sku-two-lines-one-order",
        "repeat_product_buyers",
        [consent(), purchase(at(hours=1), item("sku-x"), item("sku-x"))],
        at(hours=1),
        False,
    ),
    case(
        "different-skus",
        "repeat_product_buyers",
        [consent(), buy(at(hours=1), sku="sku-x"), buy(at(days=3), sku="sku-y")],
        at(days=3),
        False,
    ),
    case(
        "1000-in-two-orders",
        "high_spenders",
        [consent(), buy(at(days=1), price=600.0), buy(at(days=200), price=400.0)],
        at(days=200),
        True,
    ),
    case(
        "999.99",
        "high_spenders",
        [consent(), buy(at(days=1), price=600.0), buy(at(days=200), price=399.99)],
        at(days=200),
        False,
    ),
    case(
        "first-order-left-the-window",
        "high_spenders",
        [consent(), buy(at(days=1), price=600.0), buy(at(days=200), price=400.0)],
        at(days=366),
        False,
    ),
    case(
        "just-before-a-year",
        "purchased_last_year",
        [consent(), buy(at(hours=6))],
        at(days=365, hours=6) - 1,
        True,
    ),
    case(
        "exactly-a-year",
        "purchased_last_year",
        [consent(), buy(at(hours=6))],
        at(days=365, hours=6),
        False,
    ),
    case("never", "purchased_last_year", with_consent(), at(days=1), False),
    # --- support ---
    case(
        "two-in-30-days",
        "support_seekers",
        [consent(), support(T0), support(at(days=29))],
        at(days=29),
        True,
    ),
    case(
        "first-left-the-window",
        "support_seekers",
        [consent(), support(T0), support(at(days=29))],
        at(days=30),
        False,
    ),
    case(
        "30-days-apart",
        "support_seekers",
        [consent(), support(T0), support(at(days=30))],
        at(days=30),
        False,
    ),
    case("one", "support_seekers", [consent(), support(T0)], T0, False),
    # --- engagement ---
    case(
        "opened",
        "active_subscribers",
        [consent(), email_open(at(hours=1))],
        at(days=30, hours=1) - 1,
        True,
    ),
    case(
        "opened-30-days-ago",
        "active_subscribers",
        [consent(), email_open(at(hours=1))],
        at(days=30, hours=1),
        False,
    ),
    case("clicked", "active_subscribers", [consent(), email_click(T0)], at(days=1), True),
    case("never", "active_subscribers", with_consent(), T0, False),
    case("60-days-known", "inactive_subscribers", with_consent(), at(days=60), True),
    case(
        "59-days-23:59",
        "inactive_subscribers",
        with_consent(),
        at(days=59, hours=23, minutes=59),
        False,
    ),
    case(
        "60-days-after-open",
        "inactive_subscribers",
        [consent(), email_open(at(days=10))],
        at(days=70),
        True,
    ),
    case(
        "59-days-23:59-after-open",
        "inactive_subscribers",
        [consent(), email_open(at(days=10))],
        at(days=69, hours=23, minutes=59),
        False,
    ),
    case(
        "60-days-after-click",
        "inactive_subscribers",
        [consent(), email_click(at(days=10))],
        at(days=70),
        True,
    ),
    case(
        "59-days-after-click",
        "inactive_subscribers",
        [consent(), email_click(at(days=10))],
        at(days=69),
        False,
    ),
    case(
        "counted-from-first-seen",
        "inactive_subscribers",
        [buy(T0), consent(at(days=30))],
        at(days=60),
        True,
    ),
    case(
        "purchases-are-not-engagement",
        "inactive_subscribers",
        [consent(), buy(at(days=50))],
        at(days=60),
        True,
    ),
    case(
        "five-opens",
        "openers_not_clickers",
        [consent(), *opens(1, 2, 3, 4, 5)],
        at(days=5),
        True,
    ),
    case("four-opens", "openers_not_clickers", [consent(), *opens(1, 2, 3, 4)], at(5), False),
    case(
        "five-opens-one-click",
        "openers_not_clickers",
        [consent(), *opens(1, 2, 3), *clicks(3.5), *opens(4, 5)],
        at(days=5),
        False,
    ),
    case(
        "click-still-in-window-on-day-59",
        "openers_not_clickers",
        [consent(), *clicks(0), *opens(1, 2, 3, 4, 5)],
        at(days=59, hours=23),
        False,
    ),
    case(
        "click-left-the-window-on-day-60",
        "openers_not_clickers",
        [consent(), *clicks(0), *opens(1, 2, 3, 4, 5)],
        at(days=60),
        True,
    ),
    case(
        "first-open-left-the-window",
        "openers_not_clickers",
        [consent(), *opens(0, 1, 2, 3, 4)],
        at(days=60),
        False,
    ),
    case(
        "three-clicks",
        "engaged_clickers",
        [consent(), *clicks(0, 1, 2)],
        at(days=29, hours=23),
        True,
    ),
    case(
        "first-click-left-the-window",
        "engaged_clickers",
        [consent(), *clicks(0, 1, 2)],
        at(days=30),
        False,
    ),
    case("two-clicks", "engaged_clickers", [consent(), *clicks(0, 1)], at(days=1), False),
    case("opens-are-not-clicks", "engaged_clickers", [consent(), *opens(0, 1, 2)], at(2), False),
    # --- sources and lifecycle ---
    case("social-ads", "other_source_leads", with_consent(source="social_ads"), T0, True),
    case("download", "other_source_leads", with_consent(source="download"), T0, True),
    case("shop", "other_source_leads", with_consent(source="shop"), T0, False),
    case("website-any-case", "other_source_leads", with_consent(source="Website"), T0, False),
    case("store", "other_source_leads", with_consent(source="store"), T0, False),
    case("no-source", "other_source_leads", with_consent(), T0, False),
    case(
        "bought",
        "other_source_leads",
        [consent(source="social_ads"), buy(at(hours=1))],
        at(hours=1),
        False,
    ),
    case("no-source", "unknown_outbound", with_consent(), T0, True),
    case("social-ads", "unknown_outbound", with_consent(source="social_ads"), T0, False),
    case("shop", "unknown_outbound", with_consent(source="shop"), T0, False),
    case("bought", "unknown_outbound", [consent(), buy(at(hours=1))], at(hours=1), False),
    case(
        "exactly-180-days",
        "lapsed_customers",
        [consent(), buy(at(hours=6))],
        at(days=180, hours=6),
        True,
    ),
    case(
        "a-moment-before-180-days",
        "lapsed_customers",
        [consent(), buy(at(hours=6))],
        at(days=180, hours=6) - 1,
        False,
    ),
    case("never-bought", "lapsed_customers", with_consent(), at(days=400), False),
    case(
        "bought-again",
        "lapsed_customers",
        [consent(), buy(at(hours=6)), buy(at(days=100))],
        at(days=180, hours=6),
        False,
    ),
    case(
        "lapsed-and-opened",
        "winback_candidates",
        [consent(), buy(T0), email_open(at(days=170))],
        at(days=180),
        True,
    ),
    case(
        "open-29-days-ago",
        "winback_candidates",
        [consent(), buy(T0), email_open(at(days=170))],
        at(days=199, hours=23),
        True,
    ),
    case(
        "open-30-days-ago",
        "winback_candidates",
        [consent(), buy(T0), email_open(at(days=170))],
        at(days=200),
        False,
    ),
    case(
        "not-yet-lapsed",
        "winback_candidates",
        [consent(), buy(T0), email_open(at(days=170))],
        at(days=179),
        False,
    ),
    case(
        "lapsed-never-opened",
        "winback_candidates",
        [consent(), buy(T0)],
        at(days=180),
        False,
    ),
    case(
        "opened-but-never-bought",
        "winback_candidates",
        [consent(), email_open(at(days=170))],
        at(days=180),
        False,
    ),
    # --- page views ---
    case("quiet-after-a-view", BROWSE, [consent(), view(at(minutes=1))], at(minutes=61), True),
    case("not-yet-quiet", BROWSE, [consent(), view(at(minutes=1))], at(minutes=61) - 1, False),
    case(
        "carted-after-the-view",
        BROWSE,
        [consent(), view(at(minutes=1)), cart(at(minutes=5))],
        at(hours=3),
        False,
    ),
    case(
        "bought-after-the-view",
        BROWSE,
        [consent(), view(at(minutes=1)), buy(at(minutes=5))],
        at(hours=3),
        False,
    ),
    case(
        "viewed-again-after-buying",
        BROWSE,
        [consent(), buy(at(minutes=1)), view(at(minutes=5))],
        at(hours=3),
        True,
    ),
    case(
        "a-category-page-is-no-product-view",
        BROWSE,
        [consent(), view(at(minutes=1), sku=None)],
        at(hours=3),
        False,
    ),
    case(
        "three-outdoor-views",
        OUTDOOR,
        [consent(), view(at(days=1)), view(at(days=5)), view(at(days=13), sku=None)],
        at(days=13),
        True,
    ),
    case(
        "the-first-left-the-window",
        OUTDOOR,
        [consent(), view(at(days=1)), view(at(days=5)), view(at(days=13), sku=None)],
        at(days=15),
        False,
    ),
    case(
        "two-outdoor-views",
        OUTDOOR,
        [consent(), view(at(days=1)), view(at(days=2), sku="sku-boot", category="shoes")],
        at(days=2),
        False,
    ),
    # --- cart ---
    case("after-the-quiet-period", CART, [consent(), cart(at(minutes=1))], at(minutes=61), True),
    case(
        "before-the-quiet-period",
        CART,
        [consent(), cart(at(minutes=1))],
        at(minutes=61) - 1,
        False,
    ),
    case(
        "purchase-within-the-quiet-period",
        CART,
        [consent(), cart(at(minutes=1)), buy(at(minutes=30))],
        at(hours=3),
        False,
    ),
    case(
        "purchase-after-the-quiet-period",
        CART,
        [consent(), cart(at(minutes=1)), buy(at(hours=2))],
        at(hours=3),
        False,
    ),
    case(
        "emptied-by-remove",
        CART,
        [consent(), cart(at(minutes=1), quantity=2), cart(at(minutes=2), "remove", quantity=2)],
        at(hours=5),
        False,
    ),
    case(
        "partly-removed",
        CART,
        [consent(), cart(at(minutes=1), quantity=2), cart(at(minutes=2), "remove", quantity=1)],
        at(minutes=62),
        True,
    ),
    case(
        "re-armed-still-waiting",
        CART,
        [consent(), cart(at(minutes=1)), cart(at(minutes=90), sku="sku-sock-3pk")],
        at(minutes=150) - 1,
        False,
    ),
    case(
        "re-armed-abandoned-again",
        CART,
        [consent(), cart(at(minutes=1)), cart(at(minutes=90), sku="sku-sock-3pk")],
        at(minutes=150),
        True,
    ),
    case(
        "checkout-started-re-arms",
        CART,
        [consent(), cart(T0), cart(at(minutes=30), "checkout_started")],
        at(minutes=89),
        False,
    ),
    case(
        "abandoned-checkout",
        CART,
        [consent(), cart(T0), cart(at(minutes=30), "checkout_started")],
        at(minutes=90),
        True,
    ),
    case("no-consent", CART, [cart(at(minutes=1))], at(hours=2), False),
    case("empty-cart", CART, [consent(), cart(T0, "checkout_started")], at(hours=2), False),
    # --- cross-sell ---
    case(
        "shoes",
        "cross_sell_shoes_to_socks",
        [consent(), buy(at(hours=1), "sku-runner", "shoes")],
        at(hours=1),
        True,
    ),
    case(
        "shoes-and-socks-in-one-order",
        "cross_sell_shoes_to_socks",
        [
            consent(),
            purchase(at(hours=1), item("sku-runner", "shoes"), item("sku-sock-3pk", "socks")),
        ],
        at(hours=1),
        False,
    ),
    case(
        "socks-later",
        "cross_sell_shoes_to_socks",
        [consent(), buy(at(hours=1), "sku-runner", "shoes"), buy(at(days=9), "sku-x", "socks")],
        at(days=9),
        False,
    ),
    case(
        "socks-only",
        "cross_sell_shoes_to_socks",
        [consent(), buy(at(hours=1), "sku-sock-3pk", "socks")],
        at(hours=1),
        False,
    ),
    case(
        "other-category",
        "cross_sell_shoes_to_socks",
        [consent(), buy(at(hours=1))],
        at(hours=1),
        False,
    ),
    case(
        "no-consent",
        "cross_sell_shoes_to_socks",
        [buy(at(hours=1), "sku-runner", "shoes")],
        at(hours=1),
        False,
    ),
]


@pytest.mark.parametrize(("segment", "events", "now", "member"), CASES)
def test_membership(segment: str, events: list[Event], now: int, member: bool) -> None:
    assert CATALOG.get(segment) is not None
    assert (segment in member_at(events, now, CATALOG)) is member


def _segments_with(member: bool) -> set[str]:
    return {param.values[0] for param in CASES if param.values[3] is member}


def test_the_table_covers_every_catalog_segment_both_ways() -> None:
    assert len(CATALOG.segments) == 33
    assert _segments_with(True) == set(CATALOG.names())
    assert _segments_with(False) == set(CATALOG.names())


def test_every_shipped_segment_requires_consent() -> None:
    assert all(segment.consent_required for segment in CATALOG.segments)


def test_the_cross_sell_pair_becomes_a_segment() -> None:
    segment = CATALOG.get("cross_sell_shoes_to_socks")
    assert segment is not None
    assert segment.description == "Bought shoes, never socks"


def test_never_purchased_needs_a_known_profile() -> None:
    """Without the consent gate: an email open alone is not a known profile."""
    segment = CATALOG.get("never_purchased")
    assert segment is not None
    state = CustomerState(CUSTOMER)
    feed(state, [email_open(T0)], CATALOG)
    assert not segment.when.holds(state, T0)
    feed(state, [profile(at(hours=1), country="DE")], CATALOG)
    assert segment.when.holds(state, at(hours=1))


# -- consent -----------------------------------------------------------------------------------

EVERYTHING: list[Event] = [
    consent(
        T0,
        birth_year=1990,
        gender="female",
        country="DE",
        city="Berlin",
        interests=["hiking", "running"],
        source="social_ads",
    ),
    buy(at(hours=1), "sku-runner", "shoes", qty=10, price=120.0),
    *clicks(1, 2, 3),
    support(at(days=3)),
    support(at(days=4)),
    cart(at(days=4, hours=1)),
]


def test_withdrawing_consent_exits_every_consent_segment_at_once() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, EVERYTHING, CATALOG)
    advance(state, at(days=4, hours=3), CATALOG)
    before = set(state.segments)
    assert {
        "age_35_54",
        "gender_female",
        "berlin_locals",
        "interest_running",
        "interest_hiking",
        "first_time_buyers",
        "bulk_buyers",
        "high_spenders",
        "purchased_last_year",
        "support_seekers",
        "active_subscribers",
        "engaged_clickers",
        CART,
        "cross_sell_shoes_to_socks",
    } <= before
    withdrawal = profile(at(days=4, hours=4), email_consent=False)
    outcome = apply_event(state, withdrawal, topic_of(withdrawal), CATALOG)
    assert {c.segment for c in outcome.changes} == before
    assert {(c.change, c.at, c.cause_event_id) for c in outcome.changes} == {
        (EXIT, withdrawal.ts, withdrawal.event_id)
    }
    assert outcome.triggers == []
    assert state.segments == set()
    # Giving consent again brings them all back; the cart's reminder went out before, so it
    # does not go again for the same cart (tests/unit/test_trigger_episodes.py).
    regrant = consent(at(days=4, hours=5))
    outcome = apply_event(state, regrant, topic_of(regrant), CATALOG)
    assert {c.segment for c in outcome.changes if c.change == ENTER} == before
    assert outcome.triggers == []


# -- cart abandonment over time ----------------------------------------------------------------


def run_to(events: list[Event], now: int) -> tuple[CustomerState, Any]:
    """Apply ``events``, then move the clock to ``now``; the state and everything published."""
    state = CustomerState(CUSTOMER)
    outcome = feed(state, events, CATALOG)
    outcome.extend(advance(state, now, CATALOG))
    return state, outcome


def cart_rows(outcome: Any) -> list[tuple[str, str, int, str | None]]:
    return [row for row in timeline(outcome.changes) if row[0] == CART]


def test_abandoning_a_cart_enters_and_publishes_a_trigger_with_the_cart() -> None:
    adds = [
        cart(at(minutes=1), sku="sku-boot", category="shoes", quantity=1, unit_price=140.0),
        cart(at(minutes=5), sku="sku-sock-3pk", category="socks", quantity=2, unit_price=12.0),
        cart(at(minutes=6), sku="sku-sock-3pk", category="socks", quantity=1, unit_price=11.0),
    ]
    state, outcome = run_to([consent(), *adds], at(hours=5))
    due = at(minutes=6) + QUIET
    assert cart_rows(outcome) == [(CART, ENTER, due, None)]
    (enter,) = [c for c in outcome.changes if c.segment == CART]
    (trigger,) = outcome.triggers
    assert (trigger.customer_id, trigger.trigger, trigger.at) == (CUSTOMER, "cart_abandoned", due)
    assert trigger.version == enter.version
    assert sorted(trigger.items, key=lambda line: line["sku"]) == [
        {"sku": "sku-boot", "category": "shoes", "quantity": 1, "unit_price": 140.0},
        {"sku": "sku-sock-3pk", "category": "socks", "quantity": 3, "unit_price": 11.0},
    ]
    assert CART in state.segments


def test_a_purchase_within_the_quiet_period_cancels() -> None:
    events = [consent(), cart(at(minutes=1)), buy(at(minutes=59))]
    state, outcome = run_to(events, at(days=1))
    assert cart_rows(outcome) == []
    assert outcome.triggers == []
    assert state.cart == {}


def test_a_purchase_after_the_quiet_period_exits() -> None:
    paid = buy(at(hours=2))
    _, outcome = run_to([consent(), cart(at(minutes=1)), paid], at(days=1))
    assert cart_rows(outcome) == [
        (CART, ENTER, at(minutes=61), None),
        (CART, EXIT, at(hours=2), paid.event_id),
    ]
    assert len(outcome.triggers) == 1


def test_new_cart_activity_re_arms_the_quiet_period() -> None:
    again = cart(at(minutes=90), sku="sku-sock-3pk", category="socks", unit_price=12.0)
    _, outcome = run_to([consent(), cart(at(minutes=1)), again], at(hours=5))
    assert cart_rows(outcome) == [
        (CART, ENTER, at(minutes=61), None),
        (CART, EXIT, at(minutes=90), again.event_id),
        (CART, ENTER, at(minutes=150), None),
    ]
    assert [(t.at, len(t.items)) for t in outcome.triggers] == [
        (at(minutes=61), 1),
        (at(minutes=150), 2),
    ]
    enters = [c.version for c in outcome.changes if c.segment == CART and c.change == ENTER]
    assert [t.version for t in outcome.triggers] == enters


def test_a_cart_emptied_by_remove_never_abandons() -> None:
    events = [consent(), cart(at(minutes=1)), cart(at(minutes=10), "remove")]
    state, outcome = run_to(events, at(days=2))
    assert cart_rows(outcome) == []
    assert outcome.triggers == []
    assert state.cart == {}


def test_the_quiet_period_comes_from_the_catalog() -> None:
    quick = load_catalog(cart_quiet_ms=15 * MINUTE)
    state = CustomerState(CUSTOMER)
    feed(state, [consent(), cart(at(minutes=1))], quick)
    assert state.next_deadline == at(minutes=16)
    outcome = advance(state, at(minutes=16), quick)
    assert [(c.segment, c.at) for c in outcome.changes] == [(CART, at(minutes=16))]


def test_case_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
