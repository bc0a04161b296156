"""JSONL reading with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from postlab.errors import DataError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield ``(line_number, parsed_object)`` for each non-blank line; raise ``DataError`` naming the line.

    A UTF-8 byte-order mark at the start of the file is skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    n = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid UTF-8 at byte {e.start}") from None
            if lineno == 1 and line.startswith("\ufeff"):  # a UTF-8 byte-order mark, as Windows editors write
                line = line[1:]
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            n += 1
            yield lineno, obj
    if n == 0:
        raise DataError(f"{path}: empty file (expected one JSON object per line)")
