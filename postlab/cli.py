"""The ``postlab`` command line: one Typer app; each stage parses its typed config and calls its recipe."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from postlab.utils.threads import busy_warning, configure_threads_env, machine_load, threads_error

HEAVY_COMMANDS = {"pretrain", "sft", "rm", "dpo", "ppo", "grpo", "sample", "eval", "bon", "run", "overopt", "serve",
                  "leaderboard", "compare", "label", "calibration", "survey", "sweep", "memory"}  # long torch work: worth a warning on a busy machine
# Other work on the machine, measured once (a 0.1 s sample) and only before long torch work.
_HEAVY = len(sys.argv) > 1 and sys.argv[1] in HEAVY_COMMANDS and "--help" not in sys.argv
_LOAD = machine_load() if _HEAVY else 0.0
configure_threads_env(busy=_LOAD >= (os.cpu_count() or 1) - 0.25)  # before torch loads (the commands import it)

from pathlib import Path  # noqa: E402

from typer.core import TyperCommand  # noqa: E402

from postlab.config import describe_aliases, describe_fields, load_config  # noqa: E402
from postlab.errors import PostlabError  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="postlab: post-training for language models (SFT, reward models, RLHF, evals).")
models_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                         help="Obtain and list models.")
app.add_typer(models_app, name="models")
suites_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                         help="List and export the built-in task suites.")
app.add_typer(suites_app, name="suites")
from postlab.labelapp.cli import label_app  # noqa: E402  (Typer only; the app itself loads inside each command)

app.add_typer(label_app, name="label-app")
from postlab.agents.cli import env_app, sandbox_app  # noqa: E402  (Typer only; the work loads inside each command)

app.add_typer(sandbox_app, name="sandbox")
app.add_typer(env_app, name="env")


def _print_version(value: bool) -> None:
    if value:
        from postlab import __version__

        print(f"postlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print postlab's version and exit.")) -> None:
    return None  # every command is a subcommand; the group itself only takes --version

CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML config file; KEY=VALUE overrides apply on top")
OVERRIDES = typer.Argument(None, metavar="[KEY=VALUE]...", help="dotted overrides, e.g. optim.lr=1e-4 lora.enabled=true")


def _quiet_libraries() -> None:
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class _ConfigCommand(TyperCommand):
    """A command whose ``--help`` lists every field of its config. The configs live beside their recipes,
    which import torch (seconds), so the list is built only when this command's help is asked for, and kept
    in $POSTLAB_HOME/help keyed by postlab's sources: later calls print it without importing anything."""

    config: tuple[str, str, str | None]  # module, config class, the module's presets (name -> knobs) if any
    also: tuple[str, ...] = ()  # modules of presets of their own (postlab/presets/), each with the same names

    def format_help_text(self, ctx, formatter) -> None:
        summary = self.help
        self.help = f"{summary}\n\n{_config_help(self.name, *self.config, also=self.also)}"
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = summary


def _config(module: str, cls_name: str, presets: str | None = None, also: tuple[str, ...] = ()) -> type[TyperCommand]:
    return type(f"{cls_name}Command", (_ConfigCommand,), {"config": (module, cls_name, presets), "also": also})


def _config_help(command: str, module: str, cls_name: str, presets: str | None, also: tuple[str, ...] = ()) -> str:
    import hashlib

    package = Path(__file__).resolve().parent
    sources = sorted((str(p.relative_to(package)), p.stat().st_mtime_ns, p.stat().st_size)
                     for p in package.rglob("*.py"))
    key = hashlib.sha256(repr((sys.version, module, cls_name, presets, also, sources)).encode()).hexdigest()[:16]
    # $POSTLAB_HOME as postlab.models.home.postlab_home() has it; importing postlab.models would load torch
    home = Path(os.environ.get("POSTLAB_HOME", "~/.cache/postlab")).expanduser()
    cache = home / "help" / f"{command}-{key}.txt"
    try:
        return cache.read_text(encoding="utf-8")
    except OSError:
        pass
    text = _build_config_help(module, cls_name, presets)
    for other in also:  # a preset module's own fields, under a heading of their own
        fields = _build_config_help(other, cls_name, presets).split("\n", 2)[2]
        names = " | ".join(getattr(sys.modules[other], presets))
        text += f"\n\n\b\nWith --preset {names} ({other.replace('.', '/')}.py), these fields instead:\n{fields}"
    try:
        from postlab.utils.io import atomic_write_text

        for old in cache.parent.glob(f"{command}-*.txt"):
            old.unlink(missing_ok=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, text)
    except OSError:  # a read-only home: the help is still printed, only not kept
        pass
    return text


def _build_config_help(module: str, cls_name: str, presets: str | None) -> str:
    import importlib

    mod = importlib.import_module(module)
    cls = getattr(mod, cls_name)
    fields = describe_fields(cls, presets=getattr(mod, presets) if presets else None)
    text = "\b\nConfig fields (YAML keys or KEY=VALUE overrides):\n" + "\n".join(fields)
    if aliases := describe_aliases(cls):
        text += "\n\n\b\nOther names accepted for these keys (docs/cli.md):\n" + "\n".join(f"  {a}" for a in aliases)
    return text


OUT_OPT = typer.Option(None, "--out", help="output location (the same as out_dir= / out=)")


def _with_out(overrides: Optional[list[str]], out: Optional[str], key: str = "out_dir") -> list[str]:
    return list(overrides or []) + [f"{key}={out}"] * (out is not None)


@app.command(cls=_config("postlab.train.sft", "SFTConfig"),
             help="Supervised fine-tuning on chat JSONL ({\"messages\": [...]} per line).")
def sft(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
        overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import sft as recipe

    cfg = load_config(recipe.SFTConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    result = recipe.train(cfg)
    print(f"final model: {os.path.join(cfg.out_dir, 'model')} (step {result.state.step}, eval_loss {result.eval_loss})")


@app.command(cls=_config("postlab.train.pretrain", "PretrainConfig"),
             help="Next-token training on plain text files packed into blocks.")
def pretrain(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
             overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import pretrain as recipe

    cfg = load_config(recipe.PretrainConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    result = recipe.train(cfg)
    print(f"final model: {os.path.join(cfg.out_dir, 'model')} (step {result.state.step}, eval_loss {result.eval_loss})")


@app.command(cls=_config("postlab.train.sample", "SampleConfig"),
             help="Sample K responses per prompt into a candidates JSONL.")
def sample(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
           overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import sample as recipe

    cfg = load_config(recipe.SampleConfig, config, _with_out(overrides, out, "out"))
    _quiet_libraries()
    print(recipe.sample(cfg))


@app.command(cls=_config("postlab.run", "RunConfig", "PRESETS",
                         also=("postlab.presets.reasoning", "postlab.presets.agent")),
             help="The end-to-end job on a preset (resumable: rerun to continue).")
def run(
    preset: Optional[str] = typer.Option(None, "--preset", help="default | tiny | reasoning | reasoning-tiny | agent | "
                                                                 "agent-tiny (their knobs: docs/reasoning.md, docs/agents.md)"),
    out: Optional[str] = typer.Option(None, "--out", help="run directory (default runs/<preset>)"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    named = preset or next((o.split("=", 1)[1] for o in overrides or [] if o.startswith("preset=")), None)
    if named in ("reasoning", "reasoning-tiny"):  # a preset module of its own (postlab/presets/)
        from postlab.presets import reasoning as recipe
    elif named in ("agent", "agent-tiny"):
        from postlab.presets import agent as recipe
    else:
        from postlab import run as recipe

    extra = [f"preset={preset}"] * bool(preset) + [f"out_dir={out}"] * bool(out)
    cfg = load_config(recipe.RunConfig, config, list(overrides or []) + extra)
    _quiet_libraries()
    recipe.run(cfg)


@app.command(cls=_config("postlab.overopt", "OveroptConfig", "PRESETS"),
             help="Reward over-optimisation (Gao et al. 2022): proxies on N gold-labelled pairs, best-of-n "
                  "and RL against each, gold and proxy vs sqrt(KL) with fits (resumable: rerun to continue).")
def overopt(
    preset: Optional[str] = typer.Option(None, "--preset", help="default | tiny"),
    out: Optional[str] = typer.Option(None, "--out", help="run directory (default runs/overopt-<preset>)"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab import overopt as recipe

    extra = [f"preset={preset}"] * bool(preset) + [f"out_dir={out}"] * bool(out)
    cfg = load_config(recipe.OveroptConfig, config, list(overrides or []) + extra)
    _quiet_libraries()
    recipe.run(cfg)


@app.command(help="Rebuild report.html of a `postlab run` directory from its files.")
def report(run_dir: str = typer.Argument(..., help="the run directory (holds summary.json)")) -> None:
    from postlab.report import build_report

    print(build_report(run_dir))


@app.command(cls=_config("postlab.evals.elo", "LeaderboardConfig"),
             help="Rank models on a suite: gold-judged pairwise games, Bradley-Terry/Elo with bootstrap CIs.")
def leaderboard(
    models: list[str] = typer.Argument(..., metavar="MODEL... [KEY=VALUE]...",
                                       help="two or more models (built-in names, directories or hub ids), then any "
                                            "dotted overrides as for every command"),
    suite: Optional[str] = typer.Option(None, "--suite", help="built-in suite name or JSONL file"),
    split: Optional[str] = typer.Option(None, "--split", help="train | test | all"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N items"),
    out: Optional[str] = typer.Option(None, "--out", help="also write the leaderboard JSON here"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE config overrides (repeatable)"),
) -> None:
    import json as _json

    from postlab.evals import elo

    names = [m for m in models if not _is_override(m)]
    overrides = list(overrides or []) + [m for m in models if _is_override(m)]
    flags = _flags(suite=suite, split=split, limit=limit, out=out) + [f"models={_json.dumps(names)}"]
    cfg = load_config(elo.LeaderboardConfig, config, overrides + flags)
    _quiet_libraries()
    print(elo.format_leaderboard(elo.run_leaderboard(cfg)["rows"]))


def _is_override(arg: str) -> bool:
    """``key=value`` or ``section.key=value``: a dotted name before the first '=' (a path has a '/' there)."""
    import re

    return re.match(r"[A-Za-z_][\w.]*=", arg) is not None


def _flags(**named: object) -> list[str]:
    """KEY=VALUE overrides for the named command-line options that were given."""
    return [f"{k}={v}" for k, v in named.items() if v is not None]


@app.command("eval", cls=_config("postlab.evals.harness", "EvalConfig"),
             help="Answer a suite (or grade given responses) and score with the gold rater.")
def eval_(
    model: Optional[str] = typer.Option(None, "--model", help="model to evaluate"),
    suite: Optional[str] = typer.Option(None, "--suite", help="built-in suite name or JSONL file"),
    split: Optional[str] = typer.Option(None, "--split", help="train | test | all"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N items"),
    out: Optional[str] = typer.Option(None, "--out", help="results JSON path"),
    responses: Optional[str] = typer.Option(None, "--responses", help="grade these responses instead of generating"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.evals import harness

    flags = _flags(model=model, suite=suite, split=split, limit=limit, out=out, responses=responses)
    cfg = load_config(harness.EvalConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    harness.main(cfg)


@app.command(cls=_config("postlab.evals.compare", "CompareConfig"),
             help="Win rate of A over B on a suite (gold, simulated or model-judge raters), raw and length-controlled.")
def compare(
    a: Optional[str] = typer.Option(None, "--a", help="model A or responses JSONL"),
    b: Optional[str] = typer.Option(None, "--b", help="model B or responses JSONL"),
    suite: Optional[str] = typer.Option(None, "--suite", help="built-in suite name or JSONL file"),
    split: Optional[str] = typer.Option(None, "--split", help="train | test | all"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N items"),
    rater: Optional[str] = typer.Option(None, "--rater", help="gold | simulated | judge:<url>[#model] | judge:<model> | judge-lc:<...>"),
    out: Optional[str] = typer.Option(None, "--out", help="also write the judgements as JSON"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.evals import compare as recipe

    flags = _flags(a=a, b=b, suite=suite, split=split, limit=limit, rater=rater, out=out)
    cfg = load_config(recipe.CompareConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    recipe.main(cfg)


@app.command("gold-audit", help="How accurate is the gold rater? Per-check precision and recall (Wilson 95% CIs) "
                                "against answers judged by reading (docs/evals.md).")
def gold_audit(
    audit: Optional[str] = typer.Option(None, "--audit", help="audit JSONL (default: the shipped audit set)"),
    out: Optional[str] = typer.Option(None, "--out", help="also write the results as JSON"),
    show: int = typer.Option(0, "--show", help="print the first N disagreements"),
) -> None:
    from postlab.evals import audit as recipe

    recipe.main(audit or recipe.AUDIT_PATH, out, show)


def _model_list(model: Optional[list[str]], models: Optional[str]) -> list[str]:
    """--model (repeatable) and --models A,B,C as the config's models= list (none given: the config's default)."""
    import json as _json

    names = list(model or []) + [m.strip() for m in (models or "").split(",") if m.strip()]
    return [f"models={_json.dumps(names)}"] if names else []


MODEL_OPT = typer.Option(None, "--model", help="a model (repeatable; label=model names its column)")
MODELS_OPT = typer.Option(None, "--models", help="models side by side, comma-separated (e.g. base=M1,sft=M2,rl=M3)")


@app.command(cls=_config("postlab.science.calibration", "CalibrationConfig"),
             help="Multiple-choice calibration (ECE, Brier, NLL, accuracy with bootstrap CIs, temperature) of one or "
                  "more models side by side, with reliability diagrams (docs/science.md).")
def calibration(
    model: Optional[list[str]] = MODEL_OPT,
    models: Optional[str] = MODELS_OPT,
    suite: Optional[str] = typer.Option(None, "--suite", help="builtin | builtin:CATEGORY | a JSONL file of "
                                                              "{question, choices, answer}"),
    out: Optional[str] = typer.Option(None, "--out", help="results JSON (the figure goes beside it)"),
    run: Optional[str] = typer.Option(None, "--run", help="a `postlab run` directory: its base, SFT and RL checkpoints "
                                                          "and reward model, into its calibration.json and report.html "
                                                          "(resumable)"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.science import calibration as recipe

    flags = _flags(suite=suite, out=out, run=run) + _model_list(model, models)
    cfg = load_config(recipe.CalibrationConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    recipe.main(cfg)


@app.command(cls=_config("postlab.science.survey", "SurveyConfig"),
             help="Simulated survey: the model's answer distributions (option log-probs over option orders, optionally "
                  "persona-conditioned) against human ones; representativeness vs uniform and marginal baselines, "
                  "steerability, invalid rate (docs/science.md).")
def survey(
    model: Optional[list[str]] = MODEL_OPT,
    models: Optional[str] = MODELS_OPT,
    questions: Optional[str] = typer.Option(None, "--questions", help="questions JSONL (default: the built-in survey)"),
    personas: Optional[str] = typer.Option(None, "--personas", help="personas JSONL (default: the built-in survey's)"),
    out: Optional[str] = typer.Option(None, "--out", help="results JSON"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.science import survey as recipe

    flags = _flags(questions=questions, personas=personas, out=out) + _model_list(model, models)
    cfg = load_config(recipe.SurveyConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    recipe.main(cfg)


@app.command(cls=_config("postlab.science.sweep", "SweepConfig"),
             help="Data-blend sweep: many small SFT runs over mixtures of demonstration categories, each scored with "
                  "the gold rater on held-out items; a RegMix-style regression predicts the best mixture (bootstrap "
                  "interval), which is trained and measured beside the default; decision accuracy across seeds "
                  "(resumable; workers=N in parallel processes; docs/science.md).")
def sweep(
    out: Optional[str] = typer.Option(None, "--out", help="sweep directory (out_dir)"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.science import sweep as recipe

    cfg = load_config(recipe.SweepConfig, config, list(overrides or []) + _flags(out=out))
    _quiet_libraries()
    recipe.main(cfg)


memory_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                         help="Memory between conversations: per-user LoRA adapters distilled from past conversations, "
                              "guarded by the gold score, versioned, served by `postlab serve --memory` "
                              "(docs/science.md).")
app.add_typer(memory_app, name="memory")
CONVERSATIONS_OPT = typer.Option(None, "--conversations", help="conversations JSONL (default: the built-in users)")
STORE_OPT = typer.Option(None, "--store", help="adapters directory (<user>/v1, v2, ..., current)")
USER_OPT = typer.Option(None, "--user", help="only this user (repeatable; default: every user in the data)")


def _memory_config(config: Optional[str], overrides: Optional[list[str]], *, conversations=None, store=None,
                   users=None, model=None, out=None):
    import json as _json

    from postlab.science import memory as recipe

    flags = _flags(**{"data.conversations": conversations, "store": store, "model": model, "out": out})
    flags += [f"data.users={_json.dumps(users)}"] if users else []
    return recipe, load_config(recipe.MemoryConfig, config, list(overrides or []) + flags)


@memory_app.command("data", help="Write the built-in users' past conversations as JSONL (the file format a user's "
                                 "own conversations take; docs/science.md).")
def memory_data(out: str = typer.Option("memory/conversations.jsonl", "--out", help="JSONL to write"),
                config: Optional[str] = CONFIG_OPT, overrides: Optional[list[str]] = OVERRIDES) -> None:
    recipe, cfg = _memory_config(config, overrides)
    from postlab.science.memory_data import write_histories

    hs = recipe.histories(cfg)
    write_histories(hs, out)
    print(f"wrote {sum(len(h.conversations) for h in hs)} conversations of {len(hs)} users "
          f"({sum(len(h.facts) for h in hs)} facts) to {out}")


@memory_app.command("train", cls=_config("postlab.science.memory", "MemoryConfig"),
                    help="For each user: distil past conversations into question/answer rows, train a LoRA adapter, "
                         "score it against the base model on held-out gold items, publish it as a new version "
                         "(current only when the guardrail accepts it).")
def memory_train(model: Optional[str] = typer.Option(None, "--model", help="base model"),
                 conversations: Optional[str] = CONVERSATIONS_OPT, store: Optional[str] = STORE_OPT,
                 user: Optional[list[str]] = USER_OPT, config: Optional[str] = CONFIG_OPT,
                 overrides: Optional[list[str]] = OVERRIDES) -> None:
    recipe, cfg = _memory_config(config, overrides, conversations=conversations, store=store, users=user, model=model)
    _quiet_libraries()

    def report(r: dict) -> None:
        scores = (f"gold base {r['base']:.3f} -> adapter {r['adapter']:.3f} ({r['difference']:+.3f} ± "
                  f"{r['difference_se']:.3f})" if "base" in r else "guardrail off")
        print(f"{r['user']}: {r['version']} {'accepted' if r['accepted'] else 'REJECTED'} ({r['facts']} facts; "
              f"{scores}); current: {r['current'] or 'none (base model)'}", flush=True)

    recipe.run_train(cfg, report)


@memory_app.command("eval", cls=_config("postlab.science.memory", "MemoryConfig"),
                    help="Recall of earlier-conversation facts on held-out questions: without the adapter, with it, "
                         "and with the conversations in context; gold score with and without (standard errors).")
def memory_eval(model: Optional[str] = typer.Option(None, "--model", help="base model"),
                conversations: Optional[str] = CONVERSATIONS_OPT, store: Optional[str] = STORE_OPT,
                user: Optional[list[str]] = USER_OPT,
                out: Optional[str] = typer.Option(None, "--out", help="results JSON"),
                config: Optional[str] = CONFIG_OPT, overrides: Optional[list[str]] = OVERRIDES) -> None:
    recipe, cfg = _memory_config(config, overrides, conversations=conversations, store=store, users=user,
                                 model=model, out=out)
    _quiet_libraries()
    print(recipe.format_table(recipe.run_eval(cfg)))
    print(f"wrote {cfg.out}")


@memory_app.command("status", help="Each user's adapter versions, the guardrail's decision and scores, and which is current.")
def memory_status(store: str = typer.Option("memory/adapters", "--store", help="adapters directory"),
                  user: Optional[list[str]] = USER_OPT) -> None:
    from postlab.science.memory import format_status
    from postlab.science.memory_store import AdapterStore

    print(format_status(AdapterStore(store), user))


@app.command(cls=_config("postlab.raters.label", "LabelConfig"),
             help="Pair each prompt's candidates and ask a rater which is better -> preferences JSONL.")
def label(
    candidates: Optional[str] = typer.Option(None, "--candidates", help="candidates JSONL from `postlab sample`"),
    rater: Optional[str] = typer.Option(None, "--rater", help="simulated | gold | judge:<url>[#model] | judge:<model> | judge-lc:<...>"),
    out: Optional[str] = typer.Option(None, "--out", help="preferences JSONL to write"),
    suite: Optional[str] = typer.Option(None, "--suite", help="suite the prompts come from"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.raters import label as recipe

    flags = _flags(candidates=candidates, rater=rater, out=out, suite=suite)
    cfg = load_config(recipe.LabelConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    recipe.main(cfg)


@app.command(cls=_config("postlab.train.rm", "RMConfig"),
             help="Train a reward model on pairwise preferences (Bradley-Terry).")
def rm(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
       overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import rm as recipe

    cfg = load_config(recipe.RMConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    s = recipe.train(cfg)
    if s["accuracy_vs_labels"] is None:
        print(f"reward model: {s['model']}  (no held-out pairs)")
    else:
        gold = "n/a" if s["accuracy_vs_gold"] is None else f"{s['accuracy_vs_gold']:.3f}"
        print(f"reward model: {s['model']}  held-out accuracy vs labels {s['accuracy_vs_labels']:.3f}, "
              f"vs gold {gold} ({s['gold_clear_pairs']} clear-margin pairs)")


def _rl_summary(s: dict) -> str:
    return "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items())


@app.command(cls=_config("postlab.train.ppo", "PPOConfig"),
             help="PPO with a per-token KL penalty against the reference (InstructGPT recipe).")
def ppo(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
        overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import ppo as recipe

    cfg = load_config(recipe.PPOConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    print(_rl_summary(recipe.train(cfg)))


@app.command(cls=_config("postlab.train.grpo", "GRPOConfig"),
             help="GRPO or RLOO (advantage=rloo): k samples per prompt, no critic.")
def grpo(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
         overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import grpo as recipe

    cfg = load_config(recipe.GRPOConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    print(_rl_summary(recipe.train(cfg)))


@app.command(cls=_config("postlab.train.dpo", "DPOConfig"), help="DPO or IPO (loss=ipo) on preference pairs.")
def dpo(out: Optional[str] = OUT_OPT, config: Optional[str] = CONFIG_OPT,
        overrides: Optional[list[str]] = OVERRIDES) -> None:
    from postlab.train import dpo as recipe

    cfg = load_config(recipe.DPOConfig, config, _with_out(overrides, out))
    _quiet_libraries()
    s = recipe.train(cfg)
    acc, margin = s.get("eval_rewards/accuracies"), s.get("eval_rewards/margins")
    held_out = (f"held-out reward accuracy {acc:.3f}, margin {margin:.3f}, eval_loss {s['eval_loss']:.4f}"
                if acc is not None else "no held-out pairs")
    print(f"dpo policy: {s['model']}  {held_out} ({s['loss']}, beta {s['beta']}, step {s['steps']})")


@app.command(cls=_config("postlab.train.bon", "BoNConfig"),
             help="Best-of-n against a reward model: proxy and gold score for each n, with the analytic KL.")
def bon(
    policy: Optional[str] = typer.Option(None, "--policy", help="policy model"),
    rm: Optional[str] = typer.Option(None, "--rm", help="reward model directory"),
    suite: Optional[str] = typer.Option(None, "--suite", help="suite name or JSONL"),
    n: Optional[str] = typer.Option(None, "--n", help="comma-separated values of n, e.g. 1,2,4,8,16,32"),
    out: Optional[str] = typer.Option(None, "--out", help="output directory"),
    config: Optional[str] = CONFIG_OPT,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    from postlab.train import bon as recipe

    flags = _flags(policy=policy, rm=rm, suite=suite, out_dir=out, n=f"[{n}]" if n else None)
    cfg = load_config(recipe.BoNConfig, config, list(overrides or []) + flags)
    _quiet_libraries()
    recipe.main(cfg)


@app.command(help="Serve a model behind an OpenAI-compatible API (/v1/chat/completions, /v1/models), with "
                  "Prometheus /metrics and a spec monitor (/monitor). See docs/serving.md.")
def serve(
    model: str = typer.Option(..., "--model", help="built-in name, model directory or hub id"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind"),
    port: int = typer.Option(8000, "--port", help="port to bind"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="require 'Authorization: Bearer KEY'"),
    max_batch: int = typer.Option(32, "--max-batch", help="requests decoded together (1 = no batching)"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="default max_tokens when a request sets none"),
    monitor_log: str = typer.Option("serve-monitor.jsonl", "--monitor-log", help="JSONL of flagged answers ('' = off)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16"),
    served_name: Optional[str] = typer.Option(None, "--served-name", help="model id clients use (default: --model)"),
    allowed_host: Optional[list[str]] = typer.Option(
        None, "--allowed-host", help="without --api-key, also answer this Host (repeatable; '*' = any); "
                                     "localhost, 127.0.0.1 and [::1] always are"),
    allow_remote_without_key: bool = typer.Option(
        False, "--allow-remote-without-key", help="allow a non-loopback --host without --api-key"),
    monitor_keep_system_prompts: bool = typer.Option(
        False, "--monitor-keep-system-prompts", help="log system/developer messages (default: redacted)"),
    max_request_bytes: int = typer.Option(2 * 1024 * 1024, "--max-request-bytes", help="largest request body accepted"),
    batching: str = typer.Option("continuous", "--batching", help="continuous (requests join the running batch at "
                                 "the next decode step) | dynamic (a request waits for the batch it arrived during)"),
    memory: Optional[str] = typer.Option(None, "--memory", help="per-user adapters store (postlab memory train): a "
                                         "request's 'user' gets its current adapter, picked up without a restart"),
    memory_max_loaded: int = typer.Option(4, "--memory-max-loaded", help="users' adapters kept loaded at once "
                                          "(each holds a copy of the model's weights)"),
    single_row_layout: str = typer.Option("auto", "--single-row-layout", help="weights of decode steps with one "
                                          "request running, on a CPU: packed (oneDNN, the batch's) | plain (a second "
                                          "copy, BLAS) | auto (the faster, measured at start) | compiled "
                                          "(a step compiled by inductor before serving: needs g++; fastest on "
                                          "the CPUs measured, docs/benchmarks.md)"),
) -> None:
    from postlab.serve import serve as run_server

    _quiet_libraries()
    run_server(model=model, host=host, port=port, api_key=api_key, max_batch=max_batch, default_max_tokens=max_tokens,
               monitor_log=monitor_log or None, dtype=dtype, served_name=served_name,
               allowed_hosts=tuple(allowed_host or ()), allow_remote_without_key=allow_remote_without_key,
               keep_system_prompts=monitor_keep_system_prompts, max_request_bytes=max_request_bytes,
               continuous=_batching(batching), memory=memory, memory_max_loaded=memory_max_loaded,
               single_row=single_row_layout)


def _batching(mode: str) -> bool:
    if mode not in ("continuous", "dynamic"):
        raise PostlabError(f"--batching {mode!r}: expected continuous or dynamic")
    return mode == "continuous"


@suites_app.command("list", help="Built-in suites with their item counts per split and category.")
def suites_list() -> None:
    from collections import Counter

    from postlab.tasks.suite import BUILTIN_SUITES, builtin_suite

    for name in BUILTIN_SUITES:
        items = builtin_suite(name)
        splits = Counter(it.split for it in items)
        print(f"{name}: {len(items)} items ({', '.join(f'{s} {n}' for s, n in sorted(splits.items()))})")
        cats = Counter((it.category, it.split) for it in items)
        for cat in sorted({c for c, _ in cats}):
            print(f"  {cat:18s} train {cats[(cat, 'train')]:4d}  test {cats[(cat, 'test')]:4d}")
        levels = Counter((it.level, it.split) for it in items if it.level is not None)
        if levels:  # difficulty levels: the test split holds out the harder ones
            print("  levels  " + "  ".join(f"{lv}: train {levels[(lv, 'train')]} test {levels[(lv, 'test')]}"
                                           for lv in sorted({lv for lv, _ in levels})))


@suites_app.command("export", help="Write a built-in suite out as JSONL (one item per line).")
def suites_export(
    name: str = typer.Argument(..., help="built-in suite name (see `postlab suites list`)"),
    out: Optional[str] = typer.Option(None, "--out", help="file to write (default NAME.jsonl)"),
    split: Optional[str] = typer.Option(None, "--split", help="only this split (train | test)"),
    demos: bool = typer.Option(False, "--demos", help="write worked-solution SFT rows ({messages}) instead of items "
                                                      "(reasoning suites: arith, countdown, wordprob; default split train)"),
) -> None:
    from postlab.tasks.suite import BUILTIN_SUITES, load_suite, write_suite

    if name not in BUILTIN_SUITES:
        raise PostlabError(f"unknown suite {name!r}; built-in suites: {', '.join(BUILTIN_SUITES)}")
    if demos:
        from postlab.tasks.reasoning import SUITES, write_demos

        REASONING = (*SUITES, "reasoning")
        if name not in REASONING:
            raise PostlabError(f"--demos: suite {name!r} has no worked solutions; reasoning suites: {', '.join(REASONING)}")
        path = out or f"{name}_demos.jsonl"
        print(f"wrote {write_demos(name, path, split or 'train')} worked demonstrations to {path}")
        return
    items = load_suite(name, split=split)
    path = out or f"{name}.jsonl"
    write_suite(items, path)
    print(f"wrote {len(items)} items to {path}")


@models_app.command("fetch", help="Fetch (or build) a model into $POSTLAB_HOME and print its local path on the last line.")
def models_fetch(name: str = typer.Argument(..., help="built-in name (see `postlab models list`), directory or hub id")) -> None:
    from postlab.models.load import BUILTIN_MODELS, resolve_model

    _quiet_libraries()
    path = resolve_model(name)
    if name not in BUILTIN_MODELS and not os.path.isdir(path):  # a hub id: download it now
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(path)
        except Exception as e:  # network or unknown repo
            raise PostlabError(f"cannot fetch {name!r} from the hub: {e}") from None
    print(path)


@models_app.command("list", help="Show built-in model names and what is cached under $POSTLAB_HOME.")
def models_list() -> None:
    from postlab.models.home import models_dir
    from postlab.models.load import BUILTIN_MODELS, builtin_path, cached_models

    print("built-in models:")
    for m in BUILTIN_MODELS.values():
        state = "cached" if (builtin_path(m.name) / "config.json").is_file() else "not fetched"
        print(f"  {m.name:<24} {state:<12} {m.description}")
    print(f"cache: {models_dir()}")
    for p in cached_models():
        size = sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        print(f"  {p}  ({size / 1e6:.1f} MB)")


def main() -> None:
    from postlab.utils.memory import keep_freed_memory

    if os.environ.get("POSTLAB_MALLOC_TUNING", "1") != "0":
        keep_freed_memory()
    if (err := threads_error()) is not None:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if _HEAVY and (w := busy_warning(load=_LOAD)):
        print(w, file=sys.stderr)
    try:
        app(standalone_mode=False)
    except PostlabError as e:
        from postlab.train.loop import TrainingInterrupted

        print(f"error: {e}", file=sys.stderr)
        sys.exit(130 if isinstance(e, TrainingInterrupted) else 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        if isinstance(e, _click_errors()):
            print(f"error: {_usage_message(e)}", file=sys.stderr)
            sys.exit(e.exit_code)
        import click

        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


def _usage_message(e: Exception) -> str:
    """A usage error in one line that says what to do: click's message (with its "Did you mean"), and where
    none applies, the help to read; an ``--option`` given to a config command is a KEY=VALUE override."""
    msg = e.format_message()
    ctx = getattr(e, "ctx", None)
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    command = " ".join(["postlab", *reversed(names)])
    if getattr(e, "possibilities", None) or "Did you mean" in msg:
        return msg
    msg = msg.rstrip(".")
    option = getattr(e, "option_name", None) or ""
    if option.startswith("--") and isinstance(getattr(e, "ctx", None) and e.ctx.command, _ConfigCommand):
        return (f"{msg}; config fields are KEY=VALUE arguments, not options (write {option[2:]}=VALUE); "
                f"'{command} --help' lists them")
    return f"{msg}; '{command} --help' says what it takes"


def _click_errors() -> tuple[type, ...]:
    """Usage-error classes: click's, and those of the copy of click that newer typer releases bundle
    (typer._click), which do not derive from click's."""
    import click

    classes: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as bundled

        classes.append(bundled)
    except ImportError:
        pass
    return tuple(classes)


if __name__ == "__main__":
    main()
