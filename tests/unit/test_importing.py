"""Bulk import without a broker: cells to contract types, rows to events (and the reasons for
the rows refused), stable event ids, the mapping's errors, reading CSV and JSON lines, what a
re-run counts in the engine, and `segstream import --dry-run` as a user runs it."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import names
from config.errors import ConfigError, InvalidEvent
from engine.catalog import load_catalog
from engine.state import CustomerState
from engine.step import Step
from streams.events import Erasure, decode
from streams.import_cells import (
    as_boolean,
    as_items,
    as_list,
    as_number,
    as_text,
    as_time,
    as_whole,
    as_year,
)
from streams.import_rows import RowReader, format_of
from streams.importing import (
    ImportedEvent,
    Outcome,
    RejectedRow,
    RowImporter,
    TraitTypes,
    mapping_for,
    scattered_orders,
    stable_id,
)
from streams.traits import NO_TRAITS
from tests.unit.terminal import read_until_closed

HOUR = 3_600_000
DAY = 24 * HOUR
NOW = 1_767_268_800_000  # 2026-01-01T12:00:00Z
CRM = {"ID": "customer_id", "Opt-in": "email_consent", "YOB": "birth_year"}


def csv_bytes(*rows: str) -> bytes:
    return "".join(f"{row}\n" for row in rows).encode()


def imported(
    kind: str,
    data: bytes,
    fmt: str = "csv",
    columns: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
    now: int = NOW,
    traits: TraitTypes = NO_TRAITS,
) -> list[Outcome]:
    mapping = mapping_for(kind, None, columns or {}, defaults or {}, traits)
    scattered = scattered_orders(mapping, RowReader(io.BytesIO(data), fmt, "test"))
    importer = RowImporter(mapping, now, scattered=scattered)
    outcomes: list[Outcome] = []
    for row in RowReader(io.BytesIO(data), fmt, "test"):
        outcomes += importer.take(row)
    return outcomes + importer.finish()


def values(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [orjson.loads(o.raw) for o in outcomes if isinstance(o, ImportedEvent)]


def refused(outcomes: list[Outcome]) -> list[tuple[int, str]]:
    return [(o.line, o.reason) for o in outcomes if isinstance(o, RejectedRow)]


def without_id(value: dict[str, Any]) -> dict[str, Any]:
    assert value["event_id"].startswith("import:")
    return {k: v for k, v in value.items() if k != "event_id"}


# -- cells --------------------------------------------------------------------------------------

T_2025_06_01 = 1_748_736_000_000


@pytest.mark.parametrize(
    ("coerce", "cell", "expected"),
    [
        (as_text, "DE", "DE"),
        (as_text, 12345, "12345"),
        (as_number, "12.50", 12.5),
        (as_number, "-3", -3.0),
        (as_number, "1e3", 1000.0),
        (as_number, 7, 7),
        (as_whole, "2", 2),
        (as_whole, "2.0", 2),
        (as_whole, 3, 3),
        (as_year, "1990", 1990),
        (as_year, "1990-02-03", 1990),
        (as_year, 1985, 1985),
        (as_boolean, "yes", True),
        (as_boolean, "Y", True),
        (as_boolean, "TRUE", True),
        (as_boolean, "1", True),
        (as_boolean, "no", False),
        (as_boolean, "f", False),
        (as_boolean, "0", False),
        (as_boolean, 0, False),
        (as_boolean, True, True),
        (as_list, "running|hiking", ["running", "hiking"]),
        (as_list, "running; hiking;", ["running", "hiking"]),
        (as_list, ["a"], ["a"]),
        (as_time, "1748736000000", T_2025_06_01),
        (as_time, 1748736000000, T_2025_06_01),
        (as_time, "2025-06-01", T_2025_06_01),
        (as_time, "2025-06-01 02:00", T_2025_06_01 + 2 * HOUR),
        (as_time, "2025-06-01T02:00:00", T_2025_06_01 + 2 * HOUR),
        (as_time, "2025-06-01T02:00:00Z", T_2025_06_01 + 2 * HOUR),
        (as_time, "2025-06-01T02:00:00+02:00", T_2025_06_01),
        (as_time, "2025-06-01T00:00:00.250Z", T_2025_06_01 + 250),
        (
            as_items,
            '[{"sku": "s1", "quantity": "2", "unit_price": "4.5"}]',
            [{"sku": "s1", "quantity": 2, "unit_price": 4.5}],
        ),
    ],
)
def test_a_cell_becomes_its_fields_type(
    coerce: Callable[[Any], Any], cell: Any, expected: Any
) -> None:
    assert coerce(cell) == expected
    assert type(coerce(cell)) is type(expected)


@pytest.mark.parametrize(
    ("coerce", "cell", "reason"),
    [
        (as_text, 1.5, "expected text"),
        (as_text, True, "expected text"),
        (as_number, "12,50", "'12,50' is not a number"),
        (as_number, True, "True is not a number"),
        (as_number, "nan", "'nan' is not a number"),
        (as_whole, "2.5", "'2.5' is not a whole number"),
        (as_whole, "two", "'two' is not a whole number"),
        (as_whole, False, "False is not a whole number"),
        (as_year, "19x0", "'19x0' is not a year or a date"),
        (as_boolean, "maybe", "'maybe' is not true or false (true/false, yes/no, 1/0)"),
        (as_boolean, 2, "2 is not true or false (true/false, yes/no, 1/0)"),
        (as_list, 3, "expected a list (items separated by | or ;)"),
        (
            as_time,
            "yesterday",
            "'yesterday' is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)",
        ),
        (
            as_time,
            "2025-02-30",
            "'2025-02-30' is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)",
        ),
        (
            as_time,
            "01/06/2025",
            "'01/06/2025' is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)",
        ),
        (as_items, "[{", "expected a JSON list of order lines"),
        (as_items, '{"sku": "s1"}', "expected a JSON list of order lines"),
        (as_items, '[{"quantity": "x"}]', "[0].quantity: 'x' is not a whole number"),
    ],
)
def test_a_cell_that_is_not_its_fields_type_says_why(
    coerce: Callable[[Any], Any], cell: Any, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as refusal:
        coerce(cell)
    assert refusal.value.reason == reason


# -- customers ----------------------------------------------------------------------------------

CRM_HEADER = "ID,Opt-in,YOB,email,interests,country,gender,ts"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            "c1,yes,1990-02-03,ana@example.test,Running|hiking,DE,Female,",
            {
                "customer_id": "c1",
                "ts": NOW,
                "traits": {
                    "email_consent": True,
                    "birth_year": 1990,
                    "interests": ["Running", "hiking"],
                    "country": "DE",
                    "gender": "Female",
                },
            },
        ),
        ("c2,No,,,,,,", {"customer_id": "c2", "ts": NOW, "traits": {"email_consent": False}}),
        ("c3,,,,,,,", {"customer_id": "c3", "ts": NOW, "traits": {}}),
        (
            " c4 , 1 ,1975,,,  FR ,,2025-06-01",
            {
                "customer_id": "c4",
                "ts": T_2025_06_01,
                "traits": {"email_consent": True, "birth_year": 1975, "country": "FR"},
            },
        ),
    ],
)
def test_a_customer_row_becomes_a_profile_update(row: str, expected: dict[str, Any]) -> None:
    outcomes = imported("customers", csv_bytes(CRM_HEADER, row), columns=CRM)
    assert [(o.topic, o.lines) for o in outcomes if isinstance(o, ImportedEvent)] == [
        (names.PROFILE_UPDATES, (2,))
    ]
    (value,) = values(outcomes)
    assert without_id(value) == expected
    assert "ana@example.test" not in str(value)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "c1,maybe,,,,,,",
            "email_consent (column 'Opt-in'): 'maybe' is not true or false "
            "(true/false, yes/no, 1/0)",
        ),
        (
            "c1,yes,1800,,,,,",
            "traits.birth_year (column 'YOB'): expected a year between 1900 and 2100",
        ),
        ("c1,yes,19x0,,,,,", "birth_year (column 'YOB'): '19x0' is not a year or a date"),
        (",yes,,,,,,", "customer_id (column 'ID'): missing"),
        (
            "c1,yes,,,,DE,,yesterday",
            "ts: 'yesterday' is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)",
        ),
        ("c1,yes,,,,DE,,1999-12-31", "ts: 946598400000 is before the year 2000"),
        ("c1,yes,,,,DE,,2026-01-03", "ts: more than an hour in the future"),
        (f"c1,yes,,,,{'x' * 300},,", "traits.country: expected 1 to 256 characters"),
        (f"{'c' * 300},yes,,,,,,", "customer_id (column 'ID'): expected 1 to 256 characters"),
        ("c1,yes,,", "row: 4 fields where the header has 8"),
    ],
)
def test_a_bad_customer_row_is_refused_with_its_reason(row: str, reason: str) -> None:
    outcomes = imported("customers", csv_bytes(CRM_HEADER, row), columns=CRM)
    assert refused(outcomes) == [(2, reason)]
    assert values(outcomes) == []


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("c1,Unsubscribed,", {"suppression": "unsubscribed"}),
        ("c1,,yes", {"opt_in": True}),
        ("c1,,no", {"opt_in": False}),
        ("c1,spam,yes", "opt_in and suppression: give one of them, not both"),
        ("c1,moved,", "suppression (column 'Status'): expected one of unsubscribed, bounced, spam"),
    ],
)
def test_a_customer_row_may_carry_an_explicit_consent_event(
    row: str, expected: dict[str, Any] | str
) -> None:
    outcomes = imported(
        "customers",
        csv_bytes("ID,Status,Opted in", row),
        columns={"ID": "customer_id", "Status": "suppression", "Opted in": "opt_in"},
    )
    if isinstance(expected, str):
        assert refused(outcomes) == [(2, expected)]
    else:
        (value,) = values(outcomes)
        assert without_id(value) == {"customer_id": "c1", "ts": NOW, "traits": {}} | expected


def test_declared_traits_are_fields_of_customers() -> None:
    traits = load_catalog().traits
    outcomes = imported(
        "customers",
        csv_bytes("customer_id,income_band,lifestyle", "c1,high,outdoor|family", "c2,,3"),
        traits=traits,
    )
    assert [v["traits"] for v in values(outcomes)] == [
        {"income_band": "high", "lifestyle": ["outdoor", "family"]},
        {"lifestyle": ["3"]},
    ]


def test_json_lines_customers_take_contract_paths_and_their_own_columns() -> None:
    contract = {"customer_id": 42, "traits": {"country": "DE", "email": "x@example.test"}}
    (value,) = values(imported("customers", orjson.dumps(contract), "jsonl"))
    assert (value["customer_id"], value["traits"]) == ("42", {"country": "DE"})
    own = [
        {"id": "c2", "consent": "yes", "traits": {"email_consent": False}},
        {"id": "c3", "consent": None, "customer_id": "ignored"},
    ]
    outcomes = imported(
        "customers",
        b"\n".join(orjson.dumps(row) for row in own),
        "jsonl",
        columns={"id": "customer_id", "consent": "email_consent"},
    )
    # A mapped column wins over the one named like its field.
    assert [(v["customer_id"], v["traits"]) for v in values(outcomes)] == [
        ("c2", {"email_consent": True}),
        ("c3", {}),
    ]


# -- stable event ids ---------------------------------------------------------------------------


def one_id(kind: str, data: bytes, **options: Any) -> str:
    (value,) = values(imported(kind, data, **options))
    return str(value["event_id"])


def test_a_customer_rows_id_follows_its_content_not_the_import_time() -> None:
    row = csv_bytes("customer_id,country,email_consent", "c1,DE,yes")
    first = one_id("customers", row)
    assert first == one_id("customers", row, now=NOW + 3 * DAY)
    assert first == one_id("customers", csv_bytes("email_consent,customer_id,country", "yes,c1,DE"))
    assert first == one_id("customers", csv_bytes("customer_id,country,email_consent", "c1,DE,1"))
    assert first != one_id("customers", csv_bytes("customer_id,country,email_consent", "c1,DE,no"))
    assert first != one_id("customers", csv_bytes("customer_id,country,email_consent", "c2,DE,yes"))
    assert first != one_id(
        "customers", csv_bytes("customer_id,country,email_consent,ts", "c1,DE,yes,2025-06-01")
    )
    assert len(first) == len("import:") + 32


def test_an_orders_id_is_its_customer_and_order_id_and_a_declared_id_column_wins() -> None:
    header = "order_id,customer_id,ts,sku,category,quantity,unit_price,currency"
    first = one_id("orders", csv_bytes(header, "o1,c1,2025-06-01,s1,shoes,1,10,EUR"))
    corrected = one_id("orders", csv_bytes(header, "o1,c1,2025-06-02,s1,shoes,2,12,EUR"))
    assert first == corrected == stable_id("orders", ["c1", "o1"])
    assert first != one_id("orders", csv_bytes(header, "o1,c2,2025-06-01,s1,shoes,1,10,EUR"))
    declared = one_id(
        "customers",
        csv_bytes("crm_row,customer_id,country", "r-77,c1,DE"),
        columns={"crm_row": "event_id"},
    )
    assert declared == stable_id("customers", "r-77")


# -- orders -------------------------------------------------------------------------------------

ORDERS_HEADER = "order_id,customer_id,ts,sku,category,quantity,unit_price,currency"
T1 = "2025-06-01T10:00:00Z"
SCATTERED = (
    "order_id: order {!r} is in more than one place in the file "
    "(the lines of an order must follow one another)"
)


def test_consecutive_lines_of_an_order_are_one_purchase() -> None:
    outcomes = imported(
        "orders",
        csv_bytes(
            ORDERS_HEADER,
            f"o1,c1,{T1},s1,shoes,2,10.5,EUR",
            "o1,,,s2,socks,1,4,",  # order-level cells may be left empty on later lines
            f"o2,c1,{T1},s1,shoes,1,10.5,EUR",
        ),
    )
    assert refused(outcomes) == []
    assert [(o.lines) for o in outcomes if isinstance(o, ImportedEvent)] == [(2, 3), (4,)]
    first, second = (without_id(v) for v in values(outcomes))
    assert first == {
        "order_id": "o1",
        "customer_id": "c1",
        "ts": T_2025_06_01 + 10 * HOUR,
        "currency": "EUR",
        "total": 25.0,
        "items": [
            {"sku": "s1", "category": "shoes", "quantity": 2, "unit_price": 10.5},
            {"sku": "s2", "category": "socks", "quantity": 1, "unit_price": 4.0},
        ],
    }
    assert second["total"] == 10.5


def test_an_orders_total_column_and_defaults_are_used() -> None:
    outcomes = imported(
        "orders",
        csv_bytes("Order,Customer,Date,SKU,Qty,Price,Total", f"o1,c1,{T1},s1,2,10,18.5"),
        columns={
            "Order": "order_id",
            "Customer": "customer_id",
            "Date": "ts",
            "SKU": "sku",
            "Qty": "quantity",
            "Price": "unit_price",
            "Total": "total",
        },
        defaults={"currency": "EUR", "category": "uncategorized"},
    )
    (value,) = values(outcomes)
    assert (value["total"], value["currency"], value["items"][0]["category"]) == (
        18.5,
        "EUR",
        "uncategorized",
    )


def test_a_row_with_items_is_a_whole_order() -> None:
    items = '"[{""sku"": ""s1"", ""category"": ""shoes"", ""quantity"": 1, ""unit_price"": 30}]"'
    outcomes = imported(
        "orders",
        csv_bytes("order_id,customer_id,ts,currency,items", f"o1,c1,{T1},EUR,{items}"),
    )
    assert [without_id(v) for v in values(outcomes)] == [
        {
            "order_id": "o1",
            "customer_id": "c1",
            "ts": T_2025_06_01 + 10 * HOUR,
            "currency": "EUR",
            "total": 30.0,
            "items": [{"sku": "s1", "category": "shoes", "quantity": 1, "unit_price": 30}],
        }
    ]
    whole = {"order_id": "o2", "customer_id": "c1", "ts": T1, "currency": "EUR", "total": 5}
    whole["items"] = [{"sku": "s", "category": "c", "quantity": "1", "unit_price": 5}]
    (value,) = values(imported("orders", orjson.dumps(whole), "jsonl"))
    assert value["items"][0]["quantity"] == 1
    twice = imported("orders", orjson.dumps(whole) + b"\n" + orjson.dumps(whole), "jsonl")
    assert refused(twice) == [(1, SCATTERED.format("o2")), (2, SCATTERED.format("o2"))]


@pytest.mark.parametrize(
    ("rows", "reasons"),
    [
        (  # one bad line takes its order down, and says which line did
            [f"o1,c1,{T1},s1,shoes,2,10,EUR", "o1,c1,,s2,socks,0,4,EUR"],
            [
                (2, "order_id: order 'o1' left out: its line 3 is rejected"),
                (3, "quantity: 0 is outside 1..1000000"),
            ],
        ),
        (
            [f"o1,c1,{T1},s1,shoes,two,10,EUR", "o1,c1,,s2,socks,1,4,EUR"],
            [
                (2, "quantity: 'two' is not a whole number"),
                (3, "order_id: order 'o1' left out: its line 2 is rejected"),
            ],
        ),
        (
            [f"o1,c1,{T1},s1,shoes,1,10,EUR", "o1,c1,2025-06-02,s2,socks,1,4,EUR"],
            [
                (2, "order_id: order 'o1' left out: its line 3 is rejected"),
                (3, "ts: differs from line 2, the first of order 'o1'"),
            ],
        ),
        (
            [
                f"o1,c1,{T1},s1,shoes,1,10,EUR",
                f"o2,c1,{T1},s1,shoes,1,10,EUR",
                f"o1,c1,{T1},s3,x,1,1,EUR",
            ],
            [(2, SCATTERED.format("o1")), (4, SCATTERED.format("o1"))],
        ),
        (  # a line no order id can be read from ends the order before it
            [f"o1,c1,{T1},s1,shoes,1,10,EUR", f"o2,c1,{T1}", f"o1,c1,{T1},s3,x,1,1,EUR"],
            [
                (2, SCATTERED.format("o1")),
                (3, "row: 3 fields where the header has 8"),
                (4, SCATTERED.format("o1")),
            ],
        ),
        ([f",c1,{T1},s1,shoes,1,10,EUR"], [(2, "order_id: missing")]),
        ([f"o1,,{T1},s1,shoes,1,10,EUR"], [(2, "customer_id: missing")]),
        (["o1,c1,,s1,shoes,1,10,EUR"], [(2, "ts: missing")]),
        ([f"o1,c1,{T1},s1,shoes,1,10,"], [(2, "currency: missing")]),
        ([f"o1,c1,{T1},,shoes,1,10,EUR"], [(2, "sku: missing")]),
        ([f"o1,c1,{T1},s1,shoes,1,-3,EUR"], [(2, "unit_price: -3.0 is outside 0..1000000000")]),
        ([f"o1,c1,{T1},s1,shoes,1,10,EUR,extra"], [(2, "row: 9 fields where the header has 8")]),
    ],
)
def test_a_bad_order_line_is_refused_with_every_line_of_its_order(
    rows: list[str], reasons: list[tuple[int, str]]
) -> None:
    outcomes = imported("orders", csv_bytes(ORDERS_HEADER, *rows))
    assert refused(outcomes) == reasons
    imported_lines = {line for o in outcomes if isinstance(o, ImportedEvent) for line in o.lines}
    assert imported_lines == set(range(2, len(rows) + 2)) - {line for line, _ in reasons}


def test_the_order_after_a_refused_one_is_imported() -> None:
    outcomes = imported(
        "orders",
        csv_bytes(
            ORDERS_HEADER,
            f"o1,c1,{T1},s1,shoes,0,10,EUR",
            f"o1,c1,{T1},s2,shoes,1,10,EUR",
            f"o2,c1,{T1},s1,shoes,1,10,EUR",
        ),
    )
    assert [line for line, _ in refused(outcomes)] == [2, 3]
    assert [v["order_id"] for v in values(outcomes)] == ["o2"]


# -- events -------------------------------------------------------------------------------------


def test_contract_events_pass_through_and_get_an_id_if_they_have_none() -> None:
    click = {"customer_id": "c1", "ts": NOW, "campaign_id": "spring", "url": "https://x.test/"}
    lines = [
        {
            "topic": "email-opens",
            "value": {"event_id": "e1", "customer_id": "c1", "ts": NOW, "campaign_id": "spring"},
        },
        {"topic": "email-clicks", "key": "c1", "value": click},
        {"topic": "customer-erasures", "value": {"customer_id": "c1", "ts": NOW}},
        {"topic": "email-clicks", "key": "c2", "value": click},
        {"topic": "email-opens", "value": {"event_id": "e2", "customer_id": "c1", "ts": NOW}},
        {"topic": "email-opens", "value": [1]},
    ]
    outcomes = imported("events", b"\n".join(orjson.dumps(line) for line in lines), "jsonl")
    assert [v["event_id"] for v in values(outcomes)] == [
        "e1",
        stable_id("events:email-clicks", click),
    ]
    topics = ", ".join(names.EVENT_TOPICS)
    assert refused(outcomes) == [
        (3, f"topic: expected one of {topics}"),
        (4, "key: does not match customer_id"),
        (5, "campaign_id: missing"),
        (6, "value: expected a JSON object"),
    ]


# -- the mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "columns", "defaults", "message"),
    [
        (None, {}, {}, "--kind: say what the rows are (customers, orders or events)."),
        ("people", {}, {}, "--kind: 'people' is not one of customers, orders, events."),
        (
            "customers",
            {"Mail": "email"},
            {},
            "--map Mail=email: 'email' is not a field of customers (its fields: event_id, "
            "customer_id, ts, suppression, opt_in, gender, country, city, source, industry, "
            "birth_year, interests, email_consent, timezone).",
        ),
        (
            "customers",
            {"A": "country", "B": "country"},
            {},
            "--map/--mapping: columns 'A' and 'B' both give country.",
        ),
        (
            "customers",
            {},
            {"email_consent": "maybe"},
            "--default email_consent=maybe: 'maybe' is not true or false "
            "(true/false, yes/no, 1/0).",
        ),
        (
            "orders",
            {},
            {"customer_id": "c1"},
            "--default customer_id=c1: customer_id comes from each row, never from a default.",
        ),
        (
            "events",
            {"a": "topic"},
            {},
            "--map a=topic: rows of kind events are contract events already and take no mapping.",
        ),
    ],
)
def test_a_bad_mapping_is_one_sentence_naming_the_option(
    kind: str | None, columns: dict[str, str], defaults: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        mapping_for(kind, None, columns, defaults)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [", "not valid YAML: while parsing a flow node expected the node content"),
        ("- a", "expected a mapping with kind, columns and defaults."),
        ("kind: orders\ncolumn: {}", "field 'column': expected kind, columns or defaults."),
        ("kind: orders\ncolumns: [a]", "field 'columns': expected a mapping of names."),
        ("kind: orders\ncolumns: {Qty: 3}", "field 'columns.Qty': expected a field name."),
        (
            "kind: orders\ncolumns: {Qty: qty}",
            "field 'columns.Qty': 'qty' is not a field of orders (its fields: event_id, "
            "customer_id, ts, order_id, total, currency, items, sku, category, quantity, "
            "unit_price).",
        ),
        (
            "kind: orders\ndefaults: {quantity: x}",
            "field 'defaults.quantity': 'x' is not a whole number.",
        ),
        ("kind: shop", "field 'kind': 'shop' is not one of customers, orders, events."),
    ],
)
def test_a_bad_mapping_file_names_the_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        mapping_for(None, path)
    assert str(error.value).startswith(f"{path}: {message}")


def test_a_mapping_file_and_the_command_line_combine(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(
        "kind: customers\ncolumns: {ID: customer_id, Opt-in: email_consent}\n"
        "defaults: {country: DE}\n"
    )
    mapping = mapping_for(None, path, {"YOB": "birth_year"}, {"country": "FR"})
    assert (mapping.kind, mapping.columns, mapping.defaults) == (
        "customers",
        {"ID": "customer_id", "Opt-in": "email_consent", "YOB": "birth_year"},
        {"country": "FR"},
    )
    with pytest.raises(ConfigError) as error:
        mapping_for("orders", path)
    assert str(error.value) == f"--kind orders differs from kind 'customers' in {path}."


@pytest.mark.parametrize(
    ("kind", "header", "columns", "defaults", "message"),
    [
        (
            "customers",
            "id,country",
            {},
            {},
            "no column gives customer_id: map one with --map COLUMN=customer_id.",
        ),
        ("customers", "customer_id,x,x", {}, {}, "column 'x' appears twice in the header."),
        (
            "customers",
            "customer_id",
            {"Opt-in": "email_consent"},
            {},
            "no column 'Opt-in' (mapped to email_consent); the header has customer_id.",
        ),
        (
            "orders",
            "order_id,customer_id,ts,sku,category,quantity,unit_price",
            {},
            {},
            "no column gives currency: map one with --map COLUMN=currency or give "
            "--default currency=VALUE.",
        ),
        (
            "orders",
            "order_id,customer_id,ts,currency,sku,quantity",
            {},
            {"category": "misc"},
            "no column gives unit_price: map one with --map COLUMN=unit_price or give "
            "--default unit_price=VALUE.",
        ),
    ],
)
def test_a_header_that_cannot_give_every_row_what_it_needs_is_refused(
    kind: str, header: str, columns: dict[str, str], defaults: dict[str, str], message: str
) -> None:
    mapping = mapping_for(kind, None, columns, defaults)
    reader = RowReader(io.BytesIO(csv_bytes(header)), "csv", "crm.csv")
    assert reader.header is not None
    with pytest.raises(ConfigError) as error:
        mapping.check_header(reader.header, "crm.csv")
    assert str(error.value) == f"crm.csv: {message}"


def test_the_header_check_names_the_columns_not_imported() -> None:
    mapping = mapping_for("customers", None, CRM)
    assert mapping.check_header(CRM_HEADER.split(","), "crm.csv") == ["email"]
    orders = mapping_for("orders", None)
    header = ["order_id", "customer_id", "ts", "currency", "items", "note"]
    assert orders.check_header(header, "o") == ["note"]


# -- reading rows -------------------------------------------------------------------------------


def read(data: bytes, fmt: str) -> tuple[list[tuple[int, Any, str | None]], RowReader]:
    reader = RowReader(io.BytesIO(data), fmt, "test")
    return [(row.line, row.cells, row.problem) for row in reader], reader


def test_csv_rows_keep_their_line_numbers_and_say_what_is_unreadable() -> None:
    data = (
        b"\xef\xbb\xbfcustomer_id;city;note\n"  # a byte-order mark and semicolons
        b"c1;K\xc3\xb6ln;\n"
        b"\n"
        b'c2;Berlin;"two\nlines"\n'
        b"c3;K\xf6ln;\n"
        b"c4;x\n"
    )
    rows, reader = read(data, "csv")
    assert reader.header == ["customer_id", "city", "note"]
    assert rows == [
        (2, {"customer_id": "c1", "city": "Köln"}, None),
        (4, {"customer_id": "c2", "city": "Berlin", "note": "two\nlines"}, None),
        (6, {"customer_id": "c3", "city": "K\ufffdln"}, "row: not valid UTF-8"),
        (7, {}, "row: 2 fields where the header has 3"),
    ]
    assert reader.position == len(data)


def test_json_lines_are_flattened_and_bad_lines_say_why() -> None:
    data = b'{"id": "c1", "traits": {"country": "DE", "x": null}}\n\n[1]\n{"id": \n'
    rows, reader = read(data, "jsonl")
    assert rows == [
        (1, {"id": "c1", "traits.country": "DE"}, None),
        (3, {}, "row: expected a JSON object"),
        (4, {}, "row: not valid UTF-8 JSON (unexpected end of data)"),
    ]
    assert reader.position == len(data)


def test_the_format_comes_from_the_extension_unless_given() -> None:
    assert format_of(Path("a.CSV"), None) == "csv"
    assert format_of(Path("a.ndjson"), None) == "jsonl"
    assert format_of(Path("a.txt"), "csv") == "csv"
    with pytest.raises(ConfigError) as error:
        format_of(Path("a.txt"), None)
    assert str(error.value) == (
        "a.txt: cannot tell its format from the extension: give --format csv or jsonl."
    )
    with pytest.raises(ConfigError) as error:
        RowReader(io.BytesIO(b""), "csv", "empty.csv")
    assert str(error.value) == "empty.csv: no header line (a CSV file starts with its columns)."


# -- what a re-run counts -----------------------------------------------------------------------

CUSTOMERS_CSV = csv_bytes("customer_id,email_consent", "c1,yes")
# Fourteen orders of one customer, 50 days apart, the last 50 days before the import.
ORDERS_CSV = csv_bytes(
    "order_id,customer_id,ts,sku,category,quantity,unit_price,currency",
    *(f"o{n},c1,{NOW - (700 - 50 * n) * DAY},s{n % 3},shoes,1,100,EUR" for n in range(14)),
)


def run_through_the_engine(state: CustomerState, *files: tuple[str, bytes]) -> int:
    """Apply the imported events of each file in turn, as the customer agent does; the number
    of segment changes they published."""
    step, changes = Step(load_catalog()), 0
    for kind, data in files:
        for event in imported(kind, data):
            assert isinstance(event, ImportedEvent)
            decoded = decode(event.topic, event.key, event.raw)
            assert not isinstance(decoded, Erasure)
            changes += len(step.on_event(state, decoded, event.topic).outcome.changes)
    return changes


def test_a_rerun_of_customers_then_orders_counts_every_order_once() -> None:
    state = CustomerState("c1")
    files = [("customers", CUSTOMERS_CSV), ("orders", ORDERS_CSV)]
    assert run_through_the_engine(state, *files) > 0
    counted = (state.purchase_count, state.total_spend, dict(state.traits))
    assert counted == (14, 1400.0, {"email_consent": True})
    assert run_through_the_engine(state, *files) == 0
    assert (state.purchase_count, state.total_spend, dict(state.traits)) == counted


def test_a_rerun_of_an_order_history_alone_counts_every_order_once() -> None:
    """Orders are remembered by order id (the last MAX_ORDER_IDS of a customer), not only by
    event id, so an order history re-imported on its own, however much later, counts once."""
    state = CustomerState("c1")
    run_through_the_engine(state, ("orders", ORDERS_CSV))
    assert state.purchase_count == 14
    assert run_through_the_engine(state, ("orders", ORDERS_CSV)) == 0
    assert (state.purchase_count, state.total_spend) == (14, 1400.0)


# -- the command, without a broker --------------------------------------------------------------


def segstream(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


IMPORT_CRM = ("import", "crm.csv", "--kind", "customers", "--map", "ID=customer_id")
IMPORT_CRM += ("--map", "Opt-in=email_consent")


def write_crm(path: Path, customers: int, bad_every: int) -> list[int]:
    """A CRM export; every ``bad_every``-th customer has a consent nobody can read. The line
    numbers of the bad rows."""
    rows, bad = ["ID,Opt-in,YOB,email,country"], []
    for n in range(customers):
        consent = "maybe" if n % bad_every == bad_every - 1 else "yes"
        if consent == "maybe":
            bad.append(len(rows) + 1)
        rows.append(f"c{n},{consent},1990,person{n}@example.test,DE")
    path.write_bytes(csv_bytes(*rows))
    return bad


def test_a_dry_run_checks_every_row_and_reports_the_bad_ones(tmp_path: Path) -> None:
    crm = tmp_path / "crm.csv"
    bad = write_crm(crm, 3000, 500)
    mapping = tmp_path / "crm.yaml"
    mapping.write_text("kind: customers\ncolumns: {ID: customer_id, Opt-in: email_consent}\n")
    result = segstream(
        "import",
        "crm.csv",
        "--mapping",
        "crm.yaml",
        "--map",
        "YOB=birth_year",
        "--dry-run",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    report = [
        orjson.loads(line)
        for line in (tmp_path / "crm.csv.rejected.jsonl").read_bytes().splitlines()
    ]
    assert [entry["line"] for entry in report] == bad
    assert {entry["reason"] for entry in report} == {
        "email_consent (column 'Opt-in'): 'maybe' is not true or false (true/false, yes/no, 1/0)"
    }
    # The report keeps the row without its personal data (an erasure could not reach it).
    assert report[0]["row"] == {
        "ID": "c499",
        "Opt-in": "maybe",
        "YOB": "1990",
        "email": "[removed]",
        "country": "DE",
    }
    assert result.stdout.startswith(
        "crm.csv: 3,000 rows read, 2,994 would be imported as 2,994 events, 6 rejected, in "
    )
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "crm.csv: columns not imported (not fields of customers; --map COLUMN=FIELD maps one): "
        "email"
    )
    progress = [line for line in lines if line.startswith("Importing crm.csv: ")]
    assert len(progress) >= 5
    assert progress[-1].startswith("Importing crm.csv: 100%, 3,000 rows, 6 rejected, ")
    assert lines[-1] == (
        "segstream: 6 of 3,000 rows rejected (6 email_consent): the rows and their reasons "
        "are in crm.csv.rejected.jsonl"
    )
    assert "@example.test" not in result.stdout + result.stderr


def test_a_clean_run_exits_0_and_removes_an_old_report(tmp_path: Path) -> None:
    crm = tmp_path / "crm.csv"
    write_crm(crm, 10, 100)
    (tmp_path / "old.jsonl").write_text("{}\n")
    result = segstream(*IMPORT_CRM, "--report", "old.jsonl", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "old.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kind", "customers"],
            "crm.csv: no column gives customer_id: map one with --map COLUMN=customer_id.",
        ),
        (["--kind", "customers", "--map", "ID"], "--map 'ID': expected COLUMN=FIELD."),
        (
            ["--kind", "customers", "--map", "ID=id"],
            "--map ID=id: 'id' is not a field of customers",
        ),
        (["--kind", "events"], "crm.csv: rows of kind events are JSON lines ({topic, value})."),
    ],
)
def test_a_bad_mapping_exits_2_with_one_sentence(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write_crm(tmp_path / "crm.csv", 10, 100)
    result = segstream("import", "crm.csv", *args, "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"segstream: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_terminal_shows_a_progress_bar(tmp_path: Path) -> None:
    write_crm(tmp_path / "crm.csv", 20_000, 100_000)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "segstream", *IMPORT_CRM, "--dry-run"],
        env={k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = read_until_closed(leader)
    assert process.wait(timeout=60) == 0
    frames = [f.strip() for f in shown.decode().split("\r") if "Importing crm.csv" in f]
    assert len(frames) >= 2
    assert "rows/s" in frames[-1]
    assert "100%" in frames[-1]
    assert not any(line.startswith("Importing crm.csv: ") for line in shown.decode().splitlines())
