"""Paired difference of gold scores between two eval samples files (same items): mean ± SE.
Usage: python scripts/paired_delta.py after.samples.jsonl before.samples.jsonl"""

import json
import math
import sys

a = {r["id"]: r["score"] for r in map(json.loads, open(sys.argv[1]))}
b = {r["id"]: r["score"] for r in map(json.loads, open(sys.argv[2]))}
d = [a[k] - b[k] for k in a if k in b]
m = sum(d) / len(d)
se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
print(f"n={len(d)}  delta={m:+.3f} ± {se:.3f}  (better {sum(x > 0 for x in d)}, worse {sum(x < 0 for x in d)}, same {sum(x == 0 for x in d)})")
