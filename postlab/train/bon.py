"""``postlab bon``: best-of-n against a reward model, scored by the proxy and by gold.

For each prompt N = max(n) responses are drawn once from the policy; best-of-n for every smaller n
reuses them. Rather than one arbitrary subset of size n, each figure is the exact expectation over
all size-n subsets of the N samples (Gao et al. 2022, "Scaling laws for reward model
overoptimization", appendix): with samples sorted by proxy reward ascending, the i-th (1-based) is
the best of a random n-subset with probability C(i−1, n−1) / C(N, n). The policy's KL to itself after
best-of-n selection is log n − (n − 1)/n (Stiennon et al. 2020, appendix). Math:
docs/algorithms/best_of_n.md.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section
from postlab.data.jsonl import read_jsonl
from postlab.errors import ConfigError, DataError
from postlab.machine import AutoDType
from postlab.models.prepare import pick_device
from postlab.evals.generate import generate_responses
from postlab.evals.harness import load_engine
from postlab.raters.gold import GoldRater
from postlab.raters.reward_model import RewardModelRater, score_together
from postlab.rollout import SamplingParams
from postlab.tasks.suite import load_suite
from postlab.utils.io import atomic_write_text
from postlab.utils.journal import digest, model_identity, open_journal


class BoNConfig(Section):
    """postlab bon: best-of-n sampling against a reward model, with gold tracking."""

    policy: str = Field("smollm2-135m-instruct", description="policy model: built-in name, directory or hub id")
    rm: str = Field(..., description="reward model directory (from `postlab rm`)")
    suite: str = Field("spec", description="built-in suite name or JSONL")
    split: Literal["train", "test", "all"] = Field("test", description="which split")
    limit: int | None = Field(None, ge=1, description="only the first N items")
    n: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32], description="values of n (the largest is drawn once per prompt)")
    out_dir: str = Field("runs/bon", description="writes bon.json, bon.png and samples.jsonl here")
    samples: str | None = Field(None, description="score the samples.jsonl of an earlier bon run (same items, >= max(n) per item) instead of sampling again, e.g. to compare reward models")
    batch_size: int = Field(32, ge=1, description="sequences generated together")
    dtype: AutoDType = Field("auto", validate_default=True, description="policy dtype for sampling: fp32, bf16, or auto = the faster on this machine (postlab.machine)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to sample and score")
    sampling: SamplingParams = Field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=128, seed=0),
                                     description="sampling (temperature 1 keeps the analytic KL exact)")
    progress: bool = Field(True, description="show progress bars")

    def check(self) -> None:
        super().check()
        if not self.n or any(k < 1 for k in self.n):
            raise ConfigError(f"n: expected positive integers, got {self.n}")
        if not Path(self.rm).is_dir():
            raise ConfigError(f"rm: not a directory: {self.rm}")
        if self.sampling.seed is None:
            raise ConfigError("sampling.seed: best-of-n needs a seed for reproducible samples")
        if self.samples is not None and not Path(self.samples).is_file():
            raise ConfigError(f"samples: file not found: {self.samples}")


def analytic_kl(n: int) -> float:
    """KL(π_bon ‖ π) = log n − (n − 1)/n."""
    return math.log(n) - (n - 1) / n


def best_of_n_expectation(proxy: list[float], values: list[float], n: int) -> float:
    """E[value of the proxy-best of a uniformly random n-subset of the samples]."""
    N = len(proxy)
    if n > N:
        raise ValueError(f"n={n} > {N} samples")
    ranked = [v for _, v in sorted(zip(proxy, values), key=lambda t: t[0])]
    total = math.comb(N, n)
    return sum(math.comb(i - 1, n - 1) * v for i, v in enumerate(ranked, start=1) if i >= n) / total


def summarize(proxy: list[list[float]], gold: list[list[float]], ns: list[int]) -> list[dict]:
    rows = []
    for n in sorted(set(ns)):
        p = [best_of_n_expectation(pr, pr, n) for pr in proxy]
        g = [best_of_n_expectation(pr, gd, n) for pr, gd in zip(proxy, gold)]
        k = len(p)
        se = lambda xs: math.sqrt(sum((x - sum(xs) / k) ** 2 for x in xs) / max(k - 1, 1) / k)  # noqa: E731
        kl = analytic_kl(n)
        rows.append({"n": n, "kl": kl, "sqrt_kl": math.sqrt(kl), "proxy": sum(p) / k, "proxy_se": se(p),
                     "gold": sum(g) / k, "gold_se": se(g)})
    return rows


def figure(rows: list[dict], title: str = ""):
    """Gold (left axis) and proxy (right axis) against sqrt(KL), one point per n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["sqrt_kl"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax1.errorbar(x, [r["gold"] for r in rows], yerr=[r["gold_se"] for r in rows], marker="o", color="tab:green",
                 label="gold score")
    ax1.set_xlabel("sqrt(KL)  (KL = log n − (n−1)/n)")
    ax1.set_ylabel("gold score", color="tab:green")
    ax2 = ax1.twinx()
    ax2.errorbar(x, [r["proxy"] for r in rows], yerr=[r["proxy_se"] for r in rows], marker="s", color="tab:blue",
                 label="proxy reward")
    ax2.set_ylabel("proxy reward (RM)", color="tab:blue")
    for r in rows:
        ax1.annotate(f"n={r['n']}", (r["sqrt_kl"], r["gold"]), textcoords="offset points", xytext=(3, 5), fontsize=8)
    if title:
        ax1.set_title(title)
    fig.tight_layout()
    return fig


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig = figure(rows, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reuse_samples(path: str, items, N: int) -> list[str]:
    """The first N samples of each item from an earlier run's samples.jsonl, in item order."""
    by_id: dict[str, dict[int, str]] = {}
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict) or not {"id", "sample_index", "response"} <= set(row):
            raise DataError(f"{path}:{lineno}: expected a bon sample row with id, sample_index and response")
        by_id.setdefault(str(row["id"]), {})[int(row["sample_index"])] = row["response"]
    texts = []
    for it in items:
        got = by_id.get(it.id, {})
        if any(k not in got for k in range(N)):
            raise DataError(f"{path}: item {it.id!r} has {len(got)} samples, need {N}")
        texts.extend(got[k] for k in range(N))
    return texts


def draw_fingerprint(cfg: BoNConfig, items, N: int) -> dict:
    """What the samples depend on: a sampling journal of other settings is not continued."""
    sampling = {f"sampling.{key}": value for key, value in cfg.sampling.model_dump(mode="json").items()}
    return {"policy": model_identity(cfg.policy), "samples_per_prompt": N, "batch_size": cfg.batch_size,
            "device": str(pick_device(cfg.device)),
            "prompts": f"{cfg.suite}, {len(items)} prompts, sha256 {digest([(it.id, it.messages) for it in items])[:16]}",
            "dtype": cfg.dtype, **sampling}


def score_fingerprint(cfg: BoNConfig, jobs, texts: list[str]) -> dict:
    """What the proxy scores depend on: a scoring journal of another reward model or other responses is not
    continued."""
    return {"rm": model_identity(cfg.rm), "dtype": cfg.dtype, "device": str(pick_device(cfg.device)),
            "responses": f"{len(texts)}, sha256 {digest([[it.id for it in jobs], texts])[:16]}"}


def score_reused(cfgs: list[BoNConfig]) -> None:
    """Proxy-score one earlier run's samples for several bon runs at once (each cfg's ``samples`` the same file, its
    ``rm`` its own): the bottom layers the reward models share run once per batch (``score_together``), and each
    run's scores go to its scoring journal, where its own ``run`` then finds them all."""
    first = cfgs[0]
    same = ("samples", "suite", "split", "limit", "n", "dtype", "device", "progress")
    for c in cfgs[1:]:
        if any(getattr(c, f) != getattr(first, f) for f in same):
            raise ConfigError(f"score_reused: the runs differ in more than rm and out_dir (compared: {', '.join(same)})")
    if first.samples is None:
        raise ConfigError("score_reused: the runs must rescore an earlier run's samples (samples=)")
    items = load_suite(first.suite, split=None if first.split == "all" else first.split, limit=first.limit)
    N = max(first.n)
    jobs = [it for it in items for _ in range(N)]
    texts = reuse_samples(first.samples, items, N)
    journals = [open_journal(Path(c.out_dir) / "scores.journal.jsonl", score_fingerprint(c, jobs, texts), "bon")
                for c in cfgs]
    device = str(pick_device(first.device))
    raters = [RewardModelRater(c.rm, device=device, bf16=c.dtype == "bf16") for c in cfgs]
    score_together(raters, [it.messages for it in jobs], texts, progress=first.progress, journals=journals)
    for journal in journals:
        journal.close()


def run(cfg: BoNConfig) -> dict:
    """Sampling and scoring are journalled batch by batch in ``out_dir`` (``samples.journal.jsonl``,
    ``scores.journal.jsonl``): a rerun of an interrupted run continues it and writes what an uninterrupted one
    would; the journals go once the results are written."""
    out = Path(cfg.out_dir)
    items = load_suite(cfg.suite, split=None if cfg.split == "all" else cfg.split, limit=cfg.limit)
    if not items:
        raise ConfigError(f"suite {cfg.suite!r} has no items in split {cfg.split!r}")
    N = max(cfg.n)
    jobs = [it for it in items for _ in range(N)]
    journals = []
    if cfg.samples is not None:
        texts = reuse_samples(cfg.samples, items, N)
    else:
        journals.append(open_journal(out / "samples.journal.jsonl", draw_fingerprint(cfg, items, N), "bon"))
        engine = load_engine(cfg.policy, cfg.dtype, cfg.device)
        responses = generate_responses(engine, jobs, cfg.sampling, batch_size=cfg.batch_size, progress=cfg.progress,
                                       desc=f"sample {N} per prompt", journal=journals[-1])
        del engine
        texts = [r.text for r in responses]
    # on the sampling device, and under bf16 autocast when sampling is bf16 (as the reward model trains; twice as fast
    # as fp32 where bf16 is the faster: 12,288 samples of 64 tokens took over half an hour in fp32 on a 2-core CPU)
    journals.append(open_journal(out / "scores.journal.jsonl", score_fingerprint(cfg, jobs, texts), "bon"))
    rm = RewardModelRater(cfg.rm, device=str(pick_device(cfg.device)), bf16=cfg.dtype == "bf16")
    proxy_flat = rm.score_texts([it.messages for it in jobs], texts, progress=cfg.progress, journal=journals[-1])
    gold_rater = GoldRater()
    gold_flat = [gold_rater.score(it, t) for it, t in zip(jobs, texts)]
    proxy = [proxy_flat[i * N : (i + 1) * N] for i in range(len(items))]
    gold = [gold_flat[i * N : (i + 1) * N] for i in range(len(items))]
    rows = summarize(proxy, gold, cfg.n)
    result = {"policy": cfg.policy, "rm": cfg.rm, "suite": cfg.suite, "split": cfg.split, "prompts": len(items),
              "samples_per_prompt": N, "results": rows, "config": cfg.model_dump(mode="json")}
    atomic_write_text(out / "samples.jsonl", "".join(
        json.dumps({"id": it.id, "sample_index": k % N, "response": t, "proxy": p, "gold": g}, ensure_ascii=False) + "\n"
        for k, (it, t, p, g) in enumerate(zip(jobs, texts, proxy_flat, gold_flat))))
    atomic_write_text(out / "bon.json", json.dumps(result, indent=2) + "\n")
    plot(rows, out / "bon.png", f"best-of-n on {cfg.suite} ({cfg.split}, {len(items)} prompts)")
    for journal in journals:
        journal.remove()
    return result


def main(cfg: BoNConfig) -> None:
    result = run(cfg)
    print(f"{'n':>4s} {'KL':>7s} {'proxy':>14s} {'gold':>14s}")
    for r in result["results"]:
        print(f"{r['n']:4d} {r['kl']:7.3f} {r['proxy']:+7.3f} ± {r['proxy_se']:.3f} {r['gold']:7.3f} ± {r['gold_se']:.3f}")
    print(f"wrote {cfg.out_dir}/bon.json and bon.png", file=sys.stderr)
