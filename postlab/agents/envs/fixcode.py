"""``fixcode``: fix a small function so that its unit tests pass. The tool runs the tests in the sandbox.

The model sees the buggy code and the tests; ``run_tests(code)`` runs them on its code in a fresh
sandboxed process (``postlab.agents.sandbox``, tier ``namespaces`` unless told otherwise; 5 s) and
returns "all N tests passed", or fails as a tool error listing each failing test and its error (what
the model must use to recover). The episode ends when the model replies without a tool call; the reward
is the pass fraction of the code in that reply's last ```python block, or, if it has none, of the last
code it tested. Success = every test passes.

The runner is not hardened against code that fakes its report (it prints a per-run random marker that
the code under test could find); the sandbox contains the code, it does not make the reward unhackable.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from postlab.agents.env import EpisodeState, ToolEnv, ToolError
from postlab.agents.envs.fixcode_tasks import TASKS
from postlab.agents.sandbox import Sandbox, SandboxLimits

CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)

RUNNER = '''\
import json, sys
mark, tests = sys.argv[1], json.loads(open("tests.json").read())
ns = {"__name__": "solution"}
try:
    exec(compile(open("solution.py").read(), "solution.py", "exec"), ns)
except BaseException as e:
    print(mark + json.dumps({"error": f"{type(e).__name__}: {e}"}))
    sys.exit(0)
results = {}
for test in tests:
    try:
        exec(test, dict(ns))
        results[test] = None
    except AssertionError as e:
        results[test] = f"AssertionError{': ' + str(e) if str(e) else ''}"
    except BaseException as e:
        results[test] = f"{type(e).__name__}: {e}"
print(mark + json.dumps({"results": results}))
'''

SYSTEM_PROMPT = ("You fix Python code. Call run_tests with the complete corrected code to run the unit tests; read the "
                 "errors, fix the code and try again. When all tests pass, reply with the final code in a ```python block.")


def rows(split: str) -> list[dict]:
    return [{"id": t["id"], "code": t["code"], "tests": t["tests"], "fix": t["fix"], "split": t["split"]}
            for t in TASKS if t["split"] == split]


def run_test_suite(sandbox: Sandbox, code: str, tests: list[str]) -> tuple[dict[str, str | None] | None, str | None]:
    """({test: None if it passed else its error}, None), or (None, why nothing ran)."""
    workdir = Path(tempfile.mkdtemp(prefix="postlab-fixcode-"))
    try:
        (workdir / "solution.py").write_text(code)
        (workdir / "tests.json").write_text(json.dumps(tests))
        (workdir / "runner.py").write_text(RUNNER)
        mark = f"@@result-{secrets.token_hex(8)}@@"
        r = sandbox.run([sandbox.sandbox_python, "-I", "-S", "runner.py", mark], workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = [line for line in r.stdout.splitlines() if line.startswith(mark)]
    if not lines:
        return None, r.error or "the tests produced no report"
    report = json.loads(lines[-1][len(mark):])
    if "error" in report:
        return None, f"the code does not load: {report['error']}"
    return report["results"], None


class FixCodeEnv(ToolEnv):
    name = "fixcode"
    description = "fix a function so its unit tests pass; the sandboxed test run is the tool; reward = pass fraction"
    max_turns = 4
    system_prompt = SYSTEM_PROMPT

    def __init__(self, *, max_turns: int | None = None, sandbox_tier: str = "namespaces", timeout_s: float = 5.0):
        self.sandbox = Sandbox(tier=sandbox_tier, limits=SandboxLimits(timeout_s=timeout_s))
        self.last_code: str | None = None
        super().__init__(max_turns=max_turns)

    def tool_functions(self):
        def run_tests(code: str) -> str:
            """Run the unit tests on your complete corrected code.

            Args:
                code: the full Python source of the fixed function
            """
            self.last_code = code
            results, problem = run_test_suite(self.sandbox, code, self.row["tests"])
            if results is None:
                raise ToolError(problem)
            failed = {t: err for t, err in results.items() if err is not None}
            if failed:
                lines = "\n".join(f"FAILED {t}  ->  {err}" for t, err in failed.items())
                raise ToolError(f"{len(failed)} of {len(results)} tests failed:\n{lines}")
            return f"all {len(results)} tests passed"
        return [run_tests]

    def start(self, row: dict) -> None:
        self.last_code = None

    def prompt(self, row: dict) -> list[dict]:
        tests = "\n".join(row["tests"])
        user = (f"Fix this function so that its unit tests pass.\n\n```python\n{row['code']}```\n\n"
                f"Tests:\n```python\n{tests}\n```")
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        blocks = CODE_BLOCK.findall(answer)
        code = blocks[-1] if blocks else self.last_code
        if not code:
            return 0.0
        results, _ = run_test_suite(self.sandbox, code, row["tests"])
        return 0.0 if results is None else sum(err is None for err in results.values()) / len(results)
