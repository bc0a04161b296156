"""Best-of-n at inference against a reward model: the policy of ``postlab run algo=bon``.

For each held-out prompt the candidates are the policy's greedy answer and n − 1 samples at temperature
T; the reward model scores all n and the highest-scoring one is the answer (ties go to the earlier
candidate, the greedy answer first). No weight changes: this is the best-of-n policy that Gao, Schulman &
Hilton (2022) and Stiennon et al. (2020) set beside RL as the other way to optimise a reward model, and
that Llama 2's rejection sampling distils. Keeping the greedy answer among the candidates means the reward
model only replaces it when it prefers a sample, so what best-of-n adds over greedy decoding is the reward
model's own judgement on prompts it never saw.

KL: for n independent samples, KL(π_bon ‖ π) = log n − (n − 1)/n (Stiennon et al. 2020, appendix); with the
greedy answer among the candidates the candidates are not independent draws, so that value is reported
as the usual best-of-n figure (``kl_analytic``), not as a measurement.

Math: docs/algorithms/best_of_n.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from postlab.evals.generate import generate_responses, read_responses
from postlab.evals.harness import grade, load_engine, samples_path
from postlab.rollout import SamplingParams
from postlab.tasks.suite import load_suite
from postlab.train.bon import analytic_kl
from postlab.utils.io import atomic_write_text


def pick(scores: list[float]) -> int:
    """Index of the highest score; the earliest on ties (candidate 0 is the greedy answer)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def evaluate_bon_policy(policy: str, rm_dir: str, greedy_samples: str, out: str | Path, *, suite: str, n: int,
                        temperature: float, max_new_tokens: int, batch_size: int, limit: int | None, dtype: str,
                        bf16_rm: bool, progress: bool, seed: int = 0) -> dict:
    """Grade the best-of-n policy on ``suite``'s test items; writes ``out`` and its samples file as
    ``postlab eval`` does, plus ``<out stem>.candidates.jsonl`` with every candidate and its reward."""
    from postlab.raters.reward_model import RewardModelRater

    items = load_suite(suite, split="test", limit=limit)
    greedy = read_responses(greedy_samples, items)  # in item order
    jobs = [it for it in items for _ in range(n - 1)]
    engine = load_engine(policy, dtype)
    sampled = generate_responses(engine, jobs, SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens,
                                                              seed=seed), batch_size=batch_size, progress=progress,
                                 desc=f"best-of-{n}: {n - 1} samples per prompt")
    del engine
    cands = [[greedy[i], *sampled[i * (n - 1):(i + 1) * (n - 1)]] for i in range(len(items))]
    flat = RewardModelRater(rm_dir, bf16=bf16_rm).score_texts([it.messages for it in items for _ in range(n)],
                                                              [r.text for c in cands for r in c])
    scores = [flat[i * n:(i + 1) * n] for i in range(len(items))]
    picks = [pick(s) for s in scores]
    summary, rows = grade(items, [c[p] for c, p in zip(cands, picks)])
    for row, s, p in zip(rows, scores, picks):
        row.update(bon_pick=p, proxy=s[p], proxy_greedy=s[0])
    out = Path(out)
    results = {"model": f"best-of-{n}({policy}; rm={rm_dir})", "suite": suite, "split": "test", **summary,
               "samples": str(samples_path(out)), "bon": {
                   "n": n, "temperature": temperature, "kl_analytic": analytic_kl(n),
                   "picked_greedy": sum(p == 0 for p in picks) / len(picks),
                   "proxy_picks": sum(s[p] for s, p in zip(scores, picks)) / len(picks),
                   "proxy_greedy": sum(s[0] for s in scores) / len(scores)}}
    atomic_write_text(out.with_suffix(".candidates.jsonl"), "".join(
        json.dumps({"id": it.id, "candidate": j, "response": r.text, "proxy": s[j], "picked": j == p},
                   ensure_ascii=False) + "\n"
        for it, c, s, p in zip(items, cands, scores, picks) for j, r in enumerate(c)))
    atomic_write_text(samples_path(out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results
