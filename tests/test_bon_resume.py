"""`postlab bon` continues an interrupted run: sampling and scoring are journalled batch by batch
(`postlab.utils.journal`), and a rerun writes what an uninterrupted run would, without redoing finished batches."""

import functools
import json

import pytest

from postlab.errors import ConfigError, DataError
from postlab.tasks.suite import make_item, write_suite
from postlab.utils.journal import BatchJournal, fingerprint_file


def test_journal_keeps_whole_lines_and_names_a_bad_one(tmp_path):
    path = tmp_path / "j.jsonl"
    j = BatchJournal(path)
    j.add(0, [[3, "a"]])
    j.add(1, [[1, "b\u2028c"]])  # a line separator inside a result stays inside its line
    j.close()
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"batch": 2, "res')  # killed mid-write
    again = BatchJournal(path)
    assert again.done == {0: [[3, "a"]], 1: [[1, "b\u2028c"]]}
    again.close()
    assert path.read_text(encoding="utf-8").count("\n") == 2 and not path.read_text().endswith('"res')
    path.write_text('{"batch": 0, "result": 1}\nnot json\n{"batch": 1, "result": 2}\n')
    with pytest.raises(DataError, match=r"j\.jsonl:2: not a journal line"):
        BatchJournal(path)


def _suite(tmp_path):
    items = [make_item(f"q{i}", [{"role": "user", "content": f"Say the word apple {i}."}], "knowledge", "train",
                       [("keywords:existence", {"keywords": ["apple"]})]) for i in range(3)]
    write_suite(items, tmp_path / "suite.jsonl")
    return tmp_path / "suite.jsonl"


def _rm(tmp_path, suite):
    from postlab.raters.label import LabelConfig, label
    from postlab.train.rm import RMConfig, train
    from postlab.train.sample import SampleConfig, sample

    cands = sample(SampleConfig(model="tiny", suite=str(suite), split="train", out=str(tmp_path / "c.jsonl"), k=4,
                                batch_size=8, dtype="fp32", progress=False,
                                sampling={"max_new_tokens": 6, "temperature": 1.0, "seed": 0}))
    label(LabelConfig(candidates=str(cands), suite=str(suite), rater="simulated", out=str(tmp_path / "prefs.jsonl")))
    train(RMConfig(model="tiny", out_dir=str(tmp_path / "rm"), data={"train_file": str(tmp_path / "prefs.jsonl"),
                                                                      "eval_fraction": 0.0},
                   optim={"max_steps": 2, "batch_size": 4, "bf16": False}, checkpoint={"progress": False}))
    return str(tmp_path / "rm" / "model")


class Interrupt(Exception):
    pass


def _counting(monkeypatch, owner, name, fail_at=None):
    """Wrap owner.name to count its calls, raising Interrupt at call number `fail_at`."""
    calls = []
    real = getattr(owner, name)

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_an_interrupted_bon_continues_to_the_same_results(tmp_path, monkeypatch):
    import postlab.raters.reward_model as rm_module
    import postlab.train.bon as bon
    from postlab.rollout import TorchEngine

    suite = _suite(tmp_path)
    rm = _rm(tmp_path, suite)
    # small scoring batches, so scoring has several (12 responses: 3 batches of 4)
    monkeypatch.setattr(bon, "RewardModelRater", functools.partial(rm_module.RewardModelRater, batch_size=4))

    def cfg(out, **kw):
        return bon.BoNConfig(policy="tiny", rm=rm, suite=str(suite), split="all", n=[1, 2, 4], out_dir=str(out),
                             dtype="fp32", batch_size=2, progress=False,
                             sampling={"max_new_tokens": 6, "seed": 0, **kw})

    whole = bon.run(cfg(tmp_path / "whole"))  # 12 samples: 6 sampling batches
    expected = (tmp_path / "whole" / "samples.jsonl").read_text()

    out = tmp_path / "cut"
    with monkeypatch.context() as m:  # killed while sampling its 4th batch
        _counting(m, TorchEngine, "generate_ids", fail_at=4)
        with pytest.raises(Interrupt):
            bon.run(cfg(out))
    assert len((out / "samples.journal.jsonl").read_text().splitlines()) == 3
    with pytest.raises(ConfigError, match="was written with other settings.*sampling.seed: 0 then, 1 now"):
        bon.run(cfg(out, seed=1))  # another run's settings are refused, not mixed in
    with monkeypatch.context() as m:  # rerun: samples the 3 batches left, then is killed scoring the 2nd batch
        sampled = _counting(m, TorchEngine, "generate_ids")
        _counting(m, rm_module, "rewards", fail_at=2)
        with pytest.raises(Interrupt):
            bon.run(cfg(out))
    assert len(sampled) == 3
    with monkeypatch.context() as m:  # rerun: no sampling, scores the 2 batches left
        sampled = _counting(m, TorchEngine, "generate_ids")
        scored = _counting(m, rm_module, "rewards")
        again = bon.run(cfg(out))
    assert len(sampled) == 0 and len(scored) == 2
    assert again["results"] == whole["results"]
    assert (out / "samples.jsonl").read_text() == expected
    journals = [p for p in out.iterdir() if "journal" in p.name]
    assert journals == []  # a finished run leaves its results only
    assert not fingerprint_file(out / "samples.journal.jsonl").exists()
    assert json.loads((out / "bon.json").read_text())["results"] == whole["results"]


@pytest.mark.parametrize("samples", [None, 2])
def test_an_interrupted_eval_continues_to_the_same_answers(tmp_path, monkeypatch, samples):
    """`postlab eval` (greedy, or samples= for test-time compute) journals its generation beside out= too."""
    from postlab.evals.harness import EvalConfig, evaluate, samples_path
    from postlab.rollout import TorchEngine

    suite = _suite(tmp_path)

    def cfg(out, **kw):
        return EvalConfig(model="tiny", suite=str(suite), split="all", out=str(out), batch_size=1, dtype="fp32",
                          progress=False, samples=samples,
                          sampling={"max_new_tokens": 6, "seed": 0, "temperature": 0.0 if samples is None else 1.0,
                                    **kw})

    evaluate(cfg(tmp_path / "whole.json"))
    out = tmp_path / "cut.json"
    with monkeypatch.context() as m:
        _counting(m, TorchEngine, "generate_ids", fail_at=3)  # killed on the 3rd item batch
        with pytest.raises(Interrupt):
            evaluate(cfg(out))
    journal = tmp_path / "cut.journal.jsonl"
    assert len(journal.read_text().splitlines()) == 2
    with pytest.raises(ConfigError, match="was written with other settings.*sampling.max_new_tokens: 6 then, 7 now"):
        evaluate(cfg(out, max_new_tokens=7))
    with monkeypatch.context() as m:
        calls = _counting(m, TorchEngine, "generate_ids")
        evaluate(cfg(out))
    batches = 3 * (samples or 1)
    assert len(calls) == batches - 2
    strip = lambda p: [{k: v for k, v in json.loads(line).items()} for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(samples_path(out)) == strip(samples_path(tmp_path / "whole.json"))
    assert not journal.exists() and not fingerprint_file(journal).exists()
