"""Issue 19: the fixcode environment (the sandboxed test run is the tool) and the lookup environment."""

import json

import pytest

from postlab.agents.envs import env_rows, make_env
from postlab.agents.envs.fixcode_tasks import TASKS
from postlab.agents.envs.lookup import DOCUMENTS, QUESTIONS, _norm, read, search
from postlab.agents.sandbox import namespaces_problem


def call(name, **arguments):
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module", params=["namespaces", "unsafe"])
def fixcode(request):
    if request.param == "namespaces" and namespaces_problem():
        pytest.skip(namespaces_problem())
    return make_env("fixcode", sandbox_tier=request.param, timeout_s=1.5)


def test_every_task_fails_as_given_and_passes_when_fixed(fixcode):
    from postlab.agents.envs.fixcode import run_test_suite

    assert {t["split"] for t in TASKS} == {"train", "test"} and len({t["id"] for t in TASKS}) == len(TASKS)
    for t in TASKS:
        broken, _ = run_test_suite(fixcode.sandbox, t["code"], t["tests"])
        fixed, _ = run_test_suite(fixcode.sandbox, t["fix"], t["tests"])
        assert any(e is not None for e in broken.values()), t["id"]
        assert all(e is None for e in fixed.values()), (t["id"], fixed)


def test_episode_fail_read_the_error_then_recover(fixcode):
    row = env_rows("fixcode", "test")[0]
    msgs = fixcode.reset(row)
    assert row["code"] in msgs[1]["content"] and row["tests"][0] in msgs[1]["content"]
    out, _, done, info = fixcode.step(call("run_tests", code=row["code"]))
    assert not done and info["tool_errors"] == 1
    assert out[0]["content"].startswith("error: ") and "tests failed" in out[0]["content"] and "FAILED assert" in out[0]["content"]
    out, _, _, _ = fixcode.step(call("run_tests", code=row["fix"]))
    assert out[0]["content"] == f"all {len(row['tests'])} tests passed"
    _, r, done, info = fixcode.step(f"Fixed:\n```python\n{row['fix']}```")
    assert done and r == 1.0 and info["state"].recovered


def test_reward_is_the_pass_fraction_and_broken_code_is_a_tool_error(fixcode):
    row = next(r for r in env_rows("fixcode", "train") if r["id"] == "fix-max")  # the bug fails 1 test of 3
    fixcode.reset(row)
    _, r, done, _ = fixcode.step(f"```python\n{row['code']}```")
    assert done and r == pytest.approx(2 / 3)
    fixcode.reset(row)
    out, _, _, _ = fixcode.step(call("run_tests", code="def largest(xs:\n"))
    assert "the code does not load: SyntaxError" in out[0]["content"]
    out, _, _, _ = fixcode.step(call("run_tests", code="while True: pass"))
    assert "timed out after 1.5 s" in out[0]["content"]
    _, r, done, _ = fixcode.step("I could not fix it.")  # no code: the last tested code is scored
    assert done and r == 0.0


def test_lookup_tools_and_episode():
    assert search("Who built the Velmora Lighthouse?").splitlines()[0] == "doc-01: The Velmora Lighthouse"
    assert "Tobias Wren" in read("doc-01")
    env = make_env("lookup")
    for q, a, _ in QUESTIONS:  # every question is answerable from the top search hits
        top = [line.split(":")[0] for line in search(q).splitlines()]
        assert any(_norm(a) in _norm(" ".join(DOCUMENTS[d])) for d in top), q
    row = env_rows("lookup", "test")[0]
    env.reset(row)
    out, _, _, _ = env.step(call("read", doc_id="doc-99"))
    assert out[0]["content"].startswith("error: no document")
    out, _, _, _ = env.step(call("search", query=row["question"]))
    doc = out[0]["content"].splitlines()[0].split(":")[0]
    out, _, _, _ = env.step(call("read", doc_id=doc))
    assert row["answer"] in out[0]["content"]
    _, r, done, info = env.step(f"It feeds on {row['answer']}.")
    assert done and r == 1.0 and info["state"].recovered and info["state"].turns == 4
