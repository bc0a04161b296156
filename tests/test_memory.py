"""Memory between conversations (postlab memory): the synthetic users and the file format, the versioned
adapter store, the guardrail's decision, and the server's per-user adapters (docs/science.md)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from postlab.errors import DataError
from postlab.science.memory_data import KINDS, builtin_histories, extract_facts, load_histories, write_histories
from postlab.science.memory_store import AdapterStore

# --- the data ---


def test_builtin_users_are_deterministic_distinct_and_extractable():
    a, b = builtin_histories(4, seed=3), builtin_histories(4, seed=3)
    assert [h.conversations for h in a] == [h.conversations for h in b]
    assert [h.conversations for h in a] != [h.conversations for h in builtin_histories(4, seed=4)]
    for h in a:
        assert {f.kind for f in h.facts} == {k.name for k in KINDS}
        # the templated extractor recovers from the conversations exactly the facts the generator stated
        assert sorted(map(vars, extract_facts(h.user, h.conversations)), key=str) == sorted(map(vars, h.facts), key=str)
        text = json.dumps(h.conversations)
        for f in h.facts:
            assert f.answer in text and f.answer in f.replies[0]
            assert not set(f.eval_questions) & set(f.train_questions)  # held-out phrasings
            assert not any(q in text for q in f.eval_questions)
    for kind in KINDS:  # no two users share a fact of a kind while the value pool lasts
        values = [f.answer for h in a for f in h.facts if f.kind == kind.name]
        assert len(set(values)) == len(values)


def test_file_round_trip_and_a_later_statement_wins(tmp_path):
    users = builtin_histories(2, seed=0)
    path = tmp_path / "c.jsonl"
    write_histories(users, path)
    loaded = load_histories(path)
    assert [(h.user, sorted(map(vars, h.facts), key=str)) for h in loaded] == \
        [(h.user, sorted(map(vars, h.facts), key=str)) for h in users]
    moved = [{"user": "ann", "messages": [{"role": "user", "content": "I live in Graz."}]},
             {"user": "ann", "messages": [{"role": "user", "content": "News: my home is in Porto."}],
              "facts": [{"question": "What is my locker number?", "answer": "417", "eval_questions": ["Which locker?"],
                         "reply": "Your locker is number 417."}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in moved))
    (ann,) = load_histories(path)
    assert [(f.kind, f.answer) for f in ann.facts] == [("city", "Porto"), ("custom", "417")]
    assert ann.facts[1].replies == ("Your locker is number 417.",) and ann.facts[1].eval_questions == ("Which locker?",)


OK_MESSAGES = [{"role": "user", "content": "I live in Graz."}]


@pytest.mark.parametrize("row, message", [
    ({"user": "../bob", "messages": OK_MESSAGES}, "'user' must be"),
    ({"messages": OK_MESSAGES}, "'user' must be"),
    ({"user": "ann"}, "'messages' must be"),
    ({"user": "ann", "messages": OK_MESSAGES, "fact": []}, "unknown field(s) fact"),
    ({"user": "ann", "messages": OK_MESSAGES, "facts": {}}, "'facts' must be a list"),
    ({"user": "ann", "messages": OK_MESSAGES, "facts": [{"question": "Q?"}]}, "facts[0]: 'answer' must be"),
    ({"user": "ann", "messages": OK_MESSAGES, "facts": [{"question": "Q?", "answer": "7", "reply": "Eight."}]},
     "facts[0]: 'reply' must contain the answer"),
    ({"user": "ann", "messages": OK_MESSAGES, "facts": [{"question": "Q?", "answer": "7", "eval_questions": ["Q?"]}]},
     "facts[0]: 'eval_questions' must differ"),
])
def test_file_errors_name_the_file_and_line(tmp_path, row, message):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"user": "ok", "messages": OK_MESSAGES}) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as e:
        load_histories(path)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)


# --- the store: versions written whole, current only on accepted ones ---


def adapter_writer(accepted: bool = True, *, fail: bool = False):
    def write(tmp: Path) -> dict:
        (tmp / "adapter_model.safetensors").write_bytes(b"weights")
        if fail:
            raise RuntimeError("training crashed")
        return {"accepted": accepted, "checked": True}
    return write


def test_versions_count_up_and_current_moves_only_to_accepted_ones(tmp_path):
    store = AdapterStore(tmp_path)
    assert store.current("ann") is None and store.versions("ann") == []
    assert store.publish("ann", adapter_writer()).name == "v1"
    assert store.current("ann").name == "v1"
    assert store.publish("ann", adapter_writer(accepted=False)).name == "v2"
    assert store.current("ann").name == "v1"  # the rejected v2 is kept, not served
    assert [v.name for v in store.versions("ann")] == ["v1", "v2"] and not store.versions("ann")[1].accepted
    assert store.publish("ann", adapter_writer()).name == "v3" and store.current("ann").name == "v3"
    (tmp_path / "ann" / "current").write_text("v2\n")  # a pointer to a rejected version is not followed
    assert store.current("ann") is None
    with pytest.raises(DataError):
        store.versions("../ann")


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path):
    store = AdapterStore(tmp_path)
    store.publish("ann", adapter_writer())
    before = sorted(p.name for p in (tmp_path / "ann").iterdir())
    with pytest.raises(RuntimeError, match="training crashed"):
        store.publish("ann", adapter_writer(fail=True))
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == before
    assert store.current("ann").name == "v1"


def test_concurrent_writers_take_distinct_versions(tmp_path):
    store = AdapterStore(tmp_path)
    names = []
    threads = [threading.Thread(target=lambda: names.append(store.publish("ann", adapter_writer()).name))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names, key=lambda n: int(n[1:])) == [f"v{i}" for i in range(1, 7)]
    assert store.current("ann") is not None and all(v.accepted for v in store.versions("ann"))


KILLED_WRITER = """
import sys, time
from postlab.science.memory_store import AdapterStore
def write(tmp):
    (tmp / "adapter_model.safetensors").write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(60)
AdapterStore(sys.argv[1]).publish("ann", write)
"""


def test_a_killed_writer_leaves_no_version_and_its_leftovers_are_removed(tmp_path):
    store = AdapterStore(tmp_path)
    store.publish("ann", adapter_writer())
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout.readline().strip() == b"writing"
    live = list((tmp_path / "ann").glob(".tmp-*"))
    store.publish("ann", adapter_writer())  # a live writer's directory is left alone
    assert list((tmp_path / "ann").glob(".tmp-*")) == live
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [v.name for v in store.versions("ann")] == ["v1", "v2"] and store.current("ann").name == "v2"
    store.publish("ann", adapter_writer())
    assert not list((tmp_path / "ann").glob(".tmp-*"))  # the dead writer's directory is gone
    assert [v.name for v in store.versions("ann")] == ["v1", "v2", "v3"]


# --- the guardrail ---


def test_guardrail_decision_hand_computed():
    from postlab.science.memory import guardrail_decision

    base, adapter = [1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]  # differences 0, 0, -1, 0
    d = guardrail_decision(base, adapter, threshold=0.3)
    assert d["accepted"] and d["base"] == 0.75 and d["adapter"] == 0.5
    assert d["difference"] == -0.25 and d["difference_se"] == pytest.approx(0.25)  # sd 0.5 / sqrt(4)
    assert not guardrail_decision(base, adapter, threshold=0.2)["accepted"]
    assert guardrail_decision(base, base, threshold=0.0)["accepted"]  # no drop passes a zero threshold
    with pytest.raises(ValueError):
        guardrail_decision(base, adapter[:3], threshold=0.3)


@pytest.fixture(scope="module")
def tiny():
    from postlab.models.load import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("tiny")
    return model.eval(), tok


def memory_config(tmp_path, **over):
    from postlab.science.memory import MemoryConfig

    return MemoryConfig.model_validate({
        "model": "tiny", "store": str(tmp_path / "store"), "progress": False,
        "data": {"builtin_users": 2}, "train": {"steps": 3, "batch_size": 4, "replay": 0},
        "guardrail": {"limit": 3, "max_new_tokens": 6}, **over})


def test_distil_trains_guards_and_records_a_rejected_adapter(tmp_path, tiny):
    """The whole pipeline on the tiny model, against a base score the adapter cannot reach: the version is
    kept with both scores and the decision, and current stays where it was."""
    from postlab.science.memory import distil_user, gold_items, histories

    model, tok = tiny
    cfg = memory_config(tmp_path)
    user = histories(cfg)[0]
    items = gold_items(cfg.guardrail, "guardrail")
    store = AdapterStore(cfg.store)
    kw = dict(base=model, tok=tok, replay=[], items=items, store=store, cfg=cfg)
    first = distil_user(user, base_gold=None, **kw)  # guardrail off: accepted, unchecked
    assert first.guardrail()["accepted"] and not first.guardrail()["checked"]
    weights_before = [p.detach().clone() for p in model.parameters()]
    second = distil_user(user, base_gold=[1.0] * len(items), **kw)
    g = second.guardrail()
    assert second.name == "v2" and g["accepted"] is False and g["checked"]
    assert g["base"] == 1.0 and g["adapter"] < 1.0 and g["difference"] == g["adapter"] - 1.0
    assert g["items"] == [it.id for it in items]
    assert store.current(user.user).name == "v1"
    record = json.loads((second.path / "memory.json").read_text())
    assert record["fact_rows"] == 6 * 2 * 2 and record["training"]["steps"] == 3
    assert all((a == b).all() for a, b in zip(weights_before, model.parameters()))  # the base is untouched
    assert gold_items(cfg.guardrail, "eval", 5)[0].id not in g["items"]  # the evaluation's items are others


# --- serving: each user gets their own adapter, and a new version without a restart ---


def random_adapter(base, path: Path, seed: int) -> None:
    """An adapter far from zero (A and B both random), so that it changes greedy answers."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=64, init_lora_weights=False,
                                                                target_modules=["q_proj", "v_proj", "down_proj"]))
    peft_model.save_pretrained(str(path))


def publish_random(store: AdapterStore, user: str, base, seed: int, accepted: bool = True):
    def write(tmp: Path) -> dict:
        random_adapter(base, tmp, seed)
        return {"accepted": accepted, "checked": True}
    return store.publish(user, write)


def test_serve_isolates_users_and_picks_up_new_versions(tmp_path, tiny):
    from fastapi.testclient import TestClient

    from postlab.rollout import SamplingParams, TorchEngine
    from postlab.science.memory import with_adapter
    from postlab.serve import ServeSettings, create_app

    model, tok = tiny
    store = AdapterStore(tmp_path / "store")
    versions = {"alice": publish_random(store, "alice", model, 1), "bob": publish_random(store, "bob", model, 2)}
    question = [{"role": "user", "content": "What is my dog's name?"}]
    greedy = SamplingParams(temperature=0, max_new_tokens=12)

    def expected(m) -> str:
        return TorchEngine(model=m, tokenizer=tok).generate([question], greedy).texts[0]

    want = {None: expected(model), **{u: expected(with_adapter(model, v.path)) for u, v in versions.items()}}
    assert len(set(want.values())) == 3  # the adapters do change the answer, so the test can fail

    engine = TorchEngine(model=model, tokenizer=tok)
    settings = ServeSettings(model_name="tiny", max_model_len=2048, max_batch=8, default_max_tokens=12,
                             monitor_log=None, memory=str(tmp_path / "store"), memory_max_loaded=2)
    app = create_app(engine, settings)

    def ask(client, user):
        body = {"model": "tiny", "messages": question, "temperature": 0, "max_tokens": 12}
        if user is not None:
            body["user"] = user
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"], r.headers.get("x-postlab-memory")

    with TestClient(app, base_url="http://localhost") as client:
        users = ["alice", "bob", None, "alice", "carol", "bob", None, "../alice"]
        answers: dict[int, tuple] = {}
        threads = [threading.Thread(target=lambda i=i, u=u: answers.__setitem__(i, ask(client, u)))
                   for i, u in enumerate(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i, user in enumerate(users):
            served = user if user in versions else None  # carol has no adapter; "../alice" names none
            assert answers[i] == (want[served], f"{served}/v1" if served else None), user
        assert app.state.server.memory.loaded() == {"alice": 1, "bob": 1}

        publish_random(store, "alice", model, 3)  # a new version: the next request uses it, no restart
        newer = expected(with_adapter(model, store.current("alice").path))
        assert newer != want["alice"]
        assert ask(client, "alice") == (newer, "alice/v2")
        publish_random(store, "alice", model, 4, accepted=False)  # rejected by the guardrail: not loaded
        assert ask(client, "alice") == (newer, "alice/v2")
        assert ask(client, "bob") == (want["bob"], "bob/v1") and ask(client, None) == (want[None], None)
        publish_random(store, "carol", model, 5)  # a third user: the least recently used (alice) is unloaded
        assert ask(client, "carol")[1] == "carol/v1"
        assert app.state.server.memory.loaded() == {"bob": 1, "carol": 1}
        assert ask(client, "alice") == (newer, "alice/v2")  # and reloaded when asked for again


def test_train_then_eval_end_to_end_on_the_tiny_model(tmp_path):
    """postlab memory train and eval in-process: one version per user, then recall three ways and gold with and
    without, each with a standard error, in the JSON and the table."""
    from postlab.science.memory import format_status, format_table, run_eval, run_train

    cfg = memory_config(tmp_path, guardrail={"limit": 2, "max_new_tokens": 4, "threshold": 1.0},
                        eval={"max_new_tokens": 4, "gold_limit": 2}, out=str(tmp_path / "r.json"))
    summary = run_train(cfg)
    assert [(s["user"], s["version"], s["accepted"], s["current"]) for s in summary] == \
        [("user1", "v1", True, "v1"), ("user2", "v1", True, "v1")]
    assert "user1/v1  accepted" in format_status(AdapterStore(cfg.store))
    results = run_eval(cfg)
    assert results["n_questions"] == 2 * 6 * 2  # users × facts × held-out phrasings
    for condition in ("base", "adapter", "context"):
        assert set(results["recall"][condition]) == {"mean", "se", "n"}
    assert set(results["recall_differences"]) == {"adapter - base", "context - base", "adapter - context"}
    assert results["gold"]["n_items"] == 2 and set(results["gold"]["by_user"]) == {"user1", "user2"}
    assert json.loads(Path(cfg.out).read_text())["recall"] == results["recall"]
    rows = [json.loads(line) for line in (tmp_path / "r.answers.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {"base", "adapter", "context"} <= set(rows[0])
    assert "with adapter" in format_table(results)
