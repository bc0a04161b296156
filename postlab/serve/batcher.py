"""Batching: requests that overlap in time are decoded together by the rollout engine.

One worker thread owns the engine. Each request sends its text deltas to its own sink as tokens are
drawn, and a row whose stop string appeared or whose client went away is ended at the next step.

- **Continuous** (the default, on engines with ``supports_sessions()``): the worker keeps one
  ``DecodeSession``; before every decode step it lets waiting requests join (they are prefilled, then
  decode with the others) and drops rows whose client went away. Rows that finish leave at once, so a
  request never waits for the batch it arrived during.
- **Dynamic** (``continuous=False``, or an engine without sessions): the worker takes everything
  waiting (up to ``max_batch``), runs it as one ``generate_ids`` call with per-row sampling params, and
  only then looks at the queue again.

``max_batch=1`` turns batching off (one request at a time, through ``generate_ids``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from postlab.rollout import SamplingParams
from postlab.serve.stream import TextAssembler

log = logging.getLogger("postlab.serve")


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    text: str  # the whole response (stop string excluded)
    finish_reason: str  # "stop" (EOS or a stop string) | "length"
    prompt_tokens: int
    completion_tokens: int  # tokens generated, including EOS and any cut off by a stop string


@dataclass(frozen=True)
class Failed:
    message: str


Event = Delta | Finished | Failed


@dataclass
class GenerationRequest:
    """One chat completion to generate. ``sink`` receives events from the worker thread and must be
    thread-safe (the server passes ``loop.call_soon_threadsafe`` onto an asyncio queue)."""

    prompt_ids: list[int]
    params: SamplingParams
    stops: list[str]
    sink: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None


@dataclass
class BatchStats:
    """Hooks for metrics: called from the worker thread."""
    on_waiting: Callable[[int], None] = lambda n: None
    on_running: Callable[[int], None] = lambda n: None
    on_batch: Callable[[int], None] = lambda size: None
    on_first_token: Callable[[GenerationRequest], None] = lambda req: None
    on_step: Callable[[int], None] = lambda steps: None  # continuous: after each decode step (steps run so far)


@dataclass
class _Row:
    """A request decoding in the continuous session."""
    request: GenerationRequest
    text: TextAssembler
    tokens: int = 0  # drawn so far


class Batcher:
    def __init__(self, engine, *, max_batch: int = 32, continuous: bool = True, stats: BatchStats | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        supported = getattr(engine, "supports_sessions", lambda: False)()
        self.continuous = continuous and max_batch > 1 and supported  # else dynamic batching
        self.stats = stats or BatchStats()
        self.steps = 0  # decode steps run by the continuous session
        self._queue: queue.Queue[GenerationRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="postlab-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, request: GenerationRequest) -> None:
        self._queue.put(request)
        self.stats.on_waiting(self._queue.qsize())

    def _take_batch(self) -> list[GenerationRequest] | None:
        """Block for the first request, then take whatever else is already waiting. None = shut down."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # shut down after this batch
                break
            batch.append(nxt)
        self.stats.on_waiting(self._queue.qsize())
        return [r for r in batch if not r.cancelled.is_set()]

    def _work(self) -> None:
        if self.continuous:
            self._work_continuous()
            return
        while (batch := self._take_batch()) is not None:
            if not batch:
                continue
            self.stats.on_batch(len(batch))
            self.stats.on_running(len(batch))
            try:
                self._run_isolated(batch)
            finally:
                self.stats.on_running(0)

    def _run_isolated(self, batch: list[GenerationRequest]) -> None:
        """Run ``batch``; if it fails, rerun alone each request that has not been sent a token yet, so
        that one bad row fails only its own request, never its batch neighbours."""
        try:
            self._run(batch)
        except Exception as e:  # a failed batch fails its requests, not the server
            if len(batch) == 1:
                log.exception("generation failed")
                batch[0].sink(Failed(f"generation failed: {type(e).__name__}: {e}"))
                return
            log.warning("a batch of %d failed (%s: %s); rerunning its requests one by one", len(batch), type(e).__name__, e)
            for r in batch:
                if r.first_token_at is None and not r.cancelled.is_set():
                    self._run_isolated([r])
                else:  # its client has seen part of an answer: a rerun cannot continue it
                    r.sink(Failed(f"generation failed: {type(e).__name__}: {e}"))

    def _run(self, batch: list[GenerationRequest]) -> None:
        texts = [TextAssembler(self.engine.tokenizer, list(r.stops)) for r in batch]

        def on_step(rows: list[int], tokens: list[int]) -> list[int]:
            ended = []
            for row, token in zip(rows, tokens):
                req, text = batch[row], texts[row]
                self._push(req, text, token)
                if text.stopped or req.cancelled.is_set():
                    ended.append(row)
            return ended

        rollout = self.engine.generate_ids([r.prompt_ids for r in batch], [r.params for r in batch], on_step=on_step)
        lengths = rollout.response_lengths.tolist()
        for req, text, reason, n in zip(batch, texts, rollout.finish_reasons(), lengths):
            tail = text.finish()
            if tail:
                req.sink(Delta(tail))
            req.sink(Finished(text.text, "stop" if text.stopped else reason, len(req.prompt_ids), int(n)))

    def _work_continuous(self) -> None:
        session = self.engine.session(batch_hint=self.max_batch)
        live: dict[int, _Row] = {}  # session handle -> its request
        stopping = False
        while not (stopping and not live):
            stopping |= self._admit(session, live, block=not live and not stopping)
            gone = [h for h, row in live.items() if row.request.cancelled.is_set()]
            session.drop(gone)
            for h in gone:
                del live[h]
            if not live:
                continue
            self.stats.on_running(len(live))
            self.stats.on_batch(len(live))
            try:
                drawn = session.step()
            except Exception as e:  # a failed step fails its requests, not the server
                self._fail_session(list(live.values()), e)
                session, live = self.engine.session(batch_hint=self.max_batch), {}
                continue
            self.steps += 1
            ended = []  # rows the session would keep running: a stop string, or the client went away
            for d in drawn:
                if self._deliver(live[d.handle], d.token, d.finish):
                    del live[d.handle]
                    if d.finish is None:
                        ended.append(d.handle)
            session.drop(ended)
            self.stats.on_step(self.steps)
            if not live:
                self.stats.on_running(0)

    def _admit(self, session, live: dict[int, _Row], *, block: bool) -> bool:
        """Add waiting requests to the session (blocking for one when ``block``); True = shut down."""
        stopping = False
        while len(live) < self.max_batch:
            try:
                request = self._queue.get() if block else self._queue.get_nowait()
            except queue.Empty:
                break
            block = False
            if request is None:
                stopping = True
                break
            if request.cancelled.is_set():
                continue
            try:
                handle = session.add(request.prompt_ids, request.params)
            except Exception as e:  # e.g. a seed the generator refuses: this request only
                log.exception("generation failed")
                request.sink(Failed(f"generation failed: {type(e).__name__}: {e}"))
                continue
            live[handle] = _Row(request, TextAssembler(self.engine.tokenizer, list(request.stops)))
        self.stats.on_waiting(self._queue.qsize())
        return stopping

    def _push(self, req: GenerationRequest, text: TextAssembler, token: int) -> None:
        """One drawn token to its request (both batching modes): the first token's time, then any text it completes."""
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
            self.stats.on_first_token(req)
        delta = text.push(token)
        if delta:
            req.sink(Delta(delta))

    def _deliver(self, row: _Row, token: int, finish: str | None) -> bool:
        """Send one drawn token's text to its request, and the end when it is done. True = done."""
        req, text = row.request, row.text
        row.tokens += 1
        self._push(req, text, token)
        done = finish is not None or text.stopped or req.cancelled.is_set()
        if done:
            tail = text.finish()
            if tail:
                req.sink(Delta(tail))
            reason = "stop" if text.stopped else finish or "stop"
            req.sink(Finished(text.text, reason, len(req.prompt_ids), row.tokens))
        return done

    def _fail_session(self, rows: list[_Row], error: Exception) -> None:
        """A step failed: rerun alone each request not yet sent a token; fail the others."""
        log.warning("a decode step over %d requests failed (%s: %s); rerunning those without output one by one",
                    len(rows), type(error).__name__, error)
        for row in rows:
            r = row.request
            if r.first_token_at is None and not r.cancelled.is_set():
                self._run_isolated([r])
            else:  # its client has seen part of an answer: a rerun cannot continue it
                r.sink(Failed(f"generation failed: {type(error).__name__}: {error}"))
