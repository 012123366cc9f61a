"""Campaign attribution, and the report facts a customer's step emits for the campaign report.

A purchase is attributed to the campaign the customer last clicked (or opened or clicked, by
the rule) within the attribution window before it; the segment is the one that campaign was
sent to the customer for (its send's ``segment``). Every send, open, click and purchase of a
customer becomes a fact numbered by the customer's own sequence (``CustomerState.fact_seq``),
so a projection that keeps the last number applied per customer counts each fact once,
however often it is published again. Pure: the step calls ``facts_for`` after folding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.state import DAY_MS, CustomerState
from streams.events import EmailClick, EmailOpen, EmailSend, Event, Purchase

HELD, MAILED = "held_out", "mailed"


@dataclass(frozen=True, slots=True)
class AttributionRule:
    """Which touch a purchase is attributed to: the last click (or open or click, ``by``
    "open") within ``window_ms`` before it."""

    window_ms: int = 5 * DAY_MS
    by: Literal["click", "open"] = "click"

    @classmethod
    def of(cls, days: int, by: Literal["click", "open"]) -> AttributionRule:
        return cls(days * DAY_MS, by)


DEFAULT_RULE = AttributionRule()


def attributed(touches: Sequence[Sequence[Any]], ts: int, rule: AttributionRule) -> str | None:
    """The campaign a purchase at ``ts`` is attributed to; None: no touch in the window.
    ``touches``: [ts, "open" | "click", campaign], oldest first."""
    for at, kind, campaign in reversed(touches):
        if at > ts:
            continue
        if at < ts - rule.window_ms:
            return None
        if kind == "click" or rule.by == "open":
            return str(campaign)
    return None


def sent_for(sends: Sequence[Sequence[Any]], campaign: str, before: int) -> str | None:
    """The segment a campaign was last sent to the customer for, at or before ``before``."""
    for at, sent, segment in reversed(sends):
        if sent == campaign and at <= before:
            return None if segment is None else str(segment)
    return None


@dataclass(slots=True)
class Fact:
    """One countable thing for the campaign report."""

    customer_id: str
    seq: int
    kind: Literal["send", "open", "click", "purchase"]
    at: int
    campaign: str | None = None
    segment: str | None = None
    revenue: float = 0.0
    # For each segment with a holdout the customer is in: whether they are held out of it.
    groups: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at,
            "campaign": self.campaign,
            "segment": self.segment,
            "revenue": self.revenue,
            "groups": self.groups,
        }


HeldOut = Callable[[str, str], bool]  # (segment, customer id) -> held out of its audience


def facts_for(
    state: CustomerState,
    event: Event,
    rule: AttributionRule,
    holdouts: Sequence[str],
    held_out: HeldOut,
) -> list[Fact]:
    """The facts a newly folded event makes (``state`` already holds it); ``holdouts``: the
    segments that have a holdout."""
    customer = state.customer_id
    campaign: str | None
    if isinstance(event, EmailSend):
        kind: Literal["send", "open", "click", "purchase"] = "send"
        campaign, segment = event.campaign_id, event.segment
    elif isinstance(event, EmailOpen | EmailClick):
        kind = "click" if isinstance(event, EmailClick) else "open"
        campaign = event.campaign_id
        segment = sent_for(state.sends, campaign, event.ts)
    elif isinstance(event, Purchase):
        kind = "purchase"
        campaign = attributed(state.touches, event.ts, rule)
        segment = None if campaign is None else sent_for(state.sends, campaign, event.ts)
    else:
        return []
    state.fact_seq += 1
    fact = Fact(customer, state.fact_seq, kind, event.ts, campaign, segment)
    if isinstance(event, Purchase):
        fact.revenue = event.total
        fact.groups = {
            name: HELD if held_out(name, customer) else MAILED
            for name in holdouts
            if name in state.segments
        }
    return [fact]


@dataclass
class CampaignReport:
    """The report the facts add up to: per campaign and segment, sends, opens, clicks,
    conversions and attributed revenue; per segment with a holdout, purchases and revenue of
    its held-out and mailed members. What the serving store's counters hold, computed in
    memory (offline replay, tests)."""

    counts: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)

    def nested(self) -> dict[str, dict[str, dict[str, float]]]:
        """campaign -> segment ('' when none) -> counts: the serving store's shape."""
        found: dict[str, dict[str, dict[str, float]]] = {}
        for (campaign, segment), counts in sorted(self.counts.items()):
            found.setdefault(campaign, {})[segment] = dict(counts)
        return found

    def add(self, fact: Fact | dict[str, Any]) -> None:
        value = fact.to_dict() if isinstance(fact, Fact) else fact
        customer, seq = value["customer_id"], value["seq"]
        if seq <= self.applied.get(customer, 0):
            return
        self.applied[customer] = seq
        if value["campaign"] is not None:
            key = (value["campaign"], value["segment"] or "")
            row = self.counts.setdefault(key, {})
            name = "conversions" if value["kind"] == "purchase" else value["kind"] + "s"
            row[name] = row.get(name, 0) + 1
            if value["kind"] == "purchase":
                row["revenue"] = round(row.get("revenue", 0.0) + value["revenue"], 2)
        for segment, group in value["groups"].items():
            row = self.groups.setdefault(segment, {})
            row[f"{group}|purchases"] = row.get(f"{group}|purchases", 0) + 1
            revenue = row.get(f"{group}|revenue", 0.0) + value["revenue"]
            row[f"{group}|revenue"] = round(revenue, 2)


COUNTS = ("sends", "opens", "clicks", "conversions", "revenue")


def campaign_rows(report: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per campaign and segment, with its conversion rate (conversions per send)."""
    rows = []
    for campaign, segments in report.items():
        for segment, counts in sorted(segments.items()):
            row: dict[str, Any] = {"campaign": campaign, "segment": segment or None}
            row |= {name: counts.get(name, 0) for name in COUNTS}
            for name in COUNTS[:-1]:
                row[name] = int(row[name])
            row["revenue"] = round(row["revenue"], 2)
            row["conversion_rate"] = row["conversions"] / row["sends"] if row["sends"] else None
            rows.append(row)
    return rows


def lift(purchases: tuple[float, float], members: tuple[int, int]) -> dict[str, float | None]:
    """Purchases per member of the mailed and the held-out group, the difference (the lift of
    mailing) and its 95% confidence interval (purchases as Poisson counts, normal
    approximation); None where a group has no members."""
    (mailed, held), (n_mailed, n_held) = purchases, members
    if not n_mailed or not n_held:
        return {"mailed_rate": None, "held_out_rate": None, "lift": None, "low": None, "high": None}
    rate_mailed, rate_held = mailed / n_mailed, held / n_held
    spread = 1.96 * (mailed / n_mailed**2 + held / n_held**2) ** 0.5
    difference = rate_mailed - rate_held
    return {
        "mailed_rate": rate_mailed,
        "held_out_rate": rate_held,
        "lift": difference,
        "low": difference - spread,
        "high": difference + spread,
    }
