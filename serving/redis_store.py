"""The Redis membership store: who is in each segment now, each customer's segments, sizes over
time, and a capped stream of changes for senders that do not speak Kafka.

Changes are applied by one Lua script per batch (one round trip), idempotently and in order per
customer: a change is applied only if its version is newer than the ones Redis holds for that
customer, so a replay or a duplicate changes nothing. A customer's whole state is written the
same way (``sync``): only over older versions, so the two kinds of write meet in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from config import Settings, names
from engine.state import CustomerState
from streams.events import ERASURE_CAUSE

# Revenue per segment is kept in cents, in step with the members: every script that adds a
# customer to a segment's members adds their spend to the segment's revenue, every one that
# removes them takes it off, and a change of spend moves the revenue of each segment they are in.
# So revenue[S] = the sum of spend[c] over the members c of S, without reading the members.
REVENUE = """
local function cents(value)
  if not value then return 0 end
  return math.floor(tonumber(value) * 100 + 0.5)
end
local function join(prefix, customer, segment)
  if redis.call('SADD', prefix .. 'members:' .. segment, customer) == 1 then
    local spent = cents(redis.call('HGET', prefix .. 'spend', customer))
    if spent ~= 0 then redis.call('HINCRBY', prefix .. 'revenue', segment, spent) end
  end
end
local function leave(prefix, customer, segment)
  if redis.call('SREM', prefix .. 'members:' .. segment, customer) == 1 then
    local spent = cents(redis.call('HGET', prefix .. 'spend', customer))
    if spent ~= 0 then redis.call('HINCRBY', prefix .. 'revenue', segment, -spent) end
  end
end
-- Set (or, with '', forget) a customer's spend; the revenue of each segment they are in moves.
local function spend(prefix, customer, total)
  local old = cents(redis.call('HGET', prefix .. 'spend', customer))
  local new = 0
  if total ~= '' then new = cents(total) end
  if new ~= old then
    for _, segment in ipairs(redis.call('SMEMBERS', prefix .. 'customer:' .. customer)) do
      if redis.call('SISMEMBER', prefix .. 'members:' .. segment, customer) == 1 then
        redis.call('HINCRBY', prefix .. 'revenue', segment, new - old)
      end
    end
  end
  if total == '' then
    redis.call('HDEL', prefix .. 'spend', customer)
  else
    redis.call('HSET', prefix .. 'spend', customer, total)
  end
end
"""

# ARGV: prefix, stream cap, then 6 values per change:
#   customer, segment, change, version, erasing (1 when an erasure caused it), the change's JSON.
# Versions count a customer's changes one by one, and `versions` holds the one whose whole state
# Redis reflects: a change that follows it is applied and recorded. A change over a gap (after a
# flush: no version held) is applied only if newer than any other applied over a gap, and its
# version goes to `seen` (kept only while above `versions`), so the catch-up (``sync``) knows not
# to write an older state over it. An erased customer's versions are dropped with their last
# segment: if they come back, their new state counts versions from 1 again.
APPLY_CHANGES = (
    REVENUE
    + """
local prefix, cap = ARGV[1], tonumber(ARGV[2])
local versions, seen = prefix .. 'versions', prefix .. 'seen'
local applied = 0
for i = 3, #ARGV, 6 do
  local customer, segment, change = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local version = tonumber(ARGV[i + 3])
  local own = prefix .. 'customer:' .. customer
  local current = tonumber(redis.call('HGET', versions, customer) or '0')
  local newest = tonumber(redis.call('HGET', seen, customer) or '0')
  local follows = version == current + 1
  if follows or (version > current and version > newest) then
    if change == 'enter' then
      join(prefix, customer, segment)
      redis.call('SADD', own, segment)
    else
      leave(prefix, customer, segment)
      redis.call('SREM', own, segment)
    end
    if follows then
      redis.call('HSET', versions, customer, version)
      if version >= newest then
        redis.call('HDEL', seen, customer)
      end
    else
      redis.call('HSET', seen, customer, version)
    end
    redis.call('XADD', prefix .. 'changes', 'MAXLEN', '~', cap, '*', 'change', ARGV[i + 5])
    applied = applied + 1
    if ARGV[i + 4] == '1' and redis.call('SCARD', own) == 0 then
      redis.call('HDEL', versions, customer)
      redis.call('HDEL', seen, customer)
    end
  end
end
return applied
"""
)

# ARGV: prefix, then 5 values per customer: customer, version, spend ('' for none), the JSON
# array of their segments, and '1' to write over a newer change applied over a gap. A customer
# whose version Redis holds already (or a newer one) is left as is; one with a newer change
# applied over a gap is left too (unless forced), and returned as stale (the caller reads the
# table again); otherwise their memberships become the state's.
# Returns {repaired, {stale customers}}.
SYNC_CUSTOMERS = (
    REVENUE
    + """
local prefix = ARGV[1]
local versions, seen = prefix .. 'versions', prefix .. 'seen'
local repaired, stale = 0, {}
for i = 2, #ARGV, 5 do
  local customer, version = ARGV[i], tonumber(ARGV[i + 1])
  if version <= tonumber(redis.call('HGET', versions, customer) or '0') then
    -- in step already
  elseif ARGV[i + 4] ~= '1' and version < tonumber(redis.call('HGET', seen, customer) or '0') then
    table.insert(stale, customer)
  else
    local own = prefix .. 'customer:' .. customer
    local wanted = {}
    for _, segment in ipairs(cjson.decode(ARGV[i + 3])) do
      wanted[segment] = true
    end
    for _, segment in ipairs(redis.call('SMEMBERS', own)) do
      if not wanted[segment] then
        leave(prefix, customer, segment)
        redis.call('SREM', own, segment)
      end
    end
    for segment in pairs(wanted) do
      join(prefix, customer, segment)
      redis.call('SADD', own, segment)
    end
    redis.call('HSET', versions, customer, version)
    redis.call('HDEL', seen, customer)
    if ARGV[i + 2] ~= '' then
      spend(prefix, customer, ARGV[i + 2])
    end
    repaired = repaired + 1
  end
end
return {repaired, stale}
"""
)

# ARGV: prefix, then 3 values per campaign report fact: customer, seq, the JSON object of what
# changed in the customer's part of the report ("c|<campaign>|<segment>|<count>" or
# "g|<segment>|<group>|<count>" -> amount). A fact at or below the customer's last counted
# seq was counted already. Returns how many were counted.
APPLY_FACTS = """
local prefix = ARGV[1]
local seqs = prefix .. 'fact-seqs'
local counted = 0
for i = 2, #ARGV, 3 do
  local customer, seq = ARGV[i], tonumber(ARGV[i + 1])
  if seq > tonumber(redis.call('HGET', seqs, customer) or '0') then
    redis.call('HSET', seqs, customer, seq)
    for key, amount in pairs(cjson.decode(ARGV[i + 2])) do
      local campaign, segment, name = string.match(key, '^c|(.*)|([^|]*)|([^|]*)$')
      if campaign then
        redis.call('SADD', prefix .. 'campaigns', campaign)
        local report = prefix .. 'report:' .. campaign
        local field = segment .. '|' .. name
        local total = redis.call('HINCRBYFLOAT', report, field, tostring(amount))
        if math.abs(tonumber(total)) < 1e-6 then
          redis.call('HDEL', report, field)
        end
      else
        local held, group, count = string.match(key, '^g|([^|]*)|([^|]*)|([^|]*)$')
        if held then
          local lift = prefix .. 'lift:' .. held
          local total = redis.call('HINCRBYFLOAT', lift, group .. '|' .. count, tostring(amount))
          if math.abs(tonumber(total)) < 1e-6 then
            redis.call('HDEL', lift, group .. '|' .. count)
          end
        end
      end
    end
    counted = counted + 1
  end
end
return counted
"""

# ARGV: prefix, then 2 values per customer: customer, lifetime spend ('' for an erased
# customer: memberships, spend, versions and segment set are forgotten, so one who comes back
# counts versions from 1; their exits, which may come later, then find nothing to remove).
SET_SPEND = (
    REVENUE
    + """
local prefix = ARGV[1]
for i = 2, #ARGV, 2 do
  local customer = ARGV[i]
  if ARGV[i + 1] == '' then
    local own = prefix .. 'customer:' .. customer
    for _, segment in ipairs(redis.call('SMEMBERS', own)) do
      leave(prefix, customer, segment)
    end
    redis.call('DEL', own)
    for _, name in ipairs({'versions', 'seen', 'fact-seqs'}) do
      redis.call('HDEL', prefix .. name, customer)
    end
  end
  spend(prefix, customer, ARGV[i + 1])
end
return 0
"""
)

# ARGV: prefix, then segments. Count each segment's revenue from its members (O(members): once
# after an upgrade, a flush or a rebuild; the scripts above keep it from then on).
RECOUNT_REVENUE = (
    REVENUE
    + """
local prefix = ARGV[1]
for i = 2, #ARGV do
  local total = 0
  for _, customer in ipairs(redis.call('SMEMBERS', prefix .. 'members:' .. ARGV[i])) do
    total = total + cents(redis.call('HGET', prefix .. 'spend', customer))
  end
  redis.call('HSET', prefix .. 'revenue', ARGV[i], total)
end
redis.call('SET', prefix .. 'revenue-counted', '1')
return 0
"""
)

# KEYS: the in-step hash; ARGV: partitions. A partition is marked in step only if its check's
# "checking" mark is still there: a flush during the check removed it, and the check is redone.
MARK_IN_STEP = """
local marked = 0
for _, partition in ipairs(ARGV) do
  if redis.call('HGET', KEYS[1], partition) == 'checking' then
    redis.call('HSET', KEYS[1], partition, 'done')
    marked = marked + 1
  end
end
return marked
"""


# ARGV: the pattern of a deployment's keys. One script, so no write lands halfway (KEYS blocks
# Redis for the deletion: an operator's or a test's step, never the worker's).
FLUSH_PREFIX = """
local deleted = 0
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  deleted = deleted + redis.call('DEL', key)
end
return deleted
"""


# How long a definitions edit may hold the lock (a crashed holder frees it then).
LOCK_MS = 15_000


@dataclass(frozen=True)
class SyncResult:
    repaired: int  # customers written
    stale: list[str]  # customers Redis holds a newer change of: read their state again


@dataclass(frozen=True)
class MembersPage:
    members: list[str]
    cursor: int  # 0 when there is nothing more


class RedisStore:
    """Reads and writes of the serving store for one deployment (its key prefix)."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.prefix = settings.redis_prefix
        self.stream_cap = settings.redis_stream_maxlen
        self.samples_kept = settings.size_samples_kept
        self._apply = client.register_script(APPLY_CHANGES)
        self._flush = client.register_script(FLUSH_PREFIX)
        self._sync = client.register_script(SYNC_CUSTOMERS)
        self._mark_in_step = client.register_script(MARK_IN_STEP)
        self._apply_facts = client.register_script(APPLY_FACTS)
        self._set_spend = client.register_script(SET_SPEND)
        self._recount_revenue = client.register_script(RECOUNT_REVENUE)

    @classmethod
    def connect(cls, settings: Settings) -> RedisStore:
        client = aioredis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
        )
        return cls(client, settings)

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    # -- writes -----------------------------------------------------------------------------

    async def apply(self, changes: Sequence[dict[str, Any]]) -> int:
        """Apply segment-changes values in order; return how many were new."""
        if not changes:
            return 0
        args: list[Any] = [self.prefix, self.stream_cap]
        for change in changes:
            cause = change.get("cause_event_id") or ""
            args += [
                change["customer_id"],
                change["segment"],
                change["change"],
                change["version"],
                1 if cause.startswith(ERASURE_CAUSE) else 0,
                orjson.dumps(change),
            ]
        return int(await self._apply(args=args))

    async def set_spend(self, spend: dict[str, float | None]) -> None:
        """Record customers' lifetime spend (the revenue of their segments follows); None
        forgets an erased customer entirely (spend, version and segment set), so a customer who
        comes back counts versions from 1."""
        args: list[Any] = [self.prefix]
        for customer_id, total in spend.items():
            args += [customer_id, "" if total is None else total]
        if len(args) > 1:
            await self._set_spend(args=args)

    async def apply_facts(self, facts: Sequence[dict[str, Any]]) -> int:
        """Count campaign report facts (``engine.attribution``), each once per customer and
        sequence number; return how many were new."""
        if not facts:
            return 0
        args: list[Any] = [self.prefix]
        for fact in facts:
            args += [fact["customer_id"], fact["seq"], orjson.dumps(fact["delta"])]
        return int(await self._apply_facts(args=args))

    async def campaign_report(self) -> dict[str, dict[str, dict[str, float]]]:
        """campaign -> segment ('' when none) -> counts and revenue."""
        report: dict[str, dict[str, dict[str, float]]] = {}
        for campaign in sorted(
            _text(c) for c in await self.client.smembers(self.key(names.REDIS_CAMPAIGNS))
        ):
            counts = await self.client.hgetall(self.key(names.REDIS_REPORT, campaign))
            for field, value in counts.items():
                segment, _, name = _text(field).rpartition("|")
                row = report.setdefault(campaign, {}).setdefault(segment, {})
                row[name] = float(_text(value))
        return report

    async def holdout_purchases(self, segment: str) -> dict[str, float]:
        """'<held_out|mailed>|<purchases|revenue>' -> number, for a segment with a holdout."""
        found = await self.client.hgetall(self.key(names.REDIS_LIFT, segment))
        return {_text(k): float(_text(v)) for k, v in found.items()}

    async def set_mailable(self, mailable: dict[str, list[Any] | None]) -> None:
        """Record what send eligibility needs of customers (``engine.eligibility.Mailable``
        in its list form); None forgets an erased customer's."""
        key = self.key(names.REDIS_MAILABLE)
        async with self.client.pipeline(transaction=False) as pipe:
            for customer_id, value in mailable.items():
                if value is None:
                    pipe.hdel(key, customer_id)
                else:
                    pipe.hset(key, customer_id, orjson.dumps(value))
            await pipe.execute()

    async def mailable_of(self, customers: Sequence[str]) -> dict[str, list[Any]]:
        """The eligibility records of these customers that the store holds."""
        if not customers:
            return {}
        found = await self.client.hmget(self.key(names.REDIS_MAILABLE), list(customers))
        return {
            customer: orjson.loads(value)
            for customer, value in zip(customers, found, strict=True)
            if value is not None
        }

    @contextlib.asynccontextmanager
    async def definitions_lock(self, wait_s: float = 10.0) -> AsyncIterator[bool]:
        """Held by one definitions edit at a time across workers (read, check, publish), so
        two edits cannot both pass If-Match; yields False if it stayed taken for ``wait_s``."""
        key, token = self.key(names.REDIS_DEFINITIONS_LOCK), uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while not await self.client.set(key, token, nx=True, px=LOCK_MS):
            if time.monotonic() > deadline:
                yield False
                return
            await asyncio.sleep(0.05)
        try:
            yield True
        finally:
            if await self.client.get(key) == token.encode():
                await self.client.delete(key)

    async def count_currencies(self, counts: dict[str, int]) -> None:
        """Count purchases per currency: what unit the summed revenue is in."""
        async with self.client.pipeline(transaction=False) as pipe:
            for currency, count in counts.items():
                pipe.hincrby(self.key(names.REDIS_CURRENCIES), currency, count)
            await pipe.execute()

    async def currencies(self) -> dict[str, int]:
        """Purchases per currency, most first."""
        found = await self.client.hgetall(self.key(names.REDIS_CURRENCIES))
        counted = {_text(k): int(v) for k, v in found.items()}
        return dict(sorted(counted.items(), key=lambda item: -item[1]))

    async def revenue(self, segments: Sequence[str]) -> dict[str, float]:
        """What each segment's current members have spent, together: kept as members come and
        go, counted from the members only once after a flush or a rebuild."""
        if not segments:
            return {}
        if not await self.client.exists(self.key(names.REDIS_REVENUE_COUNTED)):
            await self._recount_revenue(args=[self.prefix, *segments])
        found = await self.client.hmget(self.key(names.REDIS_REVENUE), list(segments))
        return {
            segment: int(cents or 0) / 100 for segment, cents in zip(segments, found, strict=True)
        }

    async def activity(self, since_ms: int) -> dict[str, dict[str, int]]:
        """Enters and exits per segment since ``since_ms`` (from the change stream)."""
        counts: dict[str, dict[str, int]] = {}
        entries = await self.client.xrange(self.key(names.REDIS_CHANGES), min=f"{since_ms}-0")
        for _, fields in entries or ():
            if not fields:
                continue
            change = orjson.loads(fields[b"change"])
            per = counts.setdefault(change["segment"], {"enter": 0, "exit": 0})
            per[change["change"]] += 1
        return counts

    async def sample_sizes(self, segments: Iterable[str], now_ms: int, interval_s: int) -> bool:
        """Append each segment's size to its history, once per interval across all workers."""
        bucket = now_ms // (interval_s * 1000)
        taken = await self.client.set(
            self.key(names.REDIS_HISTORY_LOCK), bucket, nx=True, ex=max(interval_s - 1, 1)
        )
        if not taken:
            return False
        sizes = await self.sizes(segments)
        # Enters and exits since the last sample, from the change stream (capped: a burst larger
        # than the cap within one interval is undercounted).
        flow = await self.activity(now_ms - interval_s * 1000)
        async with self.client.pipeline(transaction=False) as pipe:
            for segment, size in sizes.items():
                history = self.key(names.REDIS_HISTORY, segment)
                moved = flow.get(segment, {"enter": 0, "exit": 0})
                pipe.lpush(history, f"{now_ms} {size} {moved['enter']} {moved['exit']}")
                pipe.ltrim(history, 0, self.samples_kept - 1)
            await pipe.execute()
        return True

    async def flush(self) -> int:
        """Delete every key of this deployment's store at once, as FLUSHDB would (a deletion
        key by key under a running worker let its catch-up write between two deletions, and the
        rest of the deletion then undid part of it); return how many."""
        return int(await self._flush(args=[f"{self.prefix}*"]))

    async def _delete_matching(self, pattern: str) -> int:
        deleted = 0
        async for key in self.client.scan_iter(match=pattern, count=1000):
            deleted += int(await self.client.delete(key))
        return deleted

    async def reset_memberships(self) -> None:
        """Forget memberships, versions, spend, eligibility and in-step marks; keep the size
        history and change stream."""
        # Customers' own sets first: a change applied in between then leaves its segment in the
        # customer's set, where a later sync finds and cleans it up.
        await self._delete_matching(self.key(names.REDIS_CUSTOMER, "*"))
        await self._delete_matching(self.key(names.REDIS_MEMBERS, "*"))
        await self.client.delete(
            self.key(names.REDIS_VERSIONS),
            self.key(names.REDIS_SEEN),
            self.key(names.REDIS_SPEND),
            self.key(names.REDIS_MAILABLE),
            self.key(names.REDIS_REVENUE),
            self.key(names.REDIS_REVENUE_COUNTED),
        )
        await self.forget_in_step()

    async def sync(
        self, states: Iterable[CustomerState], batch: int = 500, force: Set[str] = frozenset()
    ) -> SyncResult:
        """Make the store hold each customer's state where it holds an older version (or none):
        memberships, version and spend. Customers with a newer change applied are returned as
        stale, not written, unless ``force`` names them (the table is the truth: a change newer
        than it is one of an erased customer's earlier life)."""
        listed = list(states)
        repaired, stale = 0, []
        for start in range(0, len(listed), batch):
            args: list[Any] = [self.prefix]
            for state in listed[start : start + batch]:
                segments = orjson.dumps(sorted(state.segments))
                forced = "1" if state.customer_id in force else "0"
                args += [
                    state.customer_id,
                    state.version,
                    state.total_spend or "",
                    segments,
                    forced,
                ]
            written, behind = await self._sync(args=args)
            repaired += int(written)
            stale += [_text(customer) for customer in behind]
        return SyncResult(repaired, stale)

    async def partitions_in_step(self, partitions: Iterable[int]) -> set[int]:
        """Which of these partitions a finished check found in step (since the last flush)."""
        asked = sorted(partitions)
        if not asked:
            return set()
        marks = await self.client.hmget(self.key(names.REDIS_IN_STEP), asked)
        return {partition for partition, mark in zip(asked, marks, strict=True) if mark == b"done"}

    async def begin_check(self, partitions: Iterable[int]) -> None:
        """Mark these partitions as being checked (``mark_in_step`` ends the check)."""
        marks = [item for partition in partitions for item in (partition, "checking")]
        if marks:
            await self.client.hset(self.key(names.REDIS_IN_STEP), items=marks)

    async def forget_in_step(self) -> None:
        """Drop every partition's in-step mark: the workers check all their customers again."""
        await self.client.delete(self.key(names.REDIS_IN_STEP))

    async def mark_in_step(self, partitions: Iterable[int]) -> int:
        """End these partitions' checks; return how many were marked (none if flushed since)."""
        asked = [str(partition) for partition in partitions]
        if not asked:
            return 0
        keys = [self.key(names.REDIS_IN_STEP)]
        return int(await self._mark_in_step(keys=keys, args=asked))

    # -- reads ------------------------------------------------------------------------------

    async def sizes(self, segments: Iterable[str]) -> dict[str, int]:
        names_ = list(segments)
        async with self.client.pipeline(transaction=False) as pipe:
            for segment in names_:
                pipe.scard(self.key(names.REDIS_MEMBERS, segment))
            counts = await pipe.execute()
        return dict(zip(names_, map(int, counts), strict=True))

    async def members(self, segment: str, cursor: int = 0, count: int = 100) -> MembersPage:
        next_cursor, found = await self.client.sscan(
            self.key(names.REDIS_MEMBERS, segment), cursor=cursor, count=count
        )
        return MembersPage(sorted(_text(m) for m in found), int(next_cursor))

    async def is_member(self, segment: str, customer_id: str) -> bool:
        return bool(
            await self.client.sismember(self.key(names.REDIS_MEMBERS, segment), customer_id)
        )

    async def segments_of(self, customer_id: str) -> list[str]:
        found = await self.client.smembers(self.key(names.REDIS_CUSTOMER, customer_id))
        return sorted(_text(m) for m in found if m)

    async def version_of(self, customer_id: str) -> int:
        value = await self.client.hget(self.key(names.REDIS_VERSIONS), customer_id)
        return int(value) if value is not None else 0

    async def history(self, segment: str, limit: int = 360) -> list[tuple[int, ...]]:
        """(epoch ms, size, enters, exits) samples, oldest first; enters and exits are those
        since the sample before (samples written before they were kept have none)."""
        raw = await self.client.lrange(self.key(names.REDIS_HISTORY, segment), 0, limit - 1)
        return [tuple(map(int, item.split())) for item in reversed(raw)]

    async def recent_changes(self, count: int = 50) -> list[dict[str, Any]]:
        entries = await self.client.xrevrange(self.key(names.REDIS_CHANGES), count=count)
        return [orjson.loads(fields[b"change"]) for _, fields in entries or () if fields]

    async def report_worker(self, worker: str, report: dict[str, Any]) -> None:
        """What ``worker`` runs now (its definitions and re-evaluation progress)."""
        await self.client.hset(self.key(names.REDIS_WORKERS), worker, orjson.dumps(report))

    async def count_deliveries(
        self, subscription: str, delivered: int, failed: int, error: str | None, at: int
    ) -> None:
        """Add one delivery's outcome to a webhook subscription's counts (all workers')."""
        key = self.key(names.REDIS_WEBHOOKS, subscription)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "delivered", delivered)
            pipe.hincrby(key, "failed", failed)
            if error is None:
                pipe.hset(key, "last_delivery_at", at)
            else:
                pipe.hset(key, mapping={"last_error": error, "last_error_at": at})
            await pipe.execute()

    async def delivery_counts(self, subscription: str) -> dict[str, Any]:
        found = await self.client.hgetall(self.key(names.REDIS_WEBHOOKS, subscription))
        counts: dict[str, Any] = {"delivered": 0, "failed": 0}
        for field, value in found.items():
            name, text = _text(field), _text(value)
            counts[name] = int(text) if text.lstrip("-").isdigit() else text
        return counts

    async def forget_deliveries(self, subscription: str) -> None:
        await self.client.delete(self.key(names.REDIS_WEBHOOKS, subscription))

    async def worker_reports(self) -> list[dict[str, Any]]:
        found = await self.client.hgetall(self.key(names.REDIS_WORKERS))
        return [orjson.loads(value) for _, value in sorted(found.items())]

    async def snapshot(self) -> dict[str, Any]:
        """Everything the store holds (for tests and rebuild checks), history excluded."""
        members: dict[str, list[str]] = {}
        customers: dict[str, list[str]] = {}
        async for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            name = _text(key)[len(self.prefix) :]
            if name.startswith(names.REDIS_MEMBERS):
                found = await self.client.smembers(key)
                members[name[len(names.REDIS_MEMBERS) :]] = sorted(_text(m) for m in found)
            elif name.startswith(names.REDIS_CUSTOMER):
                found = await self.client.smembers(key)
                customers[name[len(names.REDIS_CUSTOMER) :]] = sorted(_text(m) for m in found)
        raw_versions = await self.client.hgetall(self.key(names.REDIS_VERSIONS))
        versions = {_text(k): int(v) for k, v in raw_versions.items()}
        return {
            "members": dict(sorted(members.items())),
            "customers": dict(sorted(customers.items())),
            "versions": dict(sorted(versions.items())),
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
