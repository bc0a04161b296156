"""Built-in verifiable reasoning suites (``arith``, ``countdown``, ``wordprob``) and GSM8K-format files.

Every item is generated together with its worked solution, so each answer is known exactly and each
train item can become an SFT demonstration whose assistant turn shows every intermediate step. The
difficulty is a dial, ``Item.level`` (1 = easiest):

- ``arith``      evaluate an expression with ``+ - *`` (at most one ``*``, by a one-digit factor), standard
                 precedence;
                 level = (operands, digits): 1 (2, 1), 2 (2, 2), 3 (3, 2), 4 (3, 3), 5 (4, 3), 6 (4, 4);
- ``countdown``  make a target from given numbers with ``+ - * /``, each used at most once, divisions
                 even; level = how many numbers are given: 3, 4, 5, 6, 7 (a solution using them all exists);
- ``wordprob``   a short story about a quantity changed step by step (buys, gets packs, gives away,
                 doubles, shares out); level = steps: 2, 3, 4, 5, 6.

The train split uses the lower levels (``TRAIN_LEVELS``); the test split repeats them (in-distribution)
and adds harder ones no train item has (held out). Output is a pure function of ``SEED``: the same
items, in the same fixed shuffled order, on every call and machine, in milliseconds; no prompt is in
both splits. Checks (``postlab.spec.reasoning``): ``reasoning:final_answer`` for ``arith`` and
``wordprob``, ``countdown:reaches_target`` for ``countdown``.

GSM8K-format rows (``{"question", "answer"}``, the answer ending in ``#### N``) load as items of
category ``gsm8k`` (``gsm8k_item``; ``load_suite`` detects the shape).

Demonstrations: ``worked_demos(name)`` gives SFT rows, ``fresh_demos(name, n)`` n more drawn anew at the train
levels (``fresh_problems``), ``write_demos(name, path)`` writes them as JSONL;
``python -m postlab.tasks.reasoning arith --out arith_demos.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from postlab.errors import DataError
from postlab.spec.reasoning import final_answer_number
from postlab.tasks.suite import SPLITS, Item, make_item
from postlab.utils.io import atomic_write_text

SEED = 20_261_130
SUITES = ("arith", "countdown", "wordprob")
MIXED = ("arith", "countdown")  # the suites of the mixed suite ``reasoning``

NUMBER_FORMAT = 'Give your final answer on the last line as "Answer: <number>".'
EXPRESSION_FORMAT = 'Give your final answer on the last line as "Answer: <expression>".'

ARITH_LEVELS: dict[int, tuple[int, int]] = {1: (2, 1), 2: (2, 2), 3: (3, 2), 4: (3, 3), 5: (4, 3), 6: (4, 4)}
COUNTDOWN_LEVELS: dict[int, int] = {1: 3, 2: 4, 3: 5, 4: 6, 5: 7}  # numbers given
WORDPROB_LEVELS: dict[int, int] = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6}  # steps after the starting amount

# suite -> split -> {level: items}; test = the train levels (in distribution) + held-out harder levels
COUNTS: dict[str, dict[str, dict[int, int]]] = {
    "arith": {"train": {1: 80, 2: 80, 3: 80, 4: 80}, "test": {1: 15, 2: 15, 3: 15, 4: 15, 5: 45, 6: 45}},
    "countdown": {"train": {1: 100, 2: 100, 3: 100}, "test": {1: 20, 2: 20, 3: 20, 4: 45, 5: 45}},
    "wordprob": {"train": {1: 100, 2: 100, 3: 100}, "test": {1: 20, 2: 20, 3: 20, 4: 45, 5: 45}},
}
TRAIN_LEVELS = {name: tuple(COUNTS[name]["train"]) for name in SUITES}


@dataclass(frozen=True)
class Problem:
    """An item with its worked solution: `steps` are the intermediate lines (each ends in the value it
    computes) and `answer` is what follows "Answer: " on the last line."""
    item: Item
    steps: tuple[str, ...]
    answer: str

    def solution(self) -> str:
        return "\n".join([*self.steps, f"Answer: {self.answer}"])


@dataclass(frozen=True)
class _Draw:
    question: str
    steps: tuple[str, ...]
    answer: str
    checks: list[tuple[str, dict]]


# ====================================================================================================
# arith: multi-digit arithmetic with standard precedence
# ====================================================================================================

def _arith(rng: random.Random, level: int) -> _Draw:
    n, digits = ARITH_LEVELS[level]
    low, high = (1 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
    operands = [rng.randint(low, high)]
    ops = []
    for _ in range(n - 1):
        op = rng.choice("+-*" if "*" not in ops else "+-")  # at most one product: this is long addition
        ops.append(op)
        operands.append(rng.randint(2, 9) if op == "*" else rng.randint(low, high))
    expression = " ".join([str(operands[0]), *(f"{op} {x}" for op, x in zip(ops, operands[1:]))])
    steps = []
    terms, signs = [operands[0]], []  # products first: the sum of signed terms left to right
    for op, x in zip(ops, operands[1:]):
        if op == "*":
            steps.append(column_step(terms[-1], "*", x))
            terms[-1] *= x
        else:
            terms.append(x)
            signs.append(op)
    value = terms[0]
    for sign, term in zip(signs, terms[1:]):
        steps.append(column_step(value, sign, term))
        value = value + term if sign == "+" else value - term
    return _Draw(f"What is {expression}? {NUMBER_FORMAT}", tuple(steps), str(value),
                 [("reasoning:final_answer", {"answer": value})])


def _digits(n: int) -> list[int]:
    """Decimal digits of n ≥ 0, ones first."""
    return [int(d) for d in reversed(str(n))]


def _add_columns(a: int, b: int) -> list[str]:
    """Long addition of a, b ≥ 0, ones column first: each column's sum with the carry from the one before."""
    da, db = _digits(a), _digits(b)
    da, db = da + [0] * (len(db) - len(da)), db + [0] * (len(da) - len(db))
    cols, carry = [], 0
    for x, y in zip(da, db):
        total = x + y + carry
        cols.append(f"{x} + {y} = {total}" if not carry else f"{x} + {y} + carry {carry} = {total}")
        carry = total // 10
    return cols


def _sub_columns(a: int, b: int) -> list[str]:
    """Long subtraction of b from a ≥ b ≥ 0, ones column first, borrowing from the next column."""
    da, db = _digits(a), _digits(b)
    db += [0] * (len(da) - len(db))
    cols, borrow = [], 0
    for x, y in zip(da, db):
        if borrow:
            cols.append(f"{x} - 1 = {x - 1}")
            x -= 1
        borrow = int(x < y)
        cols.append(f"{x} - {y} = {x - y}" if not borrow else f"borrow {x + 10} - {y} = {x + 10 - y}")
    return cols


def _mul_columns(a: int, d: int) -> list[str]:
    """a ≥ 0 times one digit d, ones column first, each product with the carry from the one before."""
    cols, carry = [], 0
    for x in _digits(a):
        product = x * d
        cols.append(f"{x} * {d} = {product}" if not carry else f"{x} * {d} = {product} and carry {carry} makes {product + carry}")
        carry = (product + carry) // 10
    return cols


def column_step(a: int, op: str, b: int) -> str:
    """One worked line for ``a op b`` (b ≥ 0; a of either sign; ``*`` by one digit): the column work a small
    model can follow digit by digit (its tokenizer splits numbers into digits), then ``so a op b = c``.
    A negative side is turned into a sum or difference of non-negative numbers first, said in words.
    One-digit operands need no columns: ``4 + 6 = 10``."""
    value = a + b if op == "+" else a - b if op == "-" else a * b
    if abs(a) < 10 and b < 10:
        return f"{a} {op} {b} = {value}"
    if op == "*":
        work = _mul_columns(a, b)
    elif a < 0 and op == "-":  # −x − y = −(x + y)
        work = [f"minus ({-a} + {b})", *_add_columns(-a, b)]
    elif a < 0:  # −x + y = y − x, or −(x − y)
        work = [f"{b} - {-a}", *_sub_columns(b, -a)] if b >= -a else [f"minus ({-a} - {b})", *_sub_columns(-a, b)]
    elif op == "+":
        work = _add_columns(a, b)
    else:  # x − y, or −(y − x) when y > x
        work = _sub_columns(a, b) if a >= b else [f"minus ({b} - {a})", *_sub_columns(b, a)]
    return f"{a} {op} {b}: " + ", ".join(work) + f", so {a} {op} {b} = {value}"


# ====================================================================================================
# countdown: reach a target from given numbers
# ====================================================================================================

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _combine(a: tuple[int, str, int], op: str, b: tuple[int, str, int]) -> tuple[int, str, int]:
    """(value, text, precedence) of `a op b`, bracketing a side only where precedence needs it."""
    (va, ta, pa), (vb, tb, pb), p = a, b, _PRECEDENCE[op]
    left = f"({ta})" if pa < p else ta
    right = f"({tb})" if pb < p or (pb == p and op in "-/") else tb
    value = {"+": va + vb, "-": va - vb, "*": va * vb, "/": va // vb}[op]  # every value is >= 1
    return value, f"{left} {op} {right}", p


def _countdown(rng: random.Random, level: int) -> _Draw | None:
    n = COUNTDOWN_LEVELS[level]
    numbers = [rng.randint(1, 12) for _ in range(n)]
    pool = [(x, str(x), 3) for x in numbers]
    steps = []
    while len(pool) > 1:
        a, b = (pool.pop(rng.randrange(len(pool))) for _ in range(2))
        ops = ["+"] + ["*"] * (a[0] * b[0] <= 1000 and min(a[0], b[0]) > 1)
        ops += ["-"] * (a[0] != b[0]) + ["/"] * (min(a[0], b[0]) > 1 and max(a[0], b[0]) % min(a[0], b[0]) == 0)
        op = rng.choice(ops)
        if op in "-/" and a[0] < b[0]:
            a, b = b, a
        combined = _combine(a, op, b)
        steps.append(f"{a[0]} {op} {b[0]} = {combined[0]}")
        pool.append(combined)
    target, expression = pool[0][0], pool[0][1]
    if not 10 <= target <= 999 or target in numbers:
        return None
    listed = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
    question = (f"Use the numbers {listed} to make {target}. You may use +, -, * and /, each number at most "
                f"once, and every division must come out even. {EXPRESSION_FORMAT}")
    return _Draw(question, tuple(steps), f"{expression} = {target}",
                 [("countdown:reaches_target", {"numbers": numbers, "target": target})])


# ====================================================================================================
# wordprob: a quantity changed step by step
# ====================================================================================================

_PEOPLE = [("Maya", "She"), ("Liam", "He"), ("Sofia", "She"), ("Noah", "He"), ("Aisha", "She"), ("Diego", "He"),
           ("Emma", "She"), ("Kenji", "He"), ("Zara", "She"), ("Omar", "He"), ("Lena", "She"), ("Tom", "He")]
_OBJECTS = ["marbles", "stickers", "stamps", "cards", "beads", "coins", "shells", "pencils", "buttons", "badges"]
_FACTORS = {2: "doubles", 3: "triples"}
_MAX_VALUE = 9999


def _wordprob_step(rng: random.Random, value: int, obj: str, pronoun: str) -> tuple[str, str, int] | None:
    """(sentence, worked line, new value) for one random step from `value`, or None if the draw does not fit."""
    kind = rng.choice(("add", "packs", "give", "factor", "share"))
    if kind == "add":
        k = rng.randint(2, 40)
        return f"{pronoun} buys {k} more.", f"Buys {k} more: {value} + {k} = {value + k}.", value + k
    if kind == "packs":
        a, b = rng.randint(2, 6), rng.randint(2, 12)
        return (f"{pronoun} gets {a} packs with {b} {obj} in each.",
                f"Gets {a} packs of {b}: {a} * {b} = {a * b}, and {value} + {a * b} = {value + a * b}.",
                value + a * b)
    if kind == "give" and value > 3:
        k = rng.randint(1, value - 2)
        return f"{pronoun} gives {k} to a friend.", f"Gives {k} away: {value} - {k} = {value - k}.", value - k
    if kind == "factor" and value * 3 <= _MAX_VALUE:
        f = rng.choice(tuple(_FACTORS))
        return (f"Then the number of {obj} {_FACTORS[f]}.", f"The number {_FACTORS[f]}: {value} * {f} = {value * f}.",
                value * f)
    divisors = [k for k in range(2, 7) if value % k == 0 and value // k >= 2]
    if kind == "share" and divisors:
        k = rng.choice(divisors)
        return (f"{pronoun} splits them equally into {k} bags and keeps one bag.",
                f"Keeps one of {k} equal bags: {value} / {k} = {value // k}.", value // k)
    return None


def _wordprob(rng: random.Random, level: int) -> _Draw | None:
    name, pronoun = rng.choice(_PEOPLE)
    obj = rng.choice(_OBJECTS)
    value = rng.randint(5, 50)
    sentences, steps = [f"{name} has {value} {obj}."], [f"{name} starts with {value} {obj}."]
    while len(steps) <= WORDPROB_LEVELS[level]:
        drawn = _wordprob_step(rng, value, obj, pronoun)
        if drawn is None:
            continue
        sentence, step, value = drawn
        if value > _MAX_VALUE:
            return None
        sentences.append(sentence)
        steps.append(step)
    question = " ".join([*sentences, f"How many {obj} does {name} have now? {NUMBER_FORMAT}"])
    return _Draw(question, tuple(steps), str(value), [("reasoning:final_answer", {"answer": value})])


# ====================================================================================================
# assembly
# ====================================================================================================

_GENERATORS: dict[str, Callable[[random.Random, int], _Draw | None]] = {
    "arith": _arith, "countdown": _countdown, "wordprob": _wordprob,
}


def build_problems(name: str) -> list[Problem]:
    """Every item of built-in reasoning suite `name` with its worked solution, in a fixed order: train
    first, then test, each split shuffled (so the first N of a split mix the levels)."""
    if name not in _GENERATORS:
        raise KeyError(f"unknown reasoning suite {name!r}; one of {', '.join(SUITES)}")
    rng = random.Random(SEED + SUITES.index(name))
    seen: set[str] = set()  # prompts drawn so far, in either split: no prompt is in both
    problems = []
    for split in SPLITS:
        drawn = []
        for level, n in COUNTS[name][split].items():
            count = 0
            for _ in range(1000 * n):
                draw = _GENERATORS[name](rng, level)
                if draw is not None and draw.question not in seen:
                    seen.add(draw.question)
                    drawn.append((level, draw))
                    count += 1
                    if count == n:
                        break
            else:
                raise AssertionError(f"{name}: could not draw {n} distinct level-{level} items for {split}")
        rng.shuffle(drawn)
        for i, (level, d) in enumerate(drawn):
            item = make_item(f"{name}-{split}-{i:04d}", [{"role": "user", "content": d.question}], name, split,
                             d.checks, level=level)
            problems.append(Problem(item, d.steps, d.answer))
    return problems


def build_arith() -> list[Item]:
    return [p.item for p in build_problems("arith")]


def build_countdown() -> list[Item]:
    return [p.item for p in build_problems("countdown")]


def build_wordprob() -> list[Item]:
    return [p.item for p in build_problems("wordprob")]


def build_mixed() -> list[Item]:
    """``reasoning``: ``arith`` and ``countdown`` together (``postlab run --preset reasoning``'s suite),
    alternating item by item within each split, so the first N of a split hold both in equal shares."""
    out = []
    for split in SPLITS:
        parts = [[p.item for p in build_problems(name) if p.item.split == split] for name in MIXED]
        for i in range(max(map(len, parts))):
            out += [part[i] for part in parts if i < len(part)]
    return out


def gsm8k_item(row: dict, where: str) -> Item:
    """A GSM8K row ``{"question", "answer"}`` (the answer's last ``#### N`` is the final answer) as an item
    of category ``gsm8k``: the question plus the final-answer instruction, graded by
    ``reasoning:final_answer``. Its id is the row's ``id`` if it has one, else ``gsm8k-<line>``."""
    question, solution = row["question"], row["answer"]
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(solution, str) or "####" not in solution:
        raise DataError(f"{where}: 'answer' must be a string ending in '#### N' (GSM8K's format)")
    value = final_answer_number(solution[solution.rindex("####"):])
    if value is None:
        raise DataError(f"{where}: no number after the last '####' in 'answer'")
    answer = int(value) if value.denominator == 1 else str(float(value))
    line = where.rsplit(":", 1)[-1]
    item_id = str(row["id"]) if "id" in row else f"gsm8k-{line}" if line.isdigit() else where
    try:
        return make_item(item_id, [{"role": "user", "content": f"{question.strip()}\n{NUMBER_FORMAT}"}], "gsm8k",
                         row.get("split"), [("reasoning:final_answer", {"answer": answer})])
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def worked_demos(name: str, split: str = "train") -> list[dict]:
    """SFT rows ``{"messages": [user, assistant]}`` for the built-in suite's `split` (``reasoning``: both of
    its suites, alternating): the assistant turn is the worked solution, one intermediate step per line,
    ending in "Answer: ..."."""
    if name == "reasoning":
        return _alternating([worked_demos(n, split) for n in MIXED])
    return [_demo(p) for p in build_problems(name) if p.item.split == split]


def _demo(p: Problem) -> dict:
    return {"id": p.item.id, "messages": [*p.item.messages, {"role": "assistant", "content": p.solution()}]}


def _alternating(parts: list[list[dict]]) -> list[dict]:
    """The parts' rows taken in turn, one from each, until all are used."""
    return [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]


def fresh_problems(name: str, n: int, seed: int = 0) -> list[Problem]:
    """`n` more train-level problems of built-in suite `name`, drawn anew from a seed of their own (in the
    train split's level proportions; a level whose prompts run out, as arith level 1's ~250 do, passes its
    share to the next): distinct from each other and from every prompt of either split, so that SFT can see
    each demonstration once instead of the split's few hundred several times, and no test prompt is taught.
    Items are of split ``train``, ids ``<suite>-fresh<seed>-<i>``, order shuffled. Deterministic in (name,
    n, seed)."""
    seen = {p.item.messages[-1]["content"] for p in build_problems(name)}  # (an unknown name raises here)
    train = COUNTS[name]["train"]
    quota = {level: n * count // sum(train.values()) for level, count in train.items()}
    quota[max(train)] += n - sum(quota.values())
    rng = random.Random(f"{SEED}-{name}-fresh-{seed}")
    drawn: list[tuple[int, _Draw]] = []
    for level in sorted(train):
        for _ in range(200 * quota[level] + 1000):
            if quota[level] == 0:
                break
            draw = _GENERATORS[name](rng, level)
            if draw is not None and draw.question not in seen:
                seen.add(draw.question)
                drawn.append((level, draw))
                quota[level] -= 1
        if quota[level] and level != max(train):
            quota[min(lv for lv in train if lv > level)] += quota[level]
        elif quota[level]:
            raise DataError(f"{name}: could not draw {n} distinct fresh items at levels {sorted(train)}")
    rng.shuffle(drawn)
    return [Problem(make_item(f"{name}-fresh{seed}-{i:05d}", [{"role": "user", "content": d.question}], name, "train",
                              d.checks, level=level), d.steps, d.answer)
            for i, (level, d) in enumerate(drawn)]


def fresh_demos(name: str, n: int, seed: int = 0) -> list[dict]:
    """SFT rows like ``worked_demos``' for ``fresh_problems(name, n, seed)``; ``reasoning``: both of its suites
    (n split between them), alternating."""
    if name == "reasoning":
        return _alternating([fresh_demos(s, n // len(MIXED) + (i < n % len(MIXED)), seed) for i, s in enumerate(MIXED)])
    return [_demo(p) for p in fresh_problems(name, n, seed)]


def write_demos(name: str, path: str | Path, split: str = "train") -> int:
    """Write `worked_demos` as JSONL (atomically); returns how many rows."""
    rows = worked_demos(name, split)
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postlab.tasks.reasoning",
                                     description="Write worked-solution SFT demonstrations of a reasoning suite.")
    parser.add_argument("suite", choices=[*SUITES, "reasoning"])
    parser.add_argument("--out", help="JSONL file to write (default SUITE_demos.jsonl)")
    parser.add_argument("--split", choices=SPLITS, default="train")
    args = parser.parse_args(argv)
    out = args.out or f"{args.suite}_demos.jsonl"
    print(f"wrote {write_demos(args.suite, out, args.split)} demonstrations to {out}")


if __name__ == "__main__":
    main()
