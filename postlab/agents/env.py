"""The environment protocol: ``reset(row) -> messages`` and ``step(assistant_message) -> (messages, reward,
done, info)``, Gymnasium-like (as OpenEnv's reset/step and OpenRLHF/SkyRL's step are), over chat messages.

- ``reset(row)`` starts an episode from a dataset row and returns the conversation so far (system and
  user turns); ``tools`` are the JSON schemas the model is shown (``postlab.agents.tools``).
- ``step(text)`` takes the model's turn (a string, or an assistant message dict) and returns the messages
  the environment adds (tool results, as ``{"role": "tool", "name", "content"}``), the reward (0 until the
  episode ends), whether it ended, and ``info`` (this turn's counts and the episode's ``EpisodeState``).

``ToolEnv`` implements the protocol for the common shape: the model calls tools (plain Python functions)
until it answers without a tool call, or runs out of turns; the answer is then scored. A broken call, an
unknown tool, wrong arguments or a tool that raises never ends the episode or the caller: it becomes a
tool message starting ``error:`` that the model can read and recover from, and it is counted.

Adapters run environments written for other conventions: ``TRLEnvironment`` (TRL's ``environment_factory``:
a class whose public methods are the tools, ``reset(**row)``, reward functions taking ``environments``) and
``VerifiersEnv`` (a ``verifiers``-style dataset + ``Rubric`` of reward functions of ``prompt, completion,
answer, state``); ``from_verifiers`` wraps an object of the ``verifiers`` package itself (duck-typed: the
package is not needed).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from postlab.agents.tools import ToolCall, check_arguments, parse_tool_calls, tool_schema


class ToolError(Exception):
    """Raised by a tool to report a failure to the model (the message is what it reads)."""


class Environment(Protocol):
    name: str
    tools: list[dict]  # JSON schemas shown to the model (may be empty)

    def reset(self, row: dict) -> list[dict]: ...

    def step(self, assistant_message: str | dict) -> tuple[list[dict], float, bool, dict]: ...


@dataclass
class EpisodeState:
    """What happened in one episode; ``postlab.agents.metrics`` aggregates these."""

    turns: int = 0  # assistant turns taken
    tool_calls: int = 0  # calls attempted (parsed or not)
    invalid_calls: int = 0  # calls that did not parse, named no tool, or had wrong arguments
    tool_errors: int = 0  # valid calls whose tool failed (raised)
    reward: float = 0.0
    success: bool = False
    done: bool = False
    truncated: bool = False  # ended by max_turns, without a final answer
    answer: str | None = None  # the final answer's text

    @property
    def errors(self) -> int:
        return self.invalid_calls + self.tool_errors

    @property
    def recovered(self) -> bool:
        """Succeeded after at least one tool error or invalid call."""
        return self.success and self.errors > 0

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "recovered": self.recovered}


def message_text(message: str | dict) -> str:
    if isinstance(message, str):
        return message
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    calls = [f'<tool_call>\n{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})}\n</tool_call>'
             for c in message.get("tool_calls") or []]
    return "\n".join([content, *calls]) if calls else content


def format_result(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class ToolEnv:
    """Base class: subclasses give ``tool_functions()``, ``prompt(row)`` and ``score(answer, row, state)``.

    ``max_turns`` bounds the assistant turns; ``success_threshold`` is the reward an episode needs to count
    as a success. ``messages`` holds the whole conversation (the assistant turns as the model wrote them,
    tool calls included in the text)."""

    name = "tool-env"
    max_turns = 4
    success_threshold = 1.0
    system_prompt: str | None = None

    def __init__(self, *, max_turns: int | None = None):
        if max_turns is not None:
            self.max_turns = max_turns
        self._functions = {fn.__name__: fn for fn in self.tool_functions()}
        self.tools = [tool_schema(fn) for fn in self._functions.values()]
        self._schemas = {s["function"]["name"]: s for s in self.tools}
        self.messages: list[dict] = []
        self.row: dict = {}
        self.state = EpisodeState()

    # -- what a subclass provides --------------------------------------------------------------------
    def tool_functions(self) -> list[Callable]:
        return []

    def prompt(self, row: dict) -> list[dict]:
        """The opening messages: the system prompt (if any) and the row's question as the user turn."""
        question = row.get("prompt", row.get("question"))
        msgs = question if isinstance(question, list) else [{"role": "user", "content": str(question)}]
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt and msgs[0]["role"] != "system" else []
        return system + [dict(m) for m in msgs]

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        raise NotImplementedError

    def start(self, row: dict) -> None:
        """Per-episode set-up beyond the messages (a working directory, a fresh tool state)."""

    def close(self) -> None:
        """Release what ``start`` acquired."""

    # -- the protocol ---------------------------------------------------------------------------------
    def reset(self, row: dict) -> list[dict]:
        self.close()
        self.row, self.state = dict(row), EpisodeState()
        self.start(self.row)
        self.messages = self.prompt(self.row)
        return copy.deepcopy(self.messages)

    def step(self, assistant_message: str | dict) -> tuple[list[dict], float, bool, dict]:
        if self.state.done:
            raise RuntimeError("step() after the episode ended; call reset(row) first")
        text = message_text(assistant_message)
        self.messages.append({"role": "assistant", "content": text})
        self.state.turns += 1
        turn = parse_tool_calls(text)
        info = {"tool_calls": turn.attempted, "invalid_calls": len(turn.errors), "tool_errors": 0}
        if turn.attempted == 0:
            self.state.answer = text
            return self._finish([], text, info)
        out = [{"role": "tool", "name": "error", "content": f"error: {e}"} for e in turn.errors]
        for call in turn.calls:
            msg, failure = self._call(call)
            out.append(msg)
            if failure:
                info[failure] += 1
        self.state.tool_calls += turn.attempted
        self.state.invalid_calls += info["invalid_calls"]
        self.state.tool_errors += info["tool_errors"]
        self.messages.extend(out)
        if self.state.turns >= self.max_turns:
            self.state.truncated = True
            return self._finish(out, turn.text, info)
        return copy.deepcopy(out), 0.0, False, {**info, "state": self.state}

    def truncate(self) -> float:
        """End the episode now (the caller's token budget ran out): the model's last turn, without its tool
        calls, is scored as the answer. Returns the reward."""
        if not self.state.done:
            last = next((m["content"] for m in reversed(self.messages) if m["role"] == "assistant"), "")
            self.state.truncated = True
            self._finish([], parse_tool_calls(last).text, {})
        return self.state.reward

    def _finish(self, out: list[dict], answer: str, info: dict):
        self.state.reward = float(self.score(answer, self.row, self.state))
        self.state.success = self.state.reward >= self.success_threshold
        self.state.done = True
        self.close()
        return copy.deepcopy(out), self.state.reward, True, {**info, "state": self.state}

    def _call(self, call: ToolCall) -> tuple[dict, str | None]:
        """(the tool message, None or what failed: "invalid_calls" for the call itself, "tool_errors" for the tool)."""
        if call.name not in self._functions:
            known = ", ".join(self._functions) or "none"
            return {"role": "tool", "name": call.name, "content": f"error: unknown tool {call.name!r} (tools: {known})"}, \
                "invalid_calls"
        problem = check_arguments(self._schemas[call.name], call.arguments)
        if problem:
            return {"role": "tool", "name": call.name, "content": f"error: {problem}"}, "invalid_calls"
        try:
            return {"role": "tool", "name": call.name, "content": format_result(self._functions[call.name](**call.arguments))}, None
        except ToolError as e:
            result = f"error: {e}"
        except Exception as e:  # a tool's bug is the model's tool error, never the trainer's crash
            result = f"error: {type(e).__name__}: {e}"
        return {"role": "tool", "name": call.name, "content": result}, "tool_errors"


# -- adapters ------------------------------------------------------------------------------------------

def _call_with_accepted(fn: Callable, kwargs: dict) -> Any:
    """Call ``fn`` with the keyword arguments it declares (all of them when it takes ``**kwargs``);
    coroutine functions are run to completion."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    out = fn(**kwargs)
    return asyncio.run(out) if inspect.isawaitable(out) else out


def _public_methods(obj) -> list[Callable]:
    return [getattr(obj, n) for n in dir(type(obj)) if not n.startswith("_") and n != "reset"
            and inspect.isfunction(getattr(type(obj), n, None))]


class TRLEnvironment(ToolEnv):
    """A TRL ``environment_factory`` environment: ``factory()`` makes one object per episode, whose
    ``reset(**row)`` may return text appended to the last user turn and whose public methods (with
    docstrings and type hints) are the tools. Each reward function is called TRL-style, with lists of
    length one: ``f(prompts=[...], completions=[...], environments=[obj], **{column: [value]})``; the
    reward is their (weighted) sum."""

    def __init__(self, factory: Callable[[], Any], reward_funcs: Sequence[Callable], *, name: str = "trl-env",
                 reward_weights: Sequence[float] | None = None, prompt_key: str = "prompt", max_turns: int = 4,
                 success_threshold: float = 1.0):
        self.factory, self.reward_funcs = factory, list(reward_funcs)
        self.reward_weights = list(reward_weights or [1.0] * len(self.reward_funcs))
        self.name, self.prompt_key, self.success_threshold = name, prompt_key, success_threshold
        self.obj = factory()
        super().__init__(max_turns=max_turns)

    def tool_functions(self) -> list[Callable]:
        return _public_methods(self.obj)

    def start(self, row: dict) -> None:
        self.obj = self.factory()
        self._functions = {fn.__name__: fn for fn in _public_methods(self.obj)}
        self._observation = _call_with_accepted(self.obj.reset, row) if hasattr(self.obj, "reset") else None

    def prompt(self, row: dict) -> list[dict]:
        value = row[self.prompt_key]
        msgs = [dict(m) for m in value] if isinstance(value, list) else [{"role": "user", "content": str(value)}]
        if isinstance(self._observation, str) and self._observation:
            msgs[-1]["content"] = f"{msgs[-1]['content']}\n\n{self._observation}" if msgs[-1]["role"] == "user" \
                else msgs[-1]["content"]
        return msgs

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        n_prompt = len(self.prompt(row))
        completion = self.messages[n_prompt:]
        columns = {k: [v] for k, v in row.items() if k != self.prompt_key}
        total = 0.0
        for fn, w in zip(self.reward_funcs, self.reward_weights):
            out = _call_with_accepted(fn, {"prompts": [self.messages[:n_prompt]], "completions": [completion],
                                           "environments": [self.obj], **columns})
            total += w * float(out[0] if isinstance(out, (list, tuple)) else out)
        return total


@dataclass
class Rubric:
    """Reward functions and weights, as ``verifiers.Rubric``: each function takes any of ``prompt,
    completion, answer, state, info, task`` (and ``**kwargs``) and returns a float; the reward is the
    weighted sum, and each function's value is kept in ``state["metrics"]``."""

    funcs: list[Callable] = field(default_factory=list)
    weights: list[float] | None = None

    def score(self, *, prompt: list[dict], completion: list[dict], answer: Any, state: dict, info: dict | None = None,
              task: str | None = None) -> float:
        weights = self.weights or [1.0] * len(self.funcs)
        kwargs = {"prompt": prompt, "completion": completion, "answer": answer, "state": state,
                  "info": info or {}, "task": task}
        metrics = state.setdefault("metrics", {})
        total = 0.0
        for fn, w in zip(self.funcs, weights):
            metrics[fn.__name__] = float(_call_with_accepted(fn, dict(kwargs)))
            total += w * metrics[fn.__name__]
        return total


class VerifiersEnv(ToolEnv):
    """A ``verifiers``-style tool environment: rows ``{"prompt": [messages]}`` or ``{"question": str}`` with
    ``answer`` (and optional ``info``, ``task``), ``tools`` as plain functions, and a ``Rubric``.
    ``state`` (a dict) holds the row, the turn count and the episode's counts when the rubric runs."""

    def __init__(self, *, dataset: Iterable[dict], rubric: Rubric, tools: Sequence[Callable] = (),
                 system_prompt: str | None = None, max_turns: int = 4, name: str = "verifiers-env",
                 success_threshold: float = 1.0):
        self.dataset, self.rubric, self._tool_list = list(dataset), rubric, list(tools)
        self.system_prompt, self.name, self.success_threshold = system_prompt, name, success_threshold
        super().__init__(max_turns=max_turns)

    def tool_functions(self) -> list[Callable]:
        return self._tool_list

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        n_prompt = len(self.prompt(row))
        vf_state = {"prompt": self.messages[:n_prompt], "completion": self.messages[n_prompt:],
                    "answer": row.get("answer"), "turn": state.turns, **state.as_dict()}
        return self.rubric.score(prompt=vf_state["prompt"], completion=vf_state["completion"], answer=row.get("answer"),
                                 state=vf_state, info=row.get("info"), task=row.get("task"))


def from_verifiers(vf_env, *, name: str = "verifiers-env", max_turns: int | None = None) -> VerifiersEnv:
    """A ``VerifiersEnv`` from an environment object of the ``verifiers`` package (``vf.ToolEnv`` and
    kin): reads its ``dataset``, ``rubric`` (``funcs``/``reward_funcs`` and ``weights``/``reward_weights``,
    or the ``get_reward_funcs()``/``get_reward_weights()`` methods), ``tools``, ``system_prompt`` and
    ``max_turns``. Only the attributes are used, so the package itself is not imported here."""
    rubric = vf_env.rubric
    funcs = rubric.get_reward_funcs() if hasattr(rubric, "get_reward_funcs") else \
        getattr(rubric, "funcs", None) or getattr(rubric, "reward_funcs", [])
    weights = rubric.get_reward_weights() if hasattr(rubric, "get_reward_weights") else \
        getattr(rubric, "weights", None) or getattr(rubric, "reward_weights", None)
    dataset = [dict(r) for r in (getattr(vf_env, "dataset", None) or vf_env.eval_dataset)]
    return VerifiersEnv(dataset=dataset, rubric=Rubric(list(funcs), list(weights) if weights else None),
                        tools=list(getattr(vf_env, "tools", None) or []),
                        system_prompt=getattr(vf_env, "system_prompt", None),
                        max_turns=max_turns or getattr(vf_env, "max_turns", 4) or 4, name=name)
