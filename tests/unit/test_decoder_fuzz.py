"""Generated payloads against the decoder: whatever arrives, the answer is a decoded event or
an InvalidEvent with a reason, never another exception; and no valid event is refused."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import names
from config.errors import InvalidEvent
from streams.events import decode
from tests.payloads import NOW, json_values, valid_events

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(topic: str, raw: bytes) -> object:
    """The decoded event or the InvalidEvent: anything else fails the test."""
    try:
        return decode(topic, b"c-1", raw, now=NOW)
    except InvalidEvent as exc:
        assert exc.reason
        return exc


@pytest.mark.parametrize("topic", names.INPUT_TOPICS)
@FUZZ
@given(raw=st.binary(max_size=600))
def test_any_bytes_decode_or_get_a_reason(topic: str, raw: bytes) -> None:
    outcome(topic, raw)


@pytest.mark.parametrize("topic", names.INPUT_TOPICS)
@FUZZ
@given(value=json_values)
def test_any_json_decodes_or_gets_a_reason(topic: str, value: Any) -> None:
    outcome(topic, orjson.dumps(value))


@pytest.mark.parametrize("topic", names.EVENT_TOPICS)
@FUZZ
@given(data=st.data())
def test_every_valid_event_is_accepted(topic: str, data: st.DataObject) -> None:
    value = data.draw(valid_events(topic))
    decoded = outcome(topic, orjson.dumps(value))
    assert not isinstance(decoded, InvalidEvent), (decoded, value)
    assert (decoded.event_id, decoded.customer_id, decoded.ts) == (  # type: ignore[attr-defined]
        value["event_id"],
        value["customer_id"],
        value["ts"],
    )


@pytest.mark.parametrize("topic", names.EVENT_TOPICS)
@FUZZ
@given(data=st.data())
def test_a_valid_event_with_one_field_broken_gets_a_reason(topic: str, data: st.DataObject) -> None:
    value = data.draw(valid_events(topic))
    field = data.draw(st.sampled_from(sorted(value)))
    broken = value | {field: data.draw(json_values)}
    outcome(topic, orjson.dumps(broken))
    outcome(topic, orjson.dumps({k: v for k, v in value.items() if k != field}))
