"""`segstream import` as a user runs it, against a real worker: a CRM export of customers with
traits and consent, then an order history, both with bad rows; the report lists exactly the
bad rows, the stored customers and the segment changes reflect the good ones, and a re-run
changes nothing."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import names
from segstream.bench.processes import WorkerMetrics
from serving.changelog import latest_states
from streams import codec
from streams.personal import without_personal
from streams.timestamps import format_ts
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import read_until_quiet
from tests.integration.oracle import DAY, HOUR, Shop, now_ms, read_settled

pytestmark = pytest.mark.integration

CRM_HEADER = [
    "Customer ID", "E-mail", "Opt-in", "Birthday", "Country", "City", "Gender", "Interests",
    "Income band",
]  # fmt: skip
CRM_MAP = ["Customer ID=customer_id", "Opt-in=email_consent", "Birthday=birth_year"]
CRM_MAP += ["Country=country", "City=city", "Gender=gender", "Interests=interests"]
CRM_MAP += ["Income band=income_band"]  # a trait the default catalog declares
ORDERS_HEADER = ["Order No", "Customer ID", "Order Date", "SKU", "Category", "Qty", "Unit Price"]
ORDERS_MAPPING = """\
kind: orders
columns:
  Order No: order_id
  Customer ID: customer_id
  Order Date: ts
  SKU: sku
  Category: category
  Qty: quantity
  Unit Price: unit_price
defaults: {currency: EUR}
"""
NOT_A_DATE = "is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)"
PROGRESS = re.compile(r"Importing (\S+): (\d+)%, [\d,]+ rows, [\d,]+ rejected, [\d,]+ rows/s")


@dataclass
class Export:
    """The two files a shop exports, what each good row means, and the line and reason of
    each bad one."""

    crm: list[list[str]] = field(default_factory=list)
    orders: list[list[str]] = field(default_factory=list)
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)  # as the decoder keeps them
    order_totals: dict[str, list[float]] = field(default_factory=dict)  # customer -> totals
    order_values: list[dict[str, Any]] = field(default_factory=list)  # purchases, contract
    bad_crm: list[tuple[int, str]] = field(default_factory=list)
    bad_orders: list[tuple[int, str]] = field(default_factory=list)

    def customer(self, rng: random.Random, n: int) -> None:
        consent = "no" if n % 3 == 2 else rng.choice(["yes", "Yes", "1", "true"])
        year, country, city = 1950 + n % 55, *rng.choice([("DE", "Berlin"), ("FR", "Lyon")])
        gender, band = rng.choice(["Female", "male"]), rng.choice(["low", "middle", "high"])
        interests = rng.sample(["running", "Hiking", "yoga"], rng.randint(1, 2))
        cid = f"cust-{n:04d}"
        self.crm.append(
            [cid, f"person{n}@example.test", consent, f"{year}-03-0{1 + n % 9}", country, city,
             gender, "|".join(interests), band]
        )  # fmt: skip
        self.traits[cid] = {
            "email_consent": consent != "no",
            "birth_year": year,
            "country": country,
            "city": city,
            "gender": gender.lower(),
            "interests": sorted(i.lower() for i in interests),
            "income_band": band,
        }

    def bad_customer(self, rng: random.Random, n: int) -> None:
        cid, line = f"bad-{n}", len(self.crm) + 2
        row = [cid, "x@example.test", "yes", "1980-01-01", "DE", "Berlin", "male", "yoga", "low"]
        kind = n % 6
        if kind == 0:
            row[2], reason = (
                "maybe",
                (
                    "email_consent (column 'Opt-in'): 'maybe' is not true or false "
                    "(true/false, yes/no, 1/0)"
                ),
            )
        elif kind == 1:
            row[3], reason = (
                "1850-01-01",
                ("traits.birth_year (column 'Birthday'): expected a year between 1900 and 2100"),
            )
        elif kind == 2:
            row[0], reason = "", "customer_id (column 'Customer ID'): missing"
        elif kind == 3:
            row, reason = row[:5], "row: 5 fields where the header has 9"
        elif kind == 4:
            row[5], reason = "x" * 300, "traits.city (column 'City'): expected 1 to 256 characters"
        else:
            row[7], reason = (
                f"yoga|{'y' * 300}",
                ("traits.interests (column 'Interests'): expected a list of strings"),
            )
        self.crm.append(row)
        self.bad_crm.append((line, reason))

    def order(self, rng: random.Random, number: int, customer: str, now: int) -> None:
        # Whole days and 2 to 12 hours old: no recency threshold (whole days) passes during
        # the test, which would publish changes between the runs.
        ts = now - rng.randint(1, 700) * DAY - rng.randint(2, 12) * HOUR
        lines = [
            [f"sku-{rng.randint(1, 30)}", rng.choice(["shoes", "socks", "tents"]),
             rng.randint(1, 4), rng.choice([9.99, 25.5, 120.0, 310.25])]
            for _ in range(rng.randint(1, 3))
        ]  # fmt: skip
        order_id = f"ord-{number:05d}"
        dates = [str(ts), format_ts(ts), format_ts(ts)[:19].replace("T", " ")]  # UTC
        for index, (sku, category, quantity, price) in enumerate(lines):
            date = rng.choice(dates) if index == 0 else ""  # later lines may leave it out
            self.orders.append([order_id, customer, date, sku, category, str(quantity), str(price)])
        total = 0.0
        for _, _, quantity, price in lines:
            total += quantity * price
        self.order_totals.setdefault(customer, []).append(round(total, 2))
        self.order_values.append(
            {
                "event_id": order_id,
                "customer_id": customer,
                "ts": ts,
                "order_id": order_id,
                "total": round(total, 2),
                "currency": "EUR",
                "items": [
                    {"sku": s, "category": c, "quantity": q, "unit_price": p}
                    for s, c, q, p in lines
                ],
            }
        )

    def bad_order(self, number: int, customer: str, kind: int, now: int) -> None:
        order_id, line = f"ord-{number:05d}", len(self.orders) + 2
        row = [order_id, customer, str(now - 3 * DAY), "sku-1", "shoes", "1", "9.99"]
        if kind == 0:  # the second line is bad: both are left out
            self.orders += [row, [order_id, customer, "", "sku-2", "socks", "0", "9.99"]]
            self.bad_orders += [
                (line, f"order_id: order '{order_id}' left out: its line {line + 1} is rejected"),
                (line + 1, "quantity (column 'Qty'): 0 is outside 1..1000000"),
            ]
            return
        if kind == 1:
            row[6], reason = "abc", "unit_price (column 'Unit Price'): 'abc' is not a number"
        elif kind == 2:
            row[2], reason = "31/12/2025", f"ts (column 'Order Date'): '31/12/2025' {NOT_A_DATE}"
        else:
            row[2] = str(now + 3 * DAY)
            reason = "ts (column 'Order Date'): more than an hour in the future"
        self.orders.append(row)
        self.bad_orders.append((line, reason))

    def scattered_line(self, number: int, customer: str, now: int) -> None:
        """A line of an order whose lines are far apart in the file: none of them is imported."""
        order_id, line = f"ord-{number:05d}", len(self.orders) + 2
        self.orders.append([order_id, customer, str(now - 5 * DAY), "sku-3", "tents", "1", "5"])
        self.bad_orders.append(
            (
                line,
                f"order_id: order '{order_id}' is in more than one place in the file "
                "(the lines of an order must follow one another)",
            )
        )


def build_export(seed: int, customers: int) -> Export:
    rng, export, now = random.Random(seed), Export(), now_ms()
    bad = set(rng.sample(range(customers), 12))
    for n in range(customers):
        export.customer(rng, n)
        if n in bad:
            export.bad_customer(rng, len(export.bad_crm))
    number, bad_kinds, scattered = 0, [0, 0, 0, 1, 1, 2, 2, 3], 99_999
    for n in range(0, customers, 2):
        for _ in range(rng.randint(1, 3)):
            number += 1
            export.order(rng, number, f"cust-{n:04d}", now)
        if bad_kinds and n % 97 == 0:
            number += 1
            export.bad_order(number, f"cust-{n:04d}", bad_kinds.pop(), now)
        if n in (400, 800):
            export.scattered_line(scattered, "cust-0400", now)
    return export


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    def cell(text: str) -> str:
        return f'"{text}"' if "," in text else text

    path.write_text("".join(",".join(map(cell, row)) + "\n" for row in [header, *rows]))


def expected_shop(export: Export, imported_at: int) -> Shop:
    """The good rows as contract events, built apart from the importer."""
    shop = Shop()
    for customer, traits in export.traits.items():
        value = {"event_id": f"p-{customer}", "customer_id": customer, "ts": imported_at}
        shop.records.append((names.PROFILE_UPDATES, value | {"traits": traits}))
    shop.records += [(names.PURCHASES, value) for value in export.order_values]
    return shop


def report_of(path: Path) -> list[tuple[int, str]]:
    return [(e["line"], e["reason"]) for e in map(orjson.loads, path.read_bytes().splitlines())]


def by_version(change: dict[str, Any]) -> tuple[str, int]:
    return change["customer_id"], change["version"]


def counts(states: dict[str, dict[str, Any]]) -> dict[str, tuple[int, float]]:
    return {c: (s.get("purchase_count", 0), s.get("total_spend", 0.0)) for c, s in states.items()}


async def stored_customers(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {
        customer: codec.loads(raw)
        for customer, raw in (await latest_states(deployment.settings)).items()
    }


@pytest.mark.timeout(600)
async def test_a_crm_export_and_an_order_history_import_once_however_often_they_run(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    export = build_export(seed=16, customers=1500)
    crm, orders, mapping = tmp_path / "crm.csv", tmp_path / "orders.csv", tmp_path / "orders.yaml"
    write_csv(crm, CRM_HEADER, export.crm)
    write_csv(orders, ORDERS_HEADER, export.orders)
    mapping.write_text(ORDERS_MAPPING)
    good_lines = len(export.orders) - len(export.bad_orders)
    customers_args = ["import", str(crm), "--kind", "customers", "--wait"]
    customers_args += [arg for pair in CRM_MAP for arg in ("--map", pair)]
    orders_args = ["import", str(orders), "--mapping", str(mapping), "--wait"]
    await worker.until_ready()

    imported_at = now_ms()
    first_customers = run_segstream(deployment.env, *customers_args, timeout=300)
    first_orders = run_segstream(deployment.env, *orders_args, timeout=300)

    for result in (first_customers, first_orders):
        assert result.returncode == 1, result.stderr
        assert "The worker has applied every imported event." in result.stderr
        assert "@example.test" not in result.stdout + result.stderr
    assert first_customers.stdout.startswith(
        f"{crm}: 1,512 rows read, 1,500 imported (1,500 profile-updates), 12 rejected, in "
    )
    assert first_orders.stdout.startswith(
        f"{orders}: {len(export.orders):,} rows read, {good_lines:,} imported "
        f"({len(export.order_values):,} purchases), {len(export.bad_orders)} rejected, in "
    )
    not_imported = "columns not imported (not fields of customers; --map COLUMN=FIELD maps one)"
    assert f"{crm}: {not_imported}: E-mail" in first_customers.stderr
    # Not on a terminal: progress lines, each tenth of the file, up to 100%.
    progress = [m.groups() for m in map(PROGRESS.match, first_customers.stderr.splitlines()) if m]
    assert len(progress) >= 8
    assert progress[-1] == ("crm.csv", "100")
    assert [int(p) for _, p in progress] == sorted(int(p) for _, p in progress)
    # The report lists exactly the bad rows, with their reasons and the rows as read.
    crm_report = crm.with_name("crm.csv.rejected.jsonl")
    assert report_of(crm_report) == export.bad_crm
    assert report_of(orders.with_name("orders.csv.rejected.jsonl")) == export.bad_orders
    rows = [export.crm[line - 2] for line, _ in export.bad_crm]
    # (without personal data: an erasure could not reach the file)
    assert [orjson.loads(entry)["row"] for entry in crm_report.read_bytes().splitlines()] == [
        without_personal(
            dict(zip(CRM_HEADER, row, strict=True)) if len(row) == len(CRM_HEADER) else row
        )
        for row in rows
    ]

    # The stored customers hold the good rows' traits and orders; the bad rows left no trace.
    stored = await stored_customers(deployment)
    assert {c: s.get("traits") for c, s in stored.items()} == export.traits
    assert counts(stored) == {
        c: (len(totals := export.order_totals.get(c, [])), pytest.approx(sum(totals)))
        for c in export.traits
    }
    # The segment changes are those of the same events from a live producer: consenting
    # customers with an order in the last 365 days among purchased_last_year, the others in no
    # default segment (every one needs consent).
    changes, members = await read_settled(deployment, expected_shop(export, imported_at), 1000)
    recent = {v["customer_id"] for v in export.order_values if v["ts"] > imported_at - 365 * DAY}
    consenting = {c for c, traits in export.traits.items() if traits["email_consent"]}
    assert {c for c, s in members.items() if "purchased_last_year" in s} == recent & consenting
    assert set(members) <= consenting

    # A re-run sends the same events again: nothing changes.
    metrics = WorkerMetrics(deployment.settings.web_port)
    try:
        applied = await metrics.processed()
        second_customers = run_segstream(deployment.env, *customers_args, timeout=300)
        second_orders = run_segstream(deployment.env, *orders_args, timeout=300)
        assert (second_customers.returncode, second_orders.returncode) == (1, 1)
        assert second_customers.stdout.split(", in ")[0] == first_customers.stdout.split(", in ")[0]
        assert second_orders.stdout.split(", in ")[0] == first_orders.stdout.split(", in ")[0]
        await worker.until_processed(metrics, int(applied) + 1500 + len(export.order_values))
    finally:
        await metrics.close()
    assert report_of(crm_report) == export.bad_crm
    again = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, len(changes))
    assert sorted(again, key=by_version) == sorted(changes, key=by_version)
    assert counts(await stored_customers(deployment)) == counts(stored)
