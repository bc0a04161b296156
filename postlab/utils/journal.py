"""A journal of finished batches: a long loop over deterministic batches appends each result as one JSON line, and
a rerun after an interruption skips the batches already there (``postlab bon``'s sampling and scoring).

What may be continued is the caller's to decide: record what the batches depend on with `write_fingerprint` and
`check_fingerprint` (a journal of other settings is refused rather than mixed in).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from postlab.errors import ConfigError, DataError
from postlab.utils.io import atomic_write_text


def digest(obj) -> str:
    """sha256 of an object's JSON (keys sorted): equal contents, equal digests."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def model_identity(model: str) -> str:
    """A built-in name or hub id as it is; a local directory by the content of its files (so a model
    retrained in place differs, and a moved run directory does not)."""
    path = Path(model)
    if not path.is_dir():
        return model
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return f"directory with content sha256 {h.hexdigest()[:16]}"


def fingerprint_file(journal: Path) -> Path:
    return journal.with_name(journal.name + ".fingerprint.json")


def write_fingerprint(journal: Path, fingerprint: dict) -> None:
    atomic_write_text(fingerprint_file(journal), json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")


def check_fingerprint(journal: Path, fingerprint: dict, *, kind: str = "run's journal",
                      what: str = "the settings") -> None:
    """Refuse to continue ``journal`` unless it was written with this ``fingerprint``."""
    record = fingerprint_file(journal)
    start_over = f"delete {journal} (and {record.name}) to start over, or rerun with the settings it was written with"
    if not record.exists():
        raise ConfigError(f"{journal}: an interrupted {kind} with no record of {what} that wrote it, so it cannot be "
                          f"continued safely; {start_over}")
    recorded = json.loads(record.read_text(encoding="utf-8"))
    differ = [f"{key}: {recorded.get(key)!r} then, {value!r} now" for key, value in fingerprint.items()
              if recorded.get(key) != value]
    if differ:
        raise ConfigError(f"{journal}: was written with other settings ({'; '.join(differ)}); {start_over}")


class BatchJournal:
    """Batch index -> its result, kept in a JSONL file of ``{"batch": b, "result": ...}`` lines.

    Opening keeps the whole lines and cuts a half-written last one (a kill mid-write); `add` appends and flushes,
    so at most the batch being run is lost. A new journal writes nothing (nor its ``fingerprint``) before its
    first batch: a run that fails before it leaves nothing behind."""

    def __init__(self, path: Path, fingerprint: dict | None = None):
        self.path = Path(path)
        self.done: dict[int, Any] = {}
        self._fingerprint = fingerprint
        self._file = None
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").split("\n")[:-1]  # the part after the last "\n" is cut
            for lineno, line in enumerate(lines, 1):
                try:
                    row = json.loads(line)
                    self.done[int(row["batch"])] = row["result"]
                except (ValueError, KeyError, TypeError) as e:
                    raise DataError(f"{self.path}:{lineno}: not a journal line ({e}); delete the file to start "
                                    "over") from None
            self.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    def recorded(self, batch: int, keys: list) -> list | None:
        """The recorded rows of ``batch`` (each row's first element its key), or None when it was not run; a batch
        recorded with other keys is refused (another run's journal)."""
        rows = self.done.get(batch)
        if rows is not None and [row[0] for row in rows] != keys:
            raise DataError(f"{self.path}: batch {batch} holds other rows than this run's (another run's journal?); "
                            "delete it to start over")
        return rows

    def add(self, batch: int, result: Any) -> None:
        if self._file is None:
            if self._fingerprint is not None and not self.path.exists():
                write_fingerprint(self.path, self._fingerprint)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._file.write(json.dumps({"batch": batch, "result": result}, ensure_ascii=False) + "\n")
        self._file.flush()
        self.done[batch] = result

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """The loop finished and its output is written: the journal and its fingerprint go."""
        self.close()
        self.path.unlink(missing_ok=True)
        fingerprint_file(self.path).unlink(missing_ok=True)


def open_journal(path: Path, fingerprint: dict, who: str) -> BatchJournal:
    """The journal at ``path``: an interrupted run's, continued when it was written with this ``fingerprint``
    (else refused), or a new one with the fingerprint recorded beside it. ``who`` names the command in the note."""
    path = Path(path)
    if path.exists():
        check_fingerprint(path, fingerprint)
        print(f"{who}: continuing the interrupted run journalled in {path}", file=sys.stderr)
        return BatchJournal(path)
    return BatchJournal(path, fingerprint)
