"""CLI commands that need no broker, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from engine.catalog import load_catalog
from segstream.replay import replay

T0 = 1_767_225_600_000


def segstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_segments_validate_accepts_the_shipped_catalog() -> None:
    result = segstream("segments", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"28 segments, OK (digest {load_catalog().digest})")


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
