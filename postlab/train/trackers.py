"""Metric sinks beside metrics.jsonl, one class each: TensorBoard, Weights & Biases and MLflow
(``checkpoint.report_to``). Each gets the run's config once and then ``log(step, scalars)``.

Where each writes, so a run directory holds everything and nothing needs a network by default:
- tensorboard: event files in ``run_dir/tensorboard``.
- wandb: ``wandb.init(dir=run_dir)``, so the run lands in ``run_dir/wandb``; online or offline as the
  ``WANDB_MODE`` environment variable says (offline needs no account; ``wandb sync`` uploads later);
  project ``$WANDB_PROJECT`` or "postlab".
- mlflow: ``$MLFLOW_TRACKING_URI`` when set (a tracking server), else a local SQLite store
  ``run_dir/mlflow.db`` (MLflow's file store is in maintenance mode); experiment
  ``$MLFLOW_EXPERIMENT_NAME`` or "postlab"; the config as flattened params (``optim.lr``).

A resumed run continues the same W&B run and MLflow run: their ids are kept in ``run_dir/trackers.json``.
Which steps a continued tracker is sent again is ``MetricsLogger``'s business (postlab.train.loop)."""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

from postlab.errors import PostlabError
from postlab.utils.io import atomic_write_text

TRACKERS = ("tensorboard", "wandb", "mlflow")
IDS_FILE = "trackers.json"


def missing_message(name: str) -> str:
    return f"report_to includes {name} but it is not installed: pip install 'postlab[{name}]'"


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise PostlabError(missing_message(name)) from None


def _run_name(run_dir: Path) -> str:
    """``runs/default/sft`` -> ``default/sft``: the run and the stage."""
    run_dir = run_dir.resolve()
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.parent.name else run_dir.name


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"optim.lr": "2e-05", "checkpoint.report_to": '["jsonl"]'}`` (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v if isinstance(v, str) else json.dumps(v)
    return flat


class TensorBoardTracker:
    def __init__(self, run_dir: Path, config: dict, *, resuming: bool):
        _require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        log_dir = run_dir / "tensorboard"
        self.continued = resuming and any(log_dir.glob("events.out.tfevents.*"))
        # A fresh start hides whatever an earlier attempt left in log_dir (purge_step=0), as metrics.jsonl is rewritten.
        self.writer = SummaryWriter(str(log_dir), purge_step=None if self.continued else 0)
        if config and not self.continued:
            self.writer.add_text("config", "    " + json.dumps(config, indent=2).replace("\n", "\n    "), 0)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, run_dir: Path, config: dict, *, resume_id: str | None):
        wandb = _require("wandb")
        kwargs = {"project": os.environ.get("WANDB_PROJECT", "postlab"), "dir": str(run_dir), "name": _run_name(run_dir)}
        kwargs.update({"id": resume_id, "resume": "allow"} if resume_id else {"config": config})
        try:
            self.run = wandb.init(**kwargs)
        except Exception as e:  # no account or no network: say how to log without either
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise PostlabError(f"report_to=wandb: wandb.init failed ({first_line}); run `wandb login`, or set "
                               "WANDB_MODE=offline to log under the run directory") from None
        self.id = self.run.id
        self.continued = resume_id is not None

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    MAX_PARAMS, MAX_METRICS, MAX_PARAM_CHARS = 100, 1000, 6000  # MLflow's limits for one log_batch call

    def __init__(self, run_dir: Path, config: dict, *, resume_id: str | None):
        _require("mlflow")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._metric = Metric
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        self.tracking_uri = env_uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "postlab")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            name, artifact_location=None if env_uri else (run_dir / "mlflow-artifacts").resolve().as_uri())
        self.continued = resume_id is not None and self._exists(resume_id)
        if self.continued:
            self.id = resume_id
            self.client.update_run(resume_id, status="RUNNING")
        else:
            self.id = self.client.create_run(experiment_id, run_name=_run_name(run_dir),
                                             tags={"postlab.run_dir": str(run_dir.resolve())}).info.run_id
            params = [Param(k, v[: self.MAX_PARAM_CHARS]) for k, v in flatten(config).items()]
            for i in range(0, len(params), self.MAX_PARAMS):
                self.client.log_batch(self.id, params=params[i : i + self.MAX_PARAMS])

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def log(self, step: int, scalars: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(k, v, now, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), self.MAX_METRICS):
            self.client.log_batch(self.id, metrics=metrics[i : i + self.MAX_METRICS])

    def close(self) -> None:
        self.client.set_terminated(self.id)


def open_trackers(run_dir: Path, names, config: dict, *, resuming: bool) -> list:
    """The trackers ``names`` asks for (``jsonl`` is MetricsLogger's own), continuing the W&B and MLflow
    runs of ``run_dir/trackers.json`` when ``resuming``; records their ids there."""
    ids_path = run_dir / IDS_FILE
    ids = json.loads(ids_path.read_text()) if resuming and ids_path.exists() else {}
    trackers, opened = [], {}
    for name in dict.fromkeys(n for n in names if n != "jsonl"):
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run_dir, config, resuming=resuming))
        elif name == "wandb":
            trackers.append(WandbTracker(run_dir, config, resume_id=ids.get("wandb")))
            opened["wandb"] = trackers[-1].id
        elif name == "mlflow":
            trackers.append(MlflowTracker(run_dir, config, resume_id=ids.get("mlflow")))
            opened["mlflow"] = trackers[-1].id
        else:
            raise PostlabError(f"report_to: unknown tracker {name!r} (choose from jsonl, {', '.join(TRACKERS)})")
    if opened or ids_path.exists():
        atomic_write_text(ids_path, json.dumps({**ids, **opened}, indent=1) + "\n")
    return trackers
