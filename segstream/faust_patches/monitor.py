"""Faust's Monitor sensor without the bookkeeping it does for every message and every send.

Nothing here reads those numbers (the worker's own counters are at /metrics), and they cost a
few sensor calls per event.
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class MonitorWithoutRecordHooks(Monitor):
    """Faust's Monitor without its per-message, per-table-access and per-send hooks
    (rebalances, commits and assignments are still recorded)."""

    on_message_in = on_stream_event_in = on_stream_event_out = on_message_out = _ignore
    on_table_get = on_table_set = on_table_del = _ignore
    on_send_initiated = on_send_completed = on_send_error = _ignore
