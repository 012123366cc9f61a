"""Campaign attribution, and the report facts a customer's step publishes for the campaign
report.

A purchase is attributed to the campaign the customer last clicked (or opened or clicked, by
the rule) within the attribution window before it; the segment is the one that campaign was
sent to the customer for (its send's ``segment``). A customer's whole part of the report is a
function of their sends, opens, clicks and purchases, not of the order these arrived in (four
topics Kafka does not order between them); each step publishes only what changed in it, as a
fact numbered by the customer's own sequence, so a projection that keeps the last number it
counted per customer counts each fact once, and the facts add up to what replay computes.
Pure: ``Step`` calls ``report_fact`` after each step that can change the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.state import (
    DAY_MS,
    MAX_SENDS,
    MAX_TOUCHES,
    SEND_DAYS,
    TOUCH_DAYS,
    CustomerState,
)

HELD, MAILED = "held_out", "mailed"
ZERO = 1e-6  # a counter this close to 0 is 0 (float sums)


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


# What the report keeps: "c|<campaign>|<segment>|<count>" (sends, opens, clicks, conversions,
# revenue; segment empty when the send named none) and "g|<segment>|<group>|<count>"
# (purchases, revenue) for segments with a holdout.
Contribution = dict[str, float]
HeldOut = Callable[[str, str], bool]  # (segment, customer id) -> held out of its audience

# How much of a customer's history attribution looks at; older or further entries are settled
# (their part of the report kept as a total) and forgotten.
PURCHASE_DAYS = TOUCH_DAYS
MAX_PURCHASES = 50


def contribution(
    state: CustomerState, rule: AttributionRule, holdouts: Sequence[str], held_out: HeldOut
) -> Contribution:
    """The customer's whole part of the campaign report, from their sends, opens, clicks and
    purchases (whatever order they arrived in) and what forgotten entries made."""
    found: Contribution = dict(state.settled)

    def add(key: str, amount: float) -> None:
        found[key] = found.get(key, 0.0) + amount

    sends = state.sends
    for _, campaign, segment in sends:
        add(f"c|{campaign}|{segment or ''}|sends", 1)
    for ts, kind, campaign in state.touches:
        segment = sent_for(sends, campaign, ts) if sends else None
        add(f"c|{campaign}|{segment or ''}|{kind}s", 1)
    groups = [name for name in holdouts if name in state.segments]
    for ts, total in state.purchases:
        campaign = attributed(state.touches, ts, rule)
        if campaign is not None:
            segment = (sent_for(sends, campaign, ts) if sends else None) or ""
            add(f"c|{campaign}|{segment}|conversions", 1)
            add(f"c|{campaign}|{segment}|revenue", total)
        for name in groups:
            group = HELD if held_out(name, state.customer_id) else MAILED
            add(f"g|{name}|{group}|purchases", 1)
            add(f"g|{name}|{group}|revenue", total)
    return found


def settle(
    state: CustomerState,
    now: int,
    rule: AttributionRule,
    holdouts: Sequence[str],
    held_out: HeldOut,
) -> None:
    """Forget sends, opens, clicks and purchases beyond their bounds (age and count), keeping
    what they made of the report in ``state.settled``: forgetting never lowers the report."""
    bounds = (
        (state.sends, now - SEND_DAYS * DAY_MS, MAX_SENDS),
        (state.touches, now - TOUCH_DAYS * DAY_MS, MAX_TOUCHES),
        (state.purchases, now - PURCHASE_DAYS * DAY_MS, MAX_PURCHASES),
    )
    if all(_within(*bound) for bound in bounds):
        return
    kept = tuple(_bounded(*bound) for bound in bounds)
    before = contribution(state, rule, holdouts, held_out)
    state.sends, state.touches, state.purchases = (list(k) for k in kept)
    after = contribution(state, rule, holdouts, held_out)
    for key in before.keys() | after.keys():
        moved = before.get(key, 0.0) - after.get(key, 0.0)
        if moved:
            state.settled[key] = state.settled.get(key, 0.0) + moved


def _within(entries: list[list[Any]], oldest: int, most: int) -> bool:
    """Whether every entry (oldest first) is inside its bounds."""
    return (not entries or entries[0][0] >= oldest) and len(entries) <= most


def _bounded(entries: list[list[Any]], oldest: int, most: int) -> list[list[Any]]:
    if _within(entries, oldest, most):
        return entries
    return [entry for entry in entries if entry[0] >= oldest][-most:]


def report_fact(
    state: CustomerState,
    now: int,
    rule: AttributionRule,
    holdouts: Sequence[str],
    held_out: HeldOut,
) -> dict[str, Any] | None:
    """What changed in the customer's part of the report since it was last published, as one
    fact numbered by the customer's sequence (None: nothing changed). The facts of a customer
    add up to their contribution now, whatever order their events came in."""
    settle(state, now, rule, holdouts, held_out)
    current = contribution(state, rule, holdouts, held_out)
    previous = state.reported
    delta = {
        key: round(current.get(key, 0.0) - previous.get(key, 0.0), 6)
        for key in current.keys() | previous.keys()
        if current.get(key, 0.0) != previous.get(key, 0.0)
    }
    if not delta:
        return None
    state.reported = current
    state.fact_seq += 1
    return {"customer_id": state.customer_id, "seq": state.fact_seq, "delta": delta}


@dataclass
class CampaignReport:
    """The report the facts add up to (each counted once per customer and sequence number):
    what the serving store's counters hold, computed in memory (offline replay, tests)."""

    totals: Contribution = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)

    def add(self, fact: dict[str, Any]) -> None:
        customer, seq = fact["customer_id"], fact["seq"]
        if seq <= self.applied.get(customer, 0):
            return
        self.applied[customer] = seq
        for key, amount in fact["delta"].items():
            total = self.totals.get(key, 0.0) + amount
            if abs(total) < ZERO:  # moved elsewhere: gone, as the store's counter is
                self.totals.pop(key, None)
            else:
                self.totals[key] = total

    def nested(self) -> dict[str, dict[str, dict[str, float]]]:
        """campaign -> segment ('' when none) -> counts: the serving store's shape."""
        found: dict[str, dict[str, dict[str, float]]] = {}
        for key, amount in sorted(self.totals.items()):
            kind, rest = key.split("|", 1)
            if kind != "c":
                continue
            campaign, segment, name = rest.rsplit("|", 2)
            found.setdefault(campaign, {}).setdefault(segment, {})[name] = amount
        return found

    def groups(self, segment: str) -> dict[str, float]:
        """'<group>|<purchases|revenue>' -> amount, for a segment with a holdout."""
        prefix = f"g|{segment}|"
        return {k.removeprefix(prefix): v for k, v in self.totals.items() if k.startswith(prefix)}


COUNTS = ("sends", "opens", "clicks", "conversions", "revenue")


def campaign_rows(report: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per campaign and segment, with its conversion rate (conversions per send)."""
    rows = []
    for campaign, segments in report.items():
        for segment, counts in sorted(segments.items()):
            if all(abs(amount) < ZERO for amount in counts.values()):
                continue  # everything it had moved to another segment
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
