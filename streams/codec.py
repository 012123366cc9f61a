"""orjson for every JSON value segstream writes or reads itself.

Faust's own "json" codec (tables, changelogs) also runs on orjson when it is installed.
"""

from __future__ import annotations

import orjson

dumps = orjson.dumps
loads = orjson.loads
INDENT = orjson.OPT_INDENT_2


def dumps_kept(value: object) -> bytes:
    """JSON for a value kept in memory (table values): a right-sized copy, because the bytes
    orjson returns keep its 4 KiB growth buffer (measured: 4.2 KB held per 400-byte value)."""
    return bytes(memoryview(orjson.dumps(value)))
