"""Which partitions this worker holds, and whether they are settled."""

from __future__ import annotations

from typing import cast

from faust.tables.manager import TableManager

from segstream.app import app
from segstream.app.tables import customers


def rebalancing() -> bool:
    """Partitions are not settled: not assigned yet, restoring, or being given up."""
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()
    return (
        not recovered
        or app.rebalancing  # from the revoke listener until the tables are recovered again
        or app.in_recovery
        or app.giving_up_partitions
    )


def table_partitions() -> tuple[set[int], set[int]]:
    """The customers table's active and standby partitions on this worker."""
    changelog = customers.changelog_topic.get_topic_name()
    assignor = app.assignor
    active = {tp.partition for tp in assignor.assigned_actives() if tp.topic == changelog}
    standby = {tp.partition for tp in assignor.assigned_standbys() if tp.topic == changelog}
    return active, standby
