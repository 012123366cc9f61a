"""Segment definitions as data: the records of the compacted ``segment-definitions`` topic.

One record per segment, keyed by its name: the body as the YAML catalog writes it, its version,
when and by whom it was changed, and its earlier versions (newest first, ``MAX_HISTORY`` of
them) for history and rollback; a tombstone deletes the segment. The catalog's declared traits
are one more record, under ``TRAITS_KEY``. The live catalog is what the records hold together
(``catalog_of``); a change is planned against it (``plan``) before it is published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from engine.buckets import DEFAULT_SALT
from engine.catalog import NAME, SEGMENT_KEYS, Catalog, parse_catalog, yaml_document
from engine.conditions.form import Where, mapping
from streams import codec
from streams.records import KeyedRecord

# Not segment names (those start with a letter): the record of the declared traits, and the
# mark that the topic was seeded once (so deleting every segment does not seed it again).
TRAITS_KEY = ":traits"
SALT_KEY = ":bucket_salt"
SEEDED_KEY = ":seeded"
MAX_HISTORY = 20
TOPIC_SOURCE = "segment-definitions"


@dataclass(frozen=True)
class Definition:
    """One segment's live definition."""

    name: str
    body: Mapping[str, Any]
    version: int
    changed_at: int
    changed_by: str
    #: Earlier versions, newest first: {version, body, changed_at, changed_by}.
    history: tuple[Mapping[str, Any], ...] = ()

    def as_version(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "body": dict(self.body),
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
        }

    def encode(self) -> bytes:
        return codec.dumps({**self.as_version(), "name": self.name, "history": self.history})

    @classmethod
    def decode(cls, name: str, raw: bytes) -> Definition:
        """A record's definition; ValueError says why a record cannot be one."""
        try:
            value = codec.loads(raw)
            definition = cls(
                name,
                dict(value["body"]),
                int(value["version"]),
                int(value["changed_at"]),
                str(value["changed_by"]),
                tuple(dict(item) for item in value.get("history", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a segment definition record ({exc!r})") from None
        return definition

    def revised(self, body: Mapping[str, Any], by: str, at: int) -> Definition:
        """The next version, with this one first in its history."""
        history = (self.as_version(), *self.history)[:MAX_HISTORY]
        return Definition(self.name, dict(body), self.version + 1, at, by, history)

    def version_body(self, version: int) -> Mapping[str, Any] | None:
        """The body of ``version`` (this one or a kept earlier one); None if not kept."""
        if version == self.version:
            return self.body
        return next((item["body"] for item in self.history if item["version"] == version), None)


def first_version(name: str, body: Mapping[str, Any], by: str, at: int) -> Definition:
    return Definition(name, dict(body), 1, at, by)


@dataclass(frozen=True)
class Live:
    """What the topic holds: each segment's definition, the declared traits, and the offset
    after the last record read (the definitions version every worker can report)."""

    definitions: Mapping[str, Definition] = field(default_factory=dict)
    traits: Mapping[str, str] = field(default_factory=dict)
    offset: int = 0
    seeded: bool = False
    bucket_salt: str = DEFAULT_SALT

    def bodies(self) -> dict[str, Mapping[str, Any]]:
        return {name: d.body for name, d in self.definitions.items()}

    def catalog(self, cart_quiet_ms: int, source: str = TOPIC_SOURCE) -> Catalog:
        """The catalog these definitions make; CatalogError names what is wrong."""
        return catalog_of(self.bodies(), self.traits, source, cart_quiet_ms, self.bucket_salt)

    def with_record(self, key: str, raw: bytes | None, offset: int) -> tuple[Live, str | None]:
        """This state after the record at ``offset``, and why the record was skipped if it is
        not a definition (the offset moves on either way)."""
        definitions, traits, seeded = dict(self.definitions), dict(self.traits), self.seeded
        salt = self.bucket_salt
        try:
            if key == TRAITS_KEY:
                traits = {} if raw is None else _traits(codec.loads(raw))
            elif key == SALT_KEY:
                salt = DEFAULT_SALT if raw is None else _salt(codec.loads(raw))
            elif key == SEEDED_KEY:
                seeded = True
            elif raw is None:
                definitions.pop(key, None)
            else:
                definitions[key] = Definition.decode(key, raw)
        except ValueError as exc:
            return replace(self, offset=offset + 1), str(exc)
        return Live(definitions, traits, offset + 1, seeded, salt), None

    def after(self, records: Iterable[KeyedRecord]) -> tuple[Live, list[str]]:
        """This state after ``records`` (key, value, offset), and why any were skipped."""
        live, skipped = self, []
        for key, raw, offset in records:
            if key is None:
                live = replace(live, offset=offset + 1)
                continue
            live, reason = live.with_record(key, raw, offset)
            if reason is not None:
                skipped.append(f"record {offset}: {reason}")
        return live, skipped


def _traits(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("the traits record is not a mapping of names to types")
    return {str(k): v for k, v in value.items()}


def _salt(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("the bucket_salt record is not a string")
    return value


def catalog_of(
    bodies: Mapping[str, Mapping[str, Any]],
    traits: Mapping[str, str],
    source: str = TOPIC_SOURCE,
    cart_quiet_ms: int = 3_600_000,
    bucket_salt: str = DEFAULT_SALT,
) -> Catalog:
    """The catalog these bodies, traits and salt make; CatalogError names what is wrong."""
    document: dict[str, Any] = {"segments": {name: dict(b) for name, b in bodies.items()}}
    if traits:
        document["traits"] = dict(traits)
    if bucket_salt != DEFAULT_SALT:
        document["bucket_salt"] = bucket_salt
    return parse_catalog(document, source, cart_quiet_ms)


@dataclass(frozen=True)
class Plan:
    """What publishing a wanted set of definitions changes in the live ones."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    traits_changed: bool = False
    salt_changed: bool = False

    @property
    def empty(self) -> bool:
        changed_segments = self.added or self.changed or self.removed
        return not (changed_segments or self.traits_changed or self.salt_changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "traits_changed": self.traits_changed,
            "bucket_salt_changed": self.salt_changed,
        }


def plan(
    live: Live,
    wanted: Mapping[str, Mapping[str, Any]],
    traits: Mapping[str, str],
    *,
    removing: bool = True,
    bucket_salt: str | None = None,
) -> Plan:
    """The difference from ``live`` to ``wanted`` (segments missing from ``wanted`` are removed
    only when ``removing``: a whole catalog, not one segment; the salt is left as it is when
    ``bucket_salt`` is None)."""
    current = live.bodies()
    return Plan(
        added=tuple(sorted(name for name in wanted if name not in current)),
        changed=tuple(
            sorted(name for name in wanted if name in current and current[name] != wanted[name])
        ),
        removed=tuple(sorted(name for name in current if name not in wanted)) if removing else (),
        traits_changed=dict(traits) != dict(live.traits),
        salt_changed=bucket_salt is not None and bucket_salt != live.bucket_salt,
    )


def records_for(
    live: Live,
    change: Plan,
    wanted: Mapping[str, Mapping[str, Any]],
    traits: Mapping[str, str],
    by: str,
    at: int,
    bucket_salt: str = DEFAULT_SALT,
) -> list[tuple[str, bytes | None]]:
    """The (key, value) records that publish ``change``: a new version of each added or
    changed segment, a tombstone for each removed one, the traits and salt records if they
    changed."""
    records: list[tuple[str, bytes | None]] = []
    if change.traits_changed:
        records.append((TRAITS_KEY, codec.dumps(dict(traits)) if traits else None))
    if change.salt_changed:
        salt = codec.dumps(bucket_salt) if bucket_salt != DEFAULT_SALT else None
        records.append((SALT_KEY, salt))
    for name in (*change.added, *change.changed):
        before = live.definitions.get(name)
        definition = (
            first_version(name, wanted[name], by, at)
            if before is None
            else before.revised(wanted[name], by, at)
        )
        records.append((name, definition.encode()))
    records.extend((name, None) for name in change.removed)
    return records


def checked_body(value: Any, name: str, source: str) -> dict[str, Any]:
    """A posted segment body's shape, checked alone (``catalog_of`` checks the rest); the body
    may also come as YAML text, as the catalog file writes a segment."""
    where = Where(source, name)
    if not NAME.match(name):
        raise where.error("segment names are lower-case letters, digits and _")
    if isinstance(value, str):
        value = yaml_document(value, f"{source} (segment {name!r})")
    return mapping(value, where, SEGMENT_KEYS, required=["description", "when"])


def names_of(records: Iterable[tuple[str, bytes | None]]) -> list[str]:
    """The segments a list of records touches (the traits and salt records are none)."""
    return [key for key, _ in records if key not in (TRAITS_KEY, SALT_KEY)]
