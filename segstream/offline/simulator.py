"""A synthetic shop: customers who browse, buy, read email and update their profiles.

Pure and seeded: the same seed, run id and clock give the same events, so tests can rely on it.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from config import names
from streams.records import Record

CATALOG = {
    "shoes": [("sku-runner", 89.0), ("sku-boot", 140.0), ("sku-sandal", 35.0)],
    "socks": [("sku-sock-3pk", 12.0), ("sku-sock-wool", 18.0)],
    "outdoor": [("sku-tent", 320.0), ("sku-lamp", 25.0)],
}
INTERESTS = ("running", "hiking", "yoga", "cycling")
LIFESTYLES = ("outdoor", "family", "urban", "frugal", "luxury")
SOURCES = ("shop", "social_ads", "download", None)


def new_run_id() -> str:
    """A run id that no earlier run used (live runs: each one's events are new to segstream)."""
    return secrets.token_hex(4)


# Behaviour profiles: how likely a customer of each kind is to be the one behind an event of
# each kind (open, click, cart add, purchase, profile update, support contact, page view). The
# overall mix stays the shop's (MIX); the profile decides who does what.
PERSONAS: dict[str, tuple[tuple[float, ...], float]] = {
    # name: (propensity per event kind, share of customers)
    "browser": ((1.0, 0.5, 2.0, 0.1, 1.0, 0.5, 3.0), 0.20),
    "one_time_buyer": ((1.0, 0.5, 0.5, 0.3, 1.0, 1.0, 1.0), 0.15),
    "loyal": ((1.5, 2.0, 1.0, 3.0, 1.0, 1.0, 1.5), 0.15),
    "bulk_buyer": ((0.5, 0.5, 1.0, 2.0, 1.0, 1.0, 0.5), 0.05),
    "cart_abandoner": ((1.0, 0.5, 3.0, 0.05, 1.0, 1.0, 1.5), 0.15),
    "reader_never_clicks": ((3.0, 0.0, 0.2, 0.1, 1.0, 0.2, 0.3), 0.15),
    "lapsing": ((1.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.0), 0.15),
}
# opens, clicks, cart, purchases, profiles, support, page views (percent)
MIX = (40, 13, 17, 10, 5, 5, 10)
# Lapsing customers go quiet after this share of an endless stream's first 100 events per
# customer (or of a counted stream).
LAPSE_AFTER = 0.3
# A cart abandoner leaves the shop after putting something in the cart: no cart activity for
# this many of the shop's events (5 to 10 minutes at the demo's 10 events a second), so the
# cart's quiet period runs out and the abandoned-cart trigger fires while one watches.
ABANDON_PAUSE = (3_000, 6_000)


@dataclass
class SyntheticShop:
    """Draws a shop's event mix; behaviour profiles decide which customer is behind each event:
    browsers, one-time, loyal and bulk buyers, cart abandoners, readers who never click, and
    lapsing customers who go quiet."""

    customers: int = 50
    seed: int = 7
    # Names this run in event and order ids (default: the seed). Runs that share ids are
    # redeliveries to segstream, so a live run that repeats a seed needs its own run id.
    run_id: str = ""
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    step_ms: int = 1_000
    # Live runs pass a wall clock; events then carry the real time of their sending.
    clock: Callable[[], int] | None = None
    _rng: random.Random = field(init=False)
    _now: int = field(init=False)
    _serial: int = field(init=False, default=0)
    _carts: dict[str, list[tuple[str, str, float]]] = field(init=False, default_factory=dict)
    # Cart abandoners away from the shop: customer -> the event count they come back at.
    _away_until: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or str(self.seed)
        self._rng = random.Random(self.seed)
        self._now = self.start_ms
        names_, shares = zip(*((n, share) for n, (_, share) in PERSONAS.items()), strict=True)
        self.personas = [self._rng.choices(names_, shares)[0] for _ in range(self.customers)]
        self._weights = self._cumulative(lapsed=False)

    def _cumulative(self, lapsed: bool) -> list[list[float]]:
        """Per event kind, cumulative weights over the customers (for random.choices)."""
        table = []
        for kind in range(len(MIX)):
            total, running = 0.0, []
            for persona in self.personas:
                weight = PERSONAS[persona][0][kind]
                if lapsed and persona == "lapsing":
                    weight = 0.0
                total += weight + 1e-9
                running.append(total)
            table.append(running)
        return table

    def _persona(self, customer: str) -> str:
        return self.personas[int(customer[1:])]

    def customer_id(self, index: int) -> str:
        return f"c{index:06d}"

    def _head(self, customer: str) -> dict[str, Any]:
        self._serial += 1
        return {
            "event_id": f"sim-{self.run_id}-{self._serial}",
            "customer_id": customer,
            "ts": self._now,
        }

    def _purchase(self, customer: str) -> Record:
        cart = self._carts.pop(customer, None) or [self._pick_item()]
        bulk = self._persona(customer) == "bulk_buyer" or self._rng.random() < 0.02
        quantity = 12 if bulk else 1
        items = [
            {"sku": sku, "category": category, "quantity": quantity, "unit_price": price}
            for sku, category, price in cart
        ]
        total = round(sum(quantity * price for _, _, price in cart), 2)
        value = self._head(customer) | {
            "order_id": f"o-{self.run_id}-{self._serial}",
            "total": total,
            "currency": "EUR",
            "items": items,
        }
        return Record(names.PURCHASES, customer, value)

    def _pick_item(self) -> tuple[str, str, float]:
        category = self._rng.choice(list(CATALOG))
        sku, price = self._rng.choice(CATALOG[category])
        return sku, category, price

    def _cart_add(self, customer: str) -> Record:
        sku, category, price = self._pick_item()
        self._carts.setdefault(customer, []).append((sku, category, price))
        value = self._head(customer) | {
            "action": "add",
            "sku": sku,
            "category": category,
            "quantity": 1,
            "unit_price": price,
        }
        return Record(names.CART_EVENTS, customer, value)

    def _profile(self, customer: str) -> Record:
        """A customer's traits stay who they are (seeded by the customer); consent may flip."""
        persona = random.Random(f"{self.seed}:{customer}")
        traits: dict[str, Any] = {
            "email": f"{customer}@shop.example",
            "first_name": persona.choice(("Ana", "Ben", "Chloe", "Dev", "Emil", "Fatou")),
            "birth_year": persona.randint(1950, 2006),
            "gender": persona.choice(("female", "male", "other")),
            "country": persona.choice(("DE", "FR", "NL")),
            "city": persona.choice(("Berlin", "Paris", "Utrecht")),
            "interests": persona.sample(INTERESTS, 2),
            "email_consent": persona.random() < 0.9 and self._rng.random() < 0.98,
        }
        source = persona.choice(SOURCES)
        if source:
            traits["source"] = source
        # The default catalog's declared traits (drawn last, so the others stay as they were).
        traits["income_band"] = persona.choice(("low", "middle", "high", "top"))
        traits["region"] = persona.choice(("north", "south", "east", "west"))
        traits["lifestyle"] = persona.sample(LIFESTYLES, 2)
        return Record(names.PROFILE_UPDATES, customer, self._head(customer) | {"traits": traits})

    def _open(self, customer: str) -> Record:
        campaign = f"camp-{self._rng.randint(1, 5)}"
        return Record(names.EMAIL_OPENS, customer, self._head(customer) | {"campaign_id": campaign})

    def _click(self, customer: str) -> Record:
        value = self._head(customer) | {
            "campaign_id": f"camp-{self._rng.randint(1, 5)}",
            "url": "https://shop.example/sale",
        }
        return Record(names.EMAIL_CLICKS, customer, value)

    def _view(self, customer: str) -> Record:
        """A product page, or now and then a category page."""
        sku, category, _ = self._pick_item()
        if self._rng.random() < 0.3:
            page = {"url": f"https://shop.example/c/{category}", "category": category}
        else:
            page = {"url": f"https://shop.example/p/{sku}", "sku": sku, "category": category}
        return Record(names.PAGE_VIEWS, customer, self._head(customer) | page)

    def _support(self, customer: str) -> Record:
        value = self._head(customer) | {
            "channel": self._rng.choice(("email", "chat", "phone")),
            "reason": self._rng.choice(("delivery", "returns", "sizing")),
        }
        return Record(names.SUPPORT_CONTACTS, customer, value)

    def events(self, count: int | None = None) -> Iterator[Record]:
        """``count`` events (endless when None), a mix like a real shop's."""
        kinds = (
            self._open,
            self._click,
            self._cart_add,
            self._purchase,
            self._profile,
            self._support,
            self._view,
        )
        lapse_at = int((count or self.customers * 100) * LAPSE_AFTER)
        indices = range(self.customers)
        produced = 0
        while count is None or produced < count:
            if produced == lapse_at:
                self._weights = self._cumulative(lapsed=True)
            kind = self._rng.choices(range(len(kinds)), MIX)[0]
            index = self._rng.choices(indices, cum_weights=self._weights[kind])[0]
            customer = self.customer_id(index)
            abandoner = self._persona(customer) == "cart_abandoner"
            if abandoner and kinds[kind] in (self._cart_add, self._purchase):
                if produced < self._away_until.get(customer, 0):
                    kind = 0  # away from the shop: they still read their email
                elif kinds[kind] == self._cart_add:
                    self._away_until[customer] = produced + self._rng.randint(*ABANDON_PAUSE)
            self._now = self.clock() if self.clock else self._now + self.step_ms
            produced += 1
            yield kinds[kind](customer)
