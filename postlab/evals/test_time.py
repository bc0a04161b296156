"""Test-time compute for ``postlab eval``: pass@k, majority vote maj@k, reward-model best-of-k, and
accuracy against a token budget. Math: docs/algorithms/test_time_compute.md.

With ``samples=N`` each item gets N sampled responses at the configured temperature (seeded: batch b
samples with seed + b, so a rerun draws the same responses), each graded by the gold rater. A sample
is *correct* when its gold score is 1 (every check passed). For k = 1, 2, 4, …, N (and N itself):

- ``pass_at_k``: the unbiased estimator of Chen et al. 2021 ("Evaluating large language models trained
  on code", eq. 1), 1 − C(n−c, k)/C(n, k) per item with c of n samples correct, averaged over items;
- ``maj_at_k``: whether the most common parsed final answer among k samples is correct, as the
  expectation over the k-subsets of the N samples (exact when there are at most ``MAX_SUBSETS`` of them,
  otherwise ``MAX_SUBSETS`` subsets drawn uniformly with a fixed seed). Only items whose answer has a
  parser (the reasoning checks of postlab/spec/reasoning.py) count; ``maj_at_k_n`` says how many;
- ``bon_at_k`` (with ``rm=``): whether the reward model's favourite of k samples is correct, the exact
  expectation over k-subsets from postlab/train/bon.py (``best_of_n_expectation``);
- ``vote_census``: why maj@N is where it is against pass@1 (``vote_census``: which items voting wins, which it
  loses, and its ceiling pass@N − pass@1).

Every figure has a standard error over items beside it (``<key>_se``). With ``budgets=[...]`` the
items are answered once per cap on new tokens (the configured decoding, one response each) and
``budget`` holds accuracy per cap.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction

from postlab.evals.metrics import mean_se
from postlab.spec.reasoning import evaluate_expression, final_answer_expression, final_answer_number
from postlab.tasks.suite import Item
from postlab.train.bon import best_of_n_expectation

MAX_SUBSETS = 2000  # maj@k enumerates every k-subset up to this many, else draws this many with a fixed seed
SUBSET_SEED = 0


def ks_up_to(n: int) -> list[int]:
    """1, 2, 4, … up to n, and n itself: the k at which the estimators are reported."""
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    return ks if ks[-1] == n else ks + [n]


# --- pass@k ---

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples is correct) from n samples, c of them correct
    (Chen et al. 2021, eq. 1): 1 − C(n−c, k)/C(n, k), the chance that a random k-subset of the n holds
    a correct one. Written as a product, 1 − ∏_{i=n−c+1}^{n} (1 − k/i), to stay exact in floats for
    large n."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"need 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


# --- maj@k ---

def majority(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most common answer, None ignored (an unparsable response casts no vote); a tie goes to the
    answer that occurs first in ``answers``. None when no answer parses."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == top)


def majority_correct(answers: Sequence[Hashable | None], correct: Sequence[bool]) -> float:
    """1.0 when the majority answer is correct (judged by the samples that gave it), else 0.0."""
    winner = majority(answers)
    return float(winner is not None and any(ok for a, ok in zip(answers, correct) if a == winner))


def maj_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int,
             max_subsets: int = MAX_SUBSETS, seed: int = SUBSET_SEED) -> float:
    """E[majority_correct of a uniformly random k-subset of the samples], each subset in sample order.
    Every subset is enumerated when there are at most ``max_subsets``; otherwise ``max_subsets`` are drawn
    with ``random.Random(seed)``. The samples are exchangeable, so the first-occurrence tie-break is a
    uniformly random one in expectation."""
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= {n}, got k={k}")
    if math.comb(n, k) <= max_subsets:
        subsets = itertools.combinations(range(n), k)
        total = math.comb(n, k)
    else:
        rng = random.Random(seed)
        subsets = (sorted(rng.sample(range(n), k)) for _ in range(max_subsets))
        total = max_subsets
    return sum(majority_correct([answers[i] for i in s], [correct[i] for i in s]) for s in subsets) / total


def vote_census(answers: list[Sequence[Hashable | None]], correct: list[Sequence[bool]]) -> dict:
    """Where maj@N − pass@1 comes from, over items with N samples each (p_i = c_i / N its share of correct
    samples, m_i = ``majority_correct`` of all N). Per item m_i − p_i is 0 when p_i is 0 or 1, 1 − p_i when
    0 < p_i < 1 and the vote is right ("won"), −p_i when it is wrong ("lost"), so

        maj@N − pass@1 = (Σ_won (1 − p_i) − Σ_lost p_i) / n  ≤  Σ_mixed (1 − p_i) / n = pass@N − pass@1,

    the ceiling voting reaches when every item with a right sample is won. Returned: the share of items
    never right, always right, won and lost; ``gain`` and ``loss`` (the two sums over n), ``ceiling``; and on
    the lost items the mean share of the right answer against the commonest wrong answer's
    (``lost_right_share``, ``lost_top_wrong_share``: is the right answer outvoted by one wrong answer, or scattered?)."""
    n = len(correct)
    if n == 0 or len(answers) != n:
        raise ValueError(f"need answers and correct for the same items, got {len(answers)} and {n}")
    counts = dict.fromkeys(("never", "always", "won", "lost"), 0)
    gain = loss = ceiling = 0.0
    right_share, wrong_share = [], []
    for ans, ok in zip(answers, correct):
        p = sum(ok) / len(ok)
        if p == 0 or p == 1:
            counts["never" if p == 0 else "always"] += 1
            continue
        ceiling += 1 - p
        if majority_correct(ans, ok):
            counts["won"] += 1
            gain += 1 - p
        else:
            counts["lost"] += 1
            loss += p
            wrong = Counter(a for a, good in zip(ans, ok) if not good and a is not None)
            right_share.append(p)
            wrong_share.append(max(wrong.values()) / len(ok) if wrong else 0.0)
    out = {f"{k}_frac": v / n for k, v in counts.items()}
    out |= {"gain": gain / n, "loss": loss / n, "ceiling": ceiling / n}
    if right_share:
        out |= {"lost_right_share": sum(right_share) / len(right_share),
                "lost_top_wrong_share": sum(wrong_share) / len(wrong_share)}
    return out


def _countdown_value(response: str, numbers: list[int]) -> int | None:
    """The value of the final expression when it follows the puzzle's rules with these numbers, else None."""
    text = final_answer_expression(response)
    if text is None:
        return None
    try:
        value, used = evaluate_expression(text)
    except (SyntaxError, ValueError):  # InvalidExpression is a ValueError
        return None
    return None if Counter(used) - Counter(numbers) else value


def parsed_answer(item: Item, response: str) -> Fraction | int | None:
    """The final answer a vote counts, by the item's reasoning check: the number of a
    ``reasoning:final_answer`` item; the value of a ``countdown:reaches_target`` item's expression when
    it keeps the rules (an expression that breaks them names no value under them and casts no vote).
    None when the response gives no such answer."""
    for c in item.checks:
        if c.id == "reasoning:final_answer":
            return final_answer_number(response)
        if c.id == "countdown:reaches_target":
            return _countdown_value(response, list(c.kwargs["numbers"]))
    return None


def has_parser(item: Item) -> bool:
    return any(c.id in ("reasoning:final_answer", "countdown:reaches_target") for c in item.checks)


# --- the whole report ---

def _curve(per_item: dict[int, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    return ({str(k): mean_se(v)[0] for k, v in per_item.items()}, {str(k): mean_se(v)[1] for k, v in per_item.items()})


def summarize(items: list[Item], correct: list[list[bool]], answers: list[list[Hashable | None]],
              rm_scores: list[list[float]] | None = None) -> dict:
    """``test_time`` section for N samples per item: correct[i][j] / answers[i][j] / rm_scores[i][j] of
    item i's sample j."""
    n = len(correct[0])
    ks = ks_up_to(n)
    out: dict = {"samples": n, "ks": ks}
    curve, se = _curve({k: [pass_at_k(n, sum(c), k) for c in correct] for k in ks})
    out |= {"pass_at_k": curve, "pass_at_k_se": se}
    voting = [i for i, it in enumerate(items) if has_parser(it)]
    if voting:
        curve, se = _curve({k: [maj_at_k(answers[i], correct[i], k) for i in voting] for k in ks})
        out |= {"maj_at_k": curve, "maj_at_k_se": se, "maj_at_k_n": len(voting),
                "vote_census": vote_census([answers[i] for i in voting], [correct[i] for i in voting])}
    if rm_scores is not None:
        curve, se = _curve({k: [best_of_n_expectation(r, [float(x) for x in c], k) for r, c in zip(rm_scores, correct)]
                            for k in ks})
        out |= {"bon_at_k": curve, "bon_at_k_se": se}
    return out


def figure(test_time: dict, title: str = ""):
    """Accuracy against k (log2 axis) for each estimator; a second panel, accuracy against the token
    cap, when the results have budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("ks", "budget") if p in test_time]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "ks":
            for key, label, marker in (("pass_at_k", "pass@k", "o"), ("maj_at_k", "maj@k", "s"), ("bon_at_k", "best-of-k (RM)", "^")):
                if key in test_time:
                    x = [int(k) for k in test_time[key]]
                    ax.errorbar(x, list(test_time[key].values()), yerr=list(test_time[f"{key}_se"].values()),
                                marker=marker, capsize=3, label=label)
            ax.set_xlabel("k (samples per item)")
            ax.legend()
        else:
            x = [int(b) for b in test_time["budget"]]
            ax.errorbar(x, list(test_time["budget"].values()), yerr=list(test_time["budget_se"].values()),
                        marker="o", capsize=3, color="tab:purple")
            ax.set_xlabel("max_new_tokens (token budget)")
        ax.set_xscale("log", base=2)
        ticks = [int(t) for t in (test_time["ks"] if panel == "ks" else test_time["budget"])]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot(test_time: dict, path, title: str = "") -> None:
    import matplotlib.pyplot as plt

    fig = figure(test_time, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def vote_line(v: dict, n: int) -> str:
    """Why maj@n sits where it does against pass@1 (``vote_census``), in one line."""
    return (f"voting: maj@{n} − pass@1 = {v['gain']:.3f} won − {v['loss']:.3f} lost, at most pass@{n} − pass@1 = "
            f"{v['ceiling']:.3f}; items never right {v['never_frac']:.0%}, always right {v['always_frac']:.0%}, "
            f"vote won {v['won_frac']:.0%}, lost {v['lost_frac']:.0%}")


def format_test_time(test_time: dict) -> str:
    lines = []
    if "samples" in test_time:
        lines.append(f"  test time: {test_time['samples']} samples per item (the lines above grade each item's first sample)")
    for key, label in (("pass_at_k", "pass@k"), ("maj_at_k", "maj@k"), ("bon_at_k", "best-of-k")):
        if key in test_time:
            lines.append(f"  {label:10s} " + "  ".join(f"k={k} {v:.3f} ± {test_time[key + '_se'][k]:.3f}"
                                                      for k, v in test_time[key].items()))
    if "vote_census" in test_time:
        lines.append("  " + vote_line(test_time["vote_census"], test_time["samples"]))
    if "budget" in test_time:
        lines.append("  budget     " + "  ".join(f"{b} tok {v:.3f} ± {test_time['budget_se'][b]:.3f}"
                                               for b, v in test_time["budget"].items()))
    return "\n".join(lines)
