"""Segment definitions: the YAML catalog loaded, its segments checked and put in dependency
order (each condition parses its own form: ``engine.conditions``).

Every mistake in a catalog file is reported as one sentence naming the file, the segment and the
field, before a worker consumes anything.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from config import names
from config.errors import CatalogError
from engine import buckets, conditions
from engine.buckets import DEFAULT_SALT
from engine.changes import TRIGGER_PAYLOADS
from engine.conditions.form import (
    UNIT_MS,
    Where,
    choice,
    duration_ms,
    mapping,
    percent,
    span,
    text,
    whole,
)
from engine.plan import Plan
from engine.state import CustomerState
from streams.traits import BUILT_IN, MAX_DECLARED, TYPES, declaration_error

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "config" / "segments.yaml"
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
TRIGGERS = tuple(TRIGGER_PAYLOADS)
SEGMENT_KEYS = {
    "description",
    "when",
    "consent_required",
    "cadence",
    "trigger",
    "frequency",
    "holdout",
}


@dataclass(frozen=True)
class Frequency:
    """An enforceable cadence: at most ``max`` emails to a member per ``per_ms`` (whole days),
    where the free-text ``cadence`` only suggests one to the people who send."""

    max: int
    per_ms: int

    def describe(self) -> dict[str, Any]:
        """As the catalog writes it: {max: 1, per: 14d}."""
        return {"max": self.max, "per": span(self.per_ms)}


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    when: conditions.Condition
    consent_required: bool = True
    cadence: str | None = None
    trigger: str | None = None
    frequency: Frequency | None = None
    # The percentage of members held out of its mail (``engine.buckets.held_out``), or None.
    holdout: float | None = None
    # Fingerprint of the definition: a change re-evaluates every stored customer.
    digest: str = ""
    # Input topics whose events can change membership (references and consent included).
    topics: frozenset[str] = frozenset()
    # Whether time alone can change membership (itself or through a referenced segment).
    timed: bool = False
    # The definition as the catalog writes it ({description, when, ...}): what is published.
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def holds(self, state: CustomerState, now: int) -> bool:
        if self.consent_required and not state.email_consent:
            return False
        return self.when.holds(state, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        """When time alone may next change membership: never while consent is missing, which
        only a profile update (an event of one of the segment's topics) can change."""
        if self.consent_required and not state.email_consent:
            return None
        return self.when.deadline(state, now)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "consent_required": self.consent_required,
            "cadence": self.cadence,
            "trigger": self.trigger,
            "frequency": None if self.frequency is None else self.frequency.describe(),
            "holdout": self.holdout,
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

    #: The traits the catalog declares beside the built-in ones, name -> type: the decoder
    #: keeps them (``streams.events.decode(traits=...)``).
    traits: Mapping[str, str] = field(default_factory=dict)

    #: What ``bucket:`` conditions hash customer ids with (``engine.buckets``): a new salt
    #: reshuffles every A/B split of the catalog.
    bucket_salt: str = DEFAULT_SALT

    #: Digests of recent earlier catalogs -> the segments changed since (None: all of them),
    #: so a definition change re-evaluates only what it touches (``changed_since``).
    lineage: Mapping[str, frozenset[str] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        segments: Iterable[Segment],
        source: str = "<memory>",
        traits: Mapping[str, str] | None = None,
        bucket_salt: str = DEFAULT_SALT,
    ) -> Catalog:
        ordered = tuple(segments)
        declared = dict(traits or {})
        fingerprint = "".join(s.digest for s in ordered)
        if declared:  # a catalog without traits keeps the digest it had before they existed
            fingerprint += json.dumps(declared, sort_keys=True)
        if bucket_salt != DEFAULT_SALT:  # likewise a catalog without a salt of its own
            fingerprint += json.dumps({"bucket_salt": bucket_salt})
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:12]
        by_topic = {
            topic: tuple(s for s in ordered if topic in s.topics) for topic in names.EVENT_TOPICS
        }
        timed = tuple(s for s in ordered if s.timed)
        return cls(
            ordered,
            source,
            digest,
            by_topic,
            timed,
            MappingProxyType(declared),
            bucket_salt=bucket_salt,
        )

    def names(self) -> list[str]:
        return [segment.name for segment in self.segments]

    def get(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    @functools.cached_property
    def holdouts(self) -> tuple[str, ...]:
        """The segments that keep a holdout group (asked at every step: computed once)."""
        return tuple(s.name for s in self.segments if s.holdout)

    @functools.cached_property
    def plan(self) -> Plan:
        """What each kind of step evaluates (``engine.plan``), compiled once per catalog."""
        return Plan(self.segments, self._by_topic)

    def held_out(self, segment: str, customer_id: str) -> bool:
        """Whether a member of ``segment`` is in its holdout group."""
        found = self.get(segment)
        if found is None or not found.holdout:
            return False
        return buckets.held_out(self.bucket_salt, segment, customer_id, found.holdout)

    def for_topic(self, topic: str) -> tuple[Segment, ...]:
        """The segments an event of ``topic`` can affect, in dependency order."""
        return self._by_topic.get(topic, ())

    def changed_since(self, digest: str) -> tuple[Segment, ...]:
        """The segments to re-evaluate, in dependency order, for a customer last evaluated
        against the catalog with ``digest``: those whose definition changed since and those
        that refer to them; all of them when that catalog is not a recent predecessor."""
        if digest == self.digest:
            return ()
        changed = self.lineage.get(digest)
        if changed is None:
            return self.segments
        return tuple(s for s in self.segments if s.name in changed)

    def following(self, previous: Catalog) -> Catalog:
        """This catalog as the successor of ``previous``, remembering what changed since it
        and since its own recent predecessors."""
        step = _changed_between(previous, self)
        lineage: dict[str, frozenset[str] | None] = {previous.digest: step}
        for digest, earlier in list(previous.lineage.items())[: MAX_LINEAGE - 1]:
            lineage.setdefault(digest, None if earlier is None or step is None else earlier | step)
        lineage.pop(self.digest, None)  # back to an earlier catalog: nothing changed since
        return replace(self, lineage=MappingProxyType(lineage))


# Earlier catalogs a catalog remembers the changes since (older ones re-evaluate everything).
MAX_LINEAGE = 32


def _changed_between(old: Catalog, new: Catalog) -> frozenset[str] | None:
    """New or changed segments of ``new`` and those that refer to them (None: the declared
    traits or the bucket salt changed, which can change what every segment sees)."""
    if dict(old.traits) != dict(new.traits) or old.bucket_salt != new.bucket_salt:
        return None
    changed: set[str] = set()
    for segment in new.segments:  # dependency order: references are decided first
        before = old.get(segment.name)
        if before is None or before.digest != segment.digest or segment.when.refs() & changed:
            changed.add(segment.name)
    return frozenset(changed)


# -- parsing --------------------------------------------------------------------------------


def _digest(name: str, node: dict[str, Any], quiet_ms: int) -> str:
    # The standard library's json: it takes any integer a YAML file may hold.
    canonical = json.dumps([name, node, quiet_ms], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def segment_bodies(document: Any, source: str) -> tuple[dict[str, str], dict[Any, Any]]:
    """A catalog document's declared traits and its segments' bodies by name, each as the YAML
    catalog writes it (``cross_sell`` pairs expanded into the segments they stand for); the
    bodies themselves are checked by ``parse_catalog``."""
    top = Where(source, None)
    allowed = {"traits", "segments", "cross_sell", "bucket_salt"}
    root = mapping(document, top, allowed, required=["segments"])
    declared = _declared_traits(root.get("traits"), top.at("traits"))
    if not isinstance(root["segments"], dict):
        raise top.at("segments").error("expected a mapping")
    definitions = dict(root["segments"])
    pairs = root.get("cross_sell") or []
    if not isinstance(pairs, list):
        raise top.at("cross_sell").error("expected a list of {from, to} pairs")
    for index, pair in enumerate(pairs):
        where = top.at("cross_sell").at(index)
        pair = mapping(pair, where, {"from", "to"}, required=["from", "to"])
        source_category = text(pair["from"], where.at("from"))
        target_category = text(pair["to"], where.at("to"))
        name = f"cross_sell_{source_category}_to_{target_category}".lower()
        if name in definitions:
            raise Where(source, name).error(f"defined twice (once by cross_sell[{index}])")
        definitions[name] = {
            "description": f"Bought {source_category}, never {target_category}",
            "when": {
                "all": [
                    {"bought": {"category": source_category}},
                    {"not": {"bought": {"category": target_category}}},
                ]
            },
        }
    return declared, definitions


def parse_catalog(document: Any, source: str, cart_quiet_ms: int = 3_600_000) -> Catalog:
    """Build a Catalog from a parsed YAML document; CatalogError names what is wrong."""
    declared, definitions = segment_bodies(document, source)
    # The document is a mapping (segment_bodies checked it); the salt is the catalog's own.
    salt = text(document.get("bucket_salt", DEFAULT_SALT), Where(source, None).at("bucket_salt"))
    reader = conditions.reader(cart_quiet_ms, {**BUILT_IN, **declared}, salt)
    parsed: dict[str, Segment] = {}
    for name, body in definitions.items():
        where = Where(source, str(name))
        if not isinstance(name, str) or not NAME.match(name):
            raise where.error("segment names are lower-case letters, digits and _")
        node = mapping(body, where, SEGMENT_KEYS, required=["description", "when"])
        consent = node.get("consent_required", True)
        if not isinstance(consent, bool):
            raise where.at("consent_required").error("expected true or false")
        parsed[name] = Segment(
            name=name,
            description=text(node["description"], where.at("description")),
            when=reader.condition(node["when"], where.at("when")),
            consent_required=consent,
            cadence=text(node["cadence"], where.at("cadence")) if "cadence" in node else None,
            trigger=choice(node["trigger"], where.at("trigger"), TRIGGERS)
            if "trigger" in node
            else None,
            frequency=_frequency(node["frequency"], where.at("frequency"))
            if "frequency" in node
            else None,
            holdout=percent(node["holdout"], where.at("holdout")) if "holdout" in node else None,
            digest=_digest(name, node, cart_quiet_ms),
            body=node,
        )
    return Catalog.of(_in_dependency_order(parsed, source), source, declared, salt)


def _frequency(node: Any, where: Where) -> Frequency:
    """``{max: 1, per: 14d}``: a count of emails and a period of whole days."""
    node = mapping(node, where, {"max", "per"}, required=["max", "per"])
    per_ms = duration_ms(node["per"], where.at("per"))
    if per_ms % UNIT_MS["d"]:
        raise where.at("per").error("a frequency counts whole days: use d or w")
    return Frequency(whole(node["max"], where.at("max"), minimum=1), per_ms)


def _declared_traits(node: Any, where: Where) -> dict[str, str]:
    """The catalog's own traits, name -> type (see ``streams.traits``)."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise where.error(f"expected a mapping of trait names to types ({', '.join(TYPES)})")
    if len(node) > MAX_DECLARED:
        raise where.error(f"at most {MAX_DECLARED} traits may be declared")
    for name, kind in node.items():
        reason = declaration_error(name, kind)
        if reason is not None:
            raise where.at(str(name)).error(reason)
    return dict(node)


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
            raise Where(source, name, "when").error(f"segment references form a cycle: {cycle}")
        visiting.append(name)
        segment = segments[name]
        topics = set(segment.when.topics())
        timed = segment.when.timed()
        if segment.consent_required:
            topics.add(names.PROFILE_UPDATES)
        for ref in sorted(segment.when.refs()):
            if ref not in segments:
                raise Where(source, name, "when").error(f"refers to unknown segment {ref!r}")
            referenced = visit(ref)
            topics |= referenced.topics
            timed = timed or referenced.timed
        visiting.pop()
        resolved = Segment(**{**segment.__dict__, "topics": frozenset(topics), "timed": timed})
        done[name] = resolved
        ordered.append(resolved)
        return resolved

    for name in sorted(segments):  # by name: a catalog is the same whatever order it came in
        visit(name)
    return ordered


def load_catalog(path: Path | str = DEFAULT_CATALOG, cart_quiet_ms: int = 3_600_000) -> Catalog:
    """Read and check a catalog file."""
    return parse_catalog(read_document(path), str(path), cart_quiet_ms)


def read_document(path: Path | str) -> Any:
    """A catalog file's YAML document, not yet checked (``parse_catalog`` checks it)."""
    path = Path(path)
    try:
        content = path.read_text()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror}).") from None
    return yaml_document(content, str(path))


def yaml_document(content: str, source: str) -> Any:
    """YAML text read as the catalog loader reads it (a key given twice is an error);
    CatalogError names ``source`` and the line and column of a syntax error."""
    path = source
    loader = _CatalogLoader(content, source)
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
    return document


class _CatalogLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps
    the last value silently, so a segment defined twice would lose its first definition)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_keys(node, Where(self.source, None), set())
        return super().construct_document(node)

    def _check_keys(self, node: yaml.Node, where: Where, seen: set[int]) -> None:
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
            inner = Where(self.source, str(key)) if segments else where.at(str(key))
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
