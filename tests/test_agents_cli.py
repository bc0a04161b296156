"""Issue 19: ``postlab env list`` and ``postlab env eval`` (tiny model), and that the sub-apps keep --help fast."""

import json
import os
import subprocess
import sys

from postlab.agents.envs import ENVIRONMENTS

ENV = {**os.environ, "PYTHONPATH": os.getcwd()}


def postlab(*args):
    return subprocess.run([sys.executable, "-m", "postlab", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=ENV)


def test_env_list_one_name_first_per_line():
    r = postlab("env", "list")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == list(ENVIRONMENTS) == ["calculator", "fixcode", "lookup"]


def run_main(capsys, *args):
    """The CLI in-process (torch is already loaded here): (exit code, stdout, stderr)."""
    from postlab.cli import main

    old = sys.argv
    sys.argv = ["postlab", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def test_env_eval_writes_metrics_and_transcripts(tmp_path, capsys):
    out = tmp_path / "r.json"
    code, stdout, stderr = run_main(capsys, "env", "eval", "--env", "calculator", "--model", "tiny", "--episodes", "3",
                                    "--max-new-tokens", "8", "--out", out)
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and result["env"] == "calculator" and 0 <= result["success_rate"] <= 1
    for key in ("mean_turns", "tool_call_validity_rate", "recovery_rate", "success_rate_by_suite"):
        assert key in result
    rows = [json.loads(line) for line in (tmp_path / "r.transcripts.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["messages"][0]["role"] == "system" and "recovered" in rows[0]
    assert "calculator (with tools), 3 episodes: success" in stdout


def test_env_eval_refuses_unknown_env_and_no_tools_where_unsupported(tmp_path, capsys):
    code, _, err = run_main(capsys, "env", "eval", "--env", "nope", "--model", "tiny", "--out", tmp_path / "r.json")
    assert code == 2 and "unknown environment 'nope'" in err
    code, _, err = run_main(capsys, "env", "eval", "--env", "lookup", "--model", "tiny", "--no-tools",
                            "--out", tmp_path / "r.json")
    assert code == 2 and "cannot be played without its tools" in err
    code, _, err = run_main(capsys, "env", "eval", "--env", "lookup", "--model", "tiny", "--fault-rate", "0.5",
                            "--out", tmp_path / "r.json")
    assert code == 2 and "fault_rate: environment 'lookup'" in err
    code, _, err = run_main(capsys, "env", "eval", "--env", "calculator", "--model", "tiny", "--fault-rate", "2",
                            "--out", tmp_path / "r.json")
    assert code == 2 and "fault_rate" in err and not (tmp_path / "r.json").exists()


def test_env_demos_with_faults(tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    code, stdout, _ = run_main(capsys, "env", "demos", "--out", out, "--fault-rate", "0.25")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    retries = [r for r in rows if sum(m["role"] == "tool" for m in r["messages"]) == 2]
    assert code == 0 and len(rows) == 620 and 0.2 < len(retries) / len(rows) < 0.3
    code, _, err = run_main(capsys, "env", "demos", "--out", out, "--fault-rate", "-1")
    assert code == 2 and "--fault-rate" in err


def test_sandbox_and_env_help_do_not_load_torch():
    probe = ("import sys\nfrom postlab.cli import main\n"
             "for args in (['sandbox', '--help'], ['env', '--help'], ['env', 'list'], ['sandbox', 'exec', '--help']):\n"
             "    sys.argv = ['postlab', *args]\n    try:\n        main()\n    except SystemExit:\n        pass\n"
             "    print(args, 'TORCH_LOADED' if 'torch' in sys.modules else 'TORCH_NOT_LOADED')\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.stdout.count("TORCH_NOT_LOADED") == 4, (r.stdout[-2000:], r.stderr[-1000:])
