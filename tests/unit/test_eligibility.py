"""Send eligibility: who may be mailed now, and why the others are held back (tables of cases,
an injected clock); and the sends a customer's state keeps for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.attribution import DEFAULT_RULE, settle
from engine.eligibility import (
    ALREADY_SENT,
    CADENCE,
    HOLDOUT,
    NO_CONSENT,
    QUIET_HOURS,
    SUPPRESSED,
    WEEKLY_CAP,
    Cadence,
    Mailable,
    SendRules,
    held_back,
)
from engine.state import DAY_MS, MAX_SENDS, SAME_SEND_MS, SEND_DAYS, CustomerState
from streams.events import EmailSend, ProfileUpdate

# Monday 2026-12-07, 12:00 UTC (13:00 in Berlin, 06:00 in Chicago).
NOW = int(datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


def mailable(
    consent: bool = True,
    suppressed: str | None = None,
    timezone: str | None = None,
    sends: tuple[tuple[int, str, str | None], ...] = (),
) -> Mailable:
    return Mailable(consent, suppressed, timezone, sends)


def sent(
    days_ago: float, campaign: str = "c-old", segment: str | None = None
) -> tuple[int, str, str | None]:
    return (NOW - int(days_ago * DAY_MS), campaign, segment)


EVERY_OTHER_MONTH = Cadence(1, 60 * DAY_MS)
TWICE_A_WEEK = Cadence(2, 7 * DAY_MS)


@pytest.mark.parametrize(
    ("who", "rules", "campaign", "reason"),
    [
        pytest.param(mailable(), SendRules(), None, None, id="consented"),
        pytest.param(None, SendRules(), None, NO_CONSENT, id="unknown-to-the-store"),
        pytest.param(mailable(consent=False), SendRules(), None, NO_CONSENT, id="no-consent"),
        pytest.param(
            mailable(consent=False, suppressed="unsubscribed"),
            SendRules(),
            None,
            SUPPRESSED,
            id="unsubscribed",
        ),
        pytest.param(
            mailable(),
            SendRules(held_out=lambda customer: customer == "c1"),
            None,
            HOLDOUT,
            id="in-the-holdout",
        ),
        pytest.param(
            mailable(sends=(sent(3, "spring"),)), SendRules(), "spring", ALREADY_SENT, id="sent-c"
        ),
        pytest.param(mailable(sends=(sent(3, "spring"),)), SendRules(), "summer", None, id="not-c"),
        pytest.param(
            mailable(sends=(sent(59),)),
            SendRules(cadence=EVERY_OTHER_MONTH),
            None,
            CADENCE,
            id="59-days-ago",
        ),
        pytest.param(
            mailable(sends=(sent(60.01),)),
            SendRules(cadence=EVERY_OTHER_MONTH),
            None,
            None,
            id="just-over-60-days-ago",
        ),
        pytest.param(
            mailable(sends=(sent(1), sent(6.9))),
            SendRules(cadence=TWICE_A_WEEK),
            None,
            CADENCE,
            id="twice-this-week",
        ),
        pytest.param(
            mailable(sends=(sent(1), sent(7.1))),
            SendRules(cadence=TWICE_A_WEEK),
            None,
            None,
            id="once-this-week",
        ),
        pytest.param(
            mailable(sends=tuple(sent(d) for d in (1, 2, 3))),
            SendRules(weekly_cap=3),
            None,
            WEEKLY_CAP,
            id="at-the-weekly-cap",
        ),
        pytest.param(
            mailable(sends=tuple(sent(d) for d in (1, 2, 8))),
            SendRules(weekly_cap=3),
            None,
            None,
            id="under-the-weekly-cap",
        ),
        pytest.param(
            mailable(sends=tuple(sent(d) for d in (1, 2, 3))),
            SendRules(weekly_cap=0),
            None,
            None,
            id="no-weekly-cap",
        ),
        pytest.param(
            mailable(timezone="America/Chicago"),
            SendRules(quiet_hours=(21, 8)),
            None,
            QUIET_HOURS,
            id="6am-in-chicago",
        ),
        pytest.param(
            mailable(timezone="Europe/Berlin"),
            SendRules(quiet_hours=(21, 8)),
            None,
            None,
            id="1pm-in-berlin",
        ),
        pytest.param(
            mailable(timezone="Europe/Berlin"),
            SendRules(quiet_hours=(12, 14)),
            None,
            QUIET_HOURS,
            id="a-daytime-range",
        ),
        pytest.param(mailable(), SendRules(quiet_hours=(0, 24)), None, None, id="no-zone-known"),
        pytest.param(
            mailable(consent=False, sends=(sent(1, "spring"),)),
            SendRules(held_out=lambda _: True),
            "spring",
            NO_CONSENT,
            id="consent-is-checked-first",
        ),
    ],
)
def test_who_may_be_mailed_now(
    who: Mailable | None, rules: SendRules, campaign: str | None, reason: str | None
) -> None:
    assert held_back("c1", who, rules, NOW, campaign) == reason


def send(event_id: str, ts: int, campaign: str = "c1", segment: str | None = None) -> EmailSend:
    return EmailSend(event_id, "c1", ts, campaign, segment)


def bounded(state: CustomerState, now: int = NOW) -> None:
    """What every step does after folding: the bounds, kept by the campaign report's settle."""
    settle(state, now, DEFAULT_RULE, (), lambda _segment, _customer: False)


def test_sends_are_kept_in_time_order_and_bounded() -> None:
    state = CustomerState("c1")
    state.fold(send("late", NOW - 2 * HOUR, "b"))
    state.fold(send("first", NOW - 3 * HOUR, "a", "lapsed"))
    state.fold(send("last", NOW - HOUR, "c"))
    state.fold(send("delivered", NOW - HOUR + 60_000, "c"))  # "Email Delivered" after "Sent"
    assert state.sends == [
        [NOW - 3 * HOUR, "a", "lapsed"],
        [NOW - 2 * HOUR, "b", None],
        [NOW - HOUR, "c", None],
    ]
    for n in range(MAX_SENDS + 5):
        state.fold(send(f"e{n}", NOW + n, f"bulk-{n}"))
    bounded(state, NOW + MAX_SENDS + 4)
    assert len(state.sends) == MAX_SENDS and state.sends[-1][0] == NOW + MAX_SENDS + 4
    restored = CustomerState.from_dict(state.to_dict())
    assert restored.sends == state.sends


def test_sends_older_than_the_kept_days_are_forgotten() -> None:
    state = CustomerState("c1")
    state.fold(send("old", NOW - (SEND_DAYS + 1) * DAY_MS))
    state.fold(send("new", NOW - DAY_MS))
    bounded(state)
    assert [s[0] for s in state.sends] == [NOW - DAY_MS]


def test_what_the_store_keeps_for_eligibility() -> None:
    state = CustomerState("c1")
    traits = {"email_consent": True, "timezone": "Europe/Berlin", "country": "DE"}
    state.fold(ProfileUpdate("p1", "c1", NOW - HOUR, traits=traits))
    state.fold(send("s1", NOW, "spring", "lapsed"))
    kept = Mailable.of(state)
    assert kept == Mailable(True, None, "Europe/Berlin", ((NOW, "spring", "lapsed"),))
    assert Mailable.from_list(kept.to_list()) == kept
    state.fold(ProfileUpdate("p2", "c1", NOW + 1, traits={}, suppression="bounced"))
    assert Mailable.of(state).consent is False and Mailable.of(state).suppressed == "bounced"


def test_the_same_campaign_an_hour_apart_or_more_is_another_email() -> None:
    state = CustomerState("c1")
    state.fold(send("s1", NOW, "weekly"))
    state.fold(send("s2", NOW + SAME_SEND_MS, "weekly"))  # the same email, reported twice
    state.fold(send("s3", NOW + SAME_SEND_MS + 1, "weekly"))
    assert [s[0] for s in state.sends] == [NOW, NOW + SAME_SEND_MS + 1]
