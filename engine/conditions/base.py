"""What every condition is: its YAML form name, how it parses itself, and what it answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from engine.buckets import DEFAULT_SALT
from engine.conditions.form import Node, Where
from engine.state import CustomerState


class Condition:
    """Base of every condition.

    ``deadline(state, now)`` returns a time after ``now`` (or None). It may be early (the engine
    then re-evaluates and finds nothing changed) but never late: that is what makes time-driven
    transitions exact.
    """

    #: The key that introduces this condition in the catalog (``last:`` for ``Last``).
    form: ClassVar[str]

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        """The condition ``body`` (the value under this form's key) describes."""
        raise NotImplementedError

    def holds(self, state: CustomerState, now: int) -> bool:
        raise NotImplementedError

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return None

    def topics(self) -> frozenset[str]:
        """Input topics whose events can change the answer."""
        return frozenset()

    def timed(self) -> bool:
        """Whether the passage of time alone can change the answer (it has deadlines)."""
        return False

    def refs(self) -> frozenset[str]:
        """Names of the segments this condition refers to."""
        return frozenset()

    # -- explaining (``engine.explain``) ---------------------------------------------------

    def rule(self) -> str:
        """What the condition asks, readable (``orders within 90d at least 3``)."""
        return self.form

    def observed(self, state: CustomerState, now: int) -> Any:
        """What the customer has that the rule tests (a count, a trait, a time), or None."""
        return None

    def parts(self) -> tuple[Condition, ...]:
        """The conditions this one combines."""
        return ()


class Reader:
    """Reads any condition by its form; what a parser needs beyond its own body."""

    def __init__(
        self,
        forms: Mapping[str, type[Condition]],
        cart_quiet_ms: int,
        traits: Mapping[str, str],
        bucket_salt: str = DEFAULT_SALT,
    ) -> None:
        self.forms = forms
        #: The deployment's default quiet period of ``abandoned:``.
        self.cart_quiet_ms = cart_quiet_ms
        #: The traits a profile can hold, name -> type (``streams.traits``).
        self.traits = traits
        #: The catalog's ``bucket_salt``: what ``bucket:`` hashes customer ids with.
        self.bucket_salt = bucket_salt

    def condition(self, node: Node, where: Where) -> Condition:
        if not isinstance(node, dict) or len(node) != 1:
            raise where.error(f"expected one of: {', '.join(self.forms)}")
        ((form, body),) = node.items()
        if form not in self.forms:
            raise where.at(str(form)).error(
                f"unknown condition (expected one of {', '.join(self.forms)})"
            )
        return self.forms[form].parse(body, where.at(form), self)


def earliest(times: Iterable[int | None]) -> int | None:
    """The earliest of ``times`` that is not None."""
    found = None
    for t in times:
        if t is not None and (found is None or t < found):
            found = t
    return found
