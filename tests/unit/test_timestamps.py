"""streams.timestamps: RFC 3339 or epoch milliseconds in, epoch milliseconds out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.errors import InvalidEvent
from streams.timestamps import EARLIEST_MS, format_ts, parse_ts

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEW_YEAR_2026_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TYPE_ERROR = "ts: expected an RFC 3339 string or epoch milliseconds"


def ms_of(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, in integer arithmetic."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def reason(value: object, field: str = "ts") -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_ts(value, field)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def test_constants_agree_with_the_calendar() -> None:
    assert ms_of(datetime(2000, 1, 1, tzinfo=UTC)) == EARLIEST_MS
    assert ms_of(datetime(2026, 1, 1, tzinfo=UTC)) == NEW_YEAR_2026_MS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-01-01T00:00:00Z", NEW_YEAR_2026_MS, id="z"),
        pytest.param("2026-01-01T00:00:00+00:00", NEW_YEAR_2026_MS, id="plus-zero"),
        pytest.param("2026-01-01T01:00:00+01:00", NEW_YEAR_2026_MS, id="east-offset"),
        pytest.param("2025-12-31T19:00:00-05:00", NEW_YEAR_2026_MS, id="west-offset"),
        pytest.param("2026-01-01T05:30:00+05:30", NEW_YEAR_2026_MS, id="half-hour-offset"),
        pytest.param("2026-01-01T00:00:00.123Z", NEW_YEAR_2026_MS + 123, id="milliseconds"),
        pytest.param("2026-01-01T00:00:00.000Z", NEW_YEAR_2026_MS, id="zero-milliseconds"),
        pytest.param("2026-01-01T00:00:00.250+02:00", NEW_YEAR_2026_MS - 7_199_750, id="ms+off"),
        pytest.param("2000-01-01T00:00:00Z", EARLIEST_MS, id="earliest-string"),
        pytest.param(NEW_YEAR_2026_MS, NEW_YEAR_2026_MS, id="epoch-ms"),
        pytest.param(NEW_YEAR_2026_MS + 1, NEW_YEAR_2026_MS + 1, id="epoch-ms-odd"),
        pytest.param(EARLIEST_MS, EARLIEST_MS, id="earliest-int"),
    ],
)
def test_parse_accepts(value: object, expected: int) -> None:
    assert parse_ts(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, TYPE_ERROR, id="true"),
        pytest.param(False, TYPE_ERROR, id="false"),
        pytest.param(1_767_225_600_000.0, TYPE_ERROR, id="float"),
        pytest.param(None, TYPE_ERROR, id="none"),
        pytest.param([NEW_YEAR_2026_MS], TYPE_ERROR, id="list"),
        pytest.param({"ms": NEW_YEAR_2026_MS}, TYPE_ERROR, id="dict"),
        pytest.param(
            "2026-01-01T00:00:00",
            "ts: RFC 3339 timestamps need an offset such as Z",
            id="naive",
        ),
        pytest.param(
            "2026-01-01",
            "ts: '2026-01-01' is not an RFC 3339 timestamp",
            id="date-only",
        ),
        pytest.param(
            "20260101T000000Z",
            "ts: '20260101T000000Z' is not an RFC 3339 timestamp",
            id="basic-iso-form",
        ),
        pytest.param(
            "2026-01-01T00:00Z",
            "ts: '2026-01-01T00:00Z' is not an RFC 3339 timestamp",
            id="no-seconds",
        ),
        pytest.param("garbage", "ts: 'garbage' is not an RFC 3339 timestamp", id="garbage"),
        pytest.param("", "ts: '' is not an RFC 3339 timestamp", id="empty"),
        pytest.param(
            "2026-13-01T00:00:00Z",
            "ts: '2026-13-01T00:00:00Z' is not an RFC 3339 timestamp",
            id="m13",
        ),
        pytest.param(
            "1767225600000", "ts: '1767225600000' is not an RFC 3339 timestamp", id="digits-string"
        ),
        pytest.param("x" * 100, f"ts: {'x' * 40!r} is not an RFC 3339 timestamp", id="truncated"),
        pytest.param(0, "ts: 0 is before the year 2000", id="zero"),
        pytest.param(-1, "ts: -1 is before the year 2000", id="negative"),
        pytest.param(
            EARLIEST_MS - 1, f"ts: {EARLIEST_MS - 1} is before the year 2000", id="just-before"
        ),
        pytest.param(
            1_767_225_600,
            "ts: 1767225600 is before the year 2000",
            id="epoch-seconds-not-ms",
        ),
        pytest.param(
            "1999-12-31T23:59:59.999Z",
            "ts: '1999-12-31T23:59:59.999Z' is before the year 2000",
            id="string-1999",
        ),
        pytest.param(
            "2000-01-01T00:30:00+01:00",
            "ts: '2000-01-01T00:30:00+01:00' is before the year 2000",
            id="offset-1999",
        ),
    ],
)
def test_parse_rejects(value: object, expected: str) -> None:
    assert reason(value) == expected


def test_parse_names_the_field() -> None:
    assert (
        reason(True, "items[0].ts")
        == "items[0].ts: expected an RFC 3339 string or epoch milliseconds"
    )
    assert reason("nope", "seen_at") == "seen_at: 'nope' is not an RFC 3339 timestamp"


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        pytest.param(NEW_YEAR_2026_MS, "2026-01-01T00:00:00.000Z", id="whole-second"),
        pytest.param(NEW_YEAR_2026_MS + 7, "2026-01-01T00:00:00.007Z", id="7ms"),
        pytest.param(NEW_YEAR_2026_MS - 1, "2025-12-31T23:59:59.999Z", id="last-ms-of-2025"),
        pytest.param(EARLIEST_MS, "2000-01-01T00:00:00.000Z", id="earliest"),
    ],
)
def test_format(ms: int, expected: str) -> None:
    assert format_ts(ms) == expected


@pytest.mark.parametrize(
    "text",
    ["2026-01-01T00:00:00.000Z", "2031-07-15T12:34:56.789Z", "2000-01-01T00:00:00.001Z"],
)
def test_format_of_parse_is_identity_on_canonical_strings(text: str) -> None:
    assert format_ts(parse_ts(text)) == text


@pytest.mark.parametrize(
    "ms",
    [
        EARLIEST_MS,
        EARLIEST_MS + 1,
        NEW_YEAR_2026_MS,
        NEW_YEAR_2026_MS + 1,
        NEW_YEAR_2026_MS + 999,
        1_767_225_600_001,
        4_102_444_799_999,  # 2099-12-31T23:59:59.999Z
    ],
)
def test_parse_of_format_is_identity(ms: int) -> None:
    assert parse_ts(format_ts(ms)) == ms


@pytest.mark.parametrize(
    "ms",
    [
        pytest.param(1_079_919_129_416, id="2004-03-22T01:32:09.416Z"),
        pytest.param(2_193_528_273_693, id="2039-07-06T01:24:33.693Z"),
    ],
)
def test_parse_of_format_is_exact_where_floats_would_round_down(ms: int) -> None:
    """Regression: int(timestamp() * 1000) gave ms - 1 for these."""
    assert format_ts(ms) == (EPOCH + timedelta(milliseconds=ms)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    assert parse_ts(format_ts(ms)) == ms
