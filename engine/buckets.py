"""A/B buckets and holdouts: where a customer falls in a split, from a salted hash of their id.

SHA-256, never Python's ``hash()``: that one is salted per process (PYTHONHASHSEED), and every
worker, replay and backtest must put a customer in the same bucket, today and after an upgrade.
The catalog's ``bucket_salt`` names the split: a new salt reshuffles everyone at once.
"""

from __future__ import annotations

import hashlib

#: Buckets run from 0 to BUCKETS - 1: a split or a holdout is exact to 0.01%.
BUCKETS = 10_000
#: The salt of a catalog that names none (``bucket_salt:``).
DEFAULT_SALT = "segstream"


def _point(key: str) -> int:
    """Where ``key`` falls in 0..BUCKETS-1: the first 8 bytes of its SHA-256 (the modulo's bias
    is below 1e-15, far below anything a split can measure)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket(salt: str, customer_id: str) -> int:
    """The customer's A/B bucket, 0..9999: the same in every process and Python version, so a
    ``bucket:`` condition splits customers the same way wherever it is evaluated."""
    return _point(f"{salt}:{customer_id}")


def held_out(salt: str, segment: str, customer_id: str, percent: float) -> bool:
    """Whether a member of ``segment`` falls in its holdout (``percent`` of its members, to
    0.01%): mail is withheld from them to measure what mailing the segment changes. A hash of
    its own per segment, so the holdouts of two segments are independent of each other and of
    the A/B bucket (a customer held out of one test is not held out of every test)."""
    return _point(f"{salt}:holdout:{segment}:{customer_id}") < round(percent * BUCKETS / 100)
