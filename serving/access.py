"""Who may call which route: bearer tokens with roles.

- ``read`` tokens (senders, dashboards): segments, members, customers, metrics.
- ``edit`` tokens (marketers): what read tokens may, and change segment definitions.
- ``admin`` tokens (SEGSTREAM_API_TOKEN, the operator): everything, ingest included.
- Write keys (the shop's tracking SDKs, HTTP Basic): the tracking API only
  (``serving.tracking``); as a bearer token a write key is no token at all.

Without any token configured the settings let the server listen on loopback only, and every
local caller is the admin. A missing or unknown token is 401; a known one without the role 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from faust import web

from segstream.app import settings

Role = Literal["read", "edit", "ingest"]
ROLES: dict[str, frozenset[Role]] = {
    "read": frozenset({"read"}),
    "edit": frozenset({"read", "edit"}),
    "admin": frozenset({"read", "edit", "ingest"}),
}
LOCAL = "local"  # the caller's name when no token is configured


@dataclass(frozen=True)
class Caller:
    name: str  # kept as who changed a definition; never the token itself
    role: str

    def may(self, role: Role) -> bool:
        return role in ROLES[self.role]


# Token -> (name, role), read once: the settings do not change while the worker runs.
TOKENS = settings.token_roles()


def caller(request: web.Request) -> Caller | None:
    """The caller a request's bearer token names; None if it names none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return holder_of(given.strip() if scheme.lower() == "bearer" else None)


def holder_of(token: str | None) -> Caller | None:
    """Who holds ``token``. Every token is compared, in constant time, so the time taken says
    nothing about which came close."""
    if not TOKENS:
        return Caller(LOCAL, "admin")
    found = None
    for known, (name, role) in TOKENS.items():
        if hmac.compare_digest((token or "").encode(), known.encode()):
            found = Caller(name, role)
    return found
