"""How the command line shows segment changes, triggers and definition changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from engine.definitions import Live, Plan


def _moment(at: str) -> str:
    """``2026-11-30T11:20:10.123Z`` as ``2026-11-30 11:20:10`` (UTC, like every segstream time)."""
    return f"{at[:10]} {at[11:19]}"


def format_change(change: dict[str, Any]) -> str:
    """One segment-changes value: when, who, enter or exit, which segment, version and why."""
    arrow = (
        click.style("→ enter", fg="green")
        if change["change"] == "enter"
        else click.style("← exit ", fg="yellow")
    )
    cause = change.get("cause")
    # Records written before `cause` existed say only the event id, or none for time.
    why = change["cause_event_id"] if cause in ("event", None) else cause
    return (
        f"{_moment(change['at'])}  {change['customer_id']:<10} {arrow}  "
        f"{change['segment']:<28} v{change['version']:<4} ({why or 'time'})"
    )


def format_trigger(trigger: dict[str, Any]) -> str:
    """One trigger record: when, who, which trigger, and what the cart held or what was viewed."""
    if "viewed" in trigger:
        skus = [product["sku"] for product in trigger["viewed"]]
        held = f"viewed: {', '.join(skus[:3])}{' ...' if len(skus) > 3 else ''}"
    else:
        cart = trigger.get("cart") or []
        items = sum(line["quantity"] for line in cart)
        worth = sum(line["quantity"] * line["unit_price"] for line in cart)
        held = f"cart: {items} item{'' if items == 1 else 's'} worth {worth:.2f}"
    label = click.style(f"! {trigger['trigger']}", fg="magenta")
    return (
        f"{_moment(trigger['at'])}  {trigger['customer_id']:<10} {label}  {held}  "
        f"v{trigger['version']}"
    )


def format_explanation(explained: dict[str, Any]) -> list[str]:
    """One segment explained for a customer (``engine.explain``): a heading, then the rule's
    tree, one node a line: yes or no, the rule, the customer's value, when time changes it."""
    state = "member" if explained["member"] else "not a member"
    lines = [f"{explained['segment']}: {state} ({explained['description']})"]

    def node(why: dict[str, Any], depth: int) -> None:
        answer = click.style("yes", fg="green") if why["holds"] else click.style("no ", fg="red")
        value = why["value"]
        shown = "" if value is None or why.get("parts") else f"  = {_shown(value)}"
        changes = f"  (changes {_moment(why['changes_at'])})" if "changes_at" in why else ""
        lines.append(f"{'  ' * depth}{answer}  {why['rule']}{shown}{changes}")
        for part in why.get("parts", ()):
            node(part, depth + 1)

    node(explained["why"], 1)
    return lines


def _shown(value: Any) -> str:
    """A value as the dashboard shows it: times in UTC, yes or no, lists as items."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    if isinstance(value, str) and len(value) == 24 and value.endswith("Z") and value[10] == "T":
        return _moment(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items())
    return str(value)


def format_plan(change: Plan, live: Live, wanted: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A definitions change, one line per segment: added, changed (and which fields), removed."""
    lines = [click.style(f"+ {name}  (new)", fg="green") for name in change.added]
    for name in change.changed:
        before = live.definitions[name]
        fields = sorted(
            key
            for key in {*before.body, *wanted[name]}
            if before.body.get(key) != wanted[name].get(key)
        )
        lines.append(
            click.style(f"~ {name}  (v{before.version} -> v{before.version + 1}: ", fg="yellow")
            + click.style(f"{', '.join(fields)})", fg="yellow")
        )
    lines.extend(click.style(f"- {name}  (deleted)", fg="red") for name in change.removed)
    if change.traits_changed:
        lines.append(click.style("~ declared traits", fg="yellow"))
    if change.salt_changed:
        lines.append(click.style("~ bucket_salt (every A/B bucket and holdout moves)", fg="yellow"))
    return lines
