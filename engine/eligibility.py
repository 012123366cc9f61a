"""Send eligibility: may a segment member be mailed now? Consent, suppression, the segment's
holdout, a campaign sent already, the segment's cadence, the shop-wide weekly cap and the
customer's quiet hours, checked in that order; the first that holds the customer back is the
reason. Pure: the clock is passed in, and ``Mailable`` is what the serving store keeps of a
customer for it (``Mailable.of`` a state)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.state import DAY_MS, CustomerState

WEEK_MS = 7 * DAY_MS
# Why a member is held back (the order they are checked in).
NO_CONSENT = "no_consent"
SUPPRESSED = "suppressed"
HOLDOUT = "holdout"
ALREADY_SENT = "already_sent"
CADENCE = "cadence"
WEEKLY_CAP = "weekly_cap"
QUIET_HOURS = "quiet_hours"
REASONS = (NO_CONSENT, SUPPRESSED, HOLDOUT, ALREADY_SENT, CADENCE, WEEKLY_CAP, QUIET_HOURS)


@dataclass(frozen=True, slots=True)
class Mailable:
    """What eligibility needs of one customer: consent, suppression, time zone, and the emails
    sent ([ts, campaign id, segment], oldest first)."""

    consent: bool
    suppressed: str | None
    timezone: str | None
    sends: tuple[tuple[int, str, str | None], ...]

    @classmethod
    def of(cls, state: CustomerState) -> Mailable:
        return cls(
            consent=state.traits.get("email_consent") is True and state.suppressed is None,
            suppressed=state.suppressed,
            timezone=state.traits.get("timezone"),
            sends=tuple((ts, campaign, segment) for ts, campaign, segment in state.sends),
        )

    def to_list(self) -> list[Any]:
        """The compact form the serving store keeps."""
        return [int(self.consent), self.suppressed, self.timezone, [list(s) for s in self.sends]]

    @classmethod
    def from_list(cls, value: Sequence[Any]) -> Mailable:
        consent, suppressed, timezone, sends = value
        return cls(bool(consent), suppressed, timezone, tuple(tuple(s) for s in sends))

    def sent_since(self, since: int) -> int:
        return sum(1 for ts, _, _ in self.sends if ts >= since)


@dataclass(frozen=True, slots=True)
class Cadence:
    """At most ``most`` emails per ``per_ms``."""

    most: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class SendRules:
    """The rules of one audience: the segment's, and the shop's."""

    cadence: Cadence | None = None  # the segment's frequency
    held_out: Callable[[str], bool] | None = None  # the segment's holdout, by customer id
    weekly_cap: int = 0  # emails per 7 days, any campaign (0: no cap)
    quiet_hours: tuple[int, int] | None = None  # local [start, end) hours, when a zone is known


def held_back(
    customer_id: str,
    mailable: Mailable | None,
    rules: SendRules,
    now: int,
    campaign: str | None = None,
) -> str | None:
    """Why this member may not be mailed now (one of REASONS), or None: they may. Mail needs
    consent whatever the segment requires; a member the store knows nothing about yet
    (``mailable`` None) has none on record."""
    if mailable is None:
        return NO_CONSENT
    if mailable.suppressed is not None:
        return SUPPRESSED
    if not mailable.consent:
        return NO_CONSENT
    if rules.held_out is not None and rules.held_out(customer_id):
        return HOLDOUT
    if campaign is not None and any(sent == campaign for _, sent, _ in mailable.sends):
        return ALREADY_SENT
    cadence = rules.cadence
    if cadence is not None and mailable.sent_since(now - cadence.per_ms) >= cadence.most:
        return CADENCE
    if rules.weekly_cap and mailable.sent_since(now - WEEK_MS) >= rules.weekly_cap:
        return WEEKLY_CAP
    zone = mailable.timezone
    if rules.quiet_hours is not None and zone and _quiet(zone, rules.quiet_hours, now):
        return QUIET_HOURS
    return None


def _quiet(zone: str, hours: tuple[int, int], now: int) -> bool:
    """Whether ``now`` falls in the quiet hours [start, end) of the customer's local time
    (a range that crosses midnight, 21 to 8, wraps)."""
    try:
        local = datetime.fromtimestamp(now / 1000, UTC).astimezone(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False  # the decoder keeps only known zones; one removed since is no reason
    start, end = hours
    hour = local.hour
    return start <= hour < end if start <= end else hour >= start or hour < end
