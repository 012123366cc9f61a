"""How the command line shows segment changes and triggers."""

from __future__ import annotations

from typing import Any

import click


def format_change(change: dict[str, Any]) -> str:
    arrow = (
        click.style("→ enter", fg="green")
        if change["change"] == "enter"
        else click.style("← exit ", fg="yellow")
    )
    cause = change["cause_event_id"] or "time"
    return (
        f"{change['at'][11:19]}  {change['customer_id']:<10} {arrow}  "
        f"{change['segment']:<28} v{change['version']:<4} ({cause})"
    )
