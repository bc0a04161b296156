"""The arith worked-solution format experiment behind docs/results.md ("Reasoning: a digit-by-digit format, tried"):
the shipped format (`postlab.tasks.reasoning.column_step`: each operation's columns on one line, then "so
a op b = c") against an alternative where each column's line ends in the result's digits found so far ("so
far 49") and each operation is followed by the expression left to evaluate ("Left: 498 - 37"). Same items,
same answers (asserted), written as SFT data:

    python scripts/arith_format_experiment.py --out DIR       # DIR/shipped.jsonl and DIR/digits.jsonl

then, for each file F (arith train split, 320 demonstrations), SFT and evaluation on the 150 arith test items:

    postlab sft model=smollm2-135m-instruct out_dir=DIR/F data.train_file=DIR/F.jsonl data.eval_fraction=0.05 \
        data.max_seq_len=448 optim.lr=5e-5 optim.epochs=2 optim.batch_size=8 optim.warmup_steps=5 \
        optim.group_by_length=true
    postlab eval model=DIR/F/model suite=arith split=test out=DIR/F/eval.json sampling.max_new_tokens=512 batch_size=64
    python scripts/paired_delta.py DIR/digits/eval.samples.jsonl DIR/shipped/eval.samples.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from postlab.tasks.reasoning import build_problems


def digits(n: int) -> list[int]:
    return [int(d) for d in reversed(str(n))]


def add_cols(a, b):
    da, db = digits(a), digits(b)
    n = max(len(da), len(db))
    da += [0] * (n - len(da)); db += [0] * (n - len(db))
    out, carry, suffix = [], 0, ""
    for x, y in zip(da, db):
        s = x + y + carry
        suffix = str(s % 10) + suffix
        out.append(f"{x} + {y}{f' + carry {carry}' if carry else ''} = {s}, so far {suffix}")
        carry = s // 10
    if carry:
        suffix = str(carry) + suffix
        out.append(f"carry {carry}, so far {suffix}")
    return out


def sub_cols(a, b):  # a >= b >= 0
    da, db = digits(a), digits(b)
    db += [0] * (len(da) - len(db))
    out, borrow, suffix = [], 0, ""
    for x, y in zip(da, db):
        head = f"{x} - 1 = {x - 1}, " if borrow else ""
        top = x - borrow
        if top < y:
            d = top + 10 - y
            suffix = str(d) + suffix
            out.append(f"{head}borrow {top + 10} - {y} = {d}, so far {suffix}")
            borrow = 1
        else:
            d = top - y
            suffix = str(d) + suffix
            out.append(f"{head}{top} - {y} = {d}, so far {suffix}")
            borrow = 0
    return out


def mul_cols(a, d):
    out, carry, suffix = [], 0, ""
    for x in digits(a):
        p = x * d + carry
        suffix = str(p % 10) + suffix
        out.append((f"{x} * {d} = {x * d} and carry {carry} makes {p}" if carry else f"{x} * {d} = {p}") + f", so far {suffix}")
        carry = p // 10
    if carry:
        suffix = str(carry) + suffix
        out.append(f"carry {carry}, so far {suffix}")
    return out


def op_lines(a, op, b):
    v = a + b if op == "+" else a - b if op == "-" else a * b
    head = f"{a} {op} {b}"
    if abs(a) < 10 and b < 10:
        return [f"{head} = {v}"]
    if op == "*":
        work = mul_cols(a, b)
    elif a < 0 and op == "-":
        work = [f"{head} is -({-a} + {b})", *add_cols(-a, b)]
    elif a < 0:
        work = [f"{head} is {b} - {-a}", *sub_cols(b, -a)] if b >= -a else [f"{head} is -({-a} - {b})", *sub_cols(-a, b)]
    elif op == "+":
        work = add_cols(a, b)
    else:
        work = sub_cols(a, b) if a >= b else [f"{head} is -({b} - {a})", *sub_cols(b, a)]
    if not work[0].startswith(head):
        work = [f"{head}:", *work]
    return [*work, f"{head} = {v}"]


def solve(expr):
    toks = expr.split()
    nums = [int(toks[0])]
    ops = []
    for i in range(1, len(toks), 2):
        ops.append(toks[i]); nums.append(int(toks[i + 1]))
    lines = []

    def left():
        return " ".join([str(nums[0]), *(f"{o} {x}" for o, x in zip(ops, nums[1:]))])
    while "*" in ops:
        i = ops.index("*")
        a, b = nums[i], nums[i + 1]
        lines += op_lines(a, "*", b)
        nums[i:i + 2] = [a * b]; ops.pop(i)
        lines.append(f"Left: {left()}")
    while ops:
        a, op, b = nums[0], ops[0], nums[1]
        lines += op_lines(a, op, b)
        nums[0:2] = [a + b if op == "+" else a - b]; ops.pop(0)
        lines.append(f"Left: {left()}")
    return lines, nums[0]


def demos(split: str = "train") -> tuple[list[dict], list[dict]]:
    """(shipped-format rows, digit-by-digit rows) of the arith suite's `split`, item by item."""
    shipped, alternative = [], []
    for p in build_problems("arith"):
        if p.item.split != split:
            continue
        expr = re.match(r"What is (.*)\? Give", p.item.messages[-1]["content"]).group(1)
        lines, value = solve(expr)
        assert str(value) == p.answer, (expr, value, p.answer)
        shipped.append({"id": p.item.id, "messages": [*p.item.messages, {"role": "assistant", "content": p.solution()}]})
        alternative.append({"id": p.item.id, "messages": [*p.item.messages, {"role": "assistant",
                                                                             "content": "\n".join([*lines, f"Answer: {value}"])}]})
    return shipped, alternative


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="train", choices=["train", "test"])
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in zip(("shipped", "digits"), demos(a.split)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{len(rows)} rows -> {out / name}.jsonl")


if __name__ == "__main__":
    main()
