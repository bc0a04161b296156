"""Versioned per-user adapters on disk: written whole or not at all, and a ``current`` pointer that only ever
names a version the guardrail accepted (docs/science.md, "Memory").

Layout under the store's root::

    <user>/v1/   adapter_config.json, adapter_model.safetensors, memory.json (training rows and stats),
                 guardrail.json ({"accepted": bool, "base": score, "adapter": score, ...})
    <user>/v2/   ...
    <user>/current   "v2": the version served; absent until a version is accepted

A version is built in a temporary directory beside the others and renamed to ``v<N>`` in one step, under the
user's lock (so two writers never take the same number), then ``current`` is replaced atomically when the
guardrail accepted it. A reader sees the previous state or the new one, never a half-written version; a writer
killed half-way leaves only a ``.tmp-*`` directory, which readers ignore and the next writer removes.
No torch here: the server imports it on every request.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from postlab.errors import DataError
from postlab.science.memory_data import check_user_id
from postlab.utils.io import atomic_write_text, file_lock

VERSION = re.compile(r"v([1-9][0-9]*)")
GUARDRAIL_FILE = "guardrail.json"
POINTER = "current"


@dataclass(frozen=True)
class Version:
    user: str
    number: int
    path: Path

    @property
    def name(self) -> str:
        return f"v{self.number}"

    def guardrail(self) -> dict:
        """The guardrail's record ({} when the version has none)."""
        try:
            return json.loads((self.path / GUARDRAIL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @property
    def accepted(self) -> bool:
        return self.guardrail().get("accepted") is True


class AdapterStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def user_dir(self, user: str) -> Path:
        return self.root / check_user_id(user, "user")

    def users(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, user: str) -> list[Version]:
        """Every complete version of ``user``, oldest first (temporary directories are not versions)."""
        d = self.user_dir(user)
        if not d.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in d.iterdir() if (m := VERSION.fullmatch(p.name)) and p.is_dir()]
        return [Version(user, n, p) for n, p in sorted(found)]

    def current(self, user: str) -> Version | None:
        """The version ``current`` names, if it exists and its guardrail accepted it; else None (the base model)."""
        try:
            name = (self.user_dir(user) / POINTER).read_text(encoding="utf-8").strip()
        except (OSError, DataError):
            return None
        m = VERSION.fullmatch(name)
        if m is None:
            return None
        version = Version(user, int(m.group(1)), self.user_dir(user) / name)
        return version if version.path.is_dir() and version.accepted else None

    def publish(self, user: str, write: Callable[[Path], dict]) -> Version:
        """Build a new version: ``write(tmp)`` fills a temporary directory (the adapter, its records) and returns
        the guardrail's record, which is saved as ``guardrail.json``; then, under the user's lock, the directory
        becomes ``v<N>`` (N one more than the newest) and, when the record says ``accepted``, ``current`` names it.
        An exception in ``write`` leaves the store as it was."""
        d = self.user_dir(user)
        d.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=d, prefix=".tmp-"))
        try:
            (tmp / ".writer").write_text(str(os.getpid()))
            record = write(tmp)
            atomic_write_text(tmp / GUARDRAIL_FILE, json.dumps(record, indent=2) + "\n")
            with file_lock(d / ".lock", wait=True):
                self._clean(d, keep=tmp)
                number = max((v.number for v in self.versions(user)), default=0) + 1
                final = d / f"v{number}"
                os.rename(tmp, final)
                (final / ".writer").unlink()
                if record.get("accepted") is True:
                    atomic_write_text(d / POINTER, f"v{number}\n")
            return Version(user, number, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _clean(d: Path, keep: Path) -> None:
        """Temporary directories of writers that died (only under the lock, so no live writer is renaming one)."""
        for p in d.glob(".tmp-*"):
            if p != keep and p.is_dir() and not _owner_alive(p):
                shutil.rmtree(p, ignore_errors=True)


def _owner_alive(tmp: Path, grace: float = 60.0) -> bool:
    """Whether the writer of a temporary directory may still be at work: its ``.writer`` mark names a live
    process, or (no mark yet: it was just created) it is younger than ``grace`` seconds."""
    mark = tmp / ".writer"
    try:
        pid = int(mark.read_text())
    except (OSError, ValueError):
        try:
            return time.time() - tmp.stat().st_mtime < grace
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
