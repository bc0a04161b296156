"""Tool-use demonstrations: SFT rows that show a model calling an environment's tools, for the
``calculator`` environment's train split (a 135M model makes no valid tool call before it has seen some).

Each row is a TRL conversational row with tools (``postlab sft`` reads it; ``docs/data.md``)::

    {"messages": [system, user, assistant with tool_calls, tool result, assistant "Answer: N"],
     "tools": [calculator schema], "id": ...}

``arith``: one call with the question's expression. ``wordprob``: one call with the whole story as one
expression, built from the worked solution's steps (``((27 + 9) * 3 + 7) + 35``). Every demonstration
is replayed through the environment before it is kept: the rendered assistant turns, as the model would
write them, must parse and reach reward 1.

With ``fault_rate`` (the environment's transient faults), the tasks that fault show the recovery: the
call, the tool's ``error: ...`` message, the same call again, its result, the answer. Every assistant turn
of such a demonstration is a right action (the fault is the environment's, not the model's mistake), so
training on all of them teaches only "read the error, call again".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from postlab.agents.envs.calculator import FAULT_MESSAGE, CalculatorEnv, calculator, evaluate, faulted
from postlab.agents.tools import tool_schema
from postlab.utils.io import atomic_write_text

_ARITH_QUESTION = re.compile(r"What is (.+?)\?")
_STEP_OP = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")


def story_expression(steps: tuple[str, ...]) -> str | None:
    """One expression for a word problem's worked steps. In each step the last ``a op b = c`` updates the
    running value (``a``): it becomes ``(running expression) op b``; the step's earlier ones compute ``b``
    ("2 * 9 = 18, and 27 + 18 = 45" gives ``27 + 2 * 9``). None when a step does not fit that shape."""
    first = re.search(r"-?\d+", steps[0])
    if first is None:
        return None
    acc_value, acc_expr = int(first.group()), first.group()
    for step in steps[1:]:
        found = [(int(a), op, int(b), int(c)) for a, op, b, c in _STEP_OP.findall(step)]
        if not found:
            return None
        computed: dict[int, str] = {}
        for a, op, b, c in found[:-1]:
            computed[c] = f"{a} {op} {b}"
        a, op, b, c = found[-1]
        if a != acc_value:
            return None
        right = computed.get(b, str(b))
        right = f"({right})" if " " in right and op in "*/-" else right
        left = f"({acc_expr})" if " " in acc_expr and op in "*/" else acc_expr
        acc_expr, acc_value = f"{left} {op} {right}", c
    return acc_expr


def _demo(row: dict, expression: str, answer: str, fault: bool = False) -> dict:
    result = calculator(expression)
    call = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expression}}}
    calling = {"role": "assistant", "content": "", "tool_calls": [call]}
    retry = [calling, {"role": "tool", "name": "calculator", "content": f"error: {FAULT_MESSAGE}"}] if fault else []
    return {"id": row["id"], "tools": [tool_schema(calculator)], "messages": [
        *CalculatorEnv().prompt(row), *retry, calling,
        {"role": "tool", "name": "calculator", "content": result},
        {"role": "assistant", "content": f"{expression} = {result}\nAnswer: {answer}"}]}


def replays(demo: dict, row: dict, fault_rate: float = 0.0) -> bool:
    """Whether the demo's assistant turns, written as the model would write them (``tools_as_text``), solve
    the task when played through the environment (with its faults at ``fault_rate``)."""
    from postlab.data.chat import tools_as_text

    env = CalculatorEnv(fault_rate=fault_rate)
    env.reset(row)
    reward, done = 0.0, False
    for m in tools_as_text(demo["messages"], None):
        if m["role"] == "assistant" and not done:
            _, reward, done, _ = env.step(m["content"])
    return done and reward == 1.0


def calculator_demos(split: str = "train", fault_rate: float = 0.0) -> list[dict]:
    from postlab.agents.envs.calculator import rows
    from postlab.tasks.reasoning import build_problems

    steps = {p.item.id: p.steps for name in ("arith", "wordprob") for p in build_problems(name)}
    demos = []
    for row in rows(split):
        if row["suite"] == "arith":
            expression = _ARITH_QUESTION.search(row["prompt"][-1]["content"]).group(1)
        else:
            expression = story_expression(steps[row["id"]])
        if expression is None or evaluate(expression) != int(row["answer"]):
            continue
        demo = _demo(row, expression, row["answer"], fault=faulted(str(row["id"]), fault_rate))
        if replays(demo, row, fault_rate):
            demos.append(demo)
    return demos


def write_calculator_demos(path: str | Path, split: str = "train", fault_rate: float = 0.0) -> int:
    demos = calculator_demos(split, fault_rate)
    atomic_write_text(Path(path), "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in demos))
    return len(demos)
