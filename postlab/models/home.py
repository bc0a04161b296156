"""Where postlab caches models and downloads: ``$POSTLAB_HOME`` (default ``~/.cache/postlab``).

Several postlab processes may share one home. Each cache entry (a model directory, a download) is
built under its own lock (``.lock-<name>``, an ``flock`` the kernel releases when its process dies), and
the leftovers of interrupted builds (``.tmp-<name>-*``, ``.old-<name>-*`` from ``postlab.utils.io``)
are removed only when nobody holds their entry's lock: a build in progress is never pulled from under
the process doing it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from postlab.utils.io import file_lock

LEFTOVER_PREFIXES = (".tmp-", ".old-")


def postlab_home() -> Path:
    return Path(os.environ.get("POSTLAB_HOME", "~/.cache/postlab")).expanduser()


def models_dir() -> Path:
    return postlab_home() / "models"


def downloads_dir() -> Path:
    return postlab_home() / "downloads"


@contextlib.contextmanager
def _flock(parent: Path, name: str, *, wait: bool) -> Iterator[bool]:
    parent.mkdir(parents=True, exist_ok=True)
    with file_lock(parent / f".lock-{name}", wait=wait) as taken:
        yield taken


@contextlib.contextmanager
def entry_lock(parent: Path, name: str) -> Iterator[None]:
    """Hold the lock of cache entry ``parent/name``, waiting while another process builds it."""
    with _flock(Path(parent), name, wait=True):
        yield


def _entry_of(leftover: str) -> str:
    """``.tmp-smollm2-135m-instruct-k3x_9a2b`` -> ``smollm2-135m-instruct`` (mkdtemp's suffix has no '-';
    ``.old-`` names end in a pid)."""
    return leftover[len(LEFTOVER_PREFIXES[0]):].rsplit("-", 1)[0]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_orphans(parent: Path, *, held: str | None = None) -> list[str]:
    """Remove leftovers of interrupted builds in ``parent`` whose entry nobody is building: ``held``'s
    (the caller holds its lock), and any other whose lock is free. Returns the names removed."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    removed = []
    for path in sorted(parent.iterdir()):
        if not path.name.startswith(LEFTOVER_PREFIXES):
            continue
        entry = _entry_of(path.name)
        if entry == held:
            _remove(path)
            removed.append(path.name)
            continue
        with _flock(parent, entry, wait=False) as free:
            if free:
                _remove(path)
                removed.append(path.name)
    return removed
