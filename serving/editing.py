"""Segment definitions changed through the API: create or replace, delete, roll back.

Each edit reads what the topic holds now, checks the edited catalog as a whole (a reference to
a missing segment is refused as the CLI refuses it, in one sentence naming the request, the
segment and the field) and publishes the change; every worker then applies it
(``agents.definitions``). ``If-Match`` carries the version the editor saw: a segment changed
since is refused with 409, so two marketers do not overwrite each other unknowingly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from config.errors import CatalogError, StackError
from engine.catalog import Segment
from engine.definitions import Definition, Live, catalog_of, checked_body, plan, records_for
from segstream.app import settings
from serving.store import store
from streams.definitions import publish, read_records
from streams.timestamps import wall_clock_ms

SOURCE = "request"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    version: int | None = None  # the segment's version now: the ETag

    @property
    def headers(self) -> dict[str, str] | None:
        return None if self.version is None else {"ETag": etag(self.version)}


def etag(version: int) -> str:
    return f'"{version}"'


async def current() -> Live:
    """What the definitions topic holds right now (not what this worker last read)."""
    live, _ = Live().after(await read_records(settings))
    return live


def stale(definition: Definition | None, if_match: str | None) -> Answer | None:
    """409 if the editor saw another version than the one live (If-Match: "N"; "0": none)."""
    if if_match is None or if_match.strip() == "*":
        return None
    seen = if_match.strip().removeprefix("W/").strip('"')
    now = 0 if definition is None else definition.version
    if seen != str(now):
        return Answer(
            409,
            {"error": f"the segment is at version {now}, not {seen}: reload it and edit again"},
            now or None,
        )
    return None


Edit = Callable[..., Awaitable[Answer]]
OUT_OF_REACH = (StackError, KafkaError, RedisError, OSError)


def one_at_a_time(edit: Edit) -> Edit:
    """Run an edit (read, check, publish) under the definitions lock, so two edits cannot both
    pass If-Match; Kafka or Redis out of reach is 503 with the reason (a retry is safe: the
    same body again changes nothing)."""

    @wraps(edit)
    async def locked(*args: Any) -> Answer:
        try:
            async with store.definitions_lock() as held:
                if not held:
                    return Answer(503, {"error": "another edit is being published; retry"})
                return await edit(*args)
        except OUT_OF_REACH as exc:
            return out_of_reach(exc)

    return locked


def out_of_reach(exc: Exception) -> Answer:
    return Answer(503, {"error": f"the definitions are out of reach ({exc}); retry"})


async def history(name: str) -> Answer:
    """The segment's versions as the topic holds them now (an edit just made included)."""
    try:
        live = await current()
    except OUT_OF_REACH as exc:
        return out_of_reach(exc)
    definition = live.definitions.get(name)
    if definition is None:
        return Answer(404, {"error": f"no segment named {name!r}"})
    versions = [definition.as_version(), *definition.history]
    return Answer(200, {"name": name, "versions": versions}, definition.version)


@one_at_a_time
async def put(name: str, posted: Any, if_match: str | None, by: str) -> Answer:
    """Create or replace one segment."""
    try:
        body = checked_body(posted, name, SOURCE)
    except CatalogError as exc:
        return Answer(422, {"error": str(exc)})
    live = await current()
    before = live.definitions.get(name)
    refused = stale(before, if_match)
    if refused is not None:
        return refused
    return await _publish(live, {**live.bodies(), name: body}, name, by, created=before is None)


async def _editable(name: str, if_match: str | None) -> tuple[Live, Definition] | Answer:
    """What the topic holds now and the segment's live definition, or 404 or 409."""
    live = await current()
    before = live.definitions.get(name)
    if before is None:
        return Answer(404, {"error": f"no segment named {name!r}"})
    return stale(before, if_match) or (live, before)


@one_at_a_time
async def delete(name: str, if_match: str | None, by: str) -> Answer:
    found = await _editable(name, if_match)
    if isinstance(found, Answer):
        return found
    live, _ = found
    wanted = {n: b for n, b in live.bodies().items() if n != name}
    return await _publish(live, wanted, name, by, created=False)


@one_at_a_time
async def rollback(name: str, posted: Any, if_match: str | None, by: str) -> Answer:
    """A new version with the body of an earlier one."""
    version = posted.get("version") if isinstance(posted, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        return Answer(422, {"error": f'{SOURCE}: expected {{"version": N}} (a whole number)'})
    found = await _editable(name, if_match)
    if isinstance(found, Answer):
        return found
    live, before = found
    body = before.version_body(version)
    if body is None:
        kept = [before.version, *(item["version"] for item in before.history)]
        return Answer(404, {"error": f"version {version} is not kept (kept: {kept})"})
    return await _publish(live, {**live.bodies(), name: body}, name, by, created=False)


async def _publish(
    live: Live, wanted: Mapping[str, Mapping[str, Any]], name: str, by: str, created: bool
) -> Answer:
    try:
        catalog_of(wanted, live.traits, SOURCE, _quiet_ms(), live.bucket_salt)
    except CatalogError as exc:
        return Answer(422, {"error": str(exc)})
    change = plan(live, wanted, live.traits)
    if change.empty:
        definition = live.definitions[name]
        return Answer(200, {**described(definition), "changed": False}, definition.version)
    records = records_for(live, change, wanted, live.traits, by, wall_clock_ms())
    await publish(settings, records)
    if name in change.removed:
        return Answer(200, {"name": name, "deleted": True, "by": by})
    published = Definition.decode(name, dict(records)[name] or b"")
    return Answer(
        201 if created else 200, {**described(published), "changed": True}, published.version
    )


def described(definition: Definition) -> dict[str, Any]:
    return {
        "name": definition.name,
        "version": definition.version,
        "changed_at": definition.changed_at,
        "changed_by": definition.changed_by,
        "definition": dict(definition.body),
    }


def draft(posted: Any, running: Live) -> Segment | Answer:
    """The segment a posted draft ({name, definition}) makes beside the ``running`` ones, or
    the 422 that says why it makes none."""
    name = posted.get("name") if isinstance(posted, dict) else None
    if not isinstance(name, str):
        return Answer(422, {"error": f'{SOURCE}: expected {{"name": ..., "definition": {{...}}}}'})
    try:
        body = checked_body(posted.get("definition"), name, SOURCE)
        bodies = {**running.bodies(), name: body}
        catalog = catalog_of(bodies, running.traits, SOURCE, _quiet_ms(), running.bucket_salt)
    except CatalogError as exc:
        return Answer(422, {"error": str(exc)})
    return cast(Segment, catalog.get(name))


def _quiet_ms() -> int:
    return settings.cart_quiet_minutes * 60_000
