"""The rows of a file to import: CSV (its first line the header; comma, semicolon or tab
separated) or JSON lines (nested objects flattened to ``a.b`` columns), each with its line
number and what the report shows of it; a row that cannot be read says why."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from config.errors import ConfigError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row as read: its line number, its cells by column (JSON lines: nested objects
    flattened to ``a.b``), what the report shows, and why it is unreadable, if it is."""

    line: int
    cells: dict[str, Any]
    original: Any
    problem: str | None = None


def format_of(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"{path}: cannot tell its format from the extension: give --format csv or jsonl."
        )
    return found


class RowReader:
    """The rows of a CSV (its first line the header; comma, semicolon or tab separated) or
    JSON-lines file; ``position`` is how many bytes of it have been read."""

    def __init__(self, handle: IO[bytes], fmt: str, source: str) -> None:
        self.handle, self.format, self.source = handle, fmt, source
        self.position = 0
        self.header: list[str] | None = None
        self._undecodable = False
        if fmt == "csv":
            self._lines = self._text_lines()
            first = next(self._lines, "")
            delimiter = max(",;\t", key=first.count) if first.strip() else ","
            self._csv = csv.reader(self._lines, delimiter=delimiter)
            self.header = [
                name.strip() for name in next(csv.reader([first], delimiter=delimiter), [])
            ]
            if not self.header:
                raise ConfigError(f"{source}: no header line (a CSV file starts with its columns).")

    def _text_lines(self) -> Iterator[str]:
        for number, raw in enumerate(self.handle):
            self.position += len(raw)
            try:
                yield raw.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError:
                self._undecodable = True
                yield raw.decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[SourceRow]:
        return self._csv_rows() if self.format == "csv" else self._json_rows()

    def _csv_rows(self) -> Iterator[SourceRow]:
        assert self.header is not None
        header = self.header
        while True:
            line = self._csv.line_num + 2  # the header was line 1
            try:
                cells = next(self._csv)
            except StopIteration:
                return
            except csv.Error as exc:
                yield SourceRow(line, {}, None, f"row: not readable as CSV ({exc})")
                continue
            undecodable, self._undecodable = self._undecodable, False
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problem = f"row: {len(cells)} fields where the header has {len(header)}"
                yield SourceRow(line, {}, cells, problem)
                continue
            original = dict(zip(header, cells, strict=True))
            found = {name: cell.strip() for name, cell in original.items() if cell.strip()}
            yield SourceRow(line, found, original, "row: not valid UTF-8" if undecodable else None)

    def _json_rows(self) -> Iterator[SourceRow]:
        for number, raw in enumerate(self.handle, start=1):
            self.position += len(raw)
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                shown = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield SourceRow(number, {}, shown, f"row: not valid UTF-8 JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                yield SourceRow(number, {}, obj, "row: expected a JSON object")
                continue
            yield SourceRow(number, _flattened(obj), obj)


def _flattened(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, dict):
            cells |= _flattened(value, f"{prefix}{name}.")
        elif value is not None and value != "":
            cells[f"{prefix}{name}"] = value.strip() if isinstance(value, str) else value
    return cells
