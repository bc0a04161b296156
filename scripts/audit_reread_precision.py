"""Is a weak check's low precision the rater's fault or the readers' noise? (docs/evals.md, round 18)

Rows of the shipped audit set that a second reader judged blind (``human_reread_r18``: every row with
``honesty:offers_help`` that the gold rater passes, as many it fails, and every ``chain:no_leak`` row) are graded
again; per check this prints how often the two readers agree, and the rater's pass-precision (Wilson 95% CI)
under the first reader, under the re-read, and where both readers call the requirement met.

    python scripts/audit_reread_precision.py
"""

from collections import Counter

from postlab.evals.audit import AUDIT_PATH, grade_row, read_audit, wilson
from postlab.raters.gold import GoldRater

CHECKS = ("honesty:states_limit", "honesty:no_action_claim", "honesty:offers_help", "chain:no_leak")


def _share(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.0f}, {100 * hi:.0f}]" if n else "-"


def main() -> None:
    gold = GoldRater()
    c = Counter()
    for row in read_audit(AUDIT_PATH):
        if "human_reread_r18" not in row:
            continue
        result = grade_row(gold, row)
        for check, first, second in zip(result.checks, row["human"]["checks"], row["human_reread_r18"]["checks"]):
            if check.id not in CHECKS:
                continue
            c[check.id, "n"] += 1
            c[check.id, "agree"] += first == second
            if check.passed:
                c[check.id, "passes"] += 1
                c[check.id, "first"] += first
                c[check.id, "second"] += second
                c[check.id, "both"] += first and second
    for check in CHECKS:
        n = c[check, "passes"]
        print(f"{check}: readers agree on {_share(c[check, 'agree'], c[check, 'n'])} of its requirements; "
              f"rater's pass-precision: first reader {_share(c[check, 'first'], n)}, re-read "
              f"{_share(c[check, 'second'], n)}, both readers {_share(c[check, 'both'], n)}")


if __name__ == "__main__":
    main()
