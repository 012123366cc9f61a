"""The `segstream` command: the worker, the local stack, the demo and tools around them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar

import click

from config import Settings, load_settings, names
from config.errors import SegstreamError
from segstream.cli.display import format_change, format_trigger
from streams.timestamps import wall_clock_ms

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from streams.kafka_clients import Reading

T = TypeVar("T")


def _settings() -> Settings:
    return load_settings()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SegstreamError into one sentence on stderr and exit status 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SegstreamError as exc:
            click.secho(f"segstream: {exc}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def _refuse(message: str, status: int) -> NoReturn:
    """End the command with one sentence on stderr, the way friendly_errors does."""
    click.secho(f"segstream: {message}", fg="red", err=True)
    sys.exit(status)


def _show_topic_reading(reading: Reading) -> None:
    click.echo(f"\rReading the input topics: {reading.records:,} records", nl=False, err=True)


def _duration_ms(text: str, option: str) -> int:
    """A duration option (30d, 12h), read as the catalog reads durations."""
    from engine.conditions.form import Where, duration_ms

    return duration_ms(text, Where(option, None))  # a bad one: friendly_errors says why


def _show_table_reading(reading: Reading, customers: int) -> None:
    click.echo(
        f"\rReading the customers table: {reading.fraction:.0%} "
        f"({reading.records} records, {customers} customers)",
        nl=False,
        err=True,
    )


@contextlib.contextmanager
def _reading_bar(handle: BinaryIO, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr over how much of ``handle`` has been read; hidden unless
    stderr is a terminal (a log gets no bar) and the handle a file of known size."""
    import os

    size = os.fstat(handle.fileno()).st_size
    bar: ProgressBar[int] = click.progressbar(
        length=size,
        label=label,
        file=sys.stderr,
        hidden=not (size and sys.stderr.isatty()),
        item_show_func=lambda records: f"{records:,} records" if records else None,
    )
    with bar:

        def show(records: int) -> None:
            bar.update(handle.tell() - bar.pos, records)

        yield show
        bar.update(size - bar.pos)


@click.group()
def main() -> None:
    """segstream: real-time customer segmentation on Kafka and Faust."""


@main.command()
@friendly_errors
def worker() -> None:
    """Run the Faust worker (creates the topics it needs first)."""
    from segstream.worker import run_worker

    run_worker()


@main.group()
def stack() -> None:
    """The local Kafka and Redis (for development, tests and the demo)."""


@stack.command("start")
@friendly_errors
def stack_start() -> None:
    """Start Kafka and Redis unless they run already."""
    from segstream.stack import LocalStack

    local = LocalStack.from_settings(_settings())
    started = _run(local.start())
    for name, fresh in started.items():
        click.echo(f"{name}: {'started' if fresh else 'already running'}")


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def stack_status(as_json: bool) -> None:
    """Show whether Kafka and Redis run and answer; exit 1 if either does not."""
    from segstream.stack import LocalStack
    from streams import codec

    status = _run(LocalStack.from_settings(_settings()).status())
    if as_json:
        click.echo(codec.dumps(status).decode())
    else:
        for name, info in status.items():
            state = "ready" if info["ready"] else ("starting" if info["pid"] else "stopped")
            click.echo(
                f"{name:6} {state:8} {info['address']:28} pid={info['pid']}  log={info['log']}"
            )
    sys.exit(0 if all(info["ready"] for info in status.values()) else 1)


@stack.command("stop")
@friendly_errors
def stack_stop() -> None:
    """Stop Kafka and Redis if they run."""
    from segstream.stack import LocalStack

    stopped = LocalStack.from_settings(_settings()).stop()
    for name, was_running in stopped.items():
        click.echo(f"{name}: {'stopped' if was_running else 'was not running'}")


@main.command()
@click.option("--customers", default=50, show_default=True, help="How many customers the shop has.")
@click.option(
    "--rate", default=20.0, show_default=True, help="Events per second (0: as fast as possible)."
)
@click.option("--count", default=1000, show_default=True, help="How many events to send.")
@click.option("--seed", default=7, show_default=True, help="Random seed.")
@click.option(
    "--run-id", help="Names this run's event ids (default: a new one, so no run repeats another)."
)
@friendly_errors
def simulate(customers: int, rate: float, count: int, seed: int, run_id: str | None) -> None:
    """Send a synthetic shop's events to the input topics."""
    from segstream.offline.simulator import SyntheticShop, new_run_id
    from streams.kafka_clients import send_records

    shop = SyntheticShop(
        customers=customers, seed=seed, run_id=run_id or new_run_id(), clock=wall_clock_ms
    )
    sent = _run(send_records(_settings(), shop.events(count), rate or None))
    click.echo(f"sent {sent} events")


@main.command()
@click.option("--segment", help="Only changes of this segment.")
@click.option("--customer", help="Only changes of this customer.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest retained change.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@friendly_errors
def tail(segment: str | None, customer: str | None, from_beginning: bool, as_json: bool) -> None:
    """Follow segment changes as they are published."""
    from engine.definitions import Live
    from streams import codec
    from streams.definitions import read_records
    from streams.kafka_clients import follow

    settings = _settings()
    if segment:
        definitions, _ = Live().after(_run(read_records(settings)))
        if segment not in definitions.definitions:
            _refuse(
                f"no segment {segment!r} among the live definitions "
                f"(known: {', '.join(sorted(definitions.definitions))}).",
                2,
            )

    async def _tail() -> None:
        async for change in follow(settings, names.SEGMENT_CHANGES, from_beginning=from_beginning):
            if segment and change["segment"] != segment:
                continue
            if customer and change["customer_id"] != customer:
                continue
            click.echo(codec.dumps(change).decode() if as_json else format_change(change))

    with contextlib.suppress(KeyboardInterrupt):
        _run(_tail())


@main.command()
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--segments", "segments_file", help="Catalog file (default: the configured one).")
@click.option("--until", help="Let time run on to this moment: RFC 3339, epoch ms or 'now'.")
@click.option("--from-kafka", is_flag=True, help="Replay the input topics' history from Kafka.")
@click.option("--since", help="With --from-kafka: records of the last DURATION (30d, 12h).")
@click.option("--by-day", is_flag=True, help="Per segment and day: enters, exits, size.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with everything.")
@friendly_errors
def replay(
    events_file: str | None,
    segments_file: str | None,
    until: str | None,
    from_kafka: bool,
    since: str | None,
    by_day: bool,
    as_json: bool,
) -> None:
    """Run an event history (JSON lines, or the input topics with --from-kafka) through the
    engine offline; print every transition and the final membership (or, with --by-day,
    each segment's enters, exits and size per day)."""
    from engine.catalog import catalog_for
    from segstream.gc_policy import collecting_less
    from segstream.offline.replay import replay as run_replay
    from streams import codec
    from streams.timestamps import parse_ts

    if (events_file is None) == (not from_kafka):
        _refuse("give an EVENTS_FILE or --from-kafka (one of them).", 2)
    if since is not None and not from_kafka:
        _refuse("--since reads the history from Kafka: add --from-kafka.", 2)
    settings = _settings()
    catalog = catalog_for(segments_file or settings.segments_file, settings.cart_quiet_minutes)
    end = None
    if until is not None:
        end = (
            wall_clock_ms()
            if until == "now"
            else parse_ts(int(until) if until.isdigit() else until, "--until")
        )
    if events_file is not None:
        with (
            open(events_file, "rb") as lines,
            _reading_bar(lines, f"Replaying {events_file}") as bar,
            collecting_less(),
        ):
            result = run_replay(lines, catalog, end, bar)
    else:
        from segstream.offline.history import kafka_history
        from segstream.offline.replay import replay_records

        since_ms = None if since is None else wall_clock_ms() - _duration_ms(since, "--since")
        history = _run(kafka_history(settings, since_ms, _show_topic_reading))
        click.echo(f"\rRead {len(history):,} records from the input topics.", err=True)
        with collecting_less():
            result = replay_records(history, catalog, end)
    if by_day:
        from segstream.offline.history import by_day as daily

        report = daily(result.changes)
        if as_json:
            click.echo(codec.dumps({"events": result.events, "segments": report}).decode())
            return
        for segment, rows in report.items():
            click.echo(segment)
            for row in rows:
                click.echo(
                    f"  {row['day']}  +{row['enters']:<6} -{row['exits']:<6} size {row['size']}"
                )
        return
    if as_json:
        click.echo(codec.dumps(result.to_dict()).decode())
        return
    for change in result.changes:
        click.echo(format_change(change.to_dict()))
    for trigger in result.triggers:
        click.echo(format_trigger(trigger.to_dict()))
    for item in result.rejected:
        click.echo(f"line {item.line} rejected: {item.reason}", err=True)
    for late in result.late:
        click.echo(f"line {late.line} partly too late: {late.reason}", err=True)
    click.echo(
        f"\n{result.events} events, {len(result.changes)} changes, "
        f"{len(result.triggers)} triggers, {len(result.rejected)} rejected, "
        f"{len(result.late)} partly too late. Final membership:"
    )
    for segment, members in result.membership().items():
        shown = ", ".join(members[:5]) + (", ..." if len(members) > 5 else "")
        click.echo(f"  {segment:<28} {len(members):>6}  {shown}")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", help="What the rows are: customers, orders or events.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension.")
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file: {kind, columns: {COLUMN: FIELD}, defaults: {FIELD: VALUE}}.",
)
@click.option("--map", "columns", multiple=True, metavar="COLUMN=FIELD", help="Column to field.")
@click.option(
    "--default", "defaults", multiple=True, metavar="FIELD=VALUE", help="For rows without it."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rejected rows (default: FILE.rejected.jsonl).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and write the report; send nothing.")
@click.option("--wait", is_flag=True, help="Return once the worker has applied every event.")
@friendly_errors
def import_file(file: Path, **options: Any) -> None:
    """Import customers or orders (a CRM export, an order history) from CSV or JSON lines;
    exit 1 if some rows were rejected."""
    from segstream.cli.importing import run_import

    sys.exit(run_import(_settings(), file, **options))


@main.group()
def segments() -> None:
    """The segment catalog."""


@segments.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@friendly_errors
def segments_validate(file: str | None) -> None:
    """Check a catalog file without starting anything (default: the configured one)."""
    from engine.catalog import catalog_for

    settings = _settings()
    catalog = catalog_for(file or settings.segments_file, settings.cart_quiet_minutes)
    click.echo(
        f"{catalog.source}: {len(catalog.segments)} segments, OK (digest {catalog.digest} "
        f"with a cart quiet period of {settings.cart_quiet_minutes} minutes)"
    )


@segments.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show the difference only; publish nothing.")
@click.option("--by", help="Who makes the change, kept in the history (default: $USER).")
@friendly_errors
def segments_apply(file: str, dry_run: bool, by: str | None) -> None:
    """Check a catalog file, show how it differs from the live definitions and publish it:
    every worker runs it within seconds, without a restart."""
    import getpass

    from engine.catalog import catalog_for
    from engine.definitions import Live, plan, records_for
    from segstream.cli.display import format_plan
    from streams.definitions import publish, read_records

    settings = _settings()
    wanted = catalog_for(file, settings.cart_quiet_minutes)  # a bad file stops here
    bodies = {segment.name: segment.body for segment in wanted.segments}
    live, _ = Live().after(_run(read_records(settings)))
    change = plan(live, bodies, wanted.traits, bucket_salt=wanted.bucket_salt)
    if change.empty:
        click.echo(f"The live definitions are {wanted.source}'s already: nothing to publish.")
        return
    for line in format_plan(change, live, bodies):
        click.echo(line)
    if dry_run:
        click.echo("Dry run: nothing published.")
        return
    author = by or getpass.getuser()
    records = records_for(
        live, change, bodies, wanted.traits, author, wall_clock_ms(), wanted.bucket_salt
    )
    _run(publish(settings, records))
    click.echo(
        f"Published {len(change.added) + len(change.changed) + len(change.removed)} segment "
        f"change(s) from {wanted.source}; every worker applies them within seconds."
    )


@segments.command("list")
@click.option("--live", is_flag=True, help="The live definitions (with versions), not the file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def segments_list(live: bool, as_json: bool) -> None:
    """The configured segments (or, with --live, those the workers run) and their metadata."""
    from engine.catalog import catalog_for
    from engine.definitions import Live
    from streams import codec
    from streams.definitions import read_records

    settings = _settings()
    quiet_minutes = settings.cart_quiet_minutes
    if live:
        definitions, _ = Live().after(_run(read_records(settings)))
        catalog = definitions.catalog(quiet_minutes * 60_000)
        versions = {
            name: {"version": d.version, "changed_at": d.changed_at, "changed_by": d.changed_by}
            for name, d in definitions.definitions.items()
        }
    else:
        catalog, versions = catalog_for(settings.segments_file, quiet_minutes), {}
    described = [{**s.describe(), **versions.get(s.name, {})} for s in catalog.segments]
    if as_json:
        click.echo(codec.dumps(described).decode())
        return
    for item in described:
        consent = "consent" if item["consent_required"] else "any"
        version = f"v{item['version']:<4}" if "version" in item else ""
        click.echo(f"{item['name']:<28} {version}{consent:<8} {item['description']}")


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask before flushing the store.")
@friendly_errors
def rebuild(yes: bool) -> None:
    """Rebuild the Redis membership store from Kafka (the customers table's changelog)."""
    from serving.rebuild import rebuild as run_rebuild

    settings = _settings()
    if not yes:
        click.confirm(
            f"Replace the memberships under '{settings.redis_prefix}' in Redis with Kafka's?",
            abort=True,
        )

    customers = _run(run_rebuild(settings, _show_table_reading))
    click.echo("", err=True)
    click.echo(f"rebuilt the store from {customers} stored customers")


@main.group()
def customer() -> None:
    """One customer, as the serving store sees them."""


@customer.command("show")
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def customer_show(customer_id: str, as_json: bool) -> None:
    """The customer's segments and the version of their last change; exit 1 for a customer
    the store has never seen change."""
    from serving.redis_store import RedisStore
    from streams import codec

    async def look() -> dict[str, Any]:
        store = RedisStore.connect(_settings())
        try:
            return {
                "customer_id": customer_id,
                "segments": await store.segments_of(customer_id),
                "version": await store.version_of(customer_id),
            }
        finally:
            await store.close()

    found = _run(look())
    if not found["version"] and not found["segments"]:
        # A customer with no segments now still has the version of their last exit.
        _refuse(
            f"no such customer {customer_id!r} in the serving store: it holds no segment change "
            "of theirs (a customer without email consent is in no default segment; "
            "GET /v1/customers/ID on a worker shows every stored customer).",
            1,
        )
    if as_json:
        click.echo(codec.dumps(found).decode())
    else:
        click.echo(f"{customer_id}  version {found['version']}")
        for segment in found["segments"]:
            click.echo(f"  {segment}")


@customer.command("explain")
@click.argument("customer_id")
@click.argument("segment", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def customer_explain(customer_id: str, segment: str | None, as_json: bool) -> None:
    """Why the customer is or is not in SEGMENT (without it: in each segment they are in),
    asked of a running worker's API (SEGSTREAM_WEB_HOST, SEGSTREAM_WEB_PORT, its token)."""
    from urllib.parse import quote

    import aiohttp

    from segstream.cli.display import format_explanation
    from streams import codec

    settings = _settings()
    path = f"/v1/customers/{quote(customer_id, safe='')}/explain"
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    token = settings.api_token.get_secret_value() if settings.api_token else None

    async def ask() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = {"segment": segment} if segment else {}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url, headers=headers, params=params) as answer,
        ):
            text = await answer.text()
            try:
                return answer.status, codec.loads(text)
            except ValueError:  # not segstream's answer (a proxy's page, say)
                return answer.status, {"error": text[:200]}

    try:
        status, body = _run(ask())
    except aiohttp.ClientError as exc:
        _refuse(f"no worker answered at {url} ({exc}): start one with segstream worker.", 2)
    if status != 200:
        error = body.get("error", body) if isinstance(body, dict) else body
        _refuse(f"the worker answered {status}: {error}", 1)
    if as_json:
        click.echo(codec.dumps(body).decode())
        return
    if not body["segments"]:
        click.echo(f"{customer_id} is in no segment now.")
    for explained in body["segments"]:
        click.echo("\n".join(format_explanation(explained)))


@main.command()
@click.option("--customers", default=20_000, show_default=True, help="Customers to build.")
@click.option("--events-per-customer", default=10, show_default=True, help="Events each.")
@friendly_errors
def footprint(customers: int, events_per_customer: int) -> None:
    """Measure the memory one customer's state costs (synthetic shop, default catalog)."""
    from engine.catalog import catalog_for
    from segstream.offline.footprint import measure

    settings = _settings()
    result = measure(
        catalog_for(settings.segments_file, settings.cart_quiet_minutes),
        customers,
        events_per_customer,
    )
    click.echo(
        f"{result.customers} customers, {result.events} events: "
        f"{result.bytes_per_customer:.0f} bytes of table value per customer in memory, "
        f"{result.changelog_bytes_per_customer:.0f} bytes per changelog record"
    )


@segments.command("preview")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def segments_preview(file: str, as_json: bool) -> None:
    """How many stored customers each segment of a draft catalog would hold right now."""
    from engine.catalog import catalog_for
    from serving.preview import preview
    from streams import codec

    settings = _settings()
    draft = catalog_for(file, settings.cart_quiet_minutes)

    result = _run(preview(settings, draft, None if as_json else _show_table_reading))
    if as_json:
        counts = {name: len(result.members.get(name, [])) for name in draft.names()}
        click.echo(codec.dumps({"customers": result.customers, "segments": counts}).decode())
        return
    click.echo(f"\n{result.customers} stored customers; with {draft.source}:", err=True)
    for name in draft.names():
        members = sorted(result.members.get(name, []))
        sample = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
        click.echo(f"  {name:<28} {len(members):>7}  {sample}")


@main.command()
@click.argument("segment")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--audience",
    "campaign",
    metavar="CAMPAIGN",
    help="Only members who may be mailed now for this campaign ('' for any campaign).",
)
@friendly_errors
def export(segment: str, file: Path, campaign: str | None) -> None:
    """Write SEGMENT's members (or its audience) to FILE as CSV, from a running worker."""
    from segstream.cli.exporting import run_export

    written = _run(run_export(_settings(), segment, file, campaign))
    what = "members" if campaign is None else "members who may be mailed now"
    click.echo(f"Exported {written:,} {what} of {segment} to {file}.")


@main.command()
@click.argument("customer_id")
@friendly_errors
def erase(customer_id: str) -> None:
    """Forget a customer: exit every segment, then delete their state."""
    from streams.kafka_clients import send_records
    from streams.records import Record

    request = Record(
        names.CUSTOMER_ERASURES, customer_id, {"customer_id": customer_id, "ts": wall_clock_ms()}
    )
    _run(send_records(_settings(), [request]))
    click.echo("erasure requested")


@main.command()
@click.option("--customers", default=30, show_default=True, help="How many customers the shop has.")
@click.option("--rate", default=10.0, show_default=True, help="Events per second.")
@click.option(
    "--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C)."
)
@friendly_errors
def demo(customers: int, rate: float, duration: float | None) -> None:
    """Start the stack and the worker, feed a synthetic shop, show segment changes and
    triggers live; Ctrl-C, SIGTERM or a closed terminal stop everything it started."""
    from segstream.cli.demo import run_demo

    sys.exit(_run(run_demo(_settings(), customers, rate, duration)))


@main.command()
@click.option("--customers", default=100_000, show_default=True, help="Customers in the workload.")
@click.option("--events", default=300_000, show_default=True, help="Events in the workload.")
@click.option("--seed", default=42, show_default=True, help="Workload seed.")
@click.option(
    "--only",
    help="Comma-separated parts to run "
    "(raw, faust_bare, faust_tuned, naive, quix, segstream, ingest, backtest, serving).",
)
@click.option("--latency-seconds", default=30.0, show_default=True, help="Per load level.")
@click.option(
    "--memory-customers",
    default="100000,1000000",
    show_default=True,
    help="Changelog sizes to restore for recovery and memory ('' skips).",
)
@click.option(
    "--stores", default="memory://,rocksdb://", show_default=True, help="Table stores to measure."
)
@click.option("--smoke", is_flag=True, help="A tiny run that proves the harness works.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report here.")
@friendly_errors
def bench(
    customers: int,
    events: int,
    seed: int,
    only: str | None,
    latency_seconds: float,
    memory_customers: str,
    stores: str,
    smoke: bool,
    json_path: str | None,
) -> None:
    """Measure segstream against the raw-Kafka floor and Faust peers, in one run."""
    from pathlib import Path

    from segstream.bench.harness import BenchConfig, run_bench
    from segstream.bench.report import table
    from streams import codec

    def split(text: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in text.split(",") if item.strip())

    settings = _settings()
    workdir = settings.data_dir.parent / "bench"
    config = (
        BenchConfig.smoke(workdir)
        if smoke
        else BenchConfig(
            customers=customers,
            events=events,
            seed=seed,
            latency_seconds=latency_seconds,
            memory_customers=tuple(int(n) for n in split(memory_customers)),
            stores=split(stores),
            workdir=workdir,
        )
    )
    if only:
        config = replace(config, contenders=split(only))
    report = _run(run_bench(settings, config, lambda line: click.echo(line, err=True)))
    path = Path(json_path) if json_path else workdir / report["setup"]["run_id"] / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codec.dumps(report, option=codec.INDENT))
    click.echo(table(report))
    click.echo(f"\nReport: {path}")
