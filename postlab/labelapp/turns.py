"""A first-come, first-served lock with a bounded wait, for the writers of one SQLite store.

SQLite lets one writer in at a time and makes the others poll with growing sleeps (its busy handler),
so among many writers in one process a newcomer often wins the lock while an old waiter sleeps: with
20 raters on a 2-core machine one request lost every race for its whole timeout. Writers of one process
queue here instead, in arrival order, and only the head of the queue meets SQLite's lock (which then
guards against other processes only).
"""

from __future__ import annotations

import threading
from collections import deque


class TurnLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Wait for this caller's turn, at most ``timeout`` seconds; False if it did not come."""
        with self._mutex:
            if not self._held and not self._waiting:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out: it is ours
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter (it stays held), or free it."""
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False
