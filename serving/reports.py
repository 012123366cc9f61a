"""The campaign report: per campaign and segment, sends, opens, clicks, conversions, attributed
revenue and conversion rate, from the counters the report projection keeps
(``agents.reports``); and for each segment with a holdout, purchases per member of its mailed
and held-out groups, and the lift of mailing with its 95% confidence interval."""

from __future__ import annotations

from typing import Any, ClassVar

from faust import web
from redis.exceptions import RedisError

from engine.attribution import HELD, MAILED, campaign_rows, lift
from engine.catalog import Catalog
from segstream.app import app, live
from serving.access import Role
from serving.api import Protected, _error
from serving.store import store

PAGE = 1000


async def group_sizes(catalog: Catalog, segment: str) -> tuple[int, int]:
    """How many of the segment's members are mailed and held out now."""
    mailed = held = 0
    cursor = 0
    while True:
        page = await store.members(segment, cursor, PAGE)
        for customer_id in page.members:
            if catalog.held_out(segment, customer_id):
                held += 1
            else:
                mailed += 1
        cursor = page.cursor
        if cursor == 0:
            return mailed, held


async def holdout_rows(catalog: Catalog) -> list[dict[str, Any]]:
    rows = []
    for segment in catalog.holdouts:
        counts = await store.holdout_purchases(segment)
        members = await group_sizes(catalog, segment)
        purchases = (counts.get(f"{MAILED}|purchases", 0.0), counts.get(f"{HELD}|purchases", 0.0))
        rows.append(
            {
                "segment": segment,
                "holdout": catalog.get(segment).holdout,  # type: ignore[union-attr]
                "members": {MAILED: members[0], HELD: members[1]},
                "purchases": {MAILED: int(purchases[0]), HELD: int(purchases[1])},
                "revenue": {
                    MAILED: round(counts.get(f"{MAILED}|revenue", 0.0), 2),
                    HELD: round(counts.get(f"{HELD}|revenue", 0.0), 2),
                },
                **lift(purchases, members),
            }
        )
    return rows


@app.page("/v1/reports/campaigns")
class CampaignReport(Protected):
    """What each campaign sent, what came of it per segment, and what mailing earns where a
    segment keeps a holdout."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read"}

    async def get(self, request: web.Request) -> web.Response:
        catalog = live.catalog
        try:
            campaigns = campaign_rows(await store.campaign_report())
            holdouts = await holdout_rows(catalog)
        except (RedisError, OSError) as exc:
            return _error(self, 503, f"the serving store is out of reach ({exc})")
        return self.json({"campaigns": campaigns, "holdouts": holdouts})
