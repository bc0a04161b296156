"""Multi-turn episodes with token ids kept end to end, and their batch for training.

Each episode is one token sequence: the opening prompt (system, user, the generation prompt), then the
model's turns and the environment's turns interleaved. The model's tokens are exactly the ids the engine
sampled, never decoded and re-encoded; the environment's tokens are the chat template's text between the
end of the model's turn and the next generation prompt, tokenised on their own. ``loss_mask`` is 1 on the
model's tokens and 0 on the environment's (and on padding), so a trainer learns only from what the
model chose; ``logprobs`` are the sampling log-probs of the model's tokens (0 elsewhere).

Turn boundaries: a turn ends at a stop token (kept, mask 1) or at ``max_new_tokens``; then the stop
token is added as an environment token (mask 0) so the template's structure holds. An episode ends when
the environment says so, or when its tokens after the prompt would exceed ``max_total_tokens``
(``ToolEnv.truncate`` then scores what the model said last).

All running episodes of a batch generate together, one turn at a time, through ``TorchEngine.generate_ids``
(each turn re-reads the episode's whole context: no KV cache is kept between turns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from postlab.agents.env import EpisodeState
from postlab.data.chat import render_chat
from postlab.rollout.engine import TorchEngine
from postlab.rollout.sampling import SamplingParams
from postlab.rollout.types import Rollout


@dataclass
class Episode:
    row: dict
    prompt_ids: list[int]  # the opening prompt, ending with the generation prompt
    ids: list[int] = field(default_factory=list)  # after the prompt: model and environment tokens
    loss_mask: list[int] = field(default_factory=list)  # 1 on model tokens, 0 on environment tokens
    logprobs: list[float] = field(default_factory=list)  # sampling log-prob of model tokens, 0 elsewhere
    turn_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each model turn in ids
    turn_outcomes: list[int] = field(default_factory=list)  # per model turn: turn_outcome of the env's info
    messages: list[dict] = field(default_factory=list)  # the conversation (transcript)
    state: EpisodeState = field(default_factory=EpisodeState)
    done: bool = False

    @property
    def reward(self) -> float:
        return self.state.reward

    def to_json(self) -> dict:
        return {"id": self.row.get("id"), "messages": self.messages, "reward": self.state.reward,
                **{k: v for k, v in self.state.as_dict().items() if k not in ("reward", "done")},
                "prompt_tokens": len(self.prompt_ids), "episode_tokens": len(self.ids),
                "model_tokens": sum(self.loss_mask)}


def environment_ids(tokenizer, messages: list[dict], tools: list[dict] | None, stop_text: str) -> list[int]:
    """The tokens the environment adds after the model's last turn (which ``messages`` ends the assistant
    turn before the new tool/user turns): the template's text from the end of that turn's stop token
    through the next generation prompt."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    before = render_chat(tokenizer, messages[: last + 1], add_generation_prompt=False, tools=tools)
    full = render_chat(tokenizer, messages, add_generation_prompt=True, tools=tools)
    if not full.startswith(before):
        raise ValueError("the chat template renders earlier turns differently once later turns are added; "
                         "multi-turn episodes need a template whose renderings extend each other")
    end = before.rfind(stop_text)
    start = end + len(stop_text) if end >= 0 else len(before)
    return tokenizer(full[start:], add_special_tokens=False)["input_ids"]


def turn_outcome(info: dict) -> int:
    """What a turn did with its tools, from ``env.step``'s info: −1 a call that did not parse or a tool that
    failed, +1 tool calls that all worked, 0 no call (e.g. the final answer). Environments whose info
    lacks the counts give 0."""
    if info.get("invalid_calls", 0) or info.get("tool_errors", 0):
        return -1
    return 1 if info.get("tool_calls", 0) else 0


def _turn_seed(seed: int, episode: int, turn: int) -> int:
    """Each episode and turn draws from its own seeded generator: the k episodes of one task differ, and
    a seeded batch replays exactly."""
    return (seed * 1_000_003 + episode * 10_007 + turn) % (2**63)


def run_episodes(engine: TorchEngine, envs: Sequence, rows: Sequence[dict], params: SamplingParams, *,
                 max_total_tokens: int = 1024) -> list[Episode]:
    """Play one episode per (env, row), all together turn by turn; each env is reset with its row. A seeded
    ``params`` gives every episode and turn a seed of its own (``_turn_seed``)."""
    tok = engine.tokenizer
    stop_id = tok.eos_token_id
    stop_text = tok.decode([stop_id])
    episodes = []
    for env, row in zip(envs, rows, strict=True):
        messages = env.reset(row)
        prompt = render_chat(tok, messages, add_generation_prompt=True, tools=env.tools or None)
        episodes.append(Episode(row=dict(row), prompt_ids=tok(prompt, add_special_tokens=False)["input_ids"],
                                messages=messages))
    while running := [i for i, ep in enumerate(episodes) if not ep.done]:
        turn_params = [params.model_copy(update={
            "max_new_tokens": max(1, min(params.max_new_tokens, max_total_tokens - len(episodes[i].ids))),
            "seed": None if params.seed is None else _turn_seed(params.seed, i, len(episodes[i].turn_spans))})
            for i in running]
        out = engine.generate_ids([episodes[i].prompt_ids + episodes[i].ids for i in running], turn_params)
        for b, i in enumerate(running):
            ep, env = episodes[i], envs[i]
            n = int(out.response_mask[b].sum())
            drawn = out.response_ids[b, :n].tolist()
            start = len(ep.ids)
            ep.ids += drawn
            ep.loss_mask += [1] * n
            ep.logprobs += out.logprobs[b, :n].tolist()
            ep.turn_spans.append((start, len(ep.ids)))
            if not bool(out.finished[b]):  # cut off: close the turn for the template's sake (not the model's token)
                ep.ids.append(stop_id)
                ep.loss_mask.append(0)
                ep.logprobs.append(0.0)
            _, _, done, info = env.step(tok.decode(drawn, skip_special_tokens=True))
            ep.state = info["state"]
            ep.turn_outcomes.append(turn_outcome(info))
            if not done:
                env_ids = environment_ids(tok, env.messages, env.tools or None, stop_text)
                if len(ep.ids) + len(env_ids) >= max_total_tokens:
                    env.truncate()
                    done = True
                else:
                    ep.ids += env_ids
                    ep.loss_mask += [0] * len(env_ids)
                    ep.logprobs += [0.0] * len(env_ids)
            ep.messages = [dict(m) for m in env.messages]
            ep.done = done
    return episodes


@dataclass
class EpisodeBatch:
    """B episodes for training. Prompts are left-padded and episodes right-padded with ``pad_id``.

    ``as_rollout()`` gives the ``Rollout`` that ``postlab.train.rl_common.response_logprobs`` reads
    (its ``response_mask`` is the attention mask: environment tokens are context); losses must be
    masked with ``loss_mask``."""

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on prompt tokens
    response_ids: torch.Tensor  # (B, R) long, right-padded: model and environment tokens
    attention_mask: torch.Tensor  # (B, R) long, 1 on every real token
    loss_mask: torch.Tensor  # (B, R) long, 1 on model tokens only
    logprobs: torch.Tensor  # (B, R) float32, sampling log-probs on model tokens, 0 elsewhere
    rewards: torch.Tensor  # (B,) float32, the episodes' rewards
    pad_id: int
    texts: list[str]  # B: each episode's last assistant message
    turn_signal: torch.Tensor | None = None  # (B, R) float32: each model turn's turn_outcome on its tokens, 0 elsewhere

    def as_rollout(self) -> Rollout:
        return Rollout(prompt_ids=self.prompt_ids, prompt_mask=self.prompt_mask, response_ids=self.response_ids,
                       response_mask=self.attention_mask, logprobs=self.logprobs,
                       finished=torch.ones(self.rewards.size(0), dtype=torch.bool), texts=self.texts, pad_id=self.pad_id)


def collate_episodes(episodes: Sequence[Episode], pad_id: int) -> EpisodeBatch:
    B = len(episodes)
    P = max(len(e.prompt_ids) for e in episodes)
    R = max(1, max(len(e.ids) for e in episodes))
    prompt_ids = torch.full((B, P), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((B, P), dtype=torch.long)
    response_ids = torch.full((B, R), pad_id, dtype=torch.long)
    attention = torch.zeros((B, R), dtype=torch.long)
    loss_mask = torch.zeros((B, R), dtype=torch.long)
    logprobs = torch.zeros((B, R), dtype=torch.float32)
    turn_signal = torch.zeros((B, R), dtype=torch.float32)
    for b, e in enumerate(episodes):
        p, n = len(e.prompt_ids), len(e.ids)
        prompt_ids[b, P - p:] = torch.tensor(e.prompt_ids)
        prompt_mask[b, P - p:] = 1
        response_ids[b, :n] = torch.tensor(e.ids, dtype=torch.long)
        attention[b, :n] = 1
        loss_mask[b, :n] = torch.tensor(e.loss_mask, dtype=torch.long)
        logprobs[b, :n] = torch.tensor(e.logprobs, dtype=torch.float32)
        for (start, end), outcome in zip(e.turn_spans, e.turn_outcomes):
            turn_signal[b, start:end] = outcome
    rewards = torch.tensor([e.reward for e in episodes], dtype=torch.float32)
    texts = [next((m["content"] for m in reversed(e.messages) if m["role"] == "assistant"), "") for e in episodes]
    return EpisodeBatch(prompt_ids, prompt_mask, response_ids, attention, loss_mask, logprobs, rewards, pad_id, texts,
                        turn_signal)
