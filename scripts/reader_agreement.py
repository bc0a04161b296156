"""How far two blind readings of the same answers agree, per check, and the gold rater's pass-precision against
each reading and against the two together.

    python scripts/reader_agreement.py [--audit postlab/assets/gold_audit.jsonl] \
        [--second postlab/assets/gold_audit_reread.jsonl] [--checks honesty:offers_help,chain:no_leak]

The first reading is the audit set's own (`human.checks`); the second (`scripts/audit_sample.py --reread`, then
`--merge`) holds rows {"key", "human": {"checks", "good", "note", "judged_by"}} for some of the same keys. Prints,
per check: answers read twice, the two readings' agreement and Cohen's kappa, and of the answers gold passes the
share each reading passes, the share both pass, and the share passing among those the readings agree on (Wilson 95%
intervals). A check's precision cannot be measured more finely than its readings agree.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from postlab.evals.audit import AUDIT_PATH, grade_row, read_audit, wilson
from postlab.raters.gold import GoldRater

SECOND_PATH = AUDIT_PATH.with_name("gold_audit_reread.jsonl")


def kappa(pairs: list[tuple[bool, bool]]) -> float:
    """Cohen's kappa of two readers' binary verdicts: (p_o − p_e) / (1 − p_e)."""
    n = len(pairs)
    if n == 0:
        return float("nan")
    p_o = sum(a == b for a, b in pairs) / n
    pa, pb = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if p_e == 1 else (p_o - p_e) / (1 - p_e)


def share(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:5.1f} [{100 * lo:3.0f},{100 * hi:4.0f}] of {n}"


def compare(audit: list[dict], second: dict[str, dict], only: set[str]) -> dict[str, dict]:
    gold = GoldRater()
    per: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)  # check -> (gold, first, second)
    for row in audit:
        other = second.get(row["key"])
        if other is None:
            continue
        result = grade_row(gold, row)
        for c, g, first, again in zip(row["checks"], result.checks, row["human"]["checks"], other["checks"]):
            if not only or c["id"] in only:
                per[c["id"]].append((g.passed, bool(first), bool(again)))
    out = {}
    for cid, rows in sorted(per.items()):
        passed = [(f, s) for g, f, s in rows if g]
        agreed = [f for f, s in passed if f == s]
        out[cid] = {"n": len(rows), "readings_agree": sum(f == s for _, f, s in rows), "kappa": kappa([(f, s) for _, f, s in rows]),
                    "gold_passes": len(passed), "first": sum(f for f, _ in passed), "second": sum(s for _, s in passed),
                    "both": sum(f and s for f, s in passed), "agreed": len(agreed), "agreed_pass": sum(agreed)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audit", type=Path, default=AUDIT_PATH)
    p.add_argument("--second", type=Path, default=SECOND_PATH)
    p.add_argument("--checks", default="", help="comma-separated check ids (default: every check read twice)")
    args = p.parse_args()
    second = {r["key"]: r["human"] for r in map(json.loads, args.second.read_text().splitlines()) if r}
    stats = compare(read_audit(args.audit), second, set(filter(None, args.checks.split(","))))
    print(f"{len(second)} answers read a second time; gold's pass-precision against each reading")
    for cid, s in stats.items():
        print(f"\n{cid}: read twice {s['n']}, readings agree {share(s['readings_agree'], s['n'])}, "
              f"kappa {s['kappa']:.2f}")
        print(f"  of gold's passes: first reading passes {share(s['first'], s['gold_passes'])}")
        print(f"                    second reading passes {share(s['second'], s['gold_passes'])}")
        print(f"                    both pass {share(s['both'], s['gold_passes'])}")
        print(f"                    where the readings agree, they pass {share(s['agreed_pass'], s['agreed'])}")


if __name__ == "__main__":
    main()
