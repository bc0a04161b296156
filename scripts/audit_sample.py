"""Draw the gold-audit sample: real model answers to spec test items, stratified by category, as
batches for people (or careful readers) to judge without seeing the gold rater's verdicts.

    python scripts/audit_sample.py --source base=runs/d1/eval/baseline.samples.jsonl \
        --source sft=runs/d1/eval/sft.samples.jsonl --per-category 12 --batch 55 --out audit/ \
        [--exclude postlab/assets/gold_audit.jsonl]

writes audit/batch_<k>.jsonl (key, category, messages, response, requirements). Judges write
audit/labels_<k>.jsonl rows {"key", "checks": [true|false per requirement], "good": bool, "note"};
`python scripts/audit_sample.py --merge audit/ --out postlab/assets/gold_audit.jsonl` joins them.

A second, blind reading of answers already in the set (how far two readings agree, per check):

    python scripts/audit_sample.py --reread postlab/assets/gold_audit.jsonl --checks honesty:offers_help,chain:no_leak \
        --batch 76 --out reread/

writes the same batches for every audited answer that holds one of the checks, without its first reading;
`--merge reread/` joins the labels as before, and `scripts/reader_agreement.py` compares the two readings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

from postlab.spec import checks as spec_checks
from postlab.tasks.suite import load_suite


def judged(path: Path) -> set[tuple[str, str]]:
    """(item id, response) of every answer already in an audit set such as postlab/assets/gold_audit.jsonl."""
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["item_id"], r["response"]) for r in rows}


def draw(sources: dict[str, Path], per_category: int, seed: int = 0,
         exclude: set[tuple[str, str]] = frozenset()) -> list[dict]:
    """Up to `per_category` answers per category from each source, none of them an (item, response) in `exclude`
    (a held-out round judges answers the set does not hold yet: greedy answers repeat across runs)."""
    items = {it.id: it for it in load_suite("spec", split="test")}
    rng, rows = random.Random(seed), []
    for source, path in sources.items():
        samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        samples = [s for s in samples if (s["id"], s["response"]) not in exclude]
        by_cat: dict[str, list[dict]] = {}
        for s in samples:
            by_cat.setdefault(s["category"], []).append(s)
        for cat in sorted(by_cat):
            for s in rng.sample(by_cat[cat], min(per_category, len(by_cat[cat]))):
                it = items[s["id"]]
                rows.append({"key": f"{source}:{it.id}", "source": source, "item_id": it.id, "category": cat,
                             "messages": it.messages, "response": s["response"],
                             "checks": [{"id": c.id, "kwargs": c.kwargs,
                                         "requirement": spec_checks.describe(c.id, c.kwargs)} for c in it.checks]})
    rng.shuffle(rows)
    return rows


def reread(audit: Path, check_ids: set[str], seed: int = 0) -> list[dict]:
    """The audited answers that hold one of `check_ids`, shuffled, with their first reading removed."""
    rows = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    rows = [{k: v for k, v in r.items() if k != "human"} for r in rows
            if check_ids & {c["id"] for c in r["checks"]}]
    random.Random(seed).shuffle(rows)
    return rows


def merge(folder: Path) -> list[dict]:
    keys = json.loads((folder / "keys.json").read_text())  # opaque key -> "source:item_id"
    labels = {}
    for path in sorted(folder.glob("labels_*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                labels[row["key"]] = row
    out = []
    for path in sorted(folder.glob("batch_*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            lab = labels.get(row["key"])
            if lab is None:
                continue
            if len(lab["checks"]) != len(row["checks"]):
                raise SystemExit(f"{row['key']}: {len(lab['checks'])} verdicts for {len(row['checks'])} requirements")
            source, item_id = keys[row["key"]].split(":", 1)
            row["human"] = {"checks": lab["checks"], "good": lab["good"], "note": lab.get("note", "")}
            out.append({"key": keys[row["key"]], "source": source, "item_id": item_id,
                        **{k: v for k, v in row.items() if k != "key"}})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", action="append", default=[], help="NAME=samples.jsonl from postlab eval")
    p.add_argument("--per-category", type=int, default=12)
    p.add_argument("--seed", type=int, default=0, help="which items are drawn (use a new one for a fresh part)")
    p.add_argument("--batch", type=int, default=55)
    p.add_argument("--exclude", type=Path, action="append", default=[],
                   help="an audit set (e.g. postlab/assets/gold_audit.jsonl) whose answers are not drawn again")
    p.add_argument("--merge", type=Path, help="join batch_*.jsonl and labels_*.jsonl of this folder")
    p.add_argument("--reread", type=Path, help="an audit set: batches of its answers that hold one of --checks, unlabelled")
    p.add_argument("--checks", default="", help="with --reread: comma-separated check ids")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.merge:
        rows = merge(args.merge)
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{len(rows)} judged responses -> {args.out}")
        return
    if args.reread:
        rows = reread(args.reread, set(filter(None, args.checks.split(","))), args.seed)
    else:
        exclude = set().union(*(judged(p) for p in args.exclude))
        rows = draw({k: Path(v) for k, v in (s.split("=", 1) for s in args.source)}, args.per_category, args.seed,
                    exclude)
    args.out.mkdir(parents=True, exist_ok=True)
    # Judges see an opaque key, not which model wrote the answer.
    opaque = {hashlib.sha1(r["key"].encode()).hexdigest()[:10]: r["key"] for r in rows}
    (args.out / "keys.json").write_text(json.dumps(opaque, indent=1))
    hidden = {v: k for k, v in opaque.items()}
    for k in range(0, len(rows), args.batch):
        batch = rows[k:k + args.batch]
        (args.out / f"batch_{k // args.batch}.jsonl").write_text(
            "".join(json.dumps({"key": hidden[r["key"]], **{x: r[x] for x in ("category", "messages", "response",
                                                                                  "checks")}},
                               ensure_ascii=False) + "\n" for r in batch))
    print(f"{len(rows)} responses in {(len(rows) + args.batch - 1) // args.batch} batches -> {args.out}")


if __name__ == "__main__":
    main()
