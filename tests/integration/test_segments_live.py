"""The default catalog through the real worker: every family, time-driven entries, the cart
trigger, consent, erasure, restarts and definition changes.

Offline replay of the same events is the expected answer for the final memberships. Kafka keeps
order within a partition of one topic, not across topics, so one customer's purchase and profile
update may reach the worker in either order: the published sequence may differ from replay's,
but never its end state, and it always keeps the stream's rules (versions +1, no double enter,
no exit without enter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from config import names
from streams.events import ERASURE_CAUSE
from streams.layout import changelog_topic
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, read, read_until_quiet, records_until_quiet
from tests.integration.oracle import (
    DAY,
    HOUR,
    Shop,
    by_customer,
    expected_by_replay,
    folded,
    now_ms,
    read_settled,
)

pytestmark = pytest.mark.integration


async def test_every_family_matches_offline_replay(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    shop, t = Shop(), now_ms() - 200 * DAY
    # Business: traits, an age band, interests, the Berlin example.
    shop.profile(
        "ann",
        t,
        email_consent=True,
        birth_year=1990,
        gender="female",
        country="DE",
        city="Berlin",
        interests=["Running", "yoga"],
        source="shop",
    )
    # Activity: frequent, bulk, repeat product, high spender, cross-sell, support seeker.
    shop.profile("bob", t, email_consent=True, source="social_ads")
    for day in (190, 150, 60, 20, 5):
        shop.purchase("bob", now_ms() - day * DAY, total=300.0, quantity=2)
    shop.purchase("bob", now_ms() - 4 * DAY, total=600.0, quantity=12, sku="sku-2")
    shop.support("bob", now_ms() - 3 * DAY)
    shop.support("bob", now_ms() - 2 * DAY)
    # Engagement: an opener who never clicks; a clicker.
    shop.profile("cid", t, email_consent=True)
    for day in (9, 8, 7, 6, 5):
        shop.open("cid", now_ms() - day * DAY)
    shop.profile("dan", t, email_consent=True, source="download")
    for day in (3, 2, 1):
        shop.click("dan", now_ms() - day * DAY)
    # Lifecycle: lapsed (time alone moves them in), then a win-back candidate.
    shop.profile("eve", t, email_consent=True)
    shop.purchase("eve", now_ms() - 190 * DAY)
    shop.open("eve", now_ms() - 2 * DAY)
    # No consent: in no consent-requiring segment, whatever they do.
    shop.profile("fay", t, email_consent=False, gender="female")
    shop.purchase("fay", now_ms() - 10 * DAY)
    await produce(deployment.settings, shop.kafka_records())

    changes, expected = await read_settled(deployment, shop, minimum=30)
    _, triggers, _ = expected_by_replay(shop, now_ms())

    worker.assert_running()
    assert folded(changes) == expected
    for customer, segments in {
        "ann": {
            "age_35_54",
            "gender_female",
            "berlin_locals",
            "interest_running",
            "never_purchased",
        },
        "bob": {
            "frequent_buyers",
            "bulk_buyers",
            "repeat_product_buyers",
            "high_spenders",
            "support_seekers",
            "cross_sell_shoes_to_socks",
            "repeat_buyers",
        },
        "cid": {"openers_not_clickers", "active_subscribers"},
        "dan": {"engaged_clickers", "other_source_leads"},
        "eve": {"lapsed_customers", "winback_candidates"},
    }.items():
        entered = {c[0] for c in by_customer(changes)[customer] if c[1] == "enter"}
        assert segments <= entered, customer
    assert "fay" not in by_customer(changes)
    assert not triggers


async def test_time_alone_moves_customers_and_fires_the_cart_trigger(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    shop, long_ago = Shop(), now_ms() - 100 * DAY
    # Profiles first (another topic: they could otherwise arrive after the carts).
    for customer in ("ivy", "cal", "pat", "rae"):
        shop.profile(customer, long_ago, email_consent=True)
    await produce(deployment.settings, shop.kafka_records())
    await read_settled(deployment, shop, minimum=8)
    sent, start = len(shop.records), now_ms()
    # Inactive: the last open turns 60 days old a few seconds from now.
    last_open = shop.open("ivy", start - 60 * DAY + 4_000)
    # Cart abandoned: the quiet hour ends a few seconds from now.
    cart = shop.cart_add("cal", start - HOUR + 5_000)
    # Cancelled: a purchase before the quiet hour ends.
    shop.cart_add("pat", start - HOUR + 6_000)
    shop.purchase("pat", start - 1_000)
    # Re-armed: abandoned two hours ago (enters at once), then back at the cart now (exits).
    shop.cart_add("rae", start - 2 * HOUR)
    rearm = shop.cart_add("rae", start - 500, sku="sku-3")
    await produce(deployment.settings, shop.kafka_records(sent))

    triggers = await read_until_quiet(deployment.settings, names.TRIGGERS, at_least=2, timeout=60)
    changes, expected = await read_settled(deployment, shop)
    _, expected_triggers, _ = expected_by_replay(shop, now_ms())

    worker.assert_running()
    assert folded(changes) == expected
    rae = [c for c in by_customer(changes)["rae"] if c[0] == "cart_abandoners"]
    assert [(c[1], c[3]) for c in rae] == [("enter", None), ("exit", rearm["event_id"])]
    timed = {(c[0], c[2]) for c in by_customer(changes)["ivy"] if c[1] == "enter" and c[3] is None}
    assert ("inactive_subscribers", _iso(last_open["ts"] + 60 * DAY)) in timed
    assert sorted(triggers, key=str) == sorted(expected_triggers, key=str)
    cal = next(t for t in triggers if t["customer_id"] == "cal")
    assert cal["at"] == _iso(cart["ts"] + HOUR)
    assert cal["cart"] == [{"sku": "sku-9", "category": "socks", "quantity": 1, "unit_price": 9.5}]
    assert {t["customer_id"] for t in triggers} == {"cal", "rae"}
    assert not [c for c in by_customer(changes)["pat"] if c[0] == "cart_abandoners"]
    assert {c["cause"] for c in changes if c["cause_event_id"] is None} == {"time"}


def _iso(ms: int) -> str:
    from streams.timestamps import format_ts

    return format_ts(ms)


async def test_consent_withdrawal_and_erasure_exit_every_segment(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    shop, t = Shop(), now_ms() - 5 * DAY
    shop.profile("gus", t, email_consent=True, gender="male", interests=["hiking"])
    shop.purchase("gus", t + HOUR)
    shop.profile("liz", t, email_consent=True, gender="female", birth_year=2000)
    shop.purchase("liz", t + HOUR)
    await produce(deployment.settings, shop.kafka_records())
    await read_settled(deployment, shop, minimum=8)
    # Withdrawal and erasure come later, as they would in a shop.
    sent = len(shop.records)
    withdrawal = shop.profile("gus", t + 2 * HOUR, email_consent=False)
    await produce(deployment.settings, shop.kafka_records(sent))
    shop.erase("liz", now_ms())  # what the command below sends, for replay
    erased = run_segstream(deployment.env, "erase", "liz")
    assert erased.returncode == 0, erased.stderr

    changes, expected = await read_settled(deployment, shop, minimum=10)
    changelog = await read_changelog(deployment, count=1)

    worker.assert_running()
    assert folded(changes) == expected
    gus = by_customer(changes)["gus"]
    members: set[str] = set()
    for segment, change, _, cause, _ in gus:
        if cause == withdrawal["event_id"]:
            break
        (members.add if change == "enter" else members.discard)(segment)
    on_withdrawal = [c for c in gus if c[3] == withdrawal["event_id"]]
    assert {"gender_male", "interest_hiking", "first_time_buyers"} <= members
    assert {c[0] for c in on_withdrawal} == members
    assert {c[1] for c in on_withdrawal} == {"exit"}
    liz = by_customer(changes)["liz"]
    assert {c[0] for c in liz if c[1] == "enter"} == {c[0] for c in liz if c[1] == "exit"}
    by_erasure = [c for c in changes if (c["cause_event_id"] or "").startswith(ERASURE_CAUSE)]
    assert by_erasure and {(c["customer_id"], c["cause"]) for c in by_erasure} == {
        ("liz", "erasure")
    }
    assert changelog["liz"] is None  # a tombstone: nothing of her is left in the table


async def read_changelog(deployment: Deployment, count: int) -> dict[str, Any]:
    """The last changelog value per customer (None for a tombstone)."""
    topic = changelog_topic(deployment.settings, names.CUSTOMERS_TABLE)
    records = await records_until_quiet(deployment.settings.kafka_bootstrap, [topic], count)
    return {
        orjson.loads(m.key): None if m.value is None else orjson.loads(m.value) for m in records
    }


async def test_a_restarted_worker_still_fires_a_deadline_once(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    first = worker_factory(deployment)
    shop, start = Shop(), now_ms()
    shop.profile("max", start - DAY, email_consent=True)
    cart = shop.cart_add("max", start - HOUR + 40_000)
    await produce(deployment.settings, shop.kafka_records())
    before = await read(deployment.settings, names.SEGMENT_CHANGES, count=2)  # profile's enters
    assert first.stop() == 0
    assert now_ms() < cart["ts"] + HOUR, "the deadline must fall while no worker runs"

    second = worker_factory(deployment)
    triggers = await read_until_quiet(deployment.settings, names.TRIGGERS, at_least=1)
    changes, expected = await read_settled(deployment, shop, minimum=len(before) + 1)
    _, expected_triggers, _ = expected_by_replay(shop, now_ms())

    second.assert_running()
    assert before == changes[: len(before)]
    assert folded(changes) == expected
    assert triggers == expected_triggers
    assert len(triggers) == 1
