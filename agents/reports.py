"""The campaign report's projection: counts the campaign-facts each step publishes into the
serving store, each fact once (``RedisStore.apply_facts``), batched as the membership
projection is."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import faust

from agents.dead_letters import dead_letter
from agents.projection import BATCH, BATCH_WITHIN_S, apply_until_done
from config import names
from config.errors import InvalidEvent
from segstream.app import app, topics
from serving.store import store
from streams import codec


def checked(events: list[faust.EventT]) -> list[dict[str, Any]]:
    """The batch's well-formed facts; the others go to dead-letters with the reason."""
    facts = []
    for event in events:
        try:
            fact = codec.loads(event.value)
            if not (
                isinstance(fact, dict)
                and isinstance(fact.get("customer_id"), str)
                and isinstance(fact.get("seq"), int)
                and isinstance(fact.get("delta"), dict)
            ):
                raise InvalidEvent("expected a campaign report fact {customer_id, seq, delta}")
            facts.append(fact)
        except (ValueError, InvalidEvent) as exc:
            reason = exc.reason if isinstance(exc, InvalidEvent) else "not JSON"
            dead_letter(event, names.CAMPAIGN_FACTS, reason)
    return facts


@app.agent(topics.campaign_facts)
async def count_facts(stream: faust.StreamT[bytes]) -> None:
    # Acknowledged once counted: a batch left uncounted keeps its offsets uncommitted.
    async for batch in cast(faust.Stream, stream).noack_take(BATCH, within=BATCH_WITHIN_S):
        events = cast(list[faust.EventT], batch)
        facts = checked(events)
        counted = partial(store.apply_facts, facts)
        if await apply_until_done(counted, f"{len(facts)} report facts"):
            for event in events:
                await stream.ack(event)
        else:
            app.let_go([event.message for event in events])
