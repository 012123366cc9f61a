"""Personal data kept out of what segstream writes: the records it refuses (dead letters, an
import's report of rejected rows) are stored without it, and the events it produces for a shop
(the Tracking API, ``segstream import``) carry only the traits the state keeps.

Kafka cannot delete one record of a topic, so an erasure could not reach a dead letter written
with a customer's email: it is never written. A personal field, at any depth and under any of
the spellings SDKs use (``email``, ``firstName``, ``first_name``, ``lastName``, ``name``,
``phone``, ``street``, ...), keeps its key and loses its value (``"[removed]"``), and anything
shaped like an email address in the remaining text (or in bytes that are not JSON) is replaced
too. The reason, the source offset and every other field stay, so the record can still be
diagnosed. A product's ``name`` is removed as well: the field's name is all that is known.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

REMOVED = "[removed]"
# Field names (lower case, without "_", "-" or spaces) whose values are personal data.
PERSONAL_FIELDS = frozenset(
    {
        "email",
        "emailaddress",
        "firstname",
        "lastname",
        "name",
        "fullname",
        "username",
        "phone",
        "phonenumber",
        "mobile",
        "street",
        "address1",
        "address2",
        "postalcode",
        "zip",
        "ip",
    }
)
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
EMAIL_BYTES = re.compile(EMAIL.pattern.encode())


def is_personal(field: str) -> bool:
    return field.lower().translate(_SEPARATORS) in PERSONAL_FIELDS


_SEPARATORS = str.maketrans("", "", "_- ")


def without_personal(value: Any) -> Any:
    """``value`` (parsed JSON) with every personal field's value and every email address
    replaced by ``REMOVED``."""
    if isinstance(value, dict):
        return {
            key: REMOVED if is_personal(str(key)) else without_personal(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [without_personal(item) for item in value]
    if isinstance(value, str):
        return EMAIL.sub(REMOVED, value)
    return value


def raw_without_personal(raw: bytes) -> bytes:
    """A record's bytes without personal data: JSON that holds some re-encoded without it (JSON
    without any is returned as it came, byte for byte), anything else with the email addresses
    in it replaced (a name in bytes that are not JSON cannot be found)."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return EMAIL_BYTES.sub(REMOVED.encode(), raw)
    cleaned = without_personal(parsed)
    return raw if cleaned == parsed else orjson.dumps(cleaned)
