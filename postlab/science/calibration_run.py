"""``postlab calibration --run R``: the calibration of a ``postlab run`` directory's checkpoints, into its report.

Not a stage of ``postlab run`` (the default recipe keeps to its time budget): a command to run after it. It
scores the base model, the SFT checkpoint and the RL checkpoint (labelled by the run's algo) on the
multiple-choice suite, and the reward model on its held-out pairs, writes ``R/calibration.json`` and
``R/calibration.png`` and rebuilds ``R/report.html``, which then shows the reliability diagrams side by side.

Resumable per checkpoint: ``calibration.json`` keeps each checkpoint's per-question distributions (``scores``)
under a key, the scoring settings and a hash of the run's record of the stage that wrote the checkpoint
(``stages/<stage>.json``). A rerun scores only the checkpoints whose key is missing or changed (a rerun of
``postlab run`` that redid SFT changes SFT's key), and recomputes every figure (bins, bootstrap) from the kept
distributions. The file is rewritten atomically after each checkpoint, so an interrupted command loses at most
the checkpoint it was scoring.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from postlab.errors import ConfigError, DataError
from postlab.run_state import portable, resolve
from postlab.utils.io import atomic_write_text, file_lock, finite

CALIBRATION_FILE = "calibration.json"
# The stage whose record names each checkpoint; the RL checkpoint is labelled by the run's algo.
CHECKPOINT_STAGES = {"base": "fetch", "sft": "sft", "rl": "rl"}


def _summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ConfigError(f"run: {path} not found; is {run_dir} a finished `postlab run` directory?")
    return json.loads(path.read_text(encoding="utf-8"))


def _record(run_dir: Path, stage: str) -> tuple[dict, str] | None:
    """(the stage's result, a hash of its record), or None where the run has no record of that stage."""
    path = run_dir / "stages" / f"{stage}.json"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return resolve(json.loads(text)["result"], run_dir), hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoints(run_dir: Path) -> dict[str, tuple[str, str]]:
    """label -> (model, hash of its stage record): ``base`` (the run's model), ``sft`` and the RL checkpoint
    under the run's algo name. algo=bon has no RL checkpoint (its policy is the SFT checkpoint with best-of-n at
    inference), so none is listed for it."""
    summary = _summary(run_dir)
    algo = summary.get("algo", "rl")
    out = {}
    for label, stage in CHECKPOINT_STAGES.items():
        found = _record(run_dir, stage)
        if found is None:
            raise ConfigError(f"run: {run_dir / 'stages' / (stage + '.json')} not found; the run has no {label} "
                              "checkpoint")
        result, key = found
        if label == "base":
            out[label] = (summary["model"], key)
        elif label == "rl" and algo == "bon":
            continue
        else:
            out[algo if label == "rl" else label] = (result["model"], key)
    return out


def reward_model(run_dir: Path) -> tuple[str, str] | None:
    """(the run's reward model directory, hash of its stage record), or None for a run without one."""
    found = _record(run_dir, "rm")
    return None if found is None else (found[0]["model"], found[1])


def check_run_dir(run_dir: Path) -> None:
    """Everything ``run`` needs is there, before any model loads."""
    if not run_dir.is_dir():
        raise ConfigError(f"run: not a directory: {run_dir}")
    for label, (model, _) in checkpoints(run_dir).items():
        if label != "base" and not Path(model).is_dir():
            raise ConfigError(f"run: the {label} checkpoint {model} is missing")


def _settings(cfg, items) -> dict:
    """What the per-question distributions depend on, besides the checkpoint."""
    questions = json.dumps([[it.question, it.choices, it.answer] for it in items])
    return {"suite": cfg.suite, "n_items": len(items), "scoring": cfg.scoring,
            "orders": (cfg.orders or "all") if cfg.scoring == "letters" else None, "seed": cfg.seed,
            "dtype": cfg.dtype, "questions": hashlib.sha256(questions.encode()).hexdigest()[:16]}


def _rm_settings(cfg, rm_cfg) -> dict:
    return {"split": rm_cfg.rm_split, "pairs_file": portable(rm_cfg.rm_pairs, Path(cfg.run)), "rm_limit": cfg.rm_limit}


def _previous(path: Path, overwrite: bool) -> dict:
    if overwrite or not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); set overwrite=true to score again") from e


def _rm_config(cfg, rm_dir: str):
    """The calibration config for the run's reward model: its held-out prompts of the run's own preference file
    (the copy in the run directory, so a moved or copied run reads its own data)."""
    import yaml

    train_cfg = yaml.safe_load((Path(rm_dir).parent / "config.yaml").read_text(encoding="utf-8")) or {}
    train_file = (train_cfg.get("data") or {}).get("train_file")
    own = Path(cfg.run) / "data" / Path(train_file).name if train_file else None
    pairs = str(own) if own is not None and own.is_file() else None
    return cfg.model_copy(update={"rm": rm_dir, "rm_pairs": pairs, "rm_split": "heldout"})


def assemble(cfg, items, scores: dict, rm_scores: dict | None) -> dict:
    """calibration.json's figures from the kept distributions, in ``calibration.run``'s layout."""
    from postlab.science.calibration import compare_models, rm_report

    results = {"suite": cfg.suite, "n_items": len(items), "scoring": cfg.scoring,
               "orders": (cfg.orders or "all") if cfg.scoring == "letters" else None,
               **compare_models(items, {label: (s["model"], s["probs"], s["mass"]) for label, s in scores.items()},
                                bins=cfg.bins, bootstrap=cfg.bootstrap, seed=cfg.seed)}
    for label, s in scores.items():
        results["models"][label]["seconds"] = s["seconds"]
    if rm_scores is not None:
        results["reward_model"] = rm_report(rm_scores, gold_threshold=cfg.rm_gold_margin, bins=cfg.bins,
                                            bootstrap=cfg.bootstrap, seed=cfg.seed)
    results["scores"] = scores
    if rm_scores is not None:
        results["rm_scores"] = rm_scores
    results["figure"] = "{run_dir}/calibration.png"
    return results


def _write(path: Path, results: dict, cfg, started: float) -> None:
    from postlab.science.common import meta

    atomic_write_text(path, json.dumps(finite({**results, "meta": meta(cfg.model_dump(mode="json"), started)}),
                                       indent=2) + "\n")


def panels(results: dict) -> list[tuple[str, dict]]:
    """(title, figures) per reliability diagram: each checkpoint, then the reward model against its labels and
    against gold."""
    out = list(results.get("models", {}).items())
    rm = results.get("reward_model") or {}
    out += [(f"reward model {key.replace('_', ' ')}", rm[key]) for key in ("vs_labels", "vs_gold") if rm.get(key)]
    return out


def run(cfg) -> dict:
    """Score what is not yet scored, write calibration.json, calibration.png and report.html; returns the results."""
    from postlab.science.calibration import plot_reliability, score_items, score_rm_pairs
    from postlab.science.mc_suite import load_mc_suite
    from postlab.science.options import load_scoring_model

    started = time.time()
    run_dir = Path(cfg.run)
    path = run_dir / CALIBRATION_FILE
    with file_lock(run_dir, wait=False) as mine:  # as postlab run holds it: the checkpoints must not change under us
        if not mine:
            raise ConfigError(f"run: another postlab process is using {run_dir}; wait for it to end")
        previous = _previous(path, cfg.overwrite)
        items = load_mc_suite(cfg.suite, cfg.seed)[: cfg.limit]
        settings = _settings(cfg, items)
        found = checkpoints(run_dir)
        keys = {label: {**settings, "checkpoint": record} for label, (_, record) in found.items()}
        scores = {label: s for label, s in (previous.get("scores") or {}).items()
                  if label in keys and s.get("key") == keys[label]}
        rm_found = reward_model(run_dir) if cfg.run_rm else None
        rm_scores, rm_cfg, rm_key = None, None, None
        if rm_found is not None:
            rm_cfg = _rm_config(cfg, rm_found[0])
            rm_key = {**_rm_settings(cfg, rm_cfg), "checkpoint": rm_found[1]}
            if (previous.get("rm_scores") or {}).get("key") == rm_key:
                rm_scores = previous["rm_scores"]
        for label in scores:
            print(f"calibration: {label} already scored with these settings (skipped)", flush=True)
        for label, (model, _) in found.items():
            if label in scores:
                continue
            t0 = time.time()
            net, tok = load_scoring_model(model, cfg.dtype, cfg.device)
            probs, mass = score_items(net, tok, items, orders=cfg.orders, batch_size=cfg.batch_size,
                                      scoring=cfg.scoring, progress=cfg.progress, desc=label)
            del net
            scores[label] = {"key": keys[label], "model": portable(model, run_dir), "probs": probs, "mass": mass,
                             "seconds": round(time.time() - t0, 1)}
            done = {name: scores[name] for name in found if name in scores}  # in the run's order
            _write(path, assemble(cfg, items, done, rm_scores), cfg, started)  # what is done survives a stop
        scores = {name: scores[name] for name in found}
        if rm_found is not None and rm_scores is not None:
            print("calibration: reward model already scored with these settings (skipped)", flush=True)
        elif rm_found is not None:
            t0 = time.time()
            rm_scores = {"key": rm_key, **portable(score_rm_pairs(rm_cfg), run_dir),
                         "seconds": round(time.time() - t0, 1)}
        results = assemble(cfg, items, scores, rm_scores)
        plot_reliability(panels(results), run_dir / "calibration.png", cfg.bins)
        _write(path, results, cfg, started)
        results["report"] = str(rebuild_report(run_dir))
    return results


def rebuild_report(run_dir: Path) -> Path:
    """``report.html`` rebuilt by the builder of the run's preset."""
    if _summary(run_dir).get("preset") == "reasoning":
        from postlab.presets.reasoning_report import build_report
    else:
        from postlab.report import build_report
    return build_report(run_dir)
