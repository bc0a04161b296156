"""Dynamic batching: requests that overlap in time are decoded together by the rollout engine.

One worker thread owns the engine. It blocks until a request is waiting, takes everything waiting (up
to ``max_batch``), runs it as one ``generate_ids`` call with per-row sampling params, then repeats;
requests that arrive meanwhile wait for the next batch. Each row sends its text deltas to its own
sink as tokens are drawn (the engine's per-step callback), and a row whose stop string appeared or
whose client went away is ended at that step. ``max_batch=1`` turns batching off.

This is dynamic, not continuous batching: a request never joins a batch already decoding (the
engine's KV buffer is laid out per call). Rows that finish leave the batch at once, so a long answer
slows only the rows still running beside it.
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


class Batcher:
    def __init__(self, engine, *, max_batch: int = 32, stats: BatchStats | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        self.stats = stats or BatchStats()
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
                if req.first_token_at is None:
                    req.first_token_at = time.perf_counter()
                    self.stats.on_first_token(req)
                delta = text.push(token)
                if delta:
                    req.sink(Delta(delta))
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
