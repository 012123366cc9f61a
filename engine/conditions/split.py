"""Conditions that split customers for A/B tests: bucket."""

from __future__ import annotations

from dataclasses import dataclass

from engine.buckets import BUCKETS, DEFAULT_SALT, bucket
from engine.conditions.base import Condition, Reader
from engine.conditions.form import Node, Where, bounds, limits, mapping
from engine.state import CustomerState


@dataclass(frozen=True)
class Bucket(Condition):
    """The customer's A/B bucket (0..9999, from the catalog's ``bucket_salt``) lies between
    ``min`` and ``max``, both included. It depends on the customer's id alone: no event and no
    passage of time moves a customer across a split."""

    form = "bucket"

    minimum: int
    maximum: int
    salt: str = DEFAULT_SALT

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"min", "max"}, required=["min", "max"])
        low, high = bounds(node, where, whole_numbers=True)
        if high > BUCKETS - 1:
            raise where.at("max").error(f"buckets run from 0 to {BUCKETS - 1}")
        return cls(low, high, reader.bucket_salt)

    def holds(self, state: CustomerState, now: int) -> bool:
        return self.minimum <= bucket(self.salt, state.customer_id) <= self.maximum

    def rule(self) -> str:
        return f"A/B bucket {limits(self.minimum, self.maximum)} (of 0 to {BUCKETS - 1})"

    def observed(self, state: CustomerState, now: int) -> int:
        return bucket(self.salt, state.customer_id)
