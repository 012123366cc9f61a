"""orjson for every JSON value segstream writes or reads itself.

Faust's own "json" codec (tables, changelogs) also runs on orjson when it is installed.
"""

from __future__ import annotations

import orjson

dumps = orjson.dumps
loads = orjson.loads
