"""Per-customer state: what the segments need to know about one customer, and nothing more.

Rolling windows are day buckets (UTC days) that age out after the longest window (365 days),
so a customer's memory is bounded by their active days, not by their event count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.events import (
    CartEvent,
    EmailClick,
    EmailOpen,
    EmailSend,
    Event,
    PageView,
    ProfileUpdate,
    Purchase,
    SupportContact,
)
from streams.timestamps import format_ts

DAY_MS = 86_400_000
# The longest window a rule may use; older day buckets are dropped.
HORIZON_DAYS = 365
# A customer remembers the ids of the events it applied in the last DEDUP_WINDOW_MS of its own
# clock (event time), at most RECENT_EVENT_IDS of them, to count a redelivered event (or a
# tracking SDK's retry of a message) once.
DEDUP_WINDOW_MS = 86_400_000
RECENT_EVENT_IDS = 500
# A customer remembers the ids of its last MAX_ORDER_IDS orders: an order counted once is never
# counted again, however late it comes back (a re-import of an order history, a producer's retry
# a week later).
MAX_ORDER_IDS = 200
# Per-SKU and per-category memory is capped; the least recently bought are forgotten first.
MAX_PRODUCTS = 100
# Page views are kept per SKU and per category, by UTC day, for VIEW_DAYS days (today included),
# for at most MAX_VIEWED SKUs and categories (the least recently viewed are forgotten first).
VIEW_DAYS = 30
# Emails sent: the last MAX_SENDS, for SEND_DAYS days, oldest first (send eligibility counts
# them against frequency caps and a campaign's earlier sends).
MAX_SENDS = 100
SEND_DAYS = 400
SAME_SEND_MS = 3_600_000
# Opens and clicks with their campaign, for attribution: TOUCH_DAYS (the longest attribution
# window), at most MAX_TOUCHES, oldest first.
TOUCH_DAYS = 30
MAX_TOUCHES = 50
MAX_VIEWED = 40
# How many viewed products a browse-abandon trigger names.
TRIGGER_PRODUCTS = 10
# A customer remembers the anonymous ids merged into it (the latest MAX_ALIASES).
MAX_ALIASES = 100
# A cart holds at most this many lines; adds beyond it are ignored (the state stays small).
MAX_CART_LINES = 100

# Fields of a day bucket.
ORDERS, SPEND, OPENS, CLICKS, SUPPORT, MAX_ORDER_TOTAL, MAX_ORDER_QUANTITY = range(7)
BUCKET_FIELDS = 7
# The lifetime count of each of the first five, on the state.
_LIFETIME = ("purchase_count", "total_spend", "open_count", "click_count", "support_count")


# Why part of an event could not count (the worker records these on ``late-events``).
LATE_FOR_WINDOWS = (
    f"older than the {HORIZON_DAYS}-day window horizon of the customer's clock: counted in "
    "lifetime totals and recency only"
)
LATE_FOR_CART = "cart activity older than the customer's last purchase: the cart is left as is"
LATE_FOR_VIEWS = (
    f"a page view older than the {VIEW_DAYS} days of views kept: it counts in recency only"
)


def day_of(ts: int) -> int:
    return ts // DAY_MS


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    version: int = 0
    segments: set[str] = field(default_factory=set)
    # The latest time the state was evaluated at, and the next time the passage of time alone
    # may change a segment (None: nothing is due).
    clock: int = 0
    next_deadline: int | None = None
    # Fingerprint of the segment catalog the memberships were last evaluated against.
    catalog_digest: str = ""
    first_seen_at: int | None = None
    # event id -> the customer's clock when it was applied; oldest first.
    recent_event_ids: dict[str, int] = field(default_factory=dict)
    # Per source (an input topic), the position of the last record applied: a source redelivers
    # in order, so anything at or before it was applied already (after a crash or a rebalance,
    # however many records come again).
    positions: dict[str, int] = field(default_factory=dict)
    # Under at-least-once, the output records of recent steps not yet known delivered, kept
    # with the state that produced them until they are (see agents.outbox).
    outbox: list[list[Any]] = field(default_factory=list)
    # Profile traits (see streams.events for the names); profile_known once any update arrived.
    profile_known: bool = False
    traits: dict[str, Any] = field(default_factory=dict)
    # Why the address is suppressed (unsubscribed, bounced, spam; None: it is not), and the time
    # of the last explicit consent event (a suppression or an opt-in).
    suppressed: str | None = None
    consent_at: int | None = None
    # Purchases (the ids of the last MAX_ORDER_IDS orders, oldest first).
    order_ids: list[str] = field(default_factory=list)
    purchase_count: int = 0
    total_spend: float = 0.0
    first_purchase_at: int | None = None
    last_purchase_at: int | None = None
    # sku or category -> [orders containing it, last time bought]
    skus: dict[str, list[int]] = field(default_factory=dict)
    categories: dict[str, list[int]] = field(default_factory=dict)
    # Email engagement.
    open_count: int = 0
    click_count: int = 0
    last_open_at: int | None = None
    last_click_at: int | None = None
    # Cart: sku -> [category, quantity, unit_price]
    # sku -> [category, quantity, unit price, time of the line's last add]
    cart: dict[str, list[Any]] = field(default_factory=dict)
    last_cart_at: int | None = None
    checkout_started_at: int | None = None
    # Support contacts.
    support_count: int = 0
    last_support_at: int | None = None
    # Page views: "sku:<sku>" or "category:<name>" -> [last view, the SKU's category or None,
    # then day, views, day, views, ... for the days of the last VIEW_DAYS].
    viewed: dict[str, list[Any]] = field(default_factory=dict)
    last_view_at: int | None = None
    last_product_view_at: int | None = None
    # Emails sent: [ts, campaign id, segment or None], oldest first.
    sends: list[list[Any]] = field(default_factory=list)
    # For the campaign report (engine.attribution): opens and clicks [ts, "open" | "click",
    # campaign id] and purchases [ts, total], oldest first; the customer's contribution to the
    # report as last published, the part of it that forgotten entries made, and how many
    # report facts the customer has published.
    touches: list[list[Any]] = field(default_factory=list)
    purchases: list[list[Any]] = field(default_factory=list)
    reported: dict[str, float] = field(default_factory=dict)
    settled: dict[str, float] = field(default_factory=dict)
    fact_seq: int = 0
    # Segment with a trigger -> [the episode it last fired for (engine.changes.TRIGGER_EPISODES;
    # None: the state has none), the moment it fired].
    fired: dict[str, list[int | None]] = field(default_factory=dict)
    # Anonymous ids merged into this customer: anonymous id -> merge id, oldest first.
    aliases: dict[str, str] = field(default_factory=dict)
    # Rolling windows: UTC day -> [orders, spend, opens, clicks, support, max total, max qty]
    days: dict[int, list[float]] = field(default_factory=dict)
    # Segment -> the next time the passage of time alone may change it, as the last step
    # found (engine.plan); None while not known: the next step computes them all.
    deadlines: dict[str, int] | None = field(default=None, compare=False, repr=False)
    # The deadlines as stored (``Plan.pack``: they name segments by their place in the
    # catalog), until the next step reads them (``engine.evaluate.advance``).
    packed_deadlines: list[Any] | None = field(default=None, compare=False, repr=False)

    # -- redelivery ---------------------------------------------------------------------------

    def has_seen(self, event_id: str) -> bool:
        return event_id in self.recent_event_ids

    def has_counted(self, event: Event) -> bool:
        """The event was applied before: its id is remembered, or it is an order counted
        already (under another event id, or after its id was forgotten)."""
        if self.has_seen(event.event_id):
            return True
        return isinstance(event, Purchase) and event.order_id in self.order_ids

    def has_applied(self, source: str, position: int) -> bool:
        return position <= self.positions.get(source, -1)

    def mark_applied(self, source: str, position: int) -> None:
        self.positions[source] = max(position, self.positions.get(source, -1))

    def remember(self, event_id: str, at: int) -> None:
        """Remember an applied event's id; forget those older than the window, and the oldest
        beyond the count. ``at`` never goes back (the customer's clock), so oldest is first."""
        recent = self.recent_event_ids
        recent[event_id] = at
        cutoff = at - DEDUP_WINDOW_MS
        while len(recent) > RECENT_EVENT_IDS or next(iter(recent.values())) < cutoff:
            del recent[next(iter(recent))]

    def add_alias(self, anonymous_id: str, merge_id: str) -> None:
        self.aliases.pop(anonymous_id, None)
        self.aliases[anonymous_id] = merge_id
        while len(self.aliases) > MAX_ALIASES:
            del self.aliases[next(iter(self.aliases))]

    # -- derived values -----------------------------------------------------------------------

    @property
    def last_engaged_at(self) -> int | None:
        times = [t for t in (self.last_open_at, self.last_click_at) if t is not None]
        return max(times) if times else None

    @property
    def email_consent(self) -> bool:
        return self.traits.get("email_consent") is True

    def window_days(self, now: int, days: int) -> list[int]:
        """The day buckets inside a ``days``-day window ending today (today included)."""
        today = day_of(now)
        first = today - days + 1
        return [day for day in self.days if first <= day <= today]

    def window_total(self, now: int, days: int | None, index: int) -> float:
        if days is None:
            return self._lifetime(index)
        today = day_of(now)
        first = today - days + 1
        return sum(bucket[index] for day, bucket in self.days.items() if first <= day <= today)

    def window_max(self, now: int, days: int, index: int) -> float:
        today = day_of(now)
        first = today - days + 1
        return max(
            (bucket[index] for day, bucket in self.days.items() if first <= day <= today),
            default=0,
        )

    def _lifetime(self, index: int) -> float:
        value: float = getattr(self, _LIFETIME[index])
        return value

    # -- folding events -----------------------------------------------------------------------

    def _bucket(self, ts: int) -> list[float] | None:
        """The day bucket for ``ts``, or None if it is already past the horizon."""
        day = day_of(ts)
        if day <= day_of(self.clock) - HORIZON_DAYS:
            return None
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self.days[day] = [0] * BUCKET_FIELDS
        return bucket

    def prune(self, now: int) -> None:
        """Drop day buckets no window can reach any more, and page views older than VIEW_DAYS."""
        oldest = day_of(now) - HORIZON_DAYS
        for day in [day for day in self.days if day <= oldest]:
            del self.days[day]
        first = day_of(now) - VIEW_DAYS + 1
        for key, entry in list(self.viewed.items()):
            kept = _days_from(entry, first)
            if kept == entry[2:]:
                continue
            if kept:
                entry[2:] = kept
            else:
                del self.viewed[key]

    def fold(self, event: Event) -> str | None:
        """Take one new event into the state (at its own time, even if it arrives late).

        Returns why part of it could not count (``LATE_FOR_WINDOWS``, ``LATE_FOR_CART``), or
        None when all of it did."""
        ts = event.ts
        self.remember(event.event_id, max(self.clock, ts))
        self.first_seen_at = ts if self.first_seen_at is None else min(self.first_seen_at, ts)
        if isinstance(event, PageView):  # views keep their own days, not a day bucket
            return None if self._fold_view(event) else LATE_FOR_VIEWS
        if isinstance(event, EmailSend):
            self._fold_send(event)
            return None
        bucket = self._bucket(ts)
        if isinstance(event, Purchase):
            self._fold_purchase(event, bucket)
        elif isinstance(event, EmailOpen):
            self._fold_touch(ts, "open", event.campaign_id)
            self.open_count += 1
            self.last_open_at = _later(self.last_open_at, ts)
            if bucket is not None:
                bucket[OPENS] += 1
        elif isinstance(event, EmailClick):
            self._fold_touch(ts, "click", event.campaign_id)
            self.click_count += 1
            self.last_click_at = _later(self.last_click_at, ts)
            if bucket is not None:
                bucket[CLICKS] += 1
        elif isinstance(event, CartEvent):
            return None if self._fold_cart(event) else LATE_FOR_CART
        elif isinstance(event, ProfileUpdate):
            self.profile_known = True
            self._fold_profile(event)
        elif isinstance(event, SupportContact):
            self.support_count += 1
            self.last_support_at = _later(self.last_support_at, ts)
            if bucket is not None:
                bucket[SUPPORT] += 1
        if bucket is None and not isinstance(event, ProfileUpdate):
            return LATE_FOR_WINDOWS
        return None

    def _fold_profile(self, event: ProfileUpdate) -> None:
        """Traits replace the stored ones, with one rule for consent: a suppressed address
        (unsubscribed, bounced, marked as spam) is consented again only by an explicit opt-in,
        never by a profile update's ``email_consent: true``. Of explicit consent events, the
        latest by time wins, whatever order they arrive in."""
        traits = event.traits
        if self.suppressed is not None and traits.get("email_consent") is True:
            traits = {k: v for k, v in traits.items() if k != "email_consent"}
        self.traits.update(traits)
        if not (event.suppression or event.opt_in):
            return
        if self.consent_at is not None and event.ts < self.consent_at:
            return  # an older consent event than the one that decided: it changes nothing
        self.consent_at = event.ts
        self.suppressed = event.suppression
        self.traits["email_consent"] = event.opt_in

    def _fold_send(self, event: EmailSend) -> None:
        """Keep the send in time order; the oldest go beyond MAX_SENDS. The same campaign
        reported again within SAME_SEND_MS is the same email (tools that report both "Email
        Sent" and "Email Delivered" for it): it counts once."""
        for ts, campaign, _ in self.sends:
            if campaign == event.campaign_id and abs(ts - event.ts) <= SAME_SEND_MS:
                return
        send = [event.ts, event.campaign_id, event.segment]
        at = len(self.sends)
        while at and self.sends[at - 1][0] > event.ts:
            at -= 1
        self.sends.insert(at, send)  # (bounded by engine.attribution.settle)

    def _fold_touch(self, ts: int, kind: str, campaign: str) -> None:
        """Keep an open or click with its campaign, in time order, bounded and by age."""
        touches = self.touches
        at = len(touches)
        while at and touches[at - 1][0] > ts:
            at -= 1
        touches.insert(at, [ts, kind, campaign])  # (bounded by engine.attribution.settle)

    def _fold_view(self, event: PageView) -> bool:
        """Count a page view per SKU and category; False if it is older than the days of views
        kept (it still moves the last view)."""
        ts = event.ts
        self.last_view_at = _later(self.last_view_at, ts)
        if event.sku is not None:
            self.last_product_view_at = _later(self.last_product_view_at, ts)
        first = day_of(max(self.clock, ts)) - VIEW_DAYS + 1
        day = day_of(ts)
        if day < first:
            return False
        keys = []
        if event.sku is not None:
            keys.append((f"sku:{event.sku}", event.category))
        if event.category is not None:
            keys.append((f"category:{event.category}", None))
        for key, category in keys:
            entry = self.viewed.get(key)
            if entry is None:
                entry = self.viewed[key] = [ts, category]
            entry[0] = max(entry[0], ts)
            entry[1] = category if category is not None else entry[1]
            pairs = _days_from(entry, first)
            for index in range(0, len(pairs), 2):
                if pairs[index] == day:
                    pairs[index + 1] += 1
                    break
            else:
                pairs += [day, 1]
            entry[2:] = pairs
        while len(self.viewed) > MAX_VIEWED:
            del self.viewed[min(self.viewed, key=lambda k: self.viewed[k][0])]
        return True

    def views_within(self, key: str, now: int, days: int) -> int:
        """Views of ``key`` ("sku:..." or "category:...") in the ``days``-day window ending
        today (today included)."""
        entry = self.viewed.get(key)
        if entry is None:
            return 0
        first, today = day_of(now) - days + 1, day_of(now)
        pairs = entry[2:]
        return sum(pairs[i + 1] for i in range(0, len(pairs), 2) if first <= pairs[i] <= today)

    def oldest_view_day(self, key: str, now: int, days: int) -> int | None:
        """The earliest day inside that window with a view of ``key``."""
        entry = self.viewed.get(key)
        if entry is None:
            return None
        first, today = day_of(now) - days + 1, day_of(now)
        inside = [day for day in entry[2::2] if first <= day <= today]
        return min(inside) if inside else None

    def viewed_products(self, since: int | None) -> list[dict[str, Any]]:
        """The products viewed after ``since`` (all, if None), the most recent first: what a
        browse-abandon trigger names."""
        found = [
            (entry[0], key.removeprefix("sku:"), entry)
            for key, entry in self.viewed.items()
            if key.startswith("sku:") and (since is None or entry[0] > since)
        ]
        found.sort(key=lambda item: item[0], reverse=True)
        return [
            {
                "sku": sku,
                "category": entry[1],
                "views": sum(entry[3::2]),
                "last_viewed_at": format_ts(last),
            }
            for last, sku, entry in found[:TRIGGER_PRODUCTS]
        ]

    def _fold_purchase(self, event: Purchase, bucket: list[float] | None) -> None:
        at = len(self.purchases)
        while at and self.purchases[at - 1][0] > event.ts:
            at -= 1
        self.purchases.insert(at, [event.ts, event.total])  # (bounded by attribution.settle)
        self._count_purchase(event, bucket)

    def _count_purchase(self, event: Purchase, bucket: list[float] | None) -> None:
        ts = event.ts
        self.order_ids.append(event.order_id)
        if len(self.order_ids) > MAX_ORDER_IDS:
            del self.order_ids[0]
        self.purchase_count += 1
        self.total_spend += event.total
        self.first_purchase_at = _earlier(self.first_purchase_at, ts)
        self.last_purchase_at = _later(self.last_purchase_at, ts)
        for sku in {item.sku for item in event.items}:
            _count_product(self.skus, sku, ts)
        for category in {item.category for item in event.items}:
            _count_product(self.categories, category, ts)
        if bucket is not None:
            bucket[ORDERS] += 1
            bucket[SPEND] += event.total
            bucket[MAX_ORDER_TOTAL] = max(bucket[MAX_ORDER_TOTAL], event.total)
            bucket[MAX_ORDER_QUANTITY] = max(bucket[MAX_ORDER_QUANTITY], event.quantity)
        # The purchase empties the cart of what was put in it up to then, whatever order the
        # two topics deliver in (a line without its time predates this rule: its time is the
        # last cart activity).
        for sku, line in list(self.cart.items()):
            if (line[3] if len(line) > 3 else self.last_cart_at or 0) <= ts:
                del self.cart[sku]
        if self.checkout_started_at is not None and self.checkout_started_at <= ts:
            self.checkout_started_at = None

    def _fold_cart(self, event: CartEvent) -> bool:
        """Apply a cart event; False when it came too late to change the cart."""
        self.last_cart_at = _later(self.last_cart_at, event.ts)
        if self.last_purchase_at is not None and event.ts <= self.last_purchase_at:
            return False  # arrived after a later purchase (another topic), which emptied the cart
        if event.action == "checkout_started":
            self.checkout_started_at = _later(self.checkout_started_at, event.ts)
            return True
        assert event.sku is not None
        line = self.cart.get(event.sku)
        if event.action == "add":
            if line is None:
                if len(self.cart) < MAX_CART_LINES:
                    self.cart[event.sku] = [
                        event.category,
                        event.quantity,
                        event.unit_price,
                        event.ts,
                    ]
            else:
                line[1] += event.quantity
                line[2] = event.unit_price
                if len(line) > 3:
                    line[3] = max(line[3], event.ts)
                else:
                    line.append(event.ts)
        elif line is not None:
            line[1] -= event.quantity
            if line[1] <= 0:
                del self.cart[event.sku]
        return True

    def cart_items(self) -> list[dict[str, Any]]:
        return [
            {"sku": sku, "category": category, "quantity": quantity, "unit_price": price}
            for sku, (category, quantity, price, *_) in self.cart.items()
        ]

    # -- changelog form -----------------------------------------------------------------------

    def to_dict(self, *, detached: bool = True) -> dict[str, Any]:
        """The stored form: empty and unset fields are left out to keep it small. Detached, the
        state's containers are copied one level deep; else they are shared, for a dict
        serialized at once (the snapshot: copying was most of its cost)."""
        copy = _copy if detached else _same
        data = {name: copy(value) for name in _PLAIN_FIELDS if (value := getattr(self, name))}
        data["customer_id"] = self.customer_id
        if self.segments:
            data["segments"] = sorted(self.segments)
        if self.days:
            data["days"] = [[day, *bucket] for day, bucket in sorted(self.days.items())]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, detached: bool = True) -> CustomerState:
        """The state ``data`` holds; not detached, it takes ``data``'s containers (a dict just
        parsed, which nothing else holds)."""
        copy = _copy if detached else _same
        state = cls(**{name: copy(data[name]) for name in _PLAIN_FIELDS if name in data})
        state.segments = set(data.get("segments", ()))
        state.days = {row[0]: list(row[1:]) for row in data.get("days", ())}
        if isinstance(ids := data.get("recent_event_ids"), list):  # stored before the window
            state.recent_event_ids = dict.fromkeys(ids, state.clock)
        state.packed_deadlines = copy(data.get("deadlines"))
        return state


_PLAIN_FIELDS = tuple(
    name
    for name in CustomerState.__dataclass_fields__
    if name not in ("segments", "days", "deadlines", "packed_deadlines")
)


def _same(value: Any) -> Any:
    return value


def _copy(value: Any) -> Any:
    """Containers one level deep are copied, so the state never shares them with its dict."""
    if isinstance(value, dict):
        return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def _days_from(entry: list[Any], first: int) -> list[int]:
    """A viewed entry's day/views pairs from day ``first`` on."""
    pairs = entry[2:]
    kept: list[int] = []
    for index in range(0, len(pairs), 2):
        if pairs[index] >= first:
            kept += pairs[index : index + 2]
    return kept


def _later(current: int | None, ts: int) -> int:
    return ts if current is None else max(current, ts)


def _earlier(current: int | None, ts: int) -> int:
    return ts if current is None else min(current, ts)


def _count_product(products: dict[str, list[int]], name: str, ts: int) -> None:
    entry = products.get(name)
    if entry is None:
        if len(products) >= MAX_PRODUCTS:
            del products[min(products, key=lambda key: products[key][1])]
        products[name] = [1, ts]
    else:
        entry[0] += 1
        entry[1] = max(entry[1], ts)
