"""CLI commands that need no broker, run as a user runs them."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import click
import orjson

from engine.catalog import load_catalog
from segstream.offline.replay import PROGRESS_EVERY, replay
from segstream.stack.process import free_port
from tests.unit.terminal import read_until_closed

T0 = 1_767_225_600_000


def user_env(env: dict[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    return base | (env or {})


def segstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args],
        env=user_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_segments_validate_accepts_the_shipped_catalog() -> None:
    result = segstream("segments", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        f"33 segments, OK (digest {load_catalog().digest} with a cart quiet period of 60 minutes)"
    )


def test_segments_validate_names_file_segment_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "segments:\n  vip:\n    description: VIPs\n"
        "    when: {count: {of: orders, within: 36h, min: 3}}\n"
    )
    result = segstream("segments", "validate", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"segstream: {bad}: segment 'vip', field 'when.count.within': "
        "windows count whole days: use d or w."
    )


def test_segments_list_shows_every_segment_as_json() -> None:
    result = segstream("segments", "list", "--json")
    listed = orjson.loads(result.stdout)
    assert [item["name"] for item in listed] == load_catalog().names()
    assert {item["consent_required"] for item in listed} == {True}


def test_replay_prints_what_the_engine_computes(tmp_path: Path) -> None:
    lines = []
    for n, customer in enumerate(["c1", "c2", "c1"]):
        value = {
            "event_id": f"e{n}",
            "customer_id": customer,
            "ts": T0 + n * 1000,
            "order_id": f"o{n}",
            "total": 20.0,
            "currency": "EUR",
            "items": [{"sku": "s", "category": "shoes", "quantity": 1, "unit_price": 20.0}],
        }
        consent = {
            "event_id": f"p{n}",
            "customer_id": customer,
            "ts": T0 - 1000,
            "traits": {"email_consent": True},
        }
        lines.append(orjson.dumps({"topic": "profile-updates", "key": customer, "value": consent}))
        lines.append(orjson.dumps({"topic": "purchases", "key": customer, "value": value}))
    lines.append(b'{"topic": "purchases", "key": "c3", "value": {"customer_id": "c3"}}')
    history = tmp_path / "history.jsonl"
    history.write_bytes(b"\n".join(lines) + b"\n")

    result = segstream("replay", str(history), "--json")

    assert result.returncode == 0, result.stderr
    output = orjson.loads(result.stdout)
    expected = replay(history.read_bytes().splitlines(), load_catalog()).to_dict()
    assert output == expected
    assert output["membership"]["repeat_buyers"] == ["c1"]
    assert output["membership"]["first_time_buyers"] == ["c2"]
    assert output["rejected"] == [{"line": 7, "reason": "event_id: missing"}]


def write_history(path: Path, customers: int, purchases: int) -> Path:
    """Consent, then ``purchases`` purchases a second apart, spread over ``customers``."""
    records = [
        {
            "topic": "profile-updates",
            "key": f"c{n}",
            "value": {
                "event_id": f"p{n}",
                "customer_id": f"c{n}",
                "ts": T0 - 1000,
                "traits": {"email_consent": True},
            },
        }
        for n in range(customers)
    ]
    for n in range(purchases):
        customer = f"c{n % customers}"
        item = {"sku": "s", "category": "shoes", "quantity": 1, "unit_price": 20.0}
        value = {"event_id": f"e{n}", "customer_id": customer, "ts": T0 + n * 1000}
        value |= {"order_id": f"o{n}", "total": 20.0, "currency": "EUR", "items": [item]}
        records.append({"topic": "purchases", "key": customer, "value": value})
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def test_replay_text_shows_dates_and_stays_quiet_off_a_terminal(tmp_path: Path) -> None:
    result = segstream("replay", str(write_history(tmp_path / "h.jsonl", 2, 3)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = click.unstyle(result.stdout).splitlines()
    assert (
        lines[0]
        == "2025-12-31 23:59:59  c0         → enter  never_purchased              v1    (p0)"
    )
    assert (
        "2026-01-01 00:00:00  c0         → enter  first_time_buyers            v6    (e0)" in lines
    )


def test_replay_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    history = write_history(tmp_path / "h.jsonl", 50, 2 * PROGRESS_EVERY)
    leader, follower = pty.openpty()
    with (tmp_path / "out.txt").open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "segstream", "replay", str(history)],
            env=user_env(),
            stdout=out,
            stderr=follower,
        )
    os.close(follower)
    shown = read_until_closed(leader)
    assert process.wait(timeout=60) == 0
    frames = [frame.strip() for frame in shown.decode().split("\r") if "Replaying" in frame]
    assert len(frames) >= 2
    assert "4,000 records" in frames[-2]
    assert "100%" in frames[-1]


def test_tail_of_a_segment_without_kafka_says_kafka_cannot_be_reached() -> None:
    # The segment is checked against the live definitions, on Kafka: no broker runs here.
    unused = f"127.0.0.1:{free_port()}"
    result = segstream("tail", "--segment", "no_such", env={"SEGSTREAM_KAFKA_BOOTSTRAP": unused})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"segstream: Cannot reach Kafka at {unused} (SEGSTREAM_KAFKA_BOOTSTRAP)")
    )
