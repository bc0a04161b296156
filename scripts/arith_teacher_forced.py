"""Are a policy's one-digit facts wrong because it cannot add, or because its own earlier mistakes lead it astray?
Teacher-forced on the worked solutions of the arith test items at levels 1-4 (the preset's format, every earlier
token right), the policy's greedy prediction of each result that the solution writes: the one-digit facts'
results (``7 + 2 + carry 1 = 10``), and the ``so a op b = c`` lines' results, digit by digit. Compare with the
free-running error rates of ``scripts/arith_error_census.py``.

    python scripts/arith_teacher_forced.py MODEL_DIR [MODEL_DIR ...] [--local]

``--local``: the solutions in the variant format of scripts/arith_local_format.py (for a model tuned on it).
"""

from __future__ import annotations

import re
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from postlab.tasks.reasoning import build_problems

FACT = re.compile(r"(?<![\d-])\d [+*-] \d(?: \+ carry \d)? = (-?\d+)(?! and)")
RESULT = re.compile(r"so -?\d+ [+*-] \d+ = (-?\d+)")


def score(model_dir: str) -> dict[str, list[int]]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    right = {"fact": [0, 0], "result": [0, 0]}  # kind -> [right, of]
    for p in build_problems("arith"):
        if p.item.split != "test" or p.item.level > 4:
            continue
        prompt = tok.apply_chat_template(p.item.messages, tokenize=False, add_generation_prompt=True)
        solution = p.solution()
        enc = tok(prompt + solution, return_offsets_mapping=True, add_special_tokens=False)
        ids, offsets = torch.tensor([enc["input_ids"]]), enc["offset_mapping"]
        with torch.no_grad():
            predicted = model(ids).logits[0].argmax(-1)
        for kind, pattern in (("fact", FACT), ("result", RESULT)):
            for m in pattern.finditer(solution):
                start, end = len(prompt) + m.start(1), len(prompt) + m.end(1)
                positions = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]  # " -" of a sign too
                ok = all(predicted[i - 1] == ids[0, i] for i in positions)  # each token predicted from the ones before
                right[kind][0] += ok
                right[kind][1] += 1
    return right


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--local"]
    if not args:
        sys.exit(__doc__)
    if "--local" in sys.argv:
        import arith_local_format

        arith_local_format.install()
    for model_dir in args:
        r = score(model_dir)
        print(f"{model_dir}: teacher-forced, one-digit facts wrong {r['fact'][1] - r['fact'][0]} of {r['fact'][1]} "
              f"({1 - r['fact'][0] / r['fact'][1]:.1%}); 'so a op b = c' results wrong {r['result'][1] - r['result'][0]} "
              f"of {r['result'][1]} ({1 - r['result'][0] / r['result'][1]:.1%})")


if __name__ == "__main__":
    main()
