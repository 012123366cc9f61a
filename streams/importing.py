"""Bulk import: the rows of a CRM export or an order history (CSV or JSON lines) mapped onto the
event contract, each checked by the live decoder, so ``segstream import`` produces exactly what
a live producer would have to.

Kinds of rows:
- ``customers``: one row per customer -> a ``profile-updates`` event with the row's traits, and
  its ``suppression`` or ``opt_in`` if it has one (its time is the row's ``ts``, else the
  import's start);
- ``orders``: one row per order line; consecutive rows with the same ``order_id`` are one order
  -> a ``purchases`` event (its total is the row's ``total``, else the sum of its lines). A row
  with ``items`` (a JSON list) is a whole order on its own;
- ``events``: JSON lines already in the contract, ``{topic, value}`` (``key`` optional).

Columns map to contract fields by name (``email_consent``), through a mapping
(``Opt-in=email_consent``), or in JSON lines by their path (``traits.country``); a cell becomes
its field's type as ``streams.import_cells`` says. Rows are read by ``streams.import_rows``.

Each event's id is stable, so a re-run produces the same events: ``import:`` and the start of a
SHA-256 of the kind and the row's content (customers, events without an ``event_id``), of the
customer and the order id (orders), or of a column mapped to ``event_id``. How long a customer
recognises an id again is ``engine.state.DEDUP_WINDOW_MS`` (see docs/operations.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import yaml

from config import names
from config.errors import ConfigError, InvalidEvent
from streams import codec
from streams.events import MAX_EVENT_BYTES, decode
from streams.import_cells import (
    ITEM_FIELDS,
    TRAIT_TYPES,
    Coerce,
    as_boolean,
    as_items,
    as_number,
    as_text,
    as_time,
    as_year,
)
from streams.import_rows import SourceRow
from streams.traits import BUILT_IN, NO_TRAITS, kept_only

CUSTOMERS, ORDERS, EVENTS = "customers", "orders", "events"
KINDS = (CUSTOMERS, ORDERS, EVENTS)
ID_PREFIX = "import:"
ID_HEX_DIGITS = 32  # 128 bits: no two rows share an id, and a remembered id stays small

TraitTypes = Mapping[str, str]

HEAD_FIELDS: dict[str, Coerce] = {"event_id": as_text, "customer_id": as_text, "ts": as_time}
# A profile update's explicit consent fields (streams.events: a suppression, or an opt-in).
CONSENT_FIELDS: dict[str, Coerce] = {"suppression": as_text, "opt_in": as_boolean}
LINE_FIELDS = ITEM_FIELDS
ORDER_FIELDS: dict[str, Coerce] = {
    "order_id": as_text,
    "total": as_number,
    "currency": as_text,
    "items": as_items,
}


def fields_of(kind: str, declared: TraitTypes = NO_TRAITS) -> dict[str, Coerce]:
    """The fields rows of ``kind`` can give, and how a cell becomes each; ``declared``: the
    catalog's own traits (name -> type), beside the built-in ones."""
    if kind == CUSTOMERS:
        traits = {
            name: as_year if name == "birth_year" else TRAIT_TYPES[kind_of]  # or a birthday
            for name, kind_of in {**BUILT_IN, **declared}.items()
        }
        return HEAD_FIELDS | CONSENT_FIELDS | traits
    if kind == ORDERS:
        return HEAD_FIELDS | ORDER_FIELDS | LINE_FIELDS
    return {}


# Fields a default may not fill: one value for every row would merge customers or orders.
IDENTITIES = ("event_id", "customer_id", "order_id")
# The fields of an order that every one of its lines must agree on.
ORDER_LEVEL = ("event_id", "customer_id", "ts", "total", "currency")


def stable_id(kind: str, content: Any) -> str:
    """``import:`` and a SHA-256 of the kind and ``content`` (key order does not matter)."""
    basis = orjson.dumps([kind, content], option=orjson.OPT_SORT_KEYS)
    return ID_PREFIX + hashlib.sha256(basis).hexdigest()[:ID_HEX_DIGITS]


# -- the mapping --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMapping:
    """Which column gives which contract field, and values for fields no column gives."""

    kind: str
    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    traits: TraitTypes = field(default_factory=lambda: NO_TRAITS)  # declared in the catalog

    @cached_property
    def fields(self) -> dict[str, Coerce]:
        return fields_of(self.kind, self.traits)

    @cached_property
    def trait_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.fields if n not in HEAD_FIELDS and n not in CONSENT_FIELDS)

    def field_of(self, column: str) -> str | None:
        """The field a column gives: mapped, or named like the field (``traits.<name>`` too)."""
        if column in self.columns:
            return self.columns[column]
        name = column.removeprefix("traits.") if self.kind == CUSTOMERS else column
        if name in self.fields and name not in self.columns.values():
            return name
        return None

    def column_giving(self, name: str) -> str:
        """The column a field is mapped from (else the column named like it)."""
        return next((column for column, f in self.columns.items() if f == name), name)

    def check_header(self, header: list[str], source: str) -> list[str]:
        """Refuse a CSV header that cannot give what every row needs; return the columns that
        give no field."""
        for column in header:
            if header.count(column) > 1:
                raise ConfigError(f"{source}: column {column!r} appears twice in the header.")
        for column, target in self.columns.items():
            if column not in header:
                shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
                raise ConfigError(
                    f"{source}: no column {column!r} (mapped to {target}); the header has {shown}."
                )
        given = {self.field_of(column) for column in header} | set(self.defaults)
        for needed in _required(self.kind, given):
            hint = "" if needed in IDENTITIES else f" or give --default {needed}=VALUE"
            raise ConfigError(
                f"{source}: no column gives {needed}: map one with --map COLUMN={needed}{hint}."
            )
        return [column for column in header if self.field_of(column) is None]


def _required(kind: str, given: set[str | None]) -> list[str]:
    needed = {CUSTOMERS: ["customer_id"], ORDERS: ["customer_id", "order_id", "ts", "currency"]}
    missing = [name for name in needed.get(kind, []) if name not in given]
    if kind == ORDERS and "items" not in given:
        missing += [name for name in LINE_FIELDS if name not in given]
    return missing


def mapping_for(
    kind: str | None,
    mapping_file: Path | None = None,
    columns: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
    traits: TraitTypes = NO_TRAITS,
) -> ColumnMapping:
    """The mapping of a file (its kind, columns and defaults), with command-line ``columns``
    (``--map``) and ``defaults`` (``--default``) on top; ``traits``: the catalog's declared
    traits. ConfigError names what is wrong."""
    document = _mapping_document(mapping_file) if mapping_file else {"columns": {}, "defaults": {}}
    source = str(mapping_file)
    filed_kind = document.get("kind")
    if kind and filed_kind and kind != filed_kind:
        raise ConfigError(f"--kind {kind} differs from kind {filed_kind!r} in {source}.")
    kind = kind or filed_kind
    if kind is None:
        raise ConfigError("--kind: say what the rows are (customers, orders or events).")
    if kind not in KINDS:
        where = "--kind" if filed_kind is None else f"{source}: field 'kind'"
        raise ConfigError(f"{where}: {kind!r} is not one of {', '.join(KINDS)}.")
    fields = fields_of(kind, traits)
    mapped: dict[str, str] = {}
    wheres = [(f"{source}: field 'columns.{c}'", c, f) for c, f in document["columns"].items()]
    wheres += [(f"--map {c}={f}", c, f) for c, f in (columns or {}).items()]
    for where, column, target in wheres:
        if target not in fields:
            raise ConfigError(f"{where}: {_not_a_field(kind, target, fields)}.")
        mapped[column] = target
    for target in set(mapped.values()):
        giving = [column for column, f in mapped.items() if f == target]
        if len(giving) > 1:
            raise ConfigError(
                f"--map/--mapping: columns {giving[0]!r} and {giving[1]!r} both give {target}."
            )
    filled: dict[str, Any] = {}
    wheres = [(f"{source}: field 'defaults.{f}'", f, v) for f, v in document["defaults"].items()]
    wheres += [(f"--default {f}={v}", f, v) for f, v in (defaults or {}).items()]
    for where, target, value in wheres:
        if target not in fields:
            raise ConfigError(f"{where}: {_not_a_field(kind, target, fields)}.")
        if target in IDENTITIES:
            raise ConfigError(f"{where}: {target} comes from each row, never from a default.")
        try:
            filled[target] = fields[target](value.strip() if isinstance(value, str) else value)
        except InvalidEvent as exc:
            raise ConfigError(f"{where}: {exc.reason}.") from None
    return ColumnMapping(kind, mapped, filled, traits)


def _not_a_field(kind: str, name: str, fields: dict[str, Coerce]) -> str:
    if kind == EVENTS:
        return "rows of kind events are contract events already and take no mapping"
    return f"{name!r} is not a field of {kind} (its fields: {', '.join(fields)})"


def _mapping_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with kind, columns and defaults.")
    for key in document:
        if key not in ("kind", "columns", "defaults"):
            raise ConfigError(f"{path}: field {key!r}: expected kind, columns or defaults.")
    for key in ("columns", "defaults"):
        part = document.setdefault(key, {}) or {}
        if not isinstance(part, dict) or not all(isinstance(name, str) for name in part):
            raise ConfigError(f"{path}: field {key!r}: expected a mapping of names.")
        document[key] = part
    for column, target in document["columns"].items():
        if not isinstance(target, str):
            raise ConfigError(f"{path}: field 'columns.{column}': expected a field name.")
    return document


# -- rows to events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    """An event the decoder accepted, and the lines of the file it came from."""

    topic: str
    key: bytes
    raw: bytes
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str
    row: Any

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "row": self.row}


Outcome = ImportedEvent | RejectedRow


@dataclass
class _Order:
    """The lines of one order read so far: each row, its fields, and why it is bad, if it is."""

    order_id: str
    rows: list[SourceRow] = field(default_factory=list)
    fields: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    whole: bool = False


def scattered_orders(mapping: ColumnMapping, rows: Iterable[SourceRow]) -> frozenset[str]:
    """A first pass over an order file: the orders whose lines do not all follow one another,
    or that come more than once (a row with ``items`` is a whole order). The import refuses
    every row of them: importing a part would leave an order that a corrected file cannot
    fix, as a re-run gives it the same id."""
    column, items = mapping.column_giving("order_id"), mapping.column_giving("items")
    seen: set[str] = set()
    scattered: set[str] = set()
    current: tuple[str, bool] | None = None
    for row in rows:
        try:
            order_id = as_text(row.cells[column])
        except (KeyError, InvalidEvent):
            current = None  # the importer closes the order at such a row too
            continue
        whole = items in row.cells
        if current == (order_id, False) and not whole:
            continue
        if order_id in seen:
            scattered.add(order_id)
        seen.add(order_id)
        current = (order_id, whole)
    return frozenset(scattered)


class RowImporter:
    """Rows in, outcomes out: ``take`` each row in file order, then ``finish``. Orders come out
    once their last line is read; the rows of ``scattered`` orders (``scattered_orders``) are
    refused."""

    def __init__(
        self,
        mapping: ColumnMapping,
        now: int,
        max_bytes: int = MAX_EVENT_BYTES,
        scattered: frozenset[str] = frozenset(),
    ) -> None:
        self.mapping = mapping
        self.now = now
        self.max_bytes = max_bytes
        self.scattered = scattered
        self._order: _Order | None = None

    def take(self, row: SourceRow) -> list[Outcome]:
        if self.mapping.kind == ORDERS:
            return self._order_row(row)
        if row.problem is not None:
            return [RejectedRow(row.line, row.problem, row.original)]
        try:
            topic, value = self._event(row) if self.mapping.kind == EVENTS else self._customer(row)
            return [self._checked(topic, value, (row.line,))]
        except InvalidEvent as exc:
            return [RejectedRow(row.line, self._located(exc.reason), row.original)]

    def finish(self) -> list[Outcome]:
        return self._close_order()

    # -- one row --------------------------------------------------------------------------------

    def _fields(self, row: SourceRow) -> dict[str, Any]:
        """The row's contract fields, coerced to their types, defaults filled in."""
        found: dict[str, Any] = {}
        for column, cell in row.cells.items():
            name = self.mapping.field_of(column)
            if name is None:
                continue
            try:
                found[name] = self.mapping.fields[name](cell)
            except InvalidEvent as exc:
                raise InvalidEvent(f"{self._named(name)}: {exc.reason}") from None
        return self.mapping.defaults | found

    def _named(self, name: str) -> str:
        """A field's name, and the column it is mapped from, if another."""
        column = self.mapping.column_giving(name)
        return name if column == name else f"{name} (column {column!r})"

    def _located(self, reason: str) -> str:
        """A decoder's reason, naming the column its field is mapped from."""
        path, colon, rest = reason.partition(":")
        name = path.removeprefix("traits.")
        if not colon or name not in self.mapping.fields:
            return reason
        return f"{path}{self._named(name).removeprefix(name)}:{rest}"

    def _customer(self, row: SourceRow) -> tuple[str, dict[str, Any]]:
        found = self._fields(row)
        value: dict[str, Any] = {
            "customer_id": found.get("customer_id"),
            "traits": {name: found[name] for name in self.mapping.trait_names if name in found},
        }
        for name in ("ts", *CONSENT_FIELDS):
            if name in found:
                value[name] = found[name]
        if "suppression" in value:
            value["suppression"] = value["suppression"].lower()  # CRMs write "Unsubscribed"
        # The import's own time is left out of the id: a re-run has another.
        event_id = stable_id(CUSTOMERS, found.get("event_id") or value)
        return names.PROFILE_UPDATES, {"event_id": event_id, "ts": self.now} | value

    def _event(self, row: SourceRow) -> tuple[str, dict[str, Any]]:
        obj = row.original
        topic, value = obj.get("topic"), obj.get("value")
        if topic not in names.EVENT_TOPICS:
            raise InvalidEvent(f"topic: expected one of {', '.join(names.EVENT_TOPICS)}")
        if not isinstance(value, dict):
            raise InvalidEvent("value: expected a JSON object")
        if "key" in obj and obj["key"] != value.get("customer_id"):
            raise InvalidEvent("key: does not match customer_id")
        if value.get("event_id") is None:
            value = {"event_id": stable_id(f"{EVENTS}:{topic}", value)} | value
        return topic, value

    def _checked(self, topic: str, value: dict[str, Any], lines: tuple[int, ...]) -> ImportedEvent:
        """The event as the live decoder takes it, or InvalidEvent with its reason."""
        raw = codec.dumps(value)
        customer = value.get("customer_id")
        key = customer.encode() if isinstance(customer, str) else None
        declared = self.mapping.traits
        decode(topic, key, raw, self.max_bytes, self.now, declared)
        assert key is not None
        kept = kept_only(value, declared)
        return ImportedEvent(topic, key, raw if kept is value else codec.dumps(kept), lines)

    # -- orders ---------------------------------------------------------------------------------

    def _order_line(self, row: SourceRow) -> tuple[dict[str, Any], str | None]:
        """A line's fields, and why it is bad. A bad line keeps its order id (when readable),
        so that its order is rejected with it."""
        if row.problem:
            return {}, row.problem
        try:
            return self._fields(row), None
        except InvalidEvent as exc:
            cell = row.cells.get(self.mapping.column_giving("order_id"))
            try:
                return ({} if cell is None else {"order_id": as_text(cell)}), exc.reason
            except InvalidEvent:
                return {}, exc.reason

    def _order_row(self, row: SourceRow) -> list[Outcome]:
        found, reason = self._order_line(row)
        order_id = found.get("order_id")
        current = self._order
        if current is not None and order_id == current.order_id and "items" not in found:
            current.rows.append(row)
            current.fields.append(found)
            current.reasons.append(reason)
            return []
        outcomes = self._close_order()
        if order_id is None:
            outcomes.append(RejectedRow(row.line, reason or "order_id: missing", row.original))
        elif order_id in self.scattered:
            reason = (
                f"order_id: order {order_id!r} is in more than one place in the file "
                "(the lines of an order must follow one another)"
            )
            outcomes.append(RejectedRow(row.line, reason, row.original))
        else:
            self._order = _Order(order_id, [row], [found], [reason], whole="items" in found)
            if self._order.whole:
                outcomes += self._close_order()
        return outcomes

    def _close_order(self) -> list[Outcome]:
        order, self._order = self._order, None
        if order is None:
            return []
        first = order.fields[0]
        for index, found in enumerate(order.fields[1:], start=1):
            for name in ORDER_LEVEL:  # given on a later line, it must be the first line's
                if order.reasons[0] or order.reasons[index] or name not in found:
                    continue
                if found[name] != first.get(name):
                    order.reasons[index] = (
                        f"{self._named(name)}: differs from line {order.rows[0].line}, "
                        f"the first of order {order.order_id!r}"
                    )
        if all(reason is None for reason in order.reasons):
            try:
                return [self._purchase(order)]
            except InvalidEvent as exc:
                self._blame(order, exc.reason)
        bad = next(r.line for r, why in zip(order.rows, order.reasons, strict=True) if why)
        return [
            RejectedRow(
                row.line,
                reason
                or f"order_id: order {order.order_id!r} left out: its line {bad} is rejected",
                row.original,
            )
            for row, reason in zip(order.rows, order.reasons, strict=True)
        ]

    def _blame(self, order: _Order, reason: str) -> None:
        """The decoder's reason goes on the line of the item it names, else on every line."""
        item = re.match(r"items\[(\d+)\]\.", reason)
        if item and not order.whole and int(item.group(1)) < len(order.rows):
            order.reasons[int(item.group(1))] = self._located(reason[item.end() :])
        else:
            order.reasons = [self._located(reason)] * len(order.rows)

    def _purchase(self, order: _Order) -> ImportedEvent:
        first = order.fields[0]
        if order.whole:
            items = first["items"]
        else:
            items = [{n: f[n] for n in LINE_FIELDS if n in f} for f in order.fields]
        value = {
            name: first[name] for name in ("customer_id", "ts", "currency") if name in first
        } | {"order_id": order.order_id, "items": items}
        value["total"] = first["total"] if "total" in first else _sum_of(items)
        event_id = stable_id(
            ORDERS, first.get("event_id") or [first.get("customer_id"), order.order_id]
        )
        lines = tuple(row.line for row in order.rows)
        return self._checked(names.PURCHASES, {"event_id": event_id} | value, lines)


def _sum_of(items: list[Any]) -> float:
    """What the lines add up to. A line without (non-negative) numbers adds 0: the decoder
    refuses it and names it, where a bad total would be named first."""
    total = 0.0
    for item in items:
        if isinstance(item, dict):
            quantity, price = item.get("quantity"), item.get("unit_price")
            if isinstance(quantity, int | float) and isinstance(price, int | float):
                total += max(quantity, 0) * max(price, 0)
    return round(total, 2)
