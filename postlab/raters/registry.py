"""Raters by name, as `--rater` takes them: gold, simulated, or a model judge."""

from __future__ import annotations

from postlab.errors import ConfigError
from postlab.raters.base import Preference
from postlab.tasks.suite import Item

RATER_HELP = "gold | simulated | judge:<url>[#model] | judge:<model> | judge-lc:<...> (docs/raters.md)"


def check_rater(spec: str) -> str:
    """`spec` unchanged if it names a rater (judges are only parsed here, not started)."""
    from postlab.raters.judge import is_judge_spec, parse_judge_spec

    if spec in ("gold", "simulated"):
        return spec
    if is_judge_spec(spec):
        parse_judge_spec(spec)
        return spec
    raise ConfigError(f"rater: unknown rater {spec!r}; expected {RATER_HELP}")


def rater_source(spec: str) -> str:
    """The `source` field of preference rows: gold, simulated, judge or judge-lc."""
    return spec.partition(":")[0]


def make_rater(spec: str, seed: int = 0):
    """The rater `spec` names; simulated raters and judges take `seed`."""
    from postlab.raters.gold import GoldRater
    from postlab.raters.judge import load_judge
    from postlab.raters.simulated import default_pool

    check_rater(spec)
    if spec == "gold":
        return GoldRater()
    if spec == "simulated":
        return default_pool(seed)
    return load_judge(spec, seed=seed)


def compare_all(rater, triples: list[tuple[Item, str, str]]) -> list[Preference]:
    """`rater.compare` on every (item, a, b), in one batch when the rater can batch (judges)."""
    if hasattr(rater, "compare_many"):
        return rater.compare_many(triples)
    return [rater.compare(item, a, b) for item, a, b in triples]
