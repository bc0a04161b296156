"""Per-user memory adapters in the server (``postlab serve --memory DIR``; docs/science.md, "Memory").

A request whose OpenAI ``user`` field names a user with a ``current`` adapter in the store
(postlab/science/memory_store.py) is decoded by that user's own engine: a copy of the base model with the adapter
merged into its weights, behind a batcher of its own. Rows of different users therefore never share a forward
pass, and no request sees another user's adapter. Requests without a ``user``, or whose user has no accepted
adapter (or an id that cannot name one), go to the base model's batcher exactly as without ``--memory``.

The store is read on every such request: when ``current`` names a new version, the next request loads it (the
old engine finishes the rows it has, then stops), so a new adapter needs no restart. At most ``max_loaded``
users' engines are kept (least recently used first out); each costs one copy of the model's weights.
Routing runs in one thread (off the event loop): a request that loads an adapter delays the routing of other
users' requests by the load (about a second for a 135M model), never the base model's.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from postlab.science.memory_data import USER_ID
from postlab.science.memory_store import AdapterStore, Version

log = logging.getLogger("postlab.serve")


class AdapterPool:
    def __init__(self, store: str, base_engine, *, make_batcher: Callable, max_loaded: int = 4):
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be >= 1, got {max_loaded}")
        self.store = AdapterStore(store)
        self.base_engine = base_engine
        self.make_batcher = make_batcher  # engine -> a started Batcher
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, tuple[int, object]] = OrderedDict()  # user -> (version, batcher)
        self._lock = threading.Lock()
        self.loads = 0  # adapters loaded so far

    def submit(self, user: str, request) -> str | None:
        """Queue ``request`` on ``user``'s adapter engine and return ``"<user>/v<N>"``; None when the user has no
        accepted adapter (the caller sends it to the base model). Routing and queueing happen under one lock,
        so a request is never queued on an engine that is being retired."""
        if not USER_ID.fullmatch(user):
            return None
        version = self.store.current(user)
        with self._lock:
            entry = self._loaded.get(user)
            if version is None:
                if entry is not None:  # the adapter was withdrawn
                    self._retire(self._loaded.pop(user)[1])
                return None
            if entry is None or entry[0] != version.number:
                batcher = self._load(version)
                if entry is not None:
                    self._retire(entry[1])
                self._loaded[user] = entry = (version.number, batcher)
                while len(self._loaded) > self.max_loaded:
                    self._retire(self._loaded.popitem(last=False)[1][1])
            self._loaded.move_to_end(user)
            entry[1].submit(request)
            return f"{user}/v{entry[0]}"

    def loaded(self) -> dict[str, int]:
        with self._lock:
            return {u: v for u, (v, _) in self._loaded.items()}

    def _load(self, version: Version):
        from postlab.rollout import TorchEngine
        from postlab.science.memory import with_adapter
        from postlab.utils.threads import in_passing_thread

        base = self.base_engine
        model = in_passing_thread(lambda: with_adapter(base.model, version.path))  # see in_passing_thread
        engine = TorchEngine(model=model, tokenizer=copy.deepcopy(base.tokenizer),
                             stop_token_ids=base.stop_ids.tolist(), fast_decode=base.fast_decode,
                             decode_dtype=base.decode_dtype,
                             # the base's measured choice; an adapter's engine does not compile a step of its own
                             single_row=layout if (layout := base.choose_single_row()["layout"]) != "compiled"
                             else "packed")
        self.loads += 1
        log.info("loaded memory adapter %s/%s", version.user, version.name)
        return self.make_batcher(engine)

    @staticmethod
    def _retire(batcher) -> None:
        """Stop a batcher once the rows already queued on it are answered (in a thread: that can take a while)."""
        threading.Thread(target=batcher.stop, name="postlab-retire", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            batchers = [b for _, b in self._loaded.values()]
            self._loaded.clear()
        for b in batchers:
            b.stop()
