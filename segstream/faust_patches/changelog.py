"""A table whose assignment hands back the changelog record it queued, and that lists the keys
its RocksDB store holds in one partition.

Faust's ``Table.__setitem__`` queues the key's changelog record in the producer's buffer
(``on_key_set`` -> ``send_changelog``) and drops the record's future. Under at-least-once the
customer agent sends a step's outputs only once the state's changelog record is delivered
(``agents.outbox``), so it needs that future: ``ChangelogRecordTable.put`` returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import faust
from faust.types import FutureMessage
from faust.types.codecs import CodecArg

if TYPE_CHECKING:  # rocksdict is an optional extra
    from faust.stores.rocksdb import Store as RocksStore


class ChangelogRecordTable(faust.Table):
    """Faust's table, with ``put`` (an assignment that returns its changelog record) and
    ``rocksdb_keys``."""

    # The changelog record ``send_changelog`` queued last (None once ``put`` took it).
    _queued: FutureMessage | None = None

    def put(self, key: Any, value: Any) -> FutureMessage:
        """``table[key] = value``, and the changelog record that assignment queued."""
        self._queued = None
        self[key] = value
        queued, self._queued = self._queued, None
        if queued is None:
            raise RuntimeError(f"Setting a key of table {self.name} queued no changelog record")
        return queued

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage:
        queued = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._queued = queued
        return queued

    def rocksdb_keys(self, partition: int) -> set[Any]:
        """The keys a RocksDB store holds in ``partition``. Faust's RocksDB store keeps one
        database per partition and restores only the changelog past its local offset, so the
        keys it kept from before are known only to that database (Faust has no public way to
        list one partition's keys)."""
        rocks = cast("RocksStore", self.data)
        database = rocks._db_for_partition(partition)
        return {rocks._decode_key(key) for key in rocks._visible_keys(database)}
