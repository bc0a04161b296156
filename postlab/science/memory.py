"""``postlab memory``: memory between conversations by online fine-tuning (docs/science.md, "Memory").

Between conversations, what a user told the assistant is distilled into a per-user LoRA adapter:

1. **Distil.** Question/answer rows about the user's past conversations: every fact found in them (templated
   extraction, or given in the file; postlab/science/memory_data.py) asked in each training phrasing and
   answered in each reply phrasing. ``train.replay`` rows of the base model's own greedy answers to spec
   training prompts are mixed in (self-distillation: the adapter is pulled toward the base model's behaviour
   off the facts).
2. **Train** a LoRA adapter briefly on them: next-token loss on the assistant turns (docs/algorithms/sft.md).
3. **Guard.** The gold rater scores the base model and the base model with the adapter on the same held-out
   spec test items (a seeded subset). The adapter is accepted when
   ``gold(adapter) − gold(base) ≥ −guardrail.threshold``; both scores, their difference with its paired
   standard error, and the decision are recorded in the version's ``guardrail.json``.
4. **Version** it (postlab/science/memory_store.py): ``v1, v2, ...`` written whole or not at all, ``current``
   moved only to an accepted version. ``postlab serve --memory DIR`` serves each user's ``current`` adapter.

``postlab memory eval`` measures recall of earlier-conversation facts on held-out question phrasings, answered
by the base model alone, by the base model with the user's adapter, and by the base model with the past
conversations pasted into its context; and the gold score with and without the adapters, on spec test items
disjoint from the guardrail's. Every figure carries its standard error; differences are paired.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from postlab.config import Section
from postlab.errors import ConfigError
from postlab.evals.metrics import mean_se
from postlab.science.memory_data import Fact, UserHistory, builtin_histories, load_histories
from postlab.science.memory_store import AdapterStore, Version
from postlab.utils.io import atomic_write_text, finite

CONTEXT_LEAD = "Here are your earlier conversations with this user. Use them to answer."


class MemoryData(Section):
    conversations: str = Field("builtin", description="builtin (the synthetic users) | a conversations JSONL "
                                                       "({user, messages, facts?} per line; docs/science.md)")
    users: list[str] = Field(default_factory=list, description="only these users (default: every user in the data)")
    builtin_users: int = Field(4, ge=1, description="synthetic users in the built-in set (user1, user2, ...)")
    builtin_conversations: int = Field(3, ge=1, description="past conversations per synthetic user")
    seed: int = Field(0, description="seed of the built-in set (values, phrasings, conversations)")


class MemoryLora(Section):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: float = Field(16.0, gt=0, description="scaling numerator (scale = alpha / r)")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1, description="module names that get adapters")


class MemoryTrain(Section):
    steps: int = Field(60, ge=1, description="optimizer steps per adapter")
    batch_size: int = Field(8, ge=1, description="rows per step")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (constant)")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    replay: int = Field(16, ge=0, description="rows of the base model's own answers to spec train prompts mixed in "
                                              "(0 = only the user's facts)")
    replay_max_new_tokens: int = Field(128, ge=1, description="length cap of those answers")
    seed: int = Field(0, description="seed of the adapter init and the row order")


class Guardrail(Section):
    enabled: bool = Field(True, description="score base and adapter on held-out spec items before accepting; "
                                            "false = accept every adapter (recorded as unchecked)")
    threshold: float = Field(0.03, ge=0, description="largest drop of the mean gold score accepted")
    suite: str = Field("spec", description="suite whose test split is scored")
    limit: int = Field(48, ge=1, description="items scored (a seeded subset of the test split)")
    max_new_tokens: int = Field(160, ge=1, description="answer length cap")
    seed: int = Field(0, description="seed of the item subset")


class MemoryEval(Section):
    max_new_tokens: int = Field(32, ge=1, description="answer length cap for the recall questions")
    gold_limit: int = Field(48, ge=0, description="spec test items for the gold score with and without adapters, "
                                                  "disjoint from the guardrail's (0 = skip)")
    version: Literal["current", "latest"] = Field("current", description="current: the served (accepted) adapter; "
                                                                         "latest: the newest, accepted or not")


class MemoryConfig(Section):
    """postlab memory: per-user LoRA memory of past conversations, guarded, versioned, evaluated."""

    model: str = Field("smollm2-135m-instruct", description="base model: built-in name, directory or hub id")
    store: str = Field("memory/adapters", description="adapters directory (<user>/v1, v2, ..., current)")
    data: MemoryData = Field(default_factory=MemoryData, description="whose conversations")
    lora: MemoryLora = Field(default_factory=MemoryLora, description="the adapters")
    train: MemoryTrain = Field(default_factory=MemoryTrain, description="distillation training")
    guardrail: Guardrail = Field(default_factory=Guardrail, description="the gold-score check before loading")
    eval: MemoryEval = Field(default_factory=MemoryEval, description="postlab memory eval")
    batch_size: int = Field(16, ge=1, description="prompts generated together")
    decode_dtype: Literal["fp32", "bf16"] = Field("fp32", description="generation weights dtype (training is fp32)")
    out: str = Field("memory/results.json", description="postlab memory eval: results JSON")
    overwrite: bool = Field(False, description="replace an existing out file")
    progress: bool = Field(True, description="show progress bars")

    def check(self) -> None:
        super().check()
        if self.data.conversations != "builtin" and not Path(self.data.conversations).is_file():
            raise ConfigError(f"data.conversations: file not found: {self.data.conversations}")


# ---- data -----------------------------------------------------------------------------------------------


def histories(cfg: MemoryConfig) -> list[UserHistory]:
    d = cfg.data
    found = (builtin_histories(d.builtin_users, seed=d.seed, conversations_per_user=d.builtin_conversations)
             if d.conversations == "builtin" else load_histories(d.conversations))
    if d.users:
        missing = sorted(set(d.users) - {h.user for h in found})
        if missing:
            raise ConfigError(f"data.users: no conversations of {', '.join(missing)} in {d.conversations}")
        found = [h for h in found if h.user in d.users]
    return found


def fact_rows(facts: list[Fact]) -> list[list[dict]]:
    """Training conversations: every training question of every fact with every reply phrasing."""
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for f in facts for q in f.train_questions for a in f.replies]


def gold_items(g: Guardrail, part: Literal["guardrail", "eval"], eval_limit: int = 0) -> list:
    """The guardrail's items (the first ``limit`` of a seeded shuffle of the test split) or the evaluation's
    (the next ``eval_limit``): disjoint, so the evaluation's gold score is out of sample for the decision."""
    from postlab.tasks.suite import load_suite

    items = load_suite(g.suite, split="test")
    random.Random(g.seed).shuffle(items)
    return items[: g.limit] if part == "guardrail" else items[g.limit: g.limit + eval_limit]


# ---- models ---------------------------------------------------------------------------------------------


def engine_for(model, tok, cfg: MemoryConfig):
    import torch

    from postlab.rollout import TorchEngine

    return TorchEngine(model=model, tokenizer=tok, decode_dtype=torch.bfloat16 if cfg.decode_dtype == "bf16" else None)


def generate(engine, conversations: list[list[dict]], max_new_tokens: int, cfg: MemoryConfig, desc: str) -> list[str]:
    """Greedy answers, in order, batched by prompt length."""
    from tqdm.auto import tqdm

    from postlab.rollout import SamplingParams

    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    prompts = engine.encode_prompts(conversations)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out = [""] * len(prompts)
    for start in tqdm(range(0, len(order), cfg.batch_size), desc=desc, disable=not cfg.progress):
        idx = order[start: start + cfg.batch_size]
        texts = engine.generate_ids([prompts[i] for i in idx], params).texts
        for i, t in zip(idx, texts):
            out[i] = t.strip()
    return out


def gold_scores(engine, items: list, cfg: MemoryConfig, desc: str) -> list[float]:
    from postlab.raters.gold import GoldRater

    texts = generate(engine, [it.messages for it in items], cfg.guardrail.max_new_tokens, cfg, desc)
    gold = GoldRater()
    return [gold.grade(it, t).score for it, t in zip(items, texts)]


def train_adapter(model, tok, rows: list[list[dict]], cfg: MemoryConfig):
    """LoRA on ``model`` (modified in place: pass a copy), trained on ``rows``' assistant turns for
    ``train.steps`` steps of ``train.batch_size`` rows drawn in shuffled epochs. Returns (peft model, stats)."""
    import torch

    from postlab.algos.lm import causal_lm_loss
    from postlab.data.chat import encode_chat
    from postlab.data.collate import collate
    from postlab.models.prepare import apply_lora
    from postlab.train.common import LoraConfig

    t = cfg.train
    lora = LoraConfig(enabled=True, r=cfg.lora.r, alpha=cfg.lora.alpha, target_modules=cfg.lora.target_modules)
    model = apply_lora(model, lora, t.seed)
    examples = [vars(encode_chat(tok, r, max_len=512)) for r in rows]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=0.0)
    rng, queue, losses = random.Random(t.seed), [], []
    model.train()
    started = time.time()
    for _ in range(t.steps):
        batch = []
        while len(batch) < t.batch_size:
            if not queue:
                queue = rng.sample(range(len(examples)), len(examples))
            batch.append(examples[queue.pop()])
        b = collate(batch, tok.pad_token_id)
        logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits  # (B, T, V)
        loss, stats = causal_lm_loss(logits, b.labels, b.num_target_tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(stats["nll_sum"] / max(b.num_target_tokens, 1))
    model.eval()
    return model, {"steps": t.steps, "rows": len(rows), "loss_first": losses[0], "loss_last": losses[-1],
                   "loss_last10": sum(losses[-10:]) / len(losses[-10:]), "seconds": round(time.time() - started, 1)}


def with_adapter(base, adapter_dir: str | Path):
    """A copy of ``base`` with the adapter in ``adapter_dir`` merged into its weights (``base`` is untouched)."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter_dir))
    return model.merge_and_unload().eval()


# ---- the guardrail --------------------------------------------------------------------------------------


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and standard error of a − b over the same items."""
    return mean_se([x - y for x, y in zip(a, b)])


def guardrail_decision(base: list[float], adapter: list[float], threshold: float) -> dict:
    """Accept the adapter iff its mean gold score is at most ``threshold`` below the base model's, on the same
    items. The record keeps both scores with their standard errors and the paired difference."""
    if len(base) != len(adapter) or not base:
        raise ValueError(f"guardrail: needs scores of the same items, got {len(base)} and {len(adapter)}")
    (b, b_se), (a, a_se) = mean_se(base), mean_se(adapter)
    diff, diff_se = paired(adapter, base)
    return {"accepted": diff >= -threshold, "checked": True, "threshold": threshold, "n_items": len(base),
            "base": b, "base_se": b_se, "adapter": a, "adapter_se": a_se, "difference": diff,
            "difference_se": diff_se}


# ---- postlab memory train -------------------------------------------------------------------------------


def replay_rows(engine, cfg: MemoryConfig) -> list[list[dict]]:
    """The base model's own greedy answers to ``train.replay`` spec training prompts (a seeded subset)."""
    if cfg.train.replay == 0:
        return []
    from postlab.tasks.suite import load_suite

    items = load_suite(cfg.guardrail.suite, split="train")
    items = random.Random(cfg.train.seed).sample(items, min(cfg.train.replay, len(items)))
    texts = generate(engine, [it.messages for it in items], cfg.train.replay_max_new_tokens, cfg, "replay")
    return [it.messages + [{"role": "assistant", "content": t}] for it, t in zip(items, texts) if t]


def distil_user(history: UserHistory, *, base, tok, replay: list[list[dict]], base_gold: list[float] | None,
                items: list, store: AdapterStore, cfg: MemoryConfig) -> Version:
    """Train, guard and publish one new version of ``history.user``'s adapter."""
    facts = fact_rows(history.facts)
    if not facts:
        raise ConfigError(f"user {history.user}: no facts found in their conversations (state them in a built-in "
                          "phrasing, or give them as 'facts'; docs/science.md)")

    def write(tmp: Path) -> dict:
        model, stats = train_adapter(copy.deepcopy(base), tok, facts + replay, cfg)
        model.save_pretrained(str(tmp))
        record = {"accepted": True, "checked": False}
        if base_gold is not None:
            merged = model.merge_and_unload().eval()
            scores = gold_scores(engine_for(merged, tok, cfg), items, cfg, f"gold {history.user}")
            record = guardrail_decision(base_gold, scores, cfg.guardrail.threshold)
        atomic_write_text(tmp / "memory.json", json.dumps({
            "user": history.user, "model": cfg.model, "facts": [vars(f) for f in history.facts],
            "fact_rows": len(facts), "replay_rows": len(replay), "training": stats,
            "config": cfg.model_dump(mode="json")}, indent=2, ensure_ascii=False) + "\n")
        return record | {"model": cfg.model, "suite": cfg.guardrail.suite, "items": [it.id for it in items]}

    return store.publish(history.user, write)


def run_train(cfg: MemoryConfig, report: Callable[[dict], None] | None = None) -> list[dict]:
    """A new adapter version for every user of the data; returns one summary per user (each also passed to
    ``report`` as soon as that user is done)."""
    from postlab.models.load import load_model_and_tokenizer

    users = histories(cfg)
    base, tok = load_model_and_tokenizer(cfg.model)
    base.eval()
    engine = engine_for(base, tok, cfg)
    items = gold_items(cfg.guardrail, "guardrail") if cfg.guardrail.enabled else []
    base_gold = gold_scores(engine, items, cfg, "gold base") if cfg.guardrail.enabled else None
    replay = replay_rows(engine, cfg)
    store, out = AdapterStore(cfg.store), []
    for h in users:
        v = distil_user(h, base=base, tok=tok, replay=replay, base_gold=base_gold, items=items, store=store, cfg=cfg)
        g, current = v.guardrail(), store.current(h.user)
        out.append({"user": h.user, "version": v.name, "facts": len(h.facts), "accepted": g["accepted"],
                    "current": current.name if current else None,
                    **{k: g[k] for k in ("base", "adapter", "difference", "difference_se") if k in g}})
        if report is not None:
            report(out[-1])
    return out


# ---- postlab memory eval --------------------------------------------------------------------------------


def transcript(conversations: list[list[dict]]) -> str:
    parts = []
    for i, messages in enumerate(conversations, 1):
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        parts.append(f"Conversation {i}:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def recalled(answer: str, response: str) -> bool:
    return answer.casefold() in response.casefold()


def _summary(xs: list[float]) -> dict:
    m, se = mean_se(xs)
    return {"mean": m, "se": se, "n": len(xs)}


def _diff(a: list[float], b: list[float]) -> dict:
    m, se = paired(a, b)
    return {"mean": m, "se": se, "n": len(a)}


def run_eval(cfg: MemoryConfig) -> dict:
    """Recall (base, adapter, in context) per user and pooled, and gold with and without the adapters."""
    from postlab.models.load import load_model_and_tokenizer
    from postlab.science.common import check_out, meta

    started = time.time()
    check_out(cfg.out, cfg.overwrite)
    store = AdapterStore(cfg.store)
    users = histories(cfg)
    chosen: dict[str, Version] = {}
    for h in users:
        v = store.current(h.user) if cfg.eval.version == "current" else (store.versions(h.user) or [None])[-1]
        if v is not None:
            chosen[h.user] = v
    if not chosen:
        raise ConfigError(f"store: no {cfg.eval.version} adapter for any of {', '.join(h.user for h in users)} in "
                          f"{cfg.store} (run postlab memory train first)")
    base, tok = load_model_and_tokenizer(cfg.model)
    base.eval()
    engine = engine_for(base, tok, cfg)
    gold = gold_items(cfg.guardrail, "eval", cfg.eval.gold_limit)
    rows, per_user = [], {}
    base_gold = gold_scores(engine, gold, cfg, "gold base") if gold else []
    adapter_gold: dict[str, list[float]] = {}  # user -> per-item gold scores with their adapter
    for h in users:
        if h.user not in chosen:
            per_user[h.user] = {"skipped": f"no {cfg.eval.version} adapter"}
            continue
        questions = [(f, q) for f in h.facts for q in f.eval_questions]
        if not questions:
            per_user[h.user] = {"skipped": "no held-out questions"}
            continue
        asked = [[{"role": "user", "content": q}] for _, q in questions]
        context = [[{"role": "system", "content": f"{CONTEXT_LEAD}\n\n{transcript(h.conversations)}"}] + a
                   for a in asked]
        n = cfg.eval.max_new_tokens
        merged = with_adapter(base, chosen[h.user].path)
        answers = {"base": generate(engine, asked, n, cfg, f"{h.user} base"),
                   "context": generate(engine, context, n, cfg, f"{h.user} context"),
                   "adapter": generate(engine_for(merged, tok, cfg), asked, n, cfg, f"{h.user} adapter")}
        if gold:
            adapter_gold[h.user] = gold_scores(engine_for(merged, tok, cfg), gold, cfg, f"gold {h.user}")
        del merged
        hits = {c: [float(recalled(f.answer, a)) for (f, _), a in zip(questions, texts)] for c, texts in answers.items()}
        per_user[h.user] = {"version": chosen[h.user].name, "accepted": chosen[h.user].accepted,
                            **{c: _summary(x)["mean"] for c, x in hits.items()}, "n": len(questions)}
        for i, (f, q) in enumerate(questions):
            rows.append({"user": h.user, "kind": f.kind, "question": q, "answer": f.answer,
                         **{c: {"response": answers[c][i], "recalled": bool(hits[c][i])} for c in answers}})
    recall = {c: [float(r[c]["recalled"]) for r in rows] for c in ("base", "adapter", "context")}
    results: dict = {
        "model": cfg.model, "store": cfg.store, "users": per_user, "n_questions": len(rows),
        "recall": {c: _summary(x) for c, x in recall.items()},
        "recall_differences": {"adapter - base": _diff(recall["adapter"], recall["base"]),
                               "context - base": _diff(recall["context"], recall["base"]),
                               "adapter - context": _diff(recall["adapter"], recall["context"])}}
    if gold and adapter_gold:
        with_mean = [sum(s) / len(s) for s in zip(*adapter_gold.values())]  # per item: mean over users' adapters
        results["gold"] = {"n_items": len(gold), "items": [it.id for it in gold], "base": _summary(base_gold),
                           "adapter": _summary(with_mean), "adapter - base": _diff(with_mean, base_gold),
                           "by_user": {u: _summary(s) for u, s in adapter_gold.items()}}
    results["meta"] = meta(cfg.model_dump(mode="json"), started)
    out = Path(cfg.out)
    atomic_write_text(out.with_name(out.stem + ".answers.jsonl"),
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out, json.dumps(finite(results), indent=2, ensure_ascii=False) + "\n")
    return results


def _pm(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['se']:.3f}"


def format_table(results: dict) -> str:
    lines = [f"recall of earlier-conversation facts ({results['n_questions']} held-out questions)",
             f"  {'without adapter':<24} {_pm(results['recall']['base'])}",
             f"  {'with adapter':<24} {_pm(results['recall']['adapter'])}",
             f"  {'conversations in context':<24} {_pm(results['recall']['context'])}"]
    for name, d in results["recall_differences"].items():
        lines.append(f"  {name:<24} {_pm(d)} (paired)")
    if "gold" in results:
        g = results["gold"]
        lines += [f"gold score ({g['n_items']} spec test items, disjoint from the guardrail's)",
                  f"  {'without adapter':<24} {_pm(g['base'])}", f"  {'with adapter':<24} {_pm(g['adapter'])}",
                  f"  {'adapter - base':<24} {_pm(g['adapter - base'])} (paired)"]
    return "\n".join(lines)


def format_status(store: AdapterStore, users: list[str] | None = None) -> str:
    lines = []
    for user in users or store.users():
        current = store.current(user)
        for v in store.versions(user):
            g = v.guardrail()
            scores = (f"gold base {g['base']:.3f}, adapter {g['adapter']:.3f}, diff {g['difference']:+.3f} ± "
                      f"{g['difference_se']:.3f} (threshold {g['threshold']})" if g.get("checked") else "unchecked")
            mark = "*" if current is not None and current.number == v.number else " "
            lines.append(f"{mark} {user}/{v.name}  {'accepted' if g.get('accepted') else 'rejected'}  {scores}")
        if current is None:
            lines.append(f"  {user}: no current adapter (the base model answers)")
    return "\n".join(lines) or f"{store.root}: no adapters"
