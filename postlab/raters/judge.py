"""Model-as-judge raters: a language model compares two answers, with the spec's rules as its rubric.

`judge:<target>` asks either an OpenAI-compatible endpoint (`judge:http://host:port/v1`, optionally
`#<model>`; the API key comes from $POSTLAB_JUDGE_API_KEY) or a local model (`judge:<name or dir>`,
greedy through the TorchEngine). The prompt (`rubric`) shows the conversation, the item's
requirements (its checks' one-line statements), the spec rules those checks implement, and the two
answers as Assistant A and Assistant B; the judge replies `[[A]]`, `[[B]]` or `[[C]]` (tie).

Every pair is asked in both orders, (a, b) and (b, a), and the two verdicts are mapped back to
votes v ∈ {+1 (a), 0 (tie or no verdict), −1 (b)} and aggregated (`aggregate`):

    d = (v_ab + v_ba) / 2 − β · ln((1 + |a|) / (1 + |b|)),     |x| = length in words
    choice = a if d > 3/4,  b if d < −3/4,  else tie;          strength = min(1, |d|)

With β = 0 (`judge:`) only a verdict both orders agree on counts; anything else is a tie. The
length-controlled variant `judge-lc:` tells the judge that length is no merit (with both word
counts) and uses β = 0.25 (the verbosity bias of the "average" simulated rater); docs/raters.md
spells out what that changes.

    python -m postlab.raters.judge judge:smollm2-135m-instruct --limit 40   # agreement on calibration pairs
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from postlab.data.chat import Conversation
from postlab.errors import ConfigError, PostlabError
from postlab.raters.base import Choice, Preference
from postlab.raters.simulated import num_words
from postlab.spec import checks
from postlab.tasks.suite import Item

API_KEY_ENV = "POSTLAB_JUDGE_API_KEY"
LC_BETA = 0.25  # β of `judge-lc:`: the default pool's "average" rater's verbosity bias
DECIDE = 0.75  # |d| above this is a decision: both orders agree (before any length term)
MAX_RULES = 3  # spec rule statements shown per item

Verdict = Literal["A", "B", "C"]
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]", re.IGNORECASE)
_SINGLE = re.compile(r"(?<!\[)\[\s*([ABC])\s*\](?!\])", re.IGNORECASE)  # [A]: what small models often write

SYSTEM = ("You are an impartial judge of AI assistants' answers. You compare two answers against the "
          "requirements and rules you are given and reply with a verdict.")
LENGTH_NOTE = ("Length is not a merit: do not prefer an answer for being longer or more detailed, and count "
               "filler the user did not ask for against it (Assistant A: {la} words, Assistant B: {lb} words).")


class JudgeError(PostlabError):
    """A judge backend that cannot answer (unreachable endpoint, refused key, unknown model)."""


# --- the prompt and its verdict ---


@lru_cache(maxsize=1)
def _spec():
    from postlab.spec.spec import load_spec

    return load_spec()


def relevant_rules(item: Item) -> list[tuple[str, str]]:
    """(rule id, statement) of the spec rules that the item's checks implement: those of the item's
    own family (its category) when there are any, else any rule sharing a check; at most MAX_RULES."""
    ids = {c.id for c in item.checks}
    sharing = [r for r in _spec().rules if ids & set(r.checks)]
    own = [r for r in sharing if r.family == item.category]
    return [(r.id, r.statement) for r in (own or sharing)[:MAX_RULES]]


def rubric(item: Item, first: str, second: str, *, length_note: bool = False) -> Conversation:
    """The judge's conversation: `first` is shown as Assistant A, `second` as Assistant B."""
    intro = ("Compare the two answers to the conversation below and decide which one better meets the "
             "requirements and rules. Correctness and following the rules matter most; do not let the order "
             "of the answers influence you.")
    if length_note:
        intro += " " + LENGTH_NOTE.format(la=num_words(first), lb=num_words(second))
    parts = [intro, "[Conversation]", *(f"{m['role']}: {m['content']}" for m in item.messages),
             "[Requirements]", *(f"- {checks.describe(c.id, c.kwargs)}" for c in item.checks)]
    rules = relevant_rules(item)
    if rules:
        parts += ["[Rules]", *(f"- {rid}: {statement}" for rid, statement in rules)]
    parts += ["[Assistant A]", first, "[End of Assistant A]", "[Assistant B]", second, "[End of Assistant B]",
              "Which assistant is better? Answer [[A]], [[B]] or [[C]] (tie)."]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


def parse_verdict(reply: str | None) -> Verdict | None:
    """The last `[[A]]`, `[[B]]` or `[[C]]` in the reply (case and inner spaces ignored), else the last
    `[A]`, `[B]` or `[C]`; None if there is none, or if the reply names all three (it restates the options)."""
    found = [v.upper() for v in _VERDICT.findall(reply or "") or _SINGLE.findall(reply or "")]
    return found[-1] if found and len(set(found)) < 3 else None


def vote(verdict: Verdict | None, a_first: bool) -> int:
    """+1 for a, −1 for b, 0 for a tie or no verdict; `a_first`: a was shown as Assistant A."""
    if verdict is None or verdict == "C":
        return 0
    return 1 if (verdict == "A") == a_first else -1


def aggregate(v_ab: int, v_ba: int, *, len_a: int = 0, len_b: int = 0, beta: float = 0.0) -> tuple[Choice, float]:
    """(choice, strength) from the votes of both orders (see the module docstring for d)."""
    d = (v_ab + v_ba) / 2 - beta * math.log((1 + len_a) / (1 + len_b))
    choice: Choice = "a" if d > DECIDE else "b" if d < -DECIDE else "tie"
    return choice, min(1.0, abs(d))


# --- backends ---


class JudgeBackend(Protocol):
    name: str  # part of the rater id

    def complete(self, conversations: list[Conversation]) -> list[str | None]:
        """One reply per conversation; None where the prompt does not fit the judge's context."""


def _too_long(e) -> bool:
    """An HTTP 400 saying the prompt and max_tokens do not fit the context: OpenAI's error code, postlab
    serve's and vLLM's wording."""
    message = str(e.message).lower()
    return (getattr(e, "code", None) == "context_length_exceeded" or "context length" in message
            or "max_tokens too large" in message)


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint (postlab serve, vLLM, llama.cpp, OpenAI), greedy and seeded;
    requests go out `concurrency` at a time, so a batching server decodes them together."""

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None, max_tokens: int = 16,
                 seed: int = 0, timeout: float = 60.0, max_retries: int = 2, concurrency: int = 8):
        try:
            import openai
        except ImportError:
            raise JudgeError("judge endpoints need the `openai` client: pip install 'openai>=1.30' "
                             "(or pip install -e '.[dev]')") from None
        self._openai = openai
        self.url = base_url
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get(API_KEY_ENV) or "EMPTY",
                                    timeout=timeout, max_retries=max_retries)
        self.max_tokens, self.seed, self.concurrency = max_tokens, seed, concurrency
        self.model = model or self._first_model()
        self.name = f"{self.model}@{base_url}"

    def _fail(self, e: Exception) -> JudgeError:
        o = self._openai
        if isinstance(e, o.AuthenticationError):
            return JudgeError(f"judge endpoint {self.url} refused the API key (set ${API_KEY_ENV})")
        if isinstance(e, o.APIStatusError):
            return JudgeError(f"judge endpoint {self.url} answered HTTP {e.status_code}: {e.message}")
        if isinstance(e, o.APITimeoutError):
            return JudgeError(f"judge endpoint {self.url} timed out ({self.client.timeout}s, "
                              f"{self.client.max_retries} retries)")
        return JudgeError(f"cannot reach judge endpoint {self.url}: {e} ({self.client.max_retries} retries)")

    def _first_model(self) -> str:
        try:
            models = [m.id for m in self.client.models.list().data]
        except self._openai.OpenAIError as e:
            raise self._fail(e) from None
        if not models:
            raise JudgeError(f"judge endpoint {self.url} lists no models; name one: judge:{self.url}#MODEL")
        return models[0]

    def _one(self, messages: Conversation) -> str | None:
        try:
            r = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0.0,
                                                    seed=self.seed, max_tokens=self.max_tokens)
        except self._openai.BadRequestError as e:
            if _too_long(e):
                return None
            raise self._fail(e) from None
        except self._openai.OpenAIError as e:
            raise self._fail(e) from None
        return r.choices[0].message.content or ""

    def complete(self, conversations: list[Conversation]) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, conversations))


class LocalBackend:
    """A model loaded in this process (built-in name, directory or hub id), greedy decoding."""

    def __init__(self, model: str, *, max_tokens: int = 16, seed: int = 0, dtype: str = "fp32", device: str = "auto",
                 batch_size: int = 8):
        from postlab.evals.harness import load_engine
        from postlab.rollout import SamplingParams

        self.name = model
        self.engine = load_engine(model, dtype, device)
        self.params = SamplingParams(temperature=0.0, max_new_tokens=max_tokens, seed=seed)
        self.context = getattr(self.engine.model.config, "max_position_embeddings", None) or math.inf
        self.batch_size = batch_size

    def complete(self, conversations: list[Conversation]) -> list[str | None]:
        ids = self.engine.encode_prompts(conversations)
        fits = [i for i, p in enumerate(ids) if len(p) + self.params.max_new_tokens <= self.context]
        out: list[str | None] = [None] * len(ids)
        for s in range(0, len(fits), self.batch_size):
            chunk = fits[s : s + self.batch_size]
            for i, text in zip(chunk, self.engine.generate_ids([ids[i] for i in chunk], self.params).texts):
                out[i] = text
        return out


# --- the rater ---


@dataclass(frozen=True)
class Judgement:
    preference: Preference
    verdicts: tuple[Verdict | None, Verdict | None]  # as the judge wrote them: order (a, b), then (b, a)
    votes: tuple[int, int]  # mapped back to a (+1) / tie (0) / b (−1)
    replies: tuple[str | None, str | None]  # None: the prompt did not fit the judge's context


class JudgeRater:
    """Compares two answers by asking `backend` in both orders. `stats` counts what it was asked
    (`verdicts`), replies without a verdict (`unparseable`) and prompts too long for it (`too_long`)."""

    def __init__(self, backend: JudgeBackend, *, length_controlled: bool = False, beta: float | None = None):
        self.backend = backend
        self.length_controlled = length_controlled
        self.beta = (LC_BETA if length_controlled else 0.0) if beta is None else beta
        self.id = f"judge{'-lc' if length_controlled else ''}:{backend.name}"
        self.stats: Counter = Counter()

    def judge_many(self, triples: list[tuple[Item, str, str]]) -> list[Judgement]:
        prompts = [rubric(it, x, y, length_note=self.length_controlled)
                   for it, a, b in triples for x, y in ((a, b), (b, a))]
        replies = self.backend.complete(prompts)
        out = []
        for k, (item, a, b) in enumerate(triples):
            r_ab, r_ba = replies[2 * k], replies[2 * k + 1]
            verdicts = (parse_verdict(r_ab), parse_verdict(r_ba))
            votes = (vote(verdicts[0], a_first=True), vote(verdicts[1], a_first=False))
            choice, strength = aggregate(*votes, len_a=num_words(a), len_b=num_words(b), beta=self.beta)
            self.stats["verdicts"] += 2
            self.stats["too_long"] += (r_ab is None) + (r_ba is None)
            self.stats["unparseable"] += sum(r is not None and v is None for r, v in zip((r_ab, r_ba), verdicts))
            out.append(Judgement(Preference(choice, strength, self.id), verdicts, votes, (r_ab, r_ba)))
        return out

    def compare_many(self, triples: list[tuple[Item, str, str]]) -> list[Preference]:
        return [j.preference for j in self.judge_many(triples)]

    def compare(self, item: Item, a: str, b: str) -> Preference:
        return self.compare_many([(item, a, b)])[0]

    def score(self, item: Item, response: str) -> float:
        raise PostlabError(f"{self.id}: judge raters compare two answers; they give no absolute score")


def is_judge_spec(spec: str) -> bool:
    return spec.startswith(("judge:", "judge-lc:"))


def parse_judge_spec(spec: str) -> tuple[bool, str, str | None]:
    """`judge[-lc]:<target>` -> (length_controlled, target, model name for an endpoint or None)."""
    kind, _, target = spec.partition(":")
    if kind not in ("judge", "judge-lc") or not target:
        raise ConfigError(f"rater: expected judge:<endpoint-or-model> or judge-lc:<...>, got {spec!r}")
    model = None
    if target.startswith(("http://", "https://")):
        target, _, model = target.partition("#")
    return kind == "judge-lc", target, model or None


def load_judge(spec: str, *, seed: int = 0, max_tokens: int = 16, **backend_kwargs) -> JudgeRater:
    """A JudgeRater from `judge:<url>[#model]`, `judge:<model>` or their `judge-lc:` forms."""
    lc, target, model = parse_judge_spec(spec)
    if target.startswith(("http://", "https://")):
        backend = OpenAIBackend(target, model, max_tokens=max_tokens, seed=seed, **backend_kwargs)
    else:
        backend = LocalBackend(target, max_tokens=max_tokens, seed=seed, **backend_kwargs)
    return JudgeRater(backend, length_controlled=lc)


# --- agreement on the calibration pairs ---


def judge_agreement(rater: JudgeRater, pairs, *, seed: int = 0) -> dict:
    """How a judge's labels on calibration `pairs` compare with gold's and the simulated pool's.

    agreement_with_gold: over pairs gold decides (judge ties count as misses); agreement_with_pool:
    over all pairs (the pool always chooses); *_when_decided: the same over the pairs the judge decides.
    tie_rate: pairs the judge calls a tie; unparseable_rate / too_long_rate: of the 2N verdicts asked;
    position_consistency: pairs whose two orders gave the same verdict (mapped back); first_shown_wins:
    of the verdicts that chose a side, how many chose Assistant A; longer_wins: as calibration.measure.
    """
    from postlab.raters.calibration import _longer_won
    from postlab.raters.gold import GoldRater
    from postlab.raters.simulated import default_pool

    gold, pool = GoldRater(), default_pool(seed)
    before = Counter(rater.stats)
    judged = rater.judge_many([(p.item, p.a, p.b) for p in pairs])
    asked = Counter(rater.stats) - before
    n = len(pairs)
    c: Counter = Counter()
    for p, j in zip(pairs, judged):
        choice, ref, sim = j.preference.choice, gold.compare(p.item, p.a, p.b).choice, pool.compare(p.item, p.a, p.b)
        decided = choice != "tie"
        c["ties"] += not decided
        c["consistent"] += j.verdicts[0] is not None and j.verdicts[1] is not None and j.votes[0] == j.votes[1]
        c["sided"] += sum(v in ("A", "B") for v in j.verdicts)
        c["first_wins"] += sum(v == "A" for v in j.verdicts)
        if ref != "tie":
            c["gold_decided"] += 1
            c["agree_gold"] += choice == ref
            c["judge_and_gold_decided"] += decided
            c["pool_agree_gold"] += sim.choice == ref
        c["agree_pool"] += choice == sim.choice
        c["agree_pool_decided"] += decided and choice == sim.choice
        if num_words(p.a) != num_words(p.b):
            c["len_pairs"] += 1
            c["longer_wins"] += _longer_won(j.preference, p.a, p.b)

    def frac(num: float, den: float) -> float:
        return num / den if den else float("nan")

    return {
        "judge": rater.id, "pairs": n, "gold_decided": c["gold_decided"],
        "agreement_with_gold": frac(c["agree_gold"], c["gold_decided"]),
        "agreement_with_gold_when_decided": frac(c["agree_gold"], c["judge_and_gold_decided"]),
        "agreement_with_pool": frac(c["agree_pool"], n),
        "agreement_with_pool_when_decided": frac(c["agree_pool_decided"], n - c["ties"]),
        "pool_agreement_with_gold": frac(c["pool_agree_gold"], c["gold_decided"]),
        "tie_rate": frac(c["ties"], n),
        "unparseable_rate": frac(asked["unparseable"], asked["verdicts"]),
        "too_long_rate": frac(asked["too_long"], asked["verdicts"]),
        "position_consistency": frac(c["consistent"], n),
        "first_shown_wins": frac(c["first_wins"], c["sided"]),
        "longer_wins": frac(c["longer_wins"], c["len_pairs"]),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import time

    from postlab.raters.calibration import synthetic_pairs

    ap = argparse.ArgumentParser(prog="python -m postlab.raters.judge",
                                 description="Agreement of a judge rater with gold and with the simulated pool "
                                             "on the calibration pairs.")
    ap.add_argument("judge", help="judge:<url>[#model] | judge:<model> | judge-lc:<...>")
    ap.add_argument("--limit", type=int, default=40, help="the first N calibration pairs (default 40)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the judge's requests and of the simulated pool")
    ap.add_argument("--max-tokens", type=int, default=16, help="reply budget of the judge (default 16)")
    ap.add_argument("--out", help="also write the report as JSON here")
    args = ap.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        t0 = time.monotonic()
        rater = load_judge(args.judge, seed=args.seed, max_tokens=args.max_tokens)
        report = judge_agreement(rater, synthetic_pairs(args.limit), seed=args.seed)
        report["seconds"] = round(time.monotonic() - t0, 1)
    except PostlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for k, v in report.items():
        print(f"{k:34s} {v:.3f}" if isinstance(v, float) else f"{k:34s} {v}")
    if args.out:  # undefined rates (nothing to count them over) as null
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in report.items()}, f, indent=2)


if __name__ == "__main__":
    main()
