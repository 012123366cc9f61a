"""Who may be mailed now: a segment's members, page by page from the serving store, each checked
by send eligibility (``engine.eligibility``), with how many were held back and why."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import aiohttp.web
from faust import web
from redis.exceptions import RedisError

from engine import buckets
from engine.catalog import Catalog, Segment
from engine.eligibility import WEEK_MS, Cadence, Mailable, SendRules, held_back
from segstream.app import app, live, settings
from serving.access import Role
from serving.api import BadBody, Protected, _error, page_of
from serving.store import store
from streams.timestamps import format_ts


def rules_for(segment: Segment, catalog: Catalog) -> SendRules:
    """The segment's cadence and holdout, and the shop's weekly cap and quiet hours."""
    frequency = segment.frequency
    holdout = segment.holdout
    salt = catalog.bucket_salt

    def held_out(customer_id: str) -> bool:
        return holdout is not None and buckets.held_out(salt, segment.name, customer_id, holdout)

    return SendRules(
        cadence=None if frequency is None else Cadence(frequency.max, frequency.per_ms),
        held_out=held_out if holdout else None,
        weekly_cap=settings.weekly_email_cap,
        quiet_hours=settings.quiet_hour_range,
    )


@dataclass
class AudiencePage:
    members: list[str] = field(default_factory=list)
    held_back: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    next_cursor: int = 0


async def audience_page(
    segment: Segment, campaign: str | None, cursor: int, count: int, now: int
) -> AudiencePage:
    """One page of the segment's members (Redis's SSCAN: a page may hold fewer than ``count``),
    those who may be mailed now, and the others counted by reason."""
    rules = rules_for(segment, live.catalog)
    page = await store.members(segment.name, cursor, count)
    mailable = await store.mailable_of(page.members)
    found = AudiencePage(checked=len(page.members), next_cursor=page.cursor)
    for customer_id in page.members:
        record = mailable.get(customer_id)
        known = Mailable.from_list(record) if record is not None else None
        reason = held_back(customer_id, known, rules, now, campaign)
        if reason is None:
            found.members.append(customer_id)
        else:
            found.held_back[reason] = found.held_back.get(reason, 0) + 1
    return found


@app.page("/v1/segments/{name}/audience")
class Audience(Protected):
    """A page of the segment's members who may be mailed now (``?campaign=`` leaves out those
    sent that campaign already), and how many were held back and why."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read"}

    async def get(self, request: web.Request, name: str) -> web.Response:
        segment = live.catalog.get(name)
        if segment is None:
            return _error(self, 404, f"no segment named {name!r}")
        paging = page_of(request)
        if isinstance(paging, BadBody):
            return _error(self, 400, paging.reason)
        campaign = request.query.get("campaign") or None
        try:
            page = await audience_page(segment, campaign, *paging, int(time.time() * 1000))
        except (RedisError, OSError) as exc:
            return _error(self, 503, f"the serving store is out of reach ({exc})")
        body: dict[str, Any] = {
            "segment": name,
            "campaign": campaign,
            "members": page.members,
            "checked": page.checked,
            "held_back": page.held_back,
            "next_cursor": page.next_cursor,
        }
        return self.json(body)


CSV_COLUMNS = ("customer_id", "email_consent", "timezone", "sent_last_7_days", "last_sent_at")
EXPORT_PAGE = 1000


def csv_row(customer_id: str, known: Mailable | None, now: int) -> str:
    """One member as the export writes them: what a sender may use, never an address (the
    sender's own system maps customer ids to them; segstream stores no email)."""
    if known is None:
        fields = [customer_id, "false", "", "0", ""]
    else:
        last = known.sends[-1][0] if known.sends else None
        fields = [
            customer_id,
            "true" if known.consent else "false",
            known.timezone or "",
            str(known.sent_since(now - WEEK_MS)),
            "" if last is None else format_ts(last),
        ]
    return ",".join(_csv_field(field) for field in fields) + "\r\n"


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@app.page("/v1/segments/{name}/members.csv")
class MembersCsv(Protected):
    """Every member as CSV, streamed page by page from the serving store (constant memory);
    ``?audience=CAMPAIGN`` (or ``?audience=`` for any campaign) only those who may be mailed
    now. Redis's SSCAN may list a member twice when the set grows during the export."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read"}

    async def get(self, request: web.Request, name: str) -> Any:
        segment = live.catalog.get(name)
        if segment is None:
            return _error(self, 404, f"no segment named {name!r}")
        audience = "audience" in request.query
        campaign = request.query.get("audience") or None
        rules = rules_for(segment, live.catalog)
        response = aiohttp.web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{name}.csv"',
            }
        )
        await response.prepare(cast(aiohttp.web.Request, request))
        await response.write((",".join(CSV_COLUMNS) + "\r\n").encode())
        cursor = 0
        while True:
            now = int(time.time() * 1000)
            page = await store.members(name, cursor, EXPORT_PAGE)
            mailable = await store.mailable_of(page.members)
            rows = []
            for customer_id in page.members:
                record = mailable.get(customer_id)
                known = Mailable.from_list(record) if record is not None else None
                if audience and held_back(customer_id, known, rules, now, campaign) is not None:
                    continue
                rows.append(csv_row(customer_id, known, now))
            await response.write("".join(rows).encode())
            cursor = page.cursor
            if cursor == 0:
                break
        await response.write_eof()
        return response
