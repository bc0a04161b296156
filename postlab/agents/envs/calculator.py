"""``calculator``: the ``arith`` and ``wordprob`` suites with a calculator tool (exact arithmetic, no eval).

The model may call ``calculator(expression)`` any number of times within ``max_turns`` and ends by answering
without a tool call; the reward is 1 when that answer's final number ("Answer: N", ``\\boxed{N}``, ``#### N``,
as ``postlab.spec.reasoning`` reads it) equals the item's answer, else 0.

``fault_rate`` injects transient tool faults, so that recovery can be measured: on that share of the tasks
(the same tasks on every run: chosen by a hash of the task id), the episode's first call that would have
worked fails with ``error: the calculator is temporarily unavailable ...`` and a repeated call works. The episode
counts a tool error; succeeding after it is a recovery. Calls that fail on their own (unparsable, wrong
arguments, division by zero) are the model's errors and leave the fault pending.
"""

from __future__ import annotations

import ast
import hashlib
import operator
from fractions import Fraction

from postlab.agents.env import EpisodeState, ToolEnv, ToolError
from postlab.errors import ConfigError

MAX_EXPRESSION = 200  # characters
MAX_EXPONENT = 64
MAX_DIGITS = 60  # |result| below 10**60: no tool call can eat the machine
SUITE_NAMES = ("arith", "wordprob")
FAULT_MESSAGE = "the calculator is temporarily unavailable (a transient fault); make the same call again"

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if b.denominator != 1 or abs(b) > MAX_EXPONENT:
                raise ToolError(f"exponents must be whole numbers up to {MAX_EXPONENT}")
            if a == 0 and b < 0:
                raise ToolError("division by zero")
        elif isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise ToolError("division by zero")
        value = _BINARY[type(node.op)](a, b)
        if abs(value) >= 10 ** MAX_DIGITS:
            raise ToolError(f"result too large (over {MAX_DIGITS} digits)")
        return value
    raise ToolError(f"not arithmetic: {ast.unparse(node)[:40]!r} (use numbers, + - * / // % ** and parentheses)")


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression (``x``, ``×`` and ``÷`` are read as ``*`` and ``/``)."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**").replace(",", "")
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_EXPRESSION:
        raise ToolError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ToolError(f"cannot parse {expression!r}: {e.msg}") from None
    return _eval(tree.body)


def format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return its value.

    Args:
        expression: numbers with + - * / // % ** and parentheses, e.g. "(27 + 9) * 3 - 4"
    """
    return format_number(evaluate(expression))


SYSTEM_PROMPT = ("You solve arithmetic problems. You can use the calculator tool to compute exactly; call it, read "
                 "its result, then give your final answer on the last line as \"Answer: <number>\".")


def faulted(task_id: str, fault_rate: float) -> bool:
    """Whether task ``task_id`` gets a transient fault at ``fault_rate``: a hash of the id, uniform in [0, 1),
    below the rate (the same tasks on every run and every rate's set contains the smaller rates' sets)."""
    if fault_rate <= 0:
        return False
    u = int.from_bytes(hashlib.sha256(f"calculator-fault:{task_id}".encode()).digest()[:8], "big") / 2 ** 64
    return u < fault_rate


def rows(split: str) -> list[dict]:
    """The items of ``arith`` and ``wordprob`` in ``split``, alternating between the suites."""
    from postlab.tasks.reasoning import build_problems

    per_suite = [[p for p in build_problems(name) if p.item.split == split] for name in SUITE_NAMES]
    out = []
    for i in range(max(len(ps) for ps in per_suite)):
        for ps in per_suite:
            if i < len(ps):
                p = ps[i]
                out.append({"id": p.item.id, "prompt": p.item.messages, "answer": p.answer,
                            "suite": p.item.category, "level": p.item.level})
    return out


class CalculatorEnv(ToolEnv):
    name = "calculator"
    description = "arith and wordprob with a calculator tool; reward 1 for the exact final answer"
    max_turns = 4
    system_prompt = SYSTEM_PROMPT

    def __init__(self, *, max_turns: int | None = None, tools: bool = True, fault_rate: float = 0.0):
        if not 0.0 <= fault_rate <= 1.0:
            raise ConfigError(f"fault_rate: {fault_rate} is not a share between 0 and 1")
        self.use_tools = tools  # False: the same tasks without the tool (the no-tool baseline)
        if not tools:
            self.system_prompt = None
        self.fault_rate = fault_rate
        self._fault_pending = False
        super().__init__(max_turns=max_turns)

    def start(self, row: dict) -> None:
        self._fault_pending = self.use_tools and faulted(str(row["id"]), self.fault_rate)

    def _call(self, call):
        msg, failure = super()._call(call)
        if failure is None and self._fault_pending:  # the first call of a faulted task that worked
            self._fault_pending = False
            return {"role": "tool", "name": call.name, "content": f"error: {FAULT_MESSAGE}"}, "tool_errors"
        return msg, failure

    def tool_functions(self):
        return [calculator] if self.use_tools else []

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        from postlab.spec.reasoning import final_answer_number

        return float(final_answer_number(answer) == Fraction(str(row["answer"])))
