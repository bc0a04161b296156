"""Rollout engines behind one interface. ``TorchEngine`` runs in-process with a KV cache; a vLLM- or
Ray-backed engine implements the same ``generate`` and callers do not change."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import torch
from transformers import DynamicCache

from postlab.data.chat import Conversation
from postlab.models.attention import varying_shape_attention
from postlab.rollout import compiled_step, llama_decode, static_decode
from postlab.rollout.sampling import SamplingParams, choose_tokens, choose_tokens_per_row
from postlab.rollout.types import Rollout

StepCallback = Callable[[list[int], list[int]], Iterable[int] | None]
"""Called after every decode step with (batch rows still running, the token each just drew); returns
the batch rows to end now (e.g. a stop string appeared, the client went away), or None. Rows ended
this way keep ``finished=False``."""


class RolloutEngine(Protocol):
    def generate(self, conversations: list[Conversation], params: SamplingParams) -> Rollout: ...


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, P), mask (B, P)) with every row right-aligned."""
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), P), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, P - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[b, P - len(r):] = 1
    return ids, mask


SINGLE_ROW_LAYOUTS = ("packed", "plain", "auto", "compiled")


def choose_single_row_layout(packed_ms: float, plain_ms: float, *, margin: float = 0.05) -> str:
    """"plain" when a one-row step with plain weights is at least ``margin`` faster than with packed ones."""
    return "plain" if plain_ms < (1 - margin) * packed_ms else "packed"


class TorchEngine:
    """In-process PyTorch sampler: one prefill over the left-padded prompts, then one token per step
    for the rows still running; rows that emitted a stop token are dropped from the batch and the
    KV cache, so finished sequences cost nothing. Llama-style models decode through the lean step in
    ``llama_decode``; any other causal LM decodes through its own forward with a DynamicCache."""

    def __init__(self, *, model, tokenizer, stop_token_ids: list[int] | None = None, fast_decode: bool = True,
                 decode_dtype: torch.dtype | None = None, single_row: str = "packed",
                 static_decode: bool | None = None):
        """``static_decode``: decode the lean path's batch over fixed shapes (``static_decode.py``), captured in
        a CUDA graph on a GPU; None = on CUDA devices only (on a CPU the eager loop, which drops finished rows,
        is faster). Calls with an ``on_step`` callback always decode eagerly.

        ``single_row``: the weight layout of lean decode steps that run one row (a server answering one
        request): "packed" (the batch's oneDNN-packed weights), "plain" (a second, row-major copy: a
        matrix-vector product through BLAS, faster on some CPUs) or "auto" (whichever ``choose_single_row``
        measures faster here). Only CPUs with oneDNN have two layouts; elsewhere every choice is the one. Or
        "compiled": one-row steps through a step compiled by inductor (``compiled_step.py``; Llama-style models, a
        C++ compiler on the PATH; the first one-row step compiles it, about a minute on a 2-core CPU)."""
        if single_row not in SINGLE_ROW_LAYOUTS:
            raise ValueError(f"single_row must be one of {', '.join(SINGLE_ROW_LAYOUTS)}, got {single_row!r}")
        if single_row == "compiled" and not compiled_step.compiler_available():
            raise ValueError("single_row='compiled' needs a C++ compiler (g++ or clang++) on the PATH for inductor; "
                             "install one, or use 'auto'")
        self.single_row = single_row
        self._single_row_choice: dict | None = None
        self.model = model
        # Lean decode path only: sample in this dtype whatever the model's (bf16 from an fp32 policy in
        # training is ~2x faster on CPU; trainers recompute log-probs with their own forward anyway).
        self.decode_dtype = decode_dtype
        self.static_decode = static_decode
        self.last_decode: str | None = None  # how the last generate call decoded: "eager", "static" or "cuda_graph"
        self.fast_decode = fast_decode  # lean decode step for Llama-style models (llama_decode.py)
        self._weights: dict[bool | None, tuple[tuple, llama_decode.DecodeWeights]] = {}  # by DecodeWeights' `packed`
        self._row_step: tuple[tuple, compiled_step.CompiledRowStep] | None = None  # single_row="compiled"
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.stop_ids = torch.tensor(sorted(set(stop_token_ids or [tokenizer.eos_token_id])), dtype=torch.long)

    def _decode_weights(self, batch: int, *, packed: bool | None = None) -> llama_decode.DecodeWeights:
        """Fused (and, by default, packed) weights, rebuilt only when the model's parameters changed since last time."""
        key = llama_decode.DecodeWeights.version_key(self.model)
        cached = self._weights.get(packed)
        if cached is None or cached[0] != key:
            self._weights[packed] = cached = (key, llama_decode.DecodeWeights(
                self.model, batch_hint=batch, dtype=self.decode_dtype, packed=packed))
        return cached[1]

    def release_weights(self) -> None:
        """Drop the cached decode weights: they may alias the model's own tensors, which a sharded model
        frees when it reshards (``distributed.unsharded``); the next generate rebuilds them."""
        self._weights = {}
        self._row_step = None

    def _two_layouts(self) -> bool:
        param = next(self.model.parameters())
        return self.fast_decode and llama_decode.supports(self.model) and \
            llama_decode.packs_weights(param.device, self.decode_dtype or param.dtype)

    def choose_single_row(self, batch_hint: int = 16) -> dict:
        """The layout of one-row decode steps, measured once per engine when ``single_row`` is "auto": the
        median ms of a one-row step with the batch's packed weights and with plain ones (the best of two
        interleaved tries each), and ``layout``, plain only when it is at least 5% faster. Otherwise the
        configured layout, unmeasured; ``layouts`` is 1 where the weights have one layout (then "packed")."""
        if self._single_row_choice is None:
            if self._compiles_rows():
                self._single_row_choice = {"layout": "compiled", "measured": False, "layouts": 2}
            elif not self._two_layouts():  # a GPU, no oneDNN, or the generic decode path: one layout
                self._single_row_choice = {"layout": "packed", "measured": False, "layouts": 1}
            elif self.single_row != "auto":
                self._single_row_choice = {"layout": self.single_row, "measured": False, "layouts": 2}
            else:
                packed = self._decode_weights(batch_hint)
                plain = self._decode_weights(1, packed=False)
                with varying_shape_attention():
                    tries = [llama_decode.step_ms(w, 1, filled=8, steps=12) for w in (packed, plain, packed, plain)]
                packed_ms, plain_ms = min(tries[0::2]), min(tries[1::2])
                layout = choose_single_row_layout(packed_ms, plain_ms)
                if layout == "packed":
                    self._weights.pop(False, None)  # the second copy is not needed
                self._single_row_choice = {"layout": layout, "measured": True, "layouts": 2,
                                           "packed_ms": round(packed_ms, 2), "plain_ms": round(plain_ms, 2)}
        return self._single_row_choice

    def single_row_weights(self, batch_hint: int = 16) -> llama_decode.DecodeWeights | None:
        """The weights of decode steps with one running row, where they are not the batch's (None)."""
        if not self._two_layouts() or self.choose_single_row(batch_hint)["layout"] != "plain":
            return None
        return self._decode_weights(1, packed=False)

    def _compiles_rows(self) -> bool:
        """single_row="compiled" on a Llama-style model on the CPU (elsewhere the configured layouts apply)."""
        return self.single_row == "compiled" and self.supports_sessions() and \
            next(self.model.parameters()).device.type == "cpu"

    def row_step(self) -> compiled_step.CompiledRowStep | None:
        """The compiled one-row step where ``single_row`` is "compiled" (rebuilt, and compiled again, only when the
        model's parameters changed: meant for serving, not for sampling between training steps), else None."""
        if not self._compiles_rows():
            return None
        key = llama_decode.DecodeWeights.version_key(self.model)
        if self._row_step is None or self._row_step[0] != key:
            self._row_step = (key, compiled_step.CompiledRowStep(self.model, self.decode_dtype))
        return self._row_step[1]

    def warm_up(self) -> None:
        """Compile what the first request would otherwise wait for (the compiled one-row step): one short greedy
        decode of a short prompt (of more than one token: a length-1 dimension would be compiled for apart)."""
        if self.row_step() is not None:
            self.generate_ids([[self.pad_id] * 4], SamplingParams(temperature=0, max_new_tokens=3, stop_at_eos=False))

    def supports_sessions(self) -> bool:
        """Whether ``session()`` works here: continuous decoding runs on the lean Llama decode path only."""
        return self.fast_decode and llama_decode.supports(self.model)

    def session(self, *, batch_hint: int = 16) -> DecodeSession:
        """A batch that rows can join and leave between decode steps (continuous batching)."""
        return DecodeSession(self, batch_hint=batch_hint)

    def encode_prompts(self, conversations: list[Conversation]) -> list[list[int]]:
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def generate(self, conversations: list[Conversation], params: SamplingParams | Sequence[SamplingParams],
                 *, on_step: StepCallback | None = None) -> Rollout:
        return self.generate_ids(self.encode_prompts(conversations), params, on_step=on_step)

    def generate_ids(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams],
                     *, on_step: StepCallback | None = None) -> Rollout:
        """Sample one response per prompt. ``params`` is shared by every row, or one per row (each row
        then has its own temperature, top-k/top-p, max_new_tokens, stop_at_eos and seed: a seeded row
        draws from its own generator, so it samples the same tokens whatever else is in the batch).
        ``on_step`` sees every token as it is drawn and may end rows early (see ``StepCallback``)."""
        if not isinstance(params, SamplingParams) and len(params) != len(prompts):
            raise ValueError(f"got {len(params)} SamplingParams for {len(prompts)} prompts")
        with torch.inference_mode(), varying_shape_attention():
            r = self._generate_ids(prompts, params, on_step)
        # Plain tensors (not inference-mode ones), so trainers can use them in autograd graphs.
        return dataclasses.replace(r, **{f: getattr(r, f).clone() for f in (
            "prompt_ids", "prompt_mask", "response_ids", "response_mask", "logprobs", "finished")})

    def _generate_ids(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams],
                      on_step: StepCallback | None) -> Rollout:
        device = next(self.model.parameters()).device
        prompt_ids, prompt_mask = left_pad(prompts, self.pad_id)
        shared = isinstance(params, SamplingParams)
        row_params = [params] * len(prompts) if shared else list(params)
        B, P = prompt_ids.size(0), prompt_ids.size(1)
        max_new = torch.tensor([p.max_new_tokens for p in row_params], dtype=torch.long)  # (B,)
        stop_at_eos = torch.tensor([p.stop_at_eos for p in row_params], dtype=torch.bool, device=device)  # (B,)
        R = int(max_new.max())

        def seeded(p: SamplingParams) -> torch.Generator | None:
            return None if p.seed is None else torch.Generator(device=device).manual_seed(p.seed)

        # Shared params keep one generator for the whole batch (the historical stream); per-row params
        # give each row its own.
        generator = seeded(params) if shared else None
        row_generators = None if shared else [seeded(p) for p in row_params]
        response = torch.full((B, R), self.pad_id, dtype=torch.long)
        logprobs = torch.zeros((B, R), dtype=torch.float32)
        lengths = torch.zeros(B, dtype=torch.long)
        finished = torch.zeros(B, dtype=torch.bool)
        stop_ids = self.stop_ids.to(device)

        attn = torch.cat([prompt_mask, torch.zeros((B, R), dtype=torch.long)], dim=1).to(device)  # (B, P + R)
        positions = (prompt_mask.sum(dim=1) - 1).to(device)  # (B,) position of each row's last prompt token
        was_training = self.model.training
        self.model.eval()
        fast, cache, single, row_step = None, None, None, None
        if self.fast_decode and llama_decode.supports(self.model):
            row_step = self.row_step()
            # With a compiled one-row step the packed weights serve prefills and batches: packed for 16 rows, which
            # runs a prompt's prefill faster than packing for one (73 against 88 ms for 42 tokens, fp32, 2 cores).
            hint = B if row_step is None else max(B, 16)
            fast = llama_decode.LlamaDecoder(self._decode_weights(hint), batch=B, max_len=P + R)
            batch_weights, single = fast.w, self.single_row_weights(B)
            logits = fast.prefill(prompt_ids.to(device), prompt_mask.to(device))  # (B, V)
            if on_step is None and (self.static_decode or (self.static_decode is None and device.type == "cuda")):
                response, logprobs, lengths, finished, graph = static_decode.decode(
                    fast, logits, prompt_mask, params if shared else None, generator, row_params, row_generators,
                    max_new, stop_at_eos, stop_ids, self.pad_id, capture=device.type == "cuda")
                self.last_decode = "cuda_graph" if graph else "static"
                return self._rollout(prompt_ids, prompt_mask, response, logprobs, lengths, finished, was_training)
        else:
            cache = DynamicCache(config=self.model.config)
            out = self.model(input_ids=prompt_ids.to(device), attention_mask=attn[:, :P],
                             position_ids=(prompt_mask.cumsum(dim=1) - 1).clamp_min(0).to(device),
                             cache=cache, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1]  # (B, V)
        self.last_decode = "eager"
        rows = torch.arange(B, device=device)  # batch row of each running sequence
        for t in range(R):
            rows_cpu = rows.cpu()
            if shared:
                tok, lp = choose_tokens(logits, params, generator)  # (b,), (b,)
            else:
                tok, lp = choose_tokens_per_row(logits, [row_params[i] for i in rows_cpu.tolist()],
                                                [row_generators[i] for i in rows_cpu.tolist()])
            response[rows_cpu, t] = tok.cpu()
            logprobs[rows_cpu, t] = lp.cpu()
            lengths[rows_cpu] = t + 1
            stopped = torch.isin(tok, stop_ids) & stop_at_eos[rows]  # (b,)
            finished[rows_cpu[stopped.cpu()]] = True
            done = stopped.cpu() | (max_new[rows_cpu] <= t + 1)
            if on_step is not None:
                ended = set(on_step(rows_cpu.tolist(), tok.tolist()) or ())
                done |= torch.tensor([r in ended for r in rows_cpu.tolist()], dtype=torch.bool)
            done = done.to(device)
            if done.any():
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                rows, tok, attn, positions = rows[keep], tok[keep], attn[keep], positions[keep]
                if fast is not None:
                    fast.keep_rows(keep)
                else:
                    cache.batch_select_indices(keep)
            if t == R - 1:
                break
            attn[:, P + t] = 1
            positions = positions + 1
            if fast is not None and row_step is not None and tok.numel() == 1:
                logits = row_step.step_into(fast.k[:, 0], fast.v[:, 0], P + t, tok, positions, attn[0, : P + t].bool())
            elif fast is not None:
                if single is not None:
                    fast.w = single if tok.numel() == 1 else batch_weights
                logits = fast.step(tok, positions, P + t, attn[:, : P + t + 1].bool())
            else:
                out = self.model(input_ids=tok[:, None], attention_mask=attn[:, : P + t + 1],
                                 position_ids=positions[:, None], cache=cache, use_cache=True)
                logits = out.logits[:, -1]
        return self._rollout(prompt_ids, prompt_mask, response, logprobs, lengths, finished, was_training)

    def _rollout(self, prompt_ids, prompt_mask, response, logprobs, lengths, finished, was_training) -> Rollout:
        """The Rollout of a decode loop's CPU outputs: response (B, R) and logprobs masked past each row's length."""
        self.model.train(was_training)
        R = response.size(1)
        response_mask = (torch.arange(R)[None, :] < lengths[:, None]).long()
        response = response.masked_fill(response_mask == 0, self.pad_id)
        texts = self.tokenizer.batch_decode([r[:n].tolist() for r, n in zip(response, lengths)], skip_special_tokens=True)
        return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response, response_mask=response_mask,
                       logprobs=logprobs * response_mask, finished=finished, texts=texts, pad_id=self.pad_id)


@dataclasses.dataclass(frozen=True)
class Drawn:
    """One token a ``DecodeSession`` row drew in a step."""
    handle: int
    token: int
    logprob: float
    finish: str | None  # "stop" (a stop token), "length" (max_new_tokens reached), or None: still running


@dataclasses.dataclass
class _SessionRow:
    handle: int
    params: SamplingParams
    generator: torch.Generator | None
    prompt_len: int
    drawn: int = 0  # tokens drawn so far; the last one is fed to the model at the next step


class DecodeSession:
    """A batch that rows join and leave between decode steps (continuous batching), on the lean decode
    path of ``TorchEngine`` (Llama-style models: ``TorchEngine.supports_sessions``).

    ``add`` queues a prompt; each ``step`` (1) runs one decode step for the rows already running, (2)
    prefills the rows added since the last step, together, and puts their KV into the running buffer
    right-aligned with everyone else's, (3) draws one token for every row with its own sampling params
    and generator (as ``generate_ids`` does with per-row params). Rows that drew a stop token or reached
    ``max_new_tokens`` leave the batch at once; ``drop`` ends any other row before the next step.

    KV layout: buffers ``k, v`` (L, rows, Hkv, S, D) of which the first ``b`` rows run, with a per-row
    mask of valid columns (b, S); every row writes its next token at the same column ``slot``. Keys are
    stored after RoPE with each row's own positions, so where a row's prompt sits in the buffer does not
    change what it attends to. Joining rows are written in place into free rows when their prompts fit
    left of ``slot`` and every row's remaining tokens fit right of it; otherwise the buffer is rebuilt
    (once per join, trimming columns no running row uses, with ``spare_columns`` of room to grow). A row
    that leaves is replaced by the last running row (one row copied, not the buffer). When the last row
    leaves, the buffers are kept: the next rows start over in them if they fit (a server that answers
    one request at a time allocates them once, not per request)."""

    def __init__(self, engine: TorchEngine, *, batch_hint: int = 16, spare_columns: int = 64):
        if not engine.supports_sessions():
            raise ValueError("continuous decoding needs a Llama-style model on the fast decode path")
        self.engine = engine
        self.weights = engine._decode_weights(batch_hint)
        self.single_weights = engine.single_row_weights(batch_hint)  # for steps with one running row, or None
        self.row_step = engine.row_step()  # or a compiled step for them
        self.single_row_steps = 0
        self.device = self.weights.embed.device
        self.batch_hint, self.spare_columns = batch_hint, spare_columns
        self.decoder = llama_decode.LlamaDecoder(self.weights, batch=0, max_len=0)  # steps over views of k, v
        self.k, self.v = self.decoder.k, self.decoder.v  # (L, rows, Hkv, S, D)
        self.mask = torch.zeros((0, 0), dtype=torch.bool, device=self.device)  # (rows, S) valid KV columns
        self.slot = 0  # the column the next decode step writes
        self.rows: list[_SessionRow] = []  # running, in buffer order (buffer rows 0..b-1)
        self.tokens = torch.zeros(0, dtype=torch.long, device=self.device)  # (b,) last drawn, not yet fed
        self.pending: list[tuple[_SessionRow, list[int]]] = []
        self.steps = 0  # decode steps run (each draws one token per row)
        self.rebuilds = 0  # joins that reallocated the buffer
        self.reuses = 0  # joins into an empty session that started over in the buffers it had
        self._next_handle = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.pending)

    def add(self, prompt_ids: list[int], params: SamplingParams) -> int:
        """Queue a prompt to join at the next step; returns its handle."""
        generator = None if params.seed is None else torch.Generator(device=self.device).manual_seed(params.seed)
        row = _SessionRow(self._next_handle, params, generator, len(prompt_ids))
        self._next_handle += 1
        self.pending.append((row, list(prompt_ids)))
        return row.handle

    def drop(self, handles: Iterable[int]) -> None:
        """End these rows now (queued or running); they draw nothing more."""
        gone = set(handles)
        self.pending = [(r, p) for r, p in self.pending if r.handle not in gone]
        with torch.inference_mode():
            self._leave([i for i, r in enumerate(self.rows) if r.handle in gone])

    def step(self) -> list[Drawn]:
        """One decode step for every row (prefilling those that just joined): the token each drew."""
        with torch.inference_mode(), varying_shape_attention():
            parts = []
            b = len(self.rows)
            if b:
                self.mask[:b, self.slot] = True
                positions = torch.tensor([r.prompt_len + r.drawn - 1 for r in self.rows], device=self.device)
                if b == 1 and self.row_step is not None:
                    self.single_row_steps += 1
                    parts.append(self.row_step.step_into(self.k[:, 0], self.v[:, 0], self.slot, self.tokens, positions,
                                                         self.mask[0, : self.slot]))
                else:
                    self.decoder.k, self.decoder.v = self.k[:, :b], self.v[:, :b]
                    single = b == 1 and self.single_weights is not None
                    self.decoder.w = self.single_weights if single else self.weights
                    self.single_row_steps += single
                    parts.append(self.decoder.step(self.tokens, positions, self.slot, self.mask[:b, : self.slot + 1]))
                self.slot += 1
            if self.pending:
                parts.append(self._join())
            if not parts:
                return []
            logits = torch.cat(parts)  # (b, V)
            tokens, logprobs = choose_tokens_per_row(logits, [r.params for r in self.rows],
                                                     [r.generator for r in self.rows])
            stopped = torch.isin(tokens, self.engine.stop_ids.to(self.device)).tolist()
            drawn, done = [], []
            for i, (row, token, lp, stop) in enumerate(zip(self.rows, tokens.tolist(), logprobs.tolist(), stopped)):
                row.drawn += 1
                finish = "stop" if stop and row.params.stop_at_eos else \
                    "length" if row.drawn >= row.params.max_new_tokens else None
                drawn.append(Drawn(row.handle, token, lp, finish))
                if finish is not None:
                    done.append(i)
            self.tokens = tokens
            self._leave(done)
            self.steps += 1
            return drawn

    def _leave(self, indices: list[int]) -> None:
        """Remove running rows: each is overwritten by the last running row (highest index first)."""
        for i in sorted(indices, reverse=True):
            last = len(self.rows) - 1
            if i != last:
                self.k[:, i], self.v[:, i], self.mask[i] = self.k[:, last], self.v[:, last], self.mask[last]
                self.tokens[i] = self.tokens[last]
                self.rows[i] = self.rows[last]
            self.rows.pop()
            self.tokens = self.tokens[:last]
        if not self.rows:  # the next row to join starts over in the same buffers (see ``_rebuild``)
            self.mask.zero_()
            self.slot = 0

    def _join(self) -> torch.Tensor:
        """Prefill the queued rows and put them into the running buffer; returns their logits (n, V)."""
        new, self.pending = self.pending, []
        prompt_ids, prompt_mask = left_pad([p for _, p in new], self.engine.pad_id)
        n, P = prompt_ids.shape
        prefill = llama_decode.LlamaDecoder(self.weights, batch=n, max_len=P)
        logits = prefill.prefill(prompt_ids.to(self.device), prompt_mask.to(self.device))  # (n, V)
        b = len(self.rows)
        rows = self.rows + [r for r, _ in new]
        room = max(r.params.max_new_tokens - r.drawn for r in rows)  # columns any row may still write
        if P > self.slot or self.slot + room > self.mask.size(1) or b + n > self.mask.size(0):
            self._rebuild(P, room, b + n)
        end = self.slot  # every running row's last written column is end - 1
        self.k[:, b: b + n, :, end - P: end] = prefill.k
        self.v[:, b: b + n, :, end - P: end] = prefill.v
        self.mask[b: b + n] = False
        self.mask[b: b + n, end - P: end] = prompt_mask.bool().to(self.device)
        self.rows = rows
        self.tokens = torch.cat([self.tokens, torch.zeros(n, dtype=torch.long, device=self.device)])
        return logits

    def _rebuild(self, P: int, room: int, rows: int) -> None:
        """New buffers with room for ``rows`` rows, prompts of ``P`` left of the slot and ``room`` columns
        right of it; the running rows' used columns are moved over, right-aligned at the new slot."""
        b = len(self.rows)
        used = self.mask[:b, : self.slot].any(dim=0).nonzero()
        first = int(used[0]) if used.numel() else self.slot  # columns before it serve no running row
        old = self.slot - first
        width = max(old, P)
        w = self.weights
        shape = (w.L, max(rows, self.batch_hint), w.Hkv, width + room + self.spare_columns, w.D)
        if b == 0 and self.k.size(1) >= rows and self.k.size(3) >= width + room:
            # Nobody running and the buffers are big enough: start over in them. What earlier rows left
            # there (finite values) sits in masked-out columns, which attention weighs by exactly 0;
            # new zeroed buffers (2·L·rows·S·D values, ~300 MB at fp32 for 32 rows) cost more than a short
            # answer's decode steps, and an idle server would pay that for every request.
            self.slot = width
            self.reuses += 1
            return
        k = torch.zeros(shape, dtype=w.embed.dtype, device=self.device)
        v = torch.zeros_like(k)
        mask = torch.zeros((shape[1], shape[3]), dtype=torch.bool, device=self.device)
        k[:, :b, :, width - old: width] = self.k[:, :b, :, first: self.slot]
        v[:, :b, :, width - old: width] = self.v[:, :b, :, first: self.slot]
        mask[:b, width - old: width] = self.mask[:b, first: self.slot]
        self.k, self.v, self.mask, self.slot = k, v, mask, width
        self.rebuilds += 1
