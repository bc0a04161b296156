"""Where do a policy's arith answers go wrong? For each eval samples file of the ``arith`` suite (or the
``reasoning`` mix: its arith rows), at the train levels (1-4; the held-out levels score 0 and are skipped):

- the one-digit facts the answer writes in its column work (``7 + 2 + carry 1 = 12``, ``6 * 5 = 30``; a
  borrowing line's ``13 - 2`` is not one digit and is skipped) and how many of them are wrong;
- of the wrong answers, how many write a wrong one-digit fact, and how many a wrong ``so a op b = c`` line
  (the operation's result read back from its columns: a wrong fact makes it wrong too, so the second count
  includes the first).

    python scripts/arith_error_census.py DIR/epochs/eval.samples.jsonl DIR/fresh/eval.samples.jsonl ...
"""

from __future__ import annotations

import json
import re
import sys

from postlab.tasks.reasoning import build_problems

FACT = re.compile(r"(?<![\d-])(\d) ([+*-]) (\d)(?: \+ carry (\d))? = (-?\d+)(?! and)")
RESULT = re.compile(r"so (-?\d+) ([+*-]) (\d+) = (-?\d+)")


def _value(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def census(path: str, levels: dict[str, int]) -> dict:
    facts = wrong_facts = failed = failed_fact = failed_result = 0
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        if row["id"] not in levels or levels[row["id"]] > 4:
            continue
        text = row["response"]
        bad_fact = False
        for m in FACT.finditer(text):
            a, op, b, carry, z = m.groups()
            facts += 1
            if _value(int(a), op, int(b)) + int(carry or 0) != int(z):
                wrong_facts += 1
                bad_fact = True
        bad_result = any(_value(int(a), op, int(b)) != int(z) for a, op, b, z in RESULT.findall(text))
        if row["score"] < 1:
            failed += 1
            failed_fact += bad_fact
            failed_result += bad_result
    return {"facts": facts, "wrong_facts": wrong_facts, "failed": failed, "failed_with_wrong_fact": failed_fact,
            "failed_with_wrong_result_line": failed_result}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    levels = {p.item.id: p.item.level for p in build_problems("arith")}
    for path in sys.argv[1:]:
        c = census(path, levels)
        print(f"{path}: one-digit facts {c['facts']}, wrong {c['wrong_facts']} "
              f"({c['wrong_facts'] / max(1, c['facts']):.1%}); wrong answers at levels 1-4 {c['failed']}, "
              f"{c['failed_with_wrong_fact']} with a wrong one-digit fact, {c['failed_with_wrong_result_line']} with a "
              f"wrong 'so a op b = c' line")


if __name__ == "__main__":
    main()
