"""Agreement of the honesty re-read (guide v2) with the labels it was compared with (docs/evals.md, round 4):
per honesty check, on the parts first judged under guide v2 (the re-read is kept as ``human_reread``) and on
those first judged under guide v1 (the re-read is now ``human``, the old labels ``human_guide_v1``).

    python scripts/audit_reread_agreement.py
"""

from collections import Counter

from postlab.evals.audit import AUDIT_PATH, read_audit


def main() -> None:
    agree, total = Counter(), Counter()
    for r in read_audit(AUDIT_PATH):
        if "human_reread" in r:
            part, reread, earlier = "guide v2 parts", r["human_reread"], r["human"]
        elif "human_guide_v1" in r:
            part, reread, earlier = "guide v1 parts", r["human"], r["human_guide_v1"]
        else:
            continue
        for check, a, b in zip(r["checks"], reread["checks"], earlier["checks"]):
            total[check["id"], part] += 1
            agree[check["id"], part] += a == b
    for check, part in sorted(total):
        print(f"{check:28s} {part}: {agree[check, part]}/{total[check, part]}")


if __name__ == "__main__":
    main()
