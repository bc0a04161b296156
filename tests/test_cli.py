"""The command line, run as a user runs it (a subprocess): help, errors without tracebacks, main paths."""

import json
import os
import subprocess
import sys

import pytest

from postlab.data.chat import completion_text
from postlab.config import describe_fields, load_config
from postlab.train.sample import SampleConfig, fingerprint_path, load_prompts, sample_fingerprint
from postlab.train.sft import SFTConfig

from conftest import conv, write_jsonl


def postlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ}, timeout=300)


def test_help_lists_commands_and_fields():
    top = postlab("--help")
    assert top.returncode == 0
    for cmd in ["run", "sft", "pretrain", "models"]:
        assert cmd in top.stdout
    sub = postlab("sft", "--help")
    assert sub.returncode == 0
    for line in describe_fields(SFTConfig):
        name = line.strip().split(" ")[0]
        assert name in sub.stdout, name


def test_bad_config_is_a_clean_error(chat_file):
    r = postlab("sft", f"data.train_file={chat_file}", "optim.lr=fast")
    assert r.returncode == 2
    assert "optim.lr" in r.stderr and "Traceback" not in r.stderr
    r = postlab("sft", f"data.train_file={chat_file}", "optim.bogus=1")
    assert r.returncode == 2 and "optim.bogus: unknown key" in r.stderr


def test_bad_data_is_a_clean_error(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [conv("a", "b"), '{"messages": [{"role": "user", "content": "x"}]}'])
    r = postlab("sft", "model=tiny", f"data.train_file={bad}", f"out_dir={tmp_path / 'o'}")
    assert r.returncode == 2
    assert f"{bad}:2: conversation has no assistant turn" in r.stderr and "Traceback" not in r.stderr


def test_bad_model_is_a_clean_error(chat_file, tmp_path):
    r = postlab("sft", f"model={tmp_path / 'no-such-model'}", f"data.train_file={chat_file}", f"out_dir={tmp_path / 'o'}")
    assert r.returncode == 2 and "no such directory" in r.stderr and "Traceback" not in r.stderr


def test_models_fetch_and_list():
    r = postlab("models", "fetch", "tiny")
    assert r.returncode == 0
    path = r.stdout.strip().splitlines()[-1]
    assert os.path.isfile(os.path.join(path, "config.json"))
    listing = postlab("models", "list")
    assert "smollm2-135m-instruct" in listing.stdout and "tiny" in listing.stdout and path in listing.stdout


def test_sft_cli_with_yaml_config(chat_file, tmp_path):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: tiny\ndata:\n  train_file: {chat_file}\noptim:\n  max_steps: 3\n  lr: 0.001\n")
    r = postlab("sft", "--config", cfg, f"out_dir={tmp_path / 'run'}", "checkpoint.progress=false")
    assert r.returncode == 0, r.stderr
    assert "final model:" in r.stdout
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "max_steps: 3" in (tmp_path / "run" / "config.yaml").read_text()


def test_pretrain_cli(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world, " * 100)
    r = postlab("pretrain", f"data.files=[{corpus}]", "data.block_size=32", "optim.max_steps=2",
                f"out_dir={tmp_path / 'pt'}", "checkpoint.progress=false")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pt" / "model" / "config.json").is_file()


def test_sample_writes_candidates_and_resumes(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"p{i}", "messages": [{"role": "user", "content": f"say {i}"}]}
                                                 for i in range(3)])
    args = ["sample", "model=tiny", f"prompts={prompts}", "k=4", "batch_size=4", "sampling.max_new_tokens=8",
            "dtype=fp32", "progress=false"]
    r = postlab(*args, f"out={tmp_path / 'c.jsonl'}")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["prompt_id"] for r in rows} == {"p0", "p1", "p2"}
    assert set(rows[0]) == {"prompt_id", "sample_index", "prompt", "completion", "messages", "logprob_sum", "num_tokens",
                            "finish_reason"}
    assert all(0 < r["num_tokens"] <= 8 and r["logprob_sum"] < 0 for r in rows)
    assert len({completion_text(r, "c") for r in rows if r["prompt_id"] == "p0"}) > 1  # K distinct samples
    # An interrupted run (one batch written, plus a torn line) resumes to the same file.
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    (tmp_path / "d.jsonl.partial").write_text("\n".join(lines[:4]) + "\n" + lines[4][:10] + "\n")
    cfg = load_config(SampleConfig, None, [*args[1:], f"out={tmp_path / 'd.jsonl'}"])  # what wrote the partial
    fingerprint_path(tmp_path / "d.jsonl.partial").write_text(json.dumps(sample_fingerprint(cfg, load_prompts(str(prompts)))))
    r2 = postlab(*args, f"out={tmp_path / 'd.jsonl'}")
    assert r2.returncode == 0, r2.stderr
    assert "resuming after 1" in r2.stderr
    assert (tmp_path / "d.jsonl").read_text() == (tmp_path / "c.jsonl").read_text()


IFEVAL_INPUT = [{"key": 7, "prompt": "List two fruits without commas.", "instruction_id_list": ["punctuation:no_comma"],
                 "kwargs": [{}]},
                {"key": 8, "prompt": "Say hi in quotes.", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]}]


def test_eval_grades_ifeval_responses(tmp_path):
    suite = write_jsonl(tmp_path / "input.jsonl", IFEVAL_INPUT)
    resp = write_jsonl(tmp_path / "resp.jsonl", [{"prompt": "List two fruits without commas.", "response": "Apple and pear"},
                                                 {"prompt": "Say hi in quotes.", "response": "hi"}])
    out = tmp_path / "r.json"
    r = postlab("eval", "--suite", suite, "--split", "all", "--responses", resp, "--out", out)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["prompt_level_strict_acc"] == 0.5 and res["n"] == 2
    assert "gold 0.500" in r.stdout
    rows = [json.loads(line) for line in (tmp_path / "r.samples.jsonl").read_text().splitlines()]
    assert [row["follow_instruction_list"] for row in rows] == [[True], [False]]


def test_eval_bad_suite_is_a_clean_error(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**IFEVAL_INPUT[0], "instruction_id_list": ["punctuation:no_commas"]}])
    r = postlab("eval", "--suite", bad, "--model", "tiny", "--out", tmp_path / "r.json")
    assert r.returncode == 2 and "bad.jsonl:1" in r.stderr and "punctuation:no_comma" in r.stderr
    assert "Traceback" not in r.stderr


def test_compare_prints_win_rate_with_se_and_lc(tmp_path):
    suite = write_jsonl(tmp_path / "input.jsonl", IFEVAL_INPUT)
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "7", "response": "Apple and pear"}, {"id": "8", "response": '"hi"'}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "7", "response": "Apple, pear"}, {"id": "8", "response": '"hello"'}])
    r = postlab("compare", "--a", a, "--b", b, "--suite", suite, "--split", "all", "--rater", "gold",
                "--out", tmp_path / "c.json")
    assert r.returncode == 0, r.stderr
    assert "win rate of A over B (gold rater, n=2): 0.750 ± 0.250" in r.stdout
    assert "length-controlled win rate" in r.stdout
    assert json.loads((tmp_path / "c.json").read_text())["win_rate"] == 0.75


def test_suites_list_and_export(tmp_path):
    r = postlab("suites", "list")
    assert r.returncode == 0 and "spec:" in r.stdout and "honesty" in r.stdout
    out = tmp_path / "spec_test.jsonl"
    r = postlab("suites", "export", "spec", "--split", "test", "--out", out)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) >= 300 and {row["split"] for row in rows} == {"test"}
    assert set(rows[0]) == {"id", "messages", "category", "split", "checks"}
    # an exported suite is accepted wherever a suite name is
    resp = write_jsonl(tmp_path / "r.jsonl", [{"id": row["id"], "response": "I can't help with that."} for row in rows])
    r = postlab("eval", "--suite", out, "--responses", resp, "--out", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["n"] == len(rows)
    r = postlab("suites", "export", "nope")
    assert r.returncode == 2 and "unknown suite 'nope'" in r.stderr


def test_reasoning_suites_list_their_levels_and_export_worked_demos(tmp_path):
    from postlab.raters.gold import GoldRater
    from postlab.tasks.suite import load_suite

    r = postlab("suites", "list")
    assert r.returncode == 0 and "arith: 470 items" in r.stdout and "6: train 0 test 45" in r.stdout
    out = tmp_path / "demos.jsonl"
    r = postlab("suites", "export", "arith", "--demos", "--out", out)
    assert r.returncode == 0 and "wrote 320 worked demonstrations" in r.stdout, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    items = {it.messages[-1]["content"]: it for it in load_suite("arith", split="train")}
    for row in rows[:20]:  # each demonstration answers its train item, and its final answer passes the item's checks
        it = items[row["messages"][0]["content"]]
        assert GoldRater().score(it, row["messages"][-1]["content"]) == 1.0
    r = postlab("suites", "export", "spec", "--demos")
    assert r.returncode == 2 and "has no worked solutions" in r.stderr


def test_serve_batching_mode_is_checked():
    r = postlab("serve", "--model", "tiny", "--batching", "sometimes")
    assert r.returncode == 2 and "--batching 'sometimes': expected continuous or dynamic" in r.stderr


@pytest.mark.parametrize("args, says", [(["no-such-command"], "No such command"),
                                         (["sft", "--learning_rate", "1e-4"], "No such option")])
def test_usage_errors_are_one_message_and_exit_2(args, says):
    # typer bundles its own click (typer._click), whose exceptions are not click's
    r = postlab(*args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr[-800:]


@pytest.mark.parametrize("args, line", [
    (["stf"], "error: No such command 'stf'. Did you mean 'sft'?"),
    (["xyzzy"], "error: No such command 'xyzzy'; 'postlab --help' says what it takes"),
    (["sft", "--learning_rate", "1e-4"], "error: No such option: --learning_rate; config fields are KEY=VALUE arguments, "
                                         "not options (write learning_rate=VALUE); 'postlab sft --help' lists them"),
    (["eval", "--modle", "tiny"], "error: No such option: --modle (Possible options: --model)"),
    (["report"], "error: Missing argument 'run_dir'; 'postlab report --help' says what it takes")])
def test_a_usage_error_is_one_line_that_says_what_to_do(args, line):
    r = postlab(*args)
    assert r.returncode == 2 and r.stderr.splitlines() == [line], r.stderr


def test_version():
    from postlab import __version__

    r = postlab("--version")
    assert r.returncode == 0 and r.stdout == f"postlab {__version__}\n"
