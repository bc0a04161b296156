"""`postlab bon` continues an interrupted run: sampling and scoring are journalled batch by batch
(`postlab.utils.journal`), and a rerun writes what an uninterrupted run would, without redoing finished batches."""

import functools
import json

import pytest

from postlab.errors import ConfigError, DataError, ModelError
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
    fresh = BatchJournal(tmp_path / "new.jsonl", {"k": 1})  # nothing is written before the first batch
    assert not (tmp_path / "new.jsonl").exists() and not fingerprint_file(tmp_path / "new.jsonl").exists()
    fresh.add(0, "x")
    fresh.close()
    assert json.loads(fingerprint_file(tmp_path / "new.jsonl").read_text()) == {"k": 1}
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
    with pytest.raises(ModelError, match="no such directory"):  # a model that does not load leaves no journal to refuse the corrected rerun
        evaluate(cfg(out).model_copy(update={"model": str(tmp_path / "no-such-model")}))
    assert not any("journal" in p.name for p in tmp_path.iterdir())
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


def _proxy_beside(rm: str, out, layers_changed: int, seed: int) -> str:
    """A copy of the reward model at `rm` with its top `layers_changed` layers and head perturbed: a second proxy
    sharing the bottom layers, as overopt's proxies trained from one policy do."""
    import torch

    from postlab.models.reward import load_reward_model

    model, tok = load_reward_model(rm)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers[len(model.model.layers) - layers_changed:]:
            for p in layer.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        model.score.weight.add_(0.5 * torch.randn(model.score.weight.shape, generator=g))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def test_proxies_sharing_bottom_layers_score_as_each_alone(tmp_path):
    import torch

    from postlab.models.reward import load_reward_model, rewards, rewards_sharing_bottom, right_pad, shared_bottom

    suite = _suite(tmp_path)
    rm = _rm(tmp_path, suite)
    other = _proxy_beside(rm, tmp_path / "other", layers_changed=1, seed=1)
    a, tok = load_reward_model(rm)
    b, _ = load_reward_model(other)
    L = len(a.model.layers)
    assert shared_bottom([a, b]) == L - 1 and shared_bottom([a, a]) == L and shared_bottom([a]) == 0
    ids, mask = right_pad([[5, 6, 7, 8], [9, 10], [11, 12, 13]], tok.pad_token_id)
    with torch.no_grad():
        together = rewards_sharing_bottom([a, b], L - 1, ids, mask)
        alone = [rewards(a, ids, mask), rewards(b, ids, mask)]
    for t, s in zip(together, alone):
        assert torch.equal(t, s)  # the same operations on the same numbers
    assert not torch.allclose(together[0], together[1])  # two different proxies
    with torch.no_grad():
        b.model.embed_tokens.weight.add_(1.0)
    assert shared_bottom([a, b]) == 0


def test_bon_runs_rescoring_one_draw_together_match_each_alone(tmp_path, monkeypatch):
    import postlab.raters.reward_model as rm_module
    import postlab.train.bon as bon

    suite = _suite(tmp_path)
    rm = _rm(tmp_path, suite)
    others = [_proxy_beside(rm, tmp_path / f"p{i}", layers_changed=1, seed=i) for i in (1, 2)]
    monkeypatch.setattr(bon, "RewardModelRater", functools.partial(rm_module.RewardModelRater, batch_size=4))

    def cfg(rm_dir, out, samples=None):
        return bon.BoNConfig(policy="tiny", rm=rm_dir, suite=str(suite), split="all", n=[1, 2, 4], out_dir=str(out),
                             dtype="fp32", batch_size=2, progress=False, samples=samples,
                             sampling={"max_new_tokens": 6, "seed": 0})

    bon.run(cfg(rm, tmp_path / "first"))
    drawn = str(tmp_path / "first" / "samples.jsonl")
    alone = [bon.run(cfg(o, tmp_path / f"alone{i}", drawn)) for i, o in enumerate(others)]
    bon.score_reused([cfg(o, tmp_path / f"together{i}", drawn) for i, o in enumerate(others)])
    with monkeypatch.context() as m:  # the runs find every batch scored in their journals
        scored = _counting(m, rm_module, "rewards")
        together = [bon.run(cfg(o, tmp_path / f"together{i}", drawn)) for i, o in enumerate(others)]
    assert len(scored) == 0
    assert [t["results"] for t in together] == [s["results"] for s in alone]  # the same passes: bit for bit
    with pytest.raises(ConfigError, match="differ in more than rm"):
        bon.score_reused([cfg(others[0], tmp_path / "x0", drawn), cfg(others[1], tmp_path / "x1", None)])
