"""Weights & Biases and MLflow beside metrics.jsonl and TensorBoard (issue 17 item 10), all offline and under
the run directory: W&B in offline mode, MLflow on a SQLite store in the run directory. Each tracker gets the
run's config; a resumed run continues the same tracker run and sends no step twice; a missing package is
one line naming the pip extra."""

import glob
import json
import struct
import sys
import time

import pytest
import yaml

from postlab.config import load_config
from postlab.errors import ConfigError, PostlabError
from postlab.train import sft
from postlab.train.loop import MetricsLogger

CONFIG = {"model": "tiny", "optim": {"lr": 0.003, "batch_size": 4}, "checkpoint": {"report_to": ["jsonl"]}}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def run_dir_with_config(path):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return path


def attempt(run_dir, report_to, steps, resume_step=None, extra=None):
    """One training attempt: log ``loss`` at each of ``steps`` (and ``extra`` at the last), then close."""
    logger = MetricsLogger(run_dir, report_to, resume_step=resume_step)
    for s in steps:
        logger.log(s, {"loss": 1.0 / s, "note": "text is not a scalar"})
    if extra:
        logger.log(steps[-1] if steps else resume_step, extra)
    logger.close()


def jsonl_steps(run_dir, key="loss"):
    return [m["step"] for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if key in m]


# --- Weights & Biases, offline ---


def wandb_records(run_path):
    """The records of an offline W&B run: its ``.wandb`` file is a LevelDB-style log (32 KiB blocks,
    7-byte record headers: crc, length, type) of ``Record`` protobufs after a 7-byte ':W&B' header."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(glob.glob(f"{run_path}/*.wandb")[0], "rb").read()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (n == 0 and kind == 0):  # block trailer or padding
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def wandb_runs(run_dir, attempts=1, timeout_s=60):
    """[(run id, config, [(step, {metric: value})])] for each offline attempt, oldest first. W&B's service
    process writes the file after ``finish()`` returns: wait for each run's exit record."""
    deadline = time.monotonic() + timeout_s
    while True:
        paths = sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*")))
        records = [list(wandb_records(p)) for p in paths]
        if len(paths) == attempts and all(rs and rs[-1].WhichOneof("record_type") == "exit" for rs in records):
            break
        assert time.monotonic() < deadline, f"no complete offline W&B runs in {run_dir}: {paths}"
        time.sleep(0.2)
    runs = []
    for rs in records:
        run_id, config, history = None, {}, []
        for r in rs:
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run_id = r.run.run_id
                config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
            elif kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in r.config.update})
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                history.append((r.history.step.num, {k: v for k, v in row.items() if not k.startswith("_")}))
        runs.append((run_id, config, history))
    return runs


def test_wandb_offline_gets_config_and_scalars_under_the_run_dir(tmp_path):
    pytest.importorskip("wandb")
    run_dir = run_dir_with_config(tmp_path / "run")
    attempt(run_dir, ["jsonl", "wandb"], [1, 2, 3])
    [(run_id, config, history)] = wandb_runs(run_dir)
    assert json.loads((run_dir / "trackers.json").read_text())["wandb"] == run_id
    assert config["optim"] == {"lr": 0.003, "batch_size": 4} and config["model"] == "tiny"
    assert history == [(1, {"loss": 1.0}), (2, {"loss": 0.5}), (3, {"loss": 1 / 3})]


def test_wandb_resume_continues_the_run_and_sends_no_step_twice(tmp_path):
    pytest.importorskip("wandb")
    run_dir = run_dir_with_config(tmp_path / "run")
    attempt(run_dir, ["jsonl", "wandb"], [1, 2, 3, 4, 5])  # interrupted after step 5, checkpoint at 3
    attempt(run_dir, ["jsonl", "wandb"], [4, 5, 6], resume_step=3, extra={"eval_loss": 0.25})
    first, second = wandb_runs(run_dir, attempts=2)
    assert first[0] == second[0]  # one W&B run, continued
    assert [s for s, _ in second[2]] == [6]  # steps 4 and 5 were sent by the first attempt
    assert second[2][0][1] == {"loss": 1 / 6, "eval_loss": 0.25}
    sent = [s for _, _, history in (first, second) for s, row in history if "loss" in row]
    assert sent == [1, 2, 3, 4, 5, 6] == jsonl_steps(run_dir)


# --- MLflow, SQLite store under the run dir ---


def test_mlflow_local_store_gets_params_metrics_and_a_resume_without_duplicates(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run_dir = run_dir_with_config(tmp_path / "run")
    attempt(run_dir, ["jsonl", "mlflow"], [1, 2, 3, 4, 5])  # interrupted after step 5, checkpoint at 5
    attempt(run_dir, ["jsonl", "mlflow"], [], resume_step=5, extra={"eval_loss": 0.25})  # only the final eval left
    attempt(run_dir, ["mlflow"], [6, 7])  # not resuming: a new MLflow run, like metrics.jsonl
    assert (run_dir / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("postlab").experiment_id], order_by=["start_time ASC"])
    assert len(runs) == 2
    first, second = runs
    assert first.data.params["optim.lr"] == "0.003" and first.data.params["checkpoint.report_to"] == '["jsonl"]'
    assert first.info.run_name == f"{tmp_path.name}/run"  # the run directory's parent and name
    assert first.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(first.info.run_id, "loss")] == \
        [(s, 1.0 / s) for s in range(1, 6)]
    assert [(m.step, m.value) for m in client.get_metric_history(first.info.run_id, "eval_loss")] == [(5, 0.25)]
    assert "note" not in first.data.metrics
    assert [m.step for m in client.get_metric_history(second.info.run_id, "loss")] == [6, 7]
    assert json.loads((run_dir / "trackers.json").read_text())["mlflow"] == second.info.run_id


# --- TensorBoard: the same resume rules ---


def tensorboard_steps(run_dir, tag="loss"):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


def test_tensorboard_resume_sends_no_step_twice_and_a_fresh_start_hides_the_old_one(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run_dir_with_config(tmp_path / "run")
    attempt(run_dir, ["tensorboard"], [1, 2, 3, 4, 5])
    attempt(run_dir, ["tensorboard"], [4, 5, 6], resume_step=3)
    assert tensorboard_steps(run_dir) == [(s, round(1 / s, 6)) for s in range(1, 7)]
    attempt(run_dir, ["tensorboard"], [1, 2])  # started over: the earlier steps are purged, as in metrics.jsonl
    assert tensorboard_steps(run_dir) == [(1, 1.0), (2, 0.5)]


def test_a_tracker_added_on_resume_gets_the_kept_history_first(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run_dir_with_config(tmp_path / "run")
    attempt(run_dir, ["jsonl"], [1, 2, 3, 4, 5])
    attempt(run_dir, ["jsonl", "tensorboard"], [4, 5, 6], resume_step=3)
    assert [s for s, _ in tensorboard_steps(run_dir)] == [1, 2, 3, 4, 5, 6] == jsonl_steps(run_dir)


# --- a missing package: one line naming the extra ---


@pytest.mark.parametrize("name", ["wandb", "mlflow", "tensorboard"])
def test_a_missing_tracker_package_is_one_line_naming_the_pip_extra(name, tmp_path, monkeypatch, chat_file):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError, find_spec finds nothing
    with pytest.raises(ConfigError) as e:
        load_config(sft.SFTConfig, None, ["model=tiny", f"data.train_file={chat_file}", f"checkpoint.report_to=[jsonl, {name}]"])
    assert str(e.value) == f"checkpoint.report_to includes {name} but it is not installed: pip install 'postlab[{name}]'"
    with pytest.raises(PostlabError, match=rf"^report_to includes {name} but it is not installed: pip install 'postlab\[{name}\]'$"):
        MetricsLogger(run_dir_with_config(tmp_path / "run"), ["jsonl", name], resume_step=None)


# --- end to end: an SFT run reports to both ---


def test_sft_reports_to_wandb_and_mlflow_with_its_config(chat_file, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("POSTLAB_DTYPE", "fp32")
    out = tmp_path / "sft"
    sft.train(load_config(sft.SFTConfig, None, [
        "model=tiny", f"out_dir={out}", f"data.train_file={chat_file}", "data.eval_fraction=0", "optim.max_steps=3",
        "checkpoint.progress=false", "checkpoint.report_to=[jsonl, wandb, mlflow]"]))
    [(_, config, history)] = wandb_runs(out)
    assert config["optim"]["max_steps"] == 3 and config["checkpoint"]["report_to"] == ["jsonl", "wandb", "mlflow"]
    assert [s for s, row in history if "loss" in row] == [1, 2, 3] == jsonl_steps(out)
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("postlab").experiment_id])
    assert run.data.params["optim.max_steps"] == "3"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "grad_norm")] == [1, 2, 3]
