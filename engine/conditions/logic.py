"""Conditions that combine others or refer to other segments: all, any, not, segment, always."""

from __future__ import annotations

from dataclasses import dataclass

from engine.conditions.base import Condition, Reader, earliest
from engine.conditions.form import Node, Where, text
from engine.state import CustomerState


def _children(body: Node, where: Where, reader: Reader) -> tuple[Condition, ...]:
    if not isinstance(body, list) or not body:
        raise where.error("expected a non-empty list of conditions")
    return tuple(reader.condition(child, where.at(i)) for i, child in enumerate(body))


@dataclass(frozen=True)
class All(Condition):
    """Every child holds."""

    form = "all"

    children: tuple[Condition, ...]

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        return cls(_children(body, where, reader))

    def holds(self, state: CustomerState, now: int) -> bool:
        return all(child.holds(state, now) for child in self.children)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return earliest(child.deadline(state, now) for child in self.children)

    def topics(self) -> frozenset[str]:
        return frozenset().union(*(child.topics() for child in self.children))

    def timed(self) -> bool:
        return any(child.timed() for child in self.children)

    def refs(self) -> frozenset[str]:
        return frozenset().union(*(child.refs() for child in self.children))

    def rule(self) -> str:
        return "all of"

    def parts(self) -> tuple[Condition, ...]:
        return self.children


@dataclass(frozen=True)
class Any(All):
    """At least one child holds (its deadlines, topics and references are those of ``all``)."""

    form = "any"

    def holds(self, state: CustomerState, now: int) -> bool:
        return any(child.holds(state, now) for child in self.children)

    def rule(self) -> str:
        return "any of"


@dataclass(frozen=True)
class Not(Condition):
    """The child does not hold."""

    form = "not"

    child: Condition

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        return cls(reader.condition(body, where))

    def holds(self, state: CustomerState, now: int) -> bool:
        return not self.child.holds(state, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return self.child.deadline(state, now)

    def topics(self) -> frozenset[str]:
        return self.child.topics()

    def timed(self) -> bool:
        return self.child.timed()

    def refs(self) -> frozenset[str]:
        return self.child.refs()

    def rule(self) -> str:
        return "not"

    def parts(self) -> tuple[Condition, ...]:
        return (self.child,)


@dataclass(frozen=True)
class InSegment(Condition):
    """Membership of another segment (evaluated before this one, in dependency order)."""

    form = "segment"

    segment: str

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        return cls(text(body, where))

    def holds(self, state: CustomerState, now: int) -> bool:
        return self.segment in state.segments

    def refs(self) -> frozenset[str]:
        return frozenset({self.segment})

    def rule(self) -> str:
        return f"in segment {self.segment}"

    def observed(self, state: CustomerState, now: int) -> bool:
        return self.segment in state.segments


@dataclass(frozen=True)
class Always(Condition):
    """Holds for everyone (a segment of all known customers)."""

    form = "always"

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        if body is not True:
            raise where.error("expected true")
        return cls()

    def holds(self, state: CustomerState, now: int) -> bool:
        return True

    def rule(self) -> str:
        return "every customer"
