"""Segment definitions: the YAML catalog, parsed and checked into ready-to-evaluate segments.

Every mistake in a catalog file is reported as one sentence naming the file, the segment and the
field, before a worker consumes anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config import names
from engine import conditions as c
from engine.state import HORIZON_DAYS, CustomerState
from segstream.errors import CatalogError
from streams.events import TRAITS

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "config" / "segments.yaml"
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
DURATION = re.compile(r"(\d+)\s*(s|m|h|d|w)\Z")
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
TRIGGERS = ("cart_abandoned",)
SEGMENT_KEYS = {"description", "when", "consent_required", "cadence", "trigger"}


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    when: c.Condition
    consent_required: bool = True
    cadence: str | None = None
    trigger: str | None = None
    # Fingerprint of the definition: a change re-evaluates every stored customer.
    digest: str = ""
    # Input topics whose events can change membership (references and consent included).
    topics: frozenset[str] = frozenset()
    # Whether time alone can change membership (itself or through a referenced segment).
    timed: bool = False

    def holds(self, state: CustomerState, now: int) -> bool:
        if self.consent_required and not state.email_consent:
            return False
        return self.when.holds(state, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return self.when.deadline(state, now)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "consent_required": self.consent_required,
            "cadence": self.cadence,
            "trigger": self.trigger,
        }


@dataclass(frozen=True)
class Catalog:
    """The segments in dependency order (a referenced segment comes before its users)."""

    segments: tuple[Segment, ...]
    source: str = "<memory>"
    digest: str = ""
    _by_topic: dict[str, tuple[Segment, ...]] = field(default_factory=dict, repr=False)
    #: The segments time alone can move, in dependency order.
    timed: tuple[Segment, ...] = ()

    @classmethod
    def of(cls, segments: Iterable[Segment], source: str = "<memory>") -> Catalog:
        ordered = tuple(segments)
        digest = hashlib.sha256("".join(s.digest for s in ordered).encode()).hexdigest()[:12]
        by_topic = {
            topic: tuple(s for s in ordered if topic in s.topics) for topic in names.EVENT_TOPICS
        }
        return cls(ordered, source, digest, by_topic, tuple(s for s in ordered if s.timed))

    def names(self) -> list[str]:
        return [segment.name for segment in self.segments]

    def get(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def for_topic(self, topic: str) -> tuple[Segment, ...]:
        """The segments an event of ``topic`` can affect, in dependency order."""
        return self._by_topic.get(topic, ())


# -- parsing --------------------------------------------------------------------------------


class _Where:
    """Where in the file a value sits: turns a problem into a CatalogError sentence."""

    def __init__(self, source: str, segment: str | None, path: str = "") -> None:
        self.source, self.segment, self.path = source, segment, path

    def at(self, key: str | int) -> _Where:
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return _Where(self.source, self.segment, f"{self.path}{step}")

    def error(self, message: str) -> CatalogError:
        where = f"{self.source}: "
        if self.segment is not None:
            where += f"segment {self.segment!r}, "
        if self.path:
            where += f"field {self.path!r}: "
        elif self.segment is not None:
            where = where.removesuffix(", ") + ": "
        return CatalogError(f"{where}{message}.")


def _mapping(
    node: Any, where: _Where, allowed: set[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise where.error("expected a mapping")
    unknown = sorted(set(map(str, node)) - allowed)
    if unknown:
        raise where.at(unknown[0]).error(
            f"unknown key (expected one of {', '.join(sorted(allowed))})"
        )
    for key in required:
        if key not in node:
            raise where.at(key).error("missing")
    return node


def _number(node: Any, where: _Where, minimum: float = 0) -> float:
    if isinstance(node, bool) or not isinstance(node, int | float) or node < minimum:
        raise where.error(f"expected a number of at least {minimum:g}")
    return float(node)


def _whole(node: Any, where: _Where, minimum: int = 0) -> int:
    if isinstance(node, bool) or not isinstance(node, int) or node < minimum:
        raise where.error(f"expected a whole number of at least {minimum}")
    return node


def _text(node: Any, where: _Where) -> str:
    if not isinstance(node, str) or not node:
        raise where.error("expected a non-empty string")
    return node


def _choice(node: Any, where: _Where, options: Iterable[str]) -> str:
    options = list(options)
    if node not in options:
        raise where.error(f"expected one of {', '.join(options)}")
    return str(node)


def duration_ms(node: Any, where: _Where) -> int:
    match = DURATION.match(str(node).strip()) if isinstance(node, str | int) else None
    if match is None or int(match.group(1)) <= 0:
        raise where.error("expected a duration such as 45s, 60m, 12h, 30d or 2w")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def window_days(node: Any, where: _Where) -> int:
    ms = duration_ms(node, where)
    if ms % UNIT_MS["d"]:
        raise where.error("windows count whole days: use d or w")
    days = ms // UNIT_MS["d"]
    if days > HORIZON_DAYS:
        raise where.error(f"windows reach back at most {HORIZON_DAYS}d")
    return days


def _range(node: dict[str, Any], where: _Where, whole: bool = False) -> tuple[Any, Any]:
    read = _whole if whole else _number
    low = read(node["min"], where.at("min")) if "min" in node else None
    high = read(node["max"], where.at("max")) if "max" in node else None
    if low is not None and high is not None and low > high:
        raise where.at("min").error("min is greater than max")
    return low, high


class _Parser:
    def __init__(self, source: str, cart_quiet_ms: int) -> None:
        self.source = source
        self.cart_quiet_ms = cart_quiet_ms
        self.forms: dict[str, Callable[[Any, _Where], c.Condition]] = {
            "all": self._all,
            "any": self._any,
            "not": self._not,
            "segment": self._segment,
            "trait": self._trait,
            "age": self._age,
            "known_profile": self._known_profile,
            "count": self._count,
            "largest_order": self._largest_order,
            "last": self._last,
            "quiet": self._quiet,
            "abandoned": self._abandoned,
            "bought": self._bought,
            "clicks_per_open": self._clicks_per_open,
            "always": self._always,
        }

    def condition(self, node: Any, where: _Where) -> c.Condition:
        if not isinstance(node, dict) or len(node) != 1:
            raise where.error(f"expected one of: {', '.join(self.forms)}")
        ((form, body),) = node.items()
        if form not in self.forms:
            raise where.at(str(form)).error(
                f"unknown condition (expected one of {', '.join(self.forms)})"
            )
        return self.forms[form](body, where.at(form))

    def _children(self, body: Any, where: _Where) -> tuple[c.Condition, ...]:
        if not isinstance(body, list) or not body:
            raise where.error("expected a non-empty list of conditions")
        return tuple(self.condition(child, where.at(i)) for i, child in enumerate(body))

    def _all(self, body: Any, where: _Where) -> c.Condition:
        return c.All(self._children(body, where))

    def _any(self, body: Any, where: _Where) -> c.Condition:
        return c.AnyOf(self._children(body, where))

    def _not(self, body: Any, where: _Where) -> c.Condition:
        return c.Not(self.condition(body, where))

    def _segment(self, body: Any, where: _Where) -> c.Condition:
        return c.InSegment(_text(body, where))

    def _trait(self, body: Any, where: _Where) -> c.Condition:
        keys = {"name", "equals", "in", "contains", "min", "max", "exists"}
        node = _mapping(body, where, keys, required=["name"])
        tests = [key for key in ("equals", "in", "contains", "exists") if key in node]
        if len(tests) + bool({"min", "max"} & set(node)) != 1:
            raise where.error("give exactly one of equals, in, contains, exists, or min/max")
        one_of = None
        if "in" in node:
            values = node["in"]
            if not isinstance(values, list) or not values:
                raise where.at("in").error("expected a non-empty list")
            if not all(isinstance(v, str | int | float | bool) for v in values):
                raise where.at("in").error("expected a list of strings or numbers")
            one_of = frozenset(v.casefold() if isinstance(v, str) else v for v in node["in"])
        if "exists" in node and not isinstance(node["exists"], bool):
            raise where.at("exists").error("expected true or false")
        low, high = _range(node, where)
        name = _text(node["name"], where.at("name"))
        if name not in TRAITS:
            raise where.at("name").error(
                f"unknown trait {name!r} (the event contract keeps {', '.join(sorted(TRAITS))})"
            )
        return c.Trait(
            name=name,
            equals=node.get("equals"),
            one_of=one_of,
            contains=_text(node["contains"], where.at("contains")).casefold()
            if "contains" in node
            else None,
            minimum=low,
            maximum=high,
            exists=node.get("exists"),
        )

    def _age(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"min", "max"})
        low, high = _range(node, where, whole=True)
        if low is None and high is None:
            raise where.error("give min, max or both")
        return c.Age(low, high)

    def _known_profile(self, body: Any, where: _Where) -> c.Condition:
        if body is not True:
            raise where.error("expected true (use not: for the opposite)")
        return c.KnownProfile()

    def _count(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"of", "within", "min", "max"}, required=["of"])
        low, high = _range(node, where)
        if low is None and high is None:
            raise where.error("give min, max or both")
        within = window_days(node["within"], where.at("within")) if "within" in node else None
        return c.Count(_choice(node["of"], where.at("of"), c.METRICS), within, low, high)

    def _largest_order(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"within", "min_quantity", "min_total"}, required=["within"])
        if "min_quantity" not in node and "min_total" not in node:
            raise where.error("give min_quantity, min_total or both")
        return c.LargestOrder(
            window_days(node["within"], where.at("within")),
            _whole(node["min_quantity"], where.at("min_quantity"), 1)
            if "min_quantity" in node
            else None,
            _number(node["min_total"], where.at("min_total")) if "min_total" in node else None,
        )

    def _last(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"of", "within", "more_than"}, required=["of"])
        if "within" not in node and "more_than" not in node:
            raise where.error("give within, more_than or both")
        return c.Recency(
            _choice(node["of"], where.at("of"), c.LAST_OF),
            duration_ms(node["within"], where.at("within")) if "within" in node else None,
            duration_ms(node["more_than"], where.at("more_than")) if "more_than" in node else None,
        )

    def _quiet(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"of", "for"}, required=["of", "for"])
        return c.Quiet(
            _choice(node["of"], where.at("of"), c.LAST_OF),
            duration_ms(node["for"], where.at("for")),
        )

    def _abandoned(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"did", "then_not", "quiet"}, required=["did", "then_not"])
        quiet = (
            duration_ms(node["quiet"], where.at("quiet")) if "quiet" in node else self.cart_quiet_ms
        )
        return c.Abandoned(
            _choice(node["did"], where.at("did"), c.LAST_OF),
            _choice(node["then_not"], where.at("then_not"), c.LAST_OF),
            quiet,
        )

    def _bought(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"category", "sku", "min_orders"})
        if "category" in node and "sku" in node:
            raise where.error("give category or sku, not both")
        return c.Bought(
            category=_text(node["category"], where.at("category")) if "category" in node else None,
            sku=_text(node["sku"], where.at("sku")) if "sku" in node else None,
            min_orders=_whole(node.get("min_orders", 1), where.at("min_orders"), 1),
        )

    def _clicks_per_open(self, body: Any, where: _Where) -> c.Condition:
        node = _mapping(body, where, {"within", "min", "max", "min_opens"})
        low, high = _range(node, where)
        if low is None and high is None:
            raise where.error("give min, max or both")
        within = window_days(node["within"], where.at("within")) if "within" in node else None
        min_opens = _whole(node.get("min_opens", 1), where.at("min_opens"), 1)
        return c.ClicksPerOpen(within, low, high, min_opens)

    def _always(self, body: Any, where: _Where) -> c.Condition:
        if body is not True:
            raise where.error("expected true")
        return c.Always()


def _digest(name: str, node: dict[str, Any], quiet_ms: int) -> str:
    # The standard library's json: it takes any integer a YAML file may hold.
    canonical = json.dumps([name, node, quiet_ms], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_catalog(document: Any, source: str, cart_quiet_ms: int = 3_600_000) -> Catalog:
    """Build a Catalog from a parsed YAML document; CatalogError names what is wrong."""
    top = _Where(source, None)
    root = _mapping(document, top, {"segments", "cross_sell"}, required=["segments"])
    if not isinstance(root["segments"], dict):
        raise top.at("segments").error("expected a mapping")
    definitions = dict(root["segments"])
    pairs = root.get("cross_sell") or []
    if not isinstance(pairs, list):
        raise top.at("cross_sell").error("expected a list of {from, to} pairs")
    for index, pair in enumerate(pairs):
        where = top.at("cross_sell").at(index)
        pair = _mapping(pair, where, {"from", "to"}, required=["from", "to"])
        source_category = _text(pair["from"], where.at("from"))
        target_category = _text(pair["to"], where.at("to"))
        name = f"cross_sell_{source_category}_to_{target_category}".lower()
        if name in definitions:
            raise _Where(source, name).error(f"defined twice (once by cross_sell[{index}])")
        definitions[name] = {
            "description": f"Bought {source_category}, never {target_category}",
            "when": {
                "all": [
                    {"bought": {"category": source_category}},
                    {"not": {"bought": {"category": target_category}}},
                ]
            },
        }
    parser = _Parser(source, cart_quiet_ms)
    parsed: dict[str, Segment] = {}
    for name, body in definitions.items():
        where = _Where(source, str(name))
        if not isinstance(name, str) or not NAME.match(name):
            raise where.error("segment names are lower-case letters, digits and _")
        node = _mapping(body, where, SEGMENT_KEYS, required=["description", "when"])
        consent = node.get("consent_required", True)
        if not isinstance(consent, bool):
            raise where.at("consent_required").error("expected true or false")
        parsed[name] = Segment(
            name=name,
            description=_text(node["description"], where.at("description")),
            when=parser.condition(node["when"], where.at("when")),
            consent_required=consent,
            cadence=_text(node["cadence"], where.at("cadence")) if "cadence" in node else None,
            trigger=_choice(node["trigger"], where.at("trigger"), TRIGGERS)
            if "trigger" in node
            else None,
            digest=_digest(name, node, cart_quiet_ms),
        )
    return Catalog.of(_in_dependency_order(parsed, source), source)


def _in_dependency_order(segments: dict[str, Segment], source: str) -> list[Segment]:
    """Referenced segments first; unknown references and cycles are errors. Each segment's
    topics grow to include those of the segments it refers to."""
    ordered: list[Segment] = []
    done: dict[str, Segment] = {}
    visiting: list[str] = []

    def visit(name: str) -> Segment:
        if name in done:
            return done[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise _Where(source, name, "when").error(f"segment references form a cycle: {cycle}")
        visiting.append(name)
        segment = segments[name]
        topics = set(segment.when.topics)
        timed = segment.when.timed
        if segment.consent_required:
            topics.add(names.PROFILE_UPDATES)
        for ref in sorted(segment.when.refs()):
            if ref not in segments:
                raise _Where(source, name, "when").error(f"refers to unknown segment {ref!r}")
            referenced = visit(ref)
            topics |= referenced.topics
            timed = timed or referenced.timed
        visiting.pop()
        resolved = Segment(**{**segment.__dict__, "topics": frozenset(topics), "timed": timed})
        done[name] = resolved
        ordered.append(resolved)
        return resolved

    for name in segments:
        visit(name)
    return ordered


def load_catalog(path: Path | str = DEFAULT_CATALOG, cart_quiet_ms: int = 3_600_000) -> Catalog:
    """Read and check a catalog file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror}).") from None
    loader = _CatalogLoader(text, str(path))
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = " ".join(str(exc.problem or exc.context or "unreadable").split())
        if "'\\t'" in reason:
            reason += " (YAML indents with spaces, never tabs)"
        raise CatalogError(f"{path}: not valid YAML{where}: {reason}.") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {' '.join(str(exc).split())}.") from None
    finally:
        loader.dispose()
    return parse_catalog(document, str(path), cart_quiet_ms)


class _CatalogLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps
    the last value silently, so a segment defined twice would lose its first definition)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_keys(node, _Where(self.source, None), set())
        return super().construct_document(node)

    def _check_keys(self, node: yaml.Node, where: _Where, seen: set[int]) -> None:
        if id(node) in seen:  # an alias: checked where its anchor is
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._check_keys(item, where.at(index), seen)
        if not isinstance(node, yaml.MappingNode):
            return
        first: dict[Any, yaml.Mark] = {}
        segments = where.segment is None and where.path == "segments"
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._check_keys(value_node, where, seen)
                continue
            key = self.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            inner = _Where(self.source, str(key)) if segments else where.at(str(key))
            if key is not None and key in first:
                what = "segment defined twice" if segments else "given twice"
                raise inner.error(f"{what}, {_twice(first[key], key_node.start_mark)}")
            if key is not None:
                first[key] = key_node.start_mark
            self._check_keys(value_node, inner, seen)


def catalog_for(segments_file: str, cart_quiet_minutes: int) -> Catalog:
    """The catalog a deployment's settings name (the shipped one when the file is empty)."""
    return load_catalog(segments_file or DEFAULT_CATALOG, cart_quiet_minutes * 60_000)


def _twice(one: yaml.Mark, two: yaml.Mark) -> str:
    if one.line == two.line:
        return f"at line {one.line + 1}, columns {one.column + 1} and {two.column + 1}"
    return f"at lines {one.line + 1} and {two.line + 1}"
