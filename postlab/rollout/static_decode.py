"""Decoding over fixed shapes, the form a CUDA graph can capture (``TorchEngine(static_decode=...)``).

Why: on a GPU, decoding a small model is bound by launching kernels, not by running them. One lean
decode step of a 135M model is ~450 kernels (30 layers of norms, fused matmuls, RoPE, attention),
measured at ~13 ms per step for 64 rows on an H200 (docs/benchmarks.md), of which the GPU is busy a
small fraction. A CUDA graph records the step's kernels once and replays them with one launch.

A graph replays exactly what it recorded, so every shape and address must stay fixed:
- the batch keeps all B rows to the end (finished rows go on decoding; what they draw is dropped),
  instead of leaving the batch as in ``TorchEngine``'s eager loop;
- the KV buffers hold S = P + R columns from the start, and attention reads all S of them under an
  additive mask whose column ``P + t`` opens before step t (columns not yet written weigh exactly 0);
- the column a step writes, the tokens and the positions live in device tensors updated in place.

The token choice stays outside the graph (it is a handful of kernels) and per-row seeds draw each
row's R uniforms at once (``RowSampler``): the same numbers, on the CPU, as one draw per step.
Off a GPU the same loop runs without capture (what the CPU tests check against the eager loop).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from postlab.rollout.llama_decode import LlamaDecoder, rms_norm, rotate
from postlab.rollout.sampling import SamplingParams, choose_tokens, restrict_top_k_top_p, inverse_cdf_pick

CHECK_EVERY = 16  # decode steps between the host's looks at whether every row has finished (each one syncs)


class StaticStep:
    """One decode step of every row over the decoder's whole KV buffers (B rows, S columns), reading its
    inputs from tensors updated in place: ``tokens``, ``positions`` (B,), ``slot`` (1,), ``mask``
    (B, 1, 1, S) additive. On CUDA ``capture()`` records it into a graph that ``__call__`` replays."""

    def __init__(self, decoder: LlamaDecoder):
        self.decoder = decoder
        w = decoder.w
        L, B, Hkv, S, D = decoder.k.shape
        device, dtype = w.embed.device, w.embed.dtype
        self.tokens = torch.zeros(B, dtype=torch.long, device=device)
        self.positions = torch.zeros(B, dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.mask = torch.full((B, 1, 1, S), float("-inf"), dtype=dtype, device=device)
        self.graph = None
        self.logits: torch.Tensor | None = None  # the graph's output buffer (B, V)

    def run(self) -> torch.Tensor:
        """The step's maths (as ``LlamaDecoder.step``), with no host sync and no shape that changes. Returns (B, V)."""
        dec, w = self.decoder, self.decoder.w
        linear, Hq, Hkv, D = w.linear, w.Hq, w.Hkv, w.D
        B = self.tokens.size(0)
        x = F.embedding(self.tokens, w.embed)  # (B, C)
        cos, sin = dec._rope(self.positions[:, None], x.dtype)  # (B, 1, D)
        for i, (ln1, w_qkv, w_o, ln2, w_gu, w_down) in enumerate(w.layers):
            qkv = linear(rms_norm(x, ln1, w.eps), w_qkv)  # (B, (Hq + 2·Hkv)·D)
            qk = rotate(qkv[:, : (Hq + Hkv) * D].view(B, Hq + Hkv, D), cos, sin)
            dec.k[i].index_copy_(2, self.slot, qk[:, Hq:, None, :])  # column `slot` of (B, Hkv, S, D)
            dec.v[i].index_copy_(2, self.slot, qkv[:, (Hq + Hkv) * D:].view(B, Hkv, 1, D))
            attn = F.scaled_dot_product_attention(qk[:, :Hq, None, :], dec.k[i], dec.v[i], attn_mask=self.mask,
                                                  enable_gqa=Hq != Hkv)  # (B, Hq, 1, D)
            x = x + linear(attn.reshape(B, Hq * D), w_o)
            gate, up = linear(rms_norm(x, ln2, w.eps), w_gu).chunk(2, dim=-1)
            x = x + linear(F.silu(gate) * up, w_down)
        return linear(rms_norm(x, w.final_norm, w.eps), w.lm_head)

    def capture(self, warmup_slot: int) -> bool:
        """Record the step into a CUDA graph; False (and the step runs uncaptured) where capture fails. The
        warm-up runs (on a side stream, as CUDA graphs require) write column ``warmup_slot`` of the KV
        buffers, which the first real step then overwrites. Capture errors are thread-local: another
        thread's GPU work (an eval beside training) does not break it."""
        self.slot.fill_(warmup_slot)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.logits = self.run()
        except RuntimeError as e:
            warnings.warn(f"decoding without a CUDA graph: capture failed ({e})", RuntimeWarning, stacklevel=2)
            return False
        self.graph = graph
        return True

    def __call__(self) -> torch.Tensor:
        if self.graph is None:
            return self.run()
        self.graph.replay()
        return self.logits


class RowSampler:
    """``choose_tokens_per_row`` for a fixed batch: each row's temperature and top-k/top-p grouping built
    once, and each seeded row's R uniforms drawn at once from its own generator (``u`` (B, R)), so a
    step launches a few kernels whatever the batch size. On the CPU a generator's R draws at once are
    the R draws one at a time (tests/test_static_decode.py checks it), so rows sample what they would
    in the eager loop; on CUDA the draws differ (Philox offsets), each row's still its own."""

    def __init__(self, params: list[SamplingParams], generators: list[torch.Generator | None], R: int,
                 device: torch.device):
        t = torch.tensor([p.temperature for p in params], dtype=torch.float32)
        self.scale = torch.where(t > 0, t, torch.ones_like(t)).to(device)[:, None]  # (B, 1); greedy rows score at T = 1
        groups: dict[tuple[int, float], list[int]] = {}
        for b, p in enumerate(params):
            if p.temperature > 0:
                groups.setdefault((p.top_k, p.top_p), []).append(b)
        self.groups = [(k, p, torch.tensor(rows, device=device)) for (k, p), rows in groups.items()]
        self.u = torch.zeros((len(params), R), dtype=torch.float32, device=device)  # (B, R)
        for b, p in enumerate(params):
            if p.temperature > 0:
                self.u[b] = torch.rand((R,), generator=generators[b], device=device)

    def __call__(self, logits: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B,) and their log-probs (B,) at step t."""
        logp = torch.log_softmax(logits.float() / self.scale, dim=-1)  # (B, V)
        tokens = logp.argmax(dim=-1)
        for top_k, top_p, index in self.groups:
            allowed = restrict_top_k_top_p(logp[index], top_k, top_p)
            tokens[index] = inverse_cdf_pick(allowed.exp(), self.u[index, t:t + 1])
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def decode(decoder: LlamaDecoder, logits: torch.Tensor, prompt_mask: torch.Tensor, params, generator,
           row_params: list[SamplingParams], row_generators, max_new: torch.Tensor, stop_at_eos: torch.Tensor,
           stop_ids: torch.Tensor, pad_id: int, capture: bool):
    """The decode loop after the prefill, all rows to the end. ``logits`` (B, V): the prefill's;
    ``prompt_mask`` (B, P); ``params``/``generator`` when every row shares them, else ``row_params``/
    ``row_generators``; ``max_new`` (B,), ``stop_at_eos`` (B,) on the device. Returns (response (B, R),
    logprobs (B, R), lengths (B,), finished (B,)) on the CPU, what follows a row's end to be masked out by
    the caller as in the eager loop, and whether the step ran as a CUDA graph."""
    device = logits.device
    B, P = prompt_mask.shape
    R = int(max_new.max())
    step = StaticStep(decoder)
    step.mask[:, 0, 0, :P] = torch.zeros((), dtype=step.mask.dtype, device=device).masked_fill(
        ~prompt_mask.bool().to(device), float("-inf"))
    captured = capture and R > 1 and step.capture(warmup_slot=P)
    choose = (lambda z, t: choose_tokens(z, params, generator)) if params is not None else \
        RowSampler(row_params, row_generators, R, device)
    positions = (prompt_mask.sum(dim=1) - 1).to(device)  # (B,) each row's last prompt token
    max_new = max_new.to(device)
    response = torch.full((B, R), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((B, R), dtype=torch.float32, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    running = torch.ones(B, dtype=torch.bool, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    for t in range(R):
        tok, lp = choose(logits, t)
        response[:, t] = tok
        logprobs[:, t] = lp
        lengths += running
        stopped = torch.isin(tok, stop_ids) & stop_at_eos & running
        finished |= stopped
        running &= ~stopped & (max_new > t + 1)
        if t == R - 1 or ((t + 1) % CHECK_EVERY == 0 and not bool(running.any())):
            break
        positions = positions + 1
        step.tokens.copy_(tok)
        step.positions.copy_(positions)
        step.slot.fill_(P + t)
        step.mask[:, :, :, P + t] = 0
        logits = step()
    return response.cpu(), logprobs.cpu(), lengths.cpu(), finished.cpu(), captured
