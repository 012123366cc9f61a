"""A catalog compiled into what each kind of step evaluates, so a step evaluates only what can
change:

- an event of a topic: the segments whose inputs that topic touches (references and consent
  included), and afterwards the deadlines of the timed ones among them; every other segment's
  answer and deadline stay as they were;
- a deadline: only the segments whose own deadline fell due, and those that refer to them (in
  dependency order), then only their deadlines again;
- a new customer, a merge or changed definitions: every segment.

A customer's deadlines per segment are kept on its state (``CustomerState.deadlines``) and
stored with it, packed (``Plan.pack``), so a state restored from the table evaluates no more
than one kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from config import names

if TYPE_CHECKING:
    from engine.catalog import Segment

# The meaning of stored deadlines: change it with any change to what a condition's deadline
# is or to which segments are timed, and every stored customer computes its deadlines afresh
# at its next step (the catalog's digest covers only the definitions).
DEADLINE_RULES = 1

# How many sets of segments fallen due a plan remembers the evaluation order of (a catalog's
# timed segments fall due in few combinations; this only bounds a pathological one).
MAX_REMEMBERED = 4096


class Plan:
    """What to evaluate, per topic and per set of segments fallen due.

    A customer without consent is in no segment that requires it and has no deadline for one
    (``Segment.deadline``): only a profile update can give consent, so an event of any other
    topic evaluates only the segments that ask no consent."""

    def __init__(self, segments: tuple[Segment, ...], by_topic: Mapping[str, tuple[Segment, ...]]):
        self.timed = tuple(s for s in segments if s.timed)
        self._place = {s.name: place for place, s in enumerate(self.timed)}
        users: dict[str, set[str]] = {s.name: set() for s in segments}
        for segment in segments:  # dependency order: a reference's users are known after it
            for ref in segment.when.refs():
                users[ref].add(segment.name)
        self._users = users
        self._falling: dict[frozenset[str], tuple[Segment, ...]] = {}
        free = tuple(s for s in segments if not s.consent_required)
        #: (topic, consented) -> the segments an event evaluates, then the timed ones among
        #: them, whose deadlines it recomputes; ("", consented): a new customer's (all).
        self._for_event: dict[tuple[str, bool], tuple[tuple[Segment, ...], tuple[Segment, ...]]]
        self._for_event = {("", True): (segments, self.timed), ("", False): (free, _timed(free))}
        for topic, found in by_topic.items():
            self._for_event[topic, True] = (found, _timed(found))
            if topic == names.PROFILE_UPDATES:  # consent may have been given or taken
                self._for_event[topic, False] = (found, _timed(found))
            else:
                unconsented = tuple(s for s in found if not s.consent_required)
                self._for_event[topic, False] = (unconsented, _timed(unconsented))

    def for_event(
        self, topic: str, consented: bool
    ) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
        """The segments an event of ``topic`` evaluates (for a customer with or without consent
        after it), and the timed ones among them; topic "": a new customer's first event."""
        return self._for_event.get((topic, consented), ((), ()))

    def fallen_due(self, deadlines: Mapping[str, int] | None, at: int) -> tuple[Segment, ...]:
        """The segments to evaluate at ``at``: those whose deadline is at or before it and the
        segments that refer to them, in dependency order (every timed segment when the
        customer's deadlines are not known)."""
        if deadlines is None:
            return self.timed
        due = frozenset(name for name, t in deadlines.items() if t <= at)
        found = self._falling.get(due)
        if found is None:
            found = self._with_users(due)
            if len(self._falling) < MAX_REMEMBERED:
                self._falling[due] = found
        return found

    def pack(self, deadlines: Mapping[str, int]) -> list[Any]:
        """The stored form of a customer's deadlines: the rules they follow, then per moment
        the timed segments due then, by their place in ``timed`` (a segment's name is most of
        the bytes, and many fall due together: the age segments at New Year)."""
        by_moment: dict[int, list[int]] = {}
        for name, t in deadlines.items():
            if (place := self._place.get(name)) is not None:
                by_moment.setdefault(t, []).append(place)
        return [DEADLINE_RULES, *([t, *places] for t, places in sorted(by_moment.items()))]

    def unpack(self, packed: Any) -> dict[str, int] | None:
        """The deadlines ``pack`` stored, or None (compute them afresh) if they follow other
        rules or do not fit this plan."""
        if not isinstance(packed, list) or not packed or packed[0] != DEADLINE_RULES:
            return None
        timed = self.timed
        try:
            return {timed[place].name: row[0] for row in packed[1:] for place in row[1:]}
        except (IndexError, TypeError):
            return None

    def _with_users(self, names: Iterable[str]) -> tuple[Segment, ...]:
        wanted: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self._users.get(name, ()))
        return tuple(s for s in self.timed if s.name in wanted)


def _timed(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    return tuple(s for s in segments if s.timed)
