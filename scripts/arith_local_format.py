"""A variant of the arith worked format, tried in docs/results.md ("Reasoning: distinct demonstrations, or a
higher learning rate ...") and not kept: every column of a subtraction writes one result (a borrowed-from digit
is taken down in the same line, ``9 - 1 - 4 = 4``, not on a line of its own), and a negative result's sign is
said next to it (``38 - 65 is minus (65 - 38): ..., so 65 - 38 = 27 and 38 - 65 = -27``). ``install()``
puts it in place of the shipped ``postlab.tasks.reasoning.column_step`` for this process (the generators
call it by name), so ``worked_demos`` and ``build_problems`` give the variant's solutions."""

from __future__ import annotations

from postlab.tasks import reasoning


def sub_columns(a: int, b: int) -> list[str]:
    da, db = reasoning._digits(a), reasoning._digits(b)
    db += [0] * (len(da) - len(db))
    cols, borrow = [], 0
    for x, y in zip(da, db):
        top = x - borrow  # the column's digit, less the 1 that the column before borrowed from it
        head = f"{x} - 1 - {y}" if borrow else None
        borrow = int(top < y)
        if borrow:
            cols.append(f"{head + ': ' if head else ''}borrow {top + 10} - {y} = {top + 10 - y}")
        else:
            cols.append(f"{head or f'{x} - {y}'} = {top - y}")
    return cols


def column_step(a: int, op: str, b: int) -> str:
    value = a + b if op == "+" else a - b if op == "-" else a * b
    if abs(a) < 10 and b < 10:
        return f"{a} {op} {b} = {value}"
    if op == "*":
        return f"{a} * {b}: " + ", ".join(reasoning._mul_columns(a, b)) + f", so {a} * {b} = {value}"
    if a < 0 and op == "-":
        x, inner, y = -a, "+", b
    elif a < 0:
        x, inner, y = (b, "-", -a) if b >= -a else (-a, "-", b)
    else:
        x, inner, y = (a, op, b) if op == "+" or a >= b else (b, "-", a)
    work = reasoning._add_columns(x, y) if inner == "+" else sub_columns(x, y)
    if (x, inner, y) == (a, op, b):
        return f"{a} {op} {b}: " + ", ".join(work) + f", so {a} {op} {b} = {value}"
    size = x + y if inner == "+" else x - y
    sign = "" if value >= 0 else "minus "
    return (f"{a} {op} {b} is {sign}({x} {inner} {y}): " + ", ".join(work)
            + f", so {x} {inner} {y} = {size} and {a} {op} {b} = {value}")


def install() -> None:
    reasoning.column_step = column_step
