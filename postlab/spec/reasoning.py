"""Checks for verifiable reasoning tasks: an exact final answer read from a documented format.

The final answer of a response is found like this (``final_answer_text``):

1. if the response has a ``\\boxed{...}`` (nested braces allowed) or a ``#### ...`` line, the last of
   them holds the final answer;
2. otherwise the last ``Answer: ...`` (also ``Final answer: ...``, ``the answer is ...``, any case), up
   to the end of its line.

Markdown and LaTeX decoration around it (``**``, ``$``, ``\\(``, ``\\text{}``) and a trailing full stop
are ignored. A number answer (``final_answer_number``) is the first number after the last ``=`` of that
text, or its first number when it has no ``=``: ``Answer: 42``, ``\\boxed{6 \\times 7 = 42}``,
``#### 1,234``, ``Answer: $12 dollars`` all read. Signs (``-``, ``−``), thousands separators and decimals
are read; the comparison is exact (``42.0`` is 42, ``41.99`` is not).

A countdown answer (``final_answer_expression``) is an arithmetic expression over the given numbers with
``+ - * /`` (also ``× x · ÷ − \\times \\div \\cdot``) and brackets. Where the text has ``=`` the first side
with an operator is the expression (``Answer: (25 - 5) * 3 = 60``). It reaches the target when it
evaluates to it using each given number at most as often as it is given, and every division comes out
even: no intermediate fraction and no division by zero (the Countdown rules; negative intermediates are
allowed). Number words and unary minus are not read.

Check ids (registered in ``postlab.spec.checks``):

- ``reasoning:final_answer`` {answer}: the final answer is exactly ``answer``;
- ``reasoning:format`` {}: the response gives a final answer that is a number (right or wrong);
- ``countdown:reaches_target`` {numbers, target}: the final expression follows the rules above and
  equals ``target``;
- ``countdown:format`` {}: the final answer is a well-formed expression (right or wrong).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

_BOXED = re.compile(r"\\boxed\s*\{")
_HASHES = re.compile(r"####[ \t]*((?=[-−$(\\\d])[^\n]*)")  # not a markdown heading ("#### Step 2")
_STATED = re.compile(r"\b(?:final answer|answer)\s*(?:\*\*)?\s*(?:is\b|:)([^\n]*)", re.IGNORECASE)
_DECORATION = re.compile(r"\\text\w*\s*\{([^{}]*)\}|\\[()\[\]]|\\[,!;]|\*\*|[$`]")
_NUMBER = re.compile(r"[-−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_MAX_EXPRESSION = 200  # characters: a countdown answer is short; this bounds the parser's recursion


def _boxed_contents(text: str) -> list[tuple[int, str]]:
    """(position, contents) of every ``\\boxed{...}``, matching nested braces; an unclosed one is skipped."""
    out = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end():i - 1]))
    return out


def _clean(span: str) -> str:
    span = _DECORATION.sub(lambda m: m.group(1) or "", span).strip()
    return span[:-1].rstrip() if span.endswith(".") else span


def final_answer_text(response: str) -> str | None:
    """The text of the response's final answer (module docstring), or None when it gives none."""
    marked = _boxed_contents(response) + [(m.start(), m.group(1)) for m in _HASHES.finditer(response)]
    if marked:
        return _clean(max(marked)[1])
    stated = list(_STATED.finditer(response))
    return _clean(stated[-1].group(1)) if stated else None


def _to_fraction(token: str) -> Fraction:
    return Fraction(token.replace("−", "-").replace(",", ""))


def final_answer_number(response: str) -> Fraction | None:
    """The final answer as an exact number, or None when there is no final answer or it holds no number."""
    text = final_answer_text(response)
    if text is None:
        return None
    m = _NUMBER.search(text.rsplit("=", 1)[-1])
    return _to_fraction(m.group()) if m else None


# --- countdown expressions ---

_SYMBOLS = [("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"), ("÷", "/"),
            ("−", "-"), ("–", "-"), ("[", "("), ("]", ")")]
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_TIMES_X = re.compile(r"(?<=[\d)\s])[xX](?=[\s\d(])")


class InvalidExpression(ValueError):
    """The text is an expression but breaks a rule (division by zero, a fraction on the way)."""


def _tokens(text: str) -> list[str] | None:
    """Tokens of an arithmetic expression, or None when the text holds anything else."""
    for old, new in _SYMBOLS:
        text = text.replace(old, new)
    text = _TIMES_X.sub("*", text).strip()
    if not text or len(text) > _MAX_EXPRESSION:
        return None
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            return None
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent over ``expr := term (('+'|'-') term)*``, ``term := atom (('*'|'/') atom)*``,
    ``atom := integer | '(' expr ')'``, in exact integers; records every number used."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.used = tokens, 0, []

    def parse(self) -> int:
        value = self.expr()
        if self.pos != len(self.tokens):
            raise SyntaxError("trailing tokens")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise SyntaxError("unexpected end")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> int:
        value = self.term()
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> int:
        value = self.atom()
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.atom()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise InvalidExpression("division by zero")
            elif value % rhs:
                raise InvalidExpression(f"{value} / {rhs} is not a whole number")
            else:
                value //= rhs
        return value

    def atom(self) -> int:
        token = self.take()
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise SyntaxError("unclosed bracket")
            return value
        if not token.isdigit():
            raise SyntaxError(f"unexpected {token!r}")
        self.used.append(int(token))
        return int(token)


def final_answer_expression(response: str) -> str | None:
    """The expression side of the final answer (module docstring), or None when there is no final answer."""
    text = final_answer_text(response)
    if text is None:
        return None
    sides = [s.strip() for s in text.split("=")]
    with_operator = [s for s in sides if _tokens(s) and any(t in "+-*/" for t in _tokens(s))]
    return (with_operator or sides)[0]


def evaluate_expression(text: str) -> tuple[int, list[int]]:
    """(value, numbers used) of a countdown expression. Raises SyntaxError when it is not one and
    InvalidExpression when it breaks a rule (division by zero, a non-integer intermediate)."""
    tokens = _tokens(text)
    if not tokens:
        raise SyntaxError(f"not an arithmetic expression: {text!r}")
    parser = _Parser(tokens)
    return parser.parse(), parser.used


def _well_formed(text: str | None) -> bool:
    if text is None:
        return False
    try:
        evaluate_expression(text)
    except SyntaxError:
        return False
    except InvalidExpression:  # well formed, but breaks a rule
        pass
    return True


def reaches_target(response: str, numbers: list[int], target: int) -> bool:
    text = final_answer_expression(response)
    if text is None:
        return False
    try:
        value, used = evaluate_expression(text)
    except (SyntaxError, InvalidExpression):
        return False
    return value == target and not Counter(used) - Counter(numbers)


# --- the checks, in postlab.spec.checks' form: id -> (fn, {kwarg: converter}, describe) ---

def _exact(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number, got {value!r}")
    try:
        return Fraction(str(value).replace(",", ""))
    except ValueError:
        raise ValueError(f"must be a number, got {value!r}") from None


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def _integers(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of integers, got {value!r}")
    return [_integer(v) for v in value]


def _final_answer(response: str, answer: Fraction) -> bool:
    return final_answer_number(response) == answer


def _format(response: str) -> bool:
    return final_answer_number(response) is not None


def _countdown_format(response: str) -> bool:
    return _well_formed(final_answer_expression(response))


CHECKS: dict[str, tuple[Callable[..., bool], dict[str, Callable[[Any], Any]], Callable[..., str]]] = {
    "reasoning:final_answer": (
        _final_answer, {"answer": _exact},
        lambda answer: f"End with the exact final answer ({answer}) as 'Answer: N' or \\boxed{{N}}."),
    "reasoning:format": (
        _format, {}, lambda: "Give a final number as 'Answer: N', \\boxed{N} or '#### N'."),
    "countdown:reaches_target": (
        reaches_target, {"numbers": _integers, "target": _integer},
        lambda numbers, target: f"Give an expression that makes {target} from {', '.join(map(str, numbers))} "
                                "(each at most once, + - × ÷, whole-number steps) after 'Answer:'."),
    "countdown:format": (
        _countdown_format, {}, lambda: "Give an arithmetic expression as the final answer after 'Answer:'."),
}
