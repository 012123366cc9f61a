"""The HTTP API, served by the Faust worker's web server. JSON in and out (orjson).

Every route but /health needs `Authorization: Bearer <token>` with the role its method needs
(``serving.access``) once tokens are set; without any, the settings only let the server listen
on loopback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, cast

import aiohttp
import orjson
from faust import web
from faust.exceptions import SameNode

from config import names
from config.errors import CatalogError, InvalidEvent
from engine.catalog import Segment
from engine.conditions.form import Where, duration_ms
from engine.explain import explain_customer, rule_tree
from engine.state import CustomerState
from engine.step import Step
from segstream.app import app, live, settings, topics
from segstream.app.partitions import rebalancing, table_partitions
from segstream.app.tables import customers
from serving import editing, metrics
from serving.access import Caller, Role, caller, holder_of
from serving.backtests import backtests
from serving.ingest import ACCEPTED_TOPICS, Accepted, Refused, check_event, intake
from serving.openapi import document as openapi_document
from serving.preview import Counts, preview_held
from serving.rollout import rollout
from serving.store import health, held_customers, store
from serving.tracking import take
from streams import segment_spec
from streams.events import is_anonymous
from streams.timestamps import wall_clock_ms

API_SOURCE = "api"  # the source of tracking calls posted with the API's bearer token
MAX_PAGE = 1000
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


class Protected(web.View):
    """A view that answers 401 without a known bearer token, 403 without the role its method
    needs (``serving.access``)."""

    #: The role each method needs.
    roles: ClassVar[dict[str, Role]] = {"GET": "read"}

    async def dispatch(self, request: Any) -> Any:
        who = caller(request)
        if who is None:
            return self.json(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="segstream"'},
            )
        needed = self.roles.get(request.method, "edit")
        if not who.may(needed):
            return self.json(
                {"error": f"this route needs the {needed} role; the token is a {who.role} token"},
                status=403,
            )
        return await super().dispatch(request)


class BadBody(NamedTuple):
    reason: str


async def _posted(request: web.Request) -> Any:
    """The request's JSON body, or why it is none (a BadBody: the route answers 400)."""
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return BadBody(f"not valid UTF-8 JSON ({exc.msg})")


async def _drafted(view: web.View, request: web.Request) -> tuple[Any, Segment] | web.Response:
    """A posted draft ({name, definition, ...}) and the segment it makes, or the answer that
    says why it makes none (400, 422)."""
    posted = await _posted(request)
    if isinstance(posted, BadBody):
        return _error(view, 400, posted.reason)
    segment = editing.draft(posted, live.definitions)
    if isinstance(segment, editing.Answer):
        return view.json(segment.body, status=segment.status)
    return posted, segment


def page_of(request: web.Request) -> tuple[int, int] | BadBody:
    """The ``cursor`` and ``count`` of a paged route, or why they are wrong (400)."""
    try:
        cursor = int(request.query.get("cursor", "0"))
        count = int(request.query.get("count", "100"))
    except ValueError:
        return BadBody("cursor and count must be whole numbers")
    if cursor < 0 or not 1 <= count <= MAX_PAGE:
        return BadBody(f"cursor must be >= 0 and count within 1..{MAX_PAGE}")
    return cursor, count


def _error(view: web.View, status: int, reason: str) -> web.Response:
    return view.json({"error": reason}, status=status)


@app.page("/health")
class Health(web.View):
    """Always 200 while the worker runs (Faust's web server starts before the consumer); `ready`
    once the worker holds its partitions and has recovered their tables; "degraded" (with the
    reason) until then and while the serving store is behind the customers table."""

    async def get(self, request: web.Request) -> web.Response:
        try:
            redis_ok = bool(await asyncio.wait_for(store.client.ping(), timeout=1))
        except Exception:  # any failure means "not reachable" here
            redis_ok = False
        return self.json(
            {
                **(await health()),
                "ready": not rebalancing(),
                "redis": redis_ok,
                "segments": len(live.catalog.segments),
                "catalog_digest": live.catalog.digest,
                # Part of the digest: the demo runs with a shorter quiet period than the default.
                "cart_quiet_minutes": settings.cart_quiet_minutes,
            }
        )


async def ingest(view: web.View, request: web.Request) -> web.Response:
    """/v1/events: validate each posted {topic, value, key?}, produce the good ones once Kafka
    can take them, answer per item (202 if any was accepted)."""
    body = await request.read()
    if len(body) > settings.max_batch_bytes:
        return _error(view, 413, f"body over the {settings.max_batch_bytes}-byte limit")
    try:
        posted = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _error(view, 400, f"not valid UTF-8 JSON ({exc.msg})")
    items = posted if isinstance(posted, list) else [posted]
    results: list[dict[str, Any]] = []
    accepted: list[Accepted] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidEvent("expected an object {topic, value} (key optional)")
            event = check_event(
                item.get("topic"), item.get("key"), item.get("value"), settings.max_event_bytes
            )
        except InvalidEvent as exc:
            named = item.get("topic") if isinstance(item, dict) else None
            metrics.events_rejected.labels(named if named in ACCEPTED_TOPICS else "unknown").inc()
            results.append({"index": index, "accepted": False, "reason": exc.reason})
            continue
        accepted.append(event)
        results.append({"index": index, "accepted": True, "topic": event.topic})
    try:
        await intake.produce(accepted)
    except Refused as exc:
        return view.json(
            {"error": f"{exc.reason}; retry"},
            status=exc.status,
            headers={"Retry-After": str(exc.retry_after)},
        )
    return view.json(
        {"accepted": len(accepted), "rejected": len(items) - len(accepted), "results": results},
        status=202 if accepted else 400,
    )


@app.page("/v1/events")
class Events(Protected):
    roles: ClassVar[dict[str, Role]] = {"POST": "ingest"}

    async def post(self, request: web.Request) -> web.Response:
        return await ingest(self, request)


@app.page("/v1/segment")
class SegmentSpec(Protected):
    """Segment's tracking calls (one message, or {"batch": [...]}) with the API's bearer token:
    the same mapping and answers as the Tracking API (``serving.tracking``)."""

    roles: ClassVar[dict[str, Role]] = {"POST": "ingest"}

    async def post(self, request: web.Request) -> web.Response:
        posted = await _posted(request)
        if isinstance(posted, BadBody):
            return _error(self, 400, posted.reason)
        return cast(web.Response, await take(self, segment_spec.messages(posted), API_SOURCE))


@app.page("/v1/segments")
class Segments(Protected):
    async def get(self, request: web.Request) -> web.Response:
        sizes = await store.sizes(live.catalog.names())
        return self.json(
            {
                "catalog_digest": live.catalog.digest,
                "segments": [
                    {**segment.describe(), "size": sizes[segment.name]}
                    for segment in live.catalog.segments
                ],
            }
        )


@app.page("/v1/segments/preview")
class SegmentPreview(Protected):
    """A draft segment ({name, definition}) on the live state of every worker: each evaluates
    the customers it holds, this one adds the answers up. Exact, not sampled."""

    roles: ClassVar[dict[str, Role]] = {"POST": "read"}

    async def post(self, request: web.Request) -> web.Response:
        drafted = await _drafted(self, request)
        if not isinstance(drafted, tuple):  # why the draft makes no segment
            return drafted
        posted, segment = drafted
        if rebalancing():
            return _error(self, 503, "partitions are moving between workers; retry")
        started, now = time.monotonic(), wall_clock_ms()
        if request.query.get("scope") == "worker":  # one worker's part of a preview
            return self.json((await self.held(segment, now)).as_dict())
        urls = sorted(app.router.table_metadata(names.CUSTOMERS_TABLE)) or [OWN_URL]

        async def part(url: str) -> dict[str, Any]:
            if url == OWN_URL:
                return (await self.held(segment, now)).as_dict()
            return await _ask(url, request, posted)

        try:  # every worker at once: the shorter the gather, the less a rebalance can cut in
            parts = await asyncio.gather(*(part(url) for url in urls))
        except (TimeoutError, aiohttp.ClientError) as exc:
            return _error(self, 503, f"a worker did not answer ({exc!r}); retry")
        if rebalancing():  # partitions moved meanwhile: one may be counted twice, or not at all
            return _error(self, 503, "partitions moved between workers; retry")
        counts, workers = Counts(), len(parts)
        for found in parts:
            counts.add(found)
        elapsed = max(time.monotonic() - started, 1e-3)
        return self.json(
            {
                "name": segment.name,
                **counts.as_dict(),
                "live": live.catalog.get(segment.name) is not None,
                "workers": workers,
                "customers_per_second": round(counts.customers / elapsed),
            }
        )

    async def held(self, segment: Segment, now: int) -> Counts:
        active, _ = table_partitions()
        held = [customer for partition in active for customer in held_customers(partition)]
        return await preview_held(segment, held, customers.get, now)


OWN_URL = str(app.conf.canonical_url)


@app.page("/v1/segments/backtest")
class SegmentBacktest(Protected):
    """Start a backtest of a draft segment ({name, definition, since?}) over the retained input
    topics, beside the live definition of that name (``serving.backtests``)."""

    roles: ClassVar[dict[str, Role]] = {"POST": "edit"}

    async def post(self, request: web.Request) -> web.Response:
        drafted = await _drafted(self, request)
        if not isinstance(drafted, tuple):  # why the draft makes no segment
            return drafted
        posted, segment = drafted
        since = posted.get("since", "30d")
        try:
            duration_ms(since, Where("request", None, "since"))
        except CatalogError as exc:
            return _error(self, 422, str(exc))
        if backtests.busy():
            return self.json(
                {"error": "a backtest runs on this worker already; cancel it or wait"},
                status=429,
                headers={"Retry-After": "10"},
            )
        run = backtests.start(segment.name, segment.body, since, live.definitions, wall_clock_ms())
        location = f"/v1/segments/backtest/{run.id}"
        return self.json(run.as_dict(), status=202, headers={"Location": location})


@app.page("/v1/segments/backtest/{backtest_id}")
class OneBacktest(Protected):
    """A backtest's progress and, once done, its result; DELETE cancels it."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read", "DELETE": "edit"}

    async def get(self, request: web.Request, backtest_id: str) -> web.Response:
        run = backtests.runs.get(backtest_id)
        if run is None:
            return _error(self, 404, "no such backtest on this worker")
        return self.json(run.as_dict())

    async def delete(self, request: web.Request, backtest_id: str) -> web.Response:
        run = backtests.runs.get(backtest_id)
        if run is None:
            return _error(self, 404, "no such backtest on this worker")
        backtests.cancel(run)
        return self.json(run.as_dict())


async def _ask(url: str, request: web.Request, posted: Any) -> dict[str, Any]:
    """Another worker's part of a preview (with the caller's own token)."""
    headers = {"Authorization": request.headers.get("Authorization", "")}
    async with app.http_client.post(
        f"{url.rstrip('/')}/v1/segments/preview?scope=worker", json=posted, headers=headers
    ) as answer:
        answer.raise_for_status()
        return cast(dict[str, Any], await answer.json())


@app.page("/v1/segments/{name}")
class OneSegment(Protected):
    """A segment: its description, size and size history, its live definition and version
    (the ETag); PUT creates or replaces it, DELETE deletes it (``serving.editing``)."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read", "PUT": "edit", "DELETE": "edit"}

    async def get(self, request: web.Request, name: str) -> web.Response:
        segment = live.catalog.get(name)
        if segment is None:
            return _error(self, 404, f"no segment named {name!r}")
        size = (await store.sizes([name]))[name]
        history = await store.history(name)
        definition = live.definitions.definitions.get(name)
        return self.json(
            {
                **segment.describe(),
                "size": size,
                "history": [[at, n] for at, n, *_ in history],
                "flow": [list(sample) for sample in history if len(sample) == 4],
                **(editing.described(definition) if definition else {}),
                "rule": rule_tree(segment),
            },
            headers={"ETag": editing.etag(definition.version)} if definition else None,
        )

    async def put(self, request: web.Request, name: str) -> web.Response:
        raw = await request.read()
        try:  # the body as JSON, or as the catalog writes a segment (YAML)
            kind = request.headers.get("Content-Type", "").partition(";")[0].strip()
            posted = raw.decode() if kind in YAML else orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(self, 400, f"not valid UTF-8 JSON ({exc})")
        answer = await editing.put(name, posted, request.headers.get("If-Match"), _by(request))
        return self.json(answer.body, status=answer.status, headers=answer.headers)

    async def delete(self, request: web.Request, name: str) -> web.Response:
        answer = await editing.delete(name, request.headers.get("If-Match"), _by(request))
        return self.json(answer.body, status=answer.status, headers=answer.headers)


YAML = ("application/yaml", "application/x-yaml", "text/yaml")


def _by(request: web.Request) -> str:
    """Who makes a change: the name of the caller's token (``dispatch`` checked it)."""
    return cast(Caller, caller(request)).name


@app.page("/v1/definitions")
class Definitions(Protected):
    """The definitions this worker runs, those every worker runs (do they agree?), and how far
    the re-evaluation of a change has come."""

    async def get(self, request: web.Request) -> web.Response:
        return self.json(
            {
                "offset": live.definitions.offset,
                "digest": live.catalog.digest,
                "segments": len(live.catalog.segments),
                "applied_at": live.applied_at,
                "error": live.error,
                **rollout(await store.worker_reports(), wall_clock_ms()),
            }
        )


@app.page("/v1/segments/{name}/history")
class SegmentHistory(Protected):
    async def get(self, request: web.Request, name: str) -> web.Response:
        answer = await editing.history(name)
        return self.json(answer.body, status=answer.status, headers=answer.headers)


@app.page("/v1/segments/{name}/rollback")
class SegmentRollback(Protected):
    roles: ClassVar[dict[str, Role]] = {"POST": "edit"}

    async def post(self, request: web.Request, name: str) -> web.Response:
        posted = await _posted(request)
        if isinstance(posted, BadBody):
            return _error(self, 400, posted.reason)
        if_match = request.headers.get("If-Match")
        answer = await editing.rollback(name, posted, if_match, _by(request))
        return self.json(answer.body, status=answer.status, headers=answer.headers)


@app.page("/v1/segments/{name}/members")
class Members(Protected):
    async def get(self, request: web.Request, name: str) -> web.Response:
        if live.catalog.get(name) is None:
            return _error(self, 404, f"no segment named {name!r}")
        paging = page_of(request)
        if isinstance(paging, BadBody):
            return _error(self, 400, paging.reason)
        page = await store.members(name, *paging)
        return self.json({"segment": name, "members": page.members, "next_cursor": page.cursor})


def summary(state: CustomerState) -> dict[str, Any]:
    """What the API shows of a customer's state (no email or name is ever stored)."""
    return {
        "customer_id": state.customer_id,
        "segments": sorted(state.segments),
        "version": state.version,
        "traits": state.traits,
        "purchases": {
            "count": state.purchase_count,
            "total_spend": state.total_spend,
            "first_at": state.first_purchase_at,
            "last_at": state.last_purchase_at,
        },
        "email": {
            "opens": state.open_count,
            "clicks": state.click_count,
            "last_open_at": state.last_open_at,
            "last_click_at": state.last_click_at,
        },
        "cart": state.cart_items(),
        "support_contacts": state.support_count,
        "next_deadline": state.next_deadline,
        **consent_of(state),
    }


NO_CONSENT = (
    "no email_consent: true among this customer's traits, so they are in no segment that "
    "requires consent (every default segment does); a profile update with "
    "traits.email_consent true brings them in"
)


SUPPRESSED = (
    "the address is suppressed ({reason}): the customer is in no segment that requires consent, "
    "and a profile update's email_consent true does not change that; only an explicit opt-in "
    "does (a profile update with opt_in: true, or a Segment track 'Email Subscribed')"
)


def consent_of(state: CustomerState) -> dict[str, Any]:
    """Whether the customer agreed to email, and why they are in few segments if not."""
    if state.suppressed is not None:
        note = SUPPRESSED.format(reason=state.suppressed)
        return {"email_consent": False, "suppressed": state.suppressed, "note": note}
    if state.email_consent:
        return {"email_consent": True}
    return {"email_consent": False, "note": NO_CONSENT}


@app.page("/v1/customers/{customer_id}")
class Customer(Protected):
    async def get(self, request: web.Request, customer_id: str) -> web.Response:
        """Answered by the worker that owns the customer's partition (the request is forwarded
        there). Faust's table_route would partition by the table's JSON key, not by the
        customer_id bytes the input topics are partitioned by, so route by a co-partitioned
        topic instead."""
        try:
            return await app.router.route_topic_req(
                topics.segment_changes, customer_id, self.web, request
            )
        except SameNode:
            pass
        except (KeyError, TypeError):
            # The producer has no metadata for the topic yet (nothing published so far):
            # answer from here, which is right whenever this worker owns the partition.
            pass
        stored = customers.get(customer_id)
        if not stored or is_anonymous(customer_id):  # a visitor is no customer until identified
            return _error(self, 404, "no such customer")
        return await self.local(request, Step.restore(stored))

    async def local(self, request: web.Request, state: CustomerState) -> web.Response:
        """The answer, on the worker that holds the customer."""
        served = await store.segments_of(state.customer_id)
        return self.json({**summary(state), "served_segments": served})


@app.page("/v1/customers/{customer_id}/explain")
class Explain(Customer):
    """Why the customer is or is not in ``?segment=NAME`` (without it: why they are in each of
    their segments), answered by the worker that holds the customer."""

    async def get(self, request: web.Request, customer_id: str) -> web.Response:
        segment = request.query.get("segment")
        if segment is not None and live.catalog.get(segment) is None:
            return _error(self, 404, f"no segment named {segment!r}")
        return await super().get(request, customer_id)

    async def local(self, request: web.Request, state: CustomerState) -> web.Response:
        segment, now = request.query.get("segment"), wall_clock_ms()
        explained = explain_customer(live.catalog, state, now, segment)
        return self.json({"customer_id": state.customer_id, "segments": explained})


@app.page("/v1/dashboard")
class DashboardData(Protected):
    async def get(self, request: web.Request) -> web.Response:
        now = int(time.time() * 1000)
        names_ = live.catalog.names()
        sizes = await store.sizes(names_)
        activity = await store.activity(now - 60_000)
        revenue = await store.revenue(names_)
        quiet = {"enter": 0, "exit": 0}
        return self.json(
            {
                "generated_at": now,
                "segments": [
                    {
                        "name": segment.name,
                        "description": segment.description,
                        "size": sizes[segment.name],
                        "enters_per_minute": activity.get(segment.name, quiet)["enter"],
                        "exits_per_minute": activity.get(segment.name, quiet)["exit"],
                        "revenue": revenue[segment.name],
                    }
                    for segment in live.catalog.segments
                ],
                "recent": await store.recent_changes(30),
                # The unit of revenue: purchases per currency (amounts are summed as sent).
                "currencies": await store.currencies(),
            }
        )


DASHBOARD_HTML = (Path(__file__).parent / "dashboard.html").read_text()


@app.page("/dashboard")
class Dashboard(web.View):
    """The marketers' page. Browsers cannot send a bearer header on a page load, so the token
    may come as ?token=...; the page then sends it as a header on every API call."""

    async def get(self, request: web.Request) -> web.Response:
        who = caller(request) or holder_of(request.query.get("token"))
        if who is None or not who.may("read"):
            return _error(self, 401, "missing or wrong token (add ?token=...)")
        return self.html(DASHBOARD_HTML)


@app.page("/metrics")
class Metrics(Protected):
    async def get(self, request: web.Request) -> web.Response:
        return self.text(metrics.render().decode(), content_type=PROMETHEUS_TEXT)


@app.page("/openapi.json")
class OpenAPI(Protected):
    async def get(self, request: web.Request) -> web.Response:
        return self.json(openapi_document())
