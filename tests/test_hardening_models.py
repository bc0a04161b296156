"""Two postlab processes sharing one POSTLAB_HOME (issue 16, item 13): building one model must not delete
another process's build in progress, and two processes asking for the same model build it once."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from postlab.models.home import entry_lock, remove_orphans
from postlab.models.load import ensure_builtin

# A stand-in for a slow fetch (SmolLM2's download and conversion): registers a built-in model "slow"
# whose writer records that it ran, waits, then writes the model directory.
SLOW_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from postlab.models.load import BUILTIN_MODELS, BuiltinModel, ensure_builtin

    def write(out: Path) -> None:
        with open(sys.argv[2], "a") as log:
            log.write("built\\n")
        (out / "started").write_text("yes")
        time.sleep(float(sys.argv[1]))
        (out / "config.json").write_text("{}")

    BUILTIN_MODELS["slow"] = BuiltinModel("slow", "a slow test model", write)
    print(ensure_builtin("slow"))
""")


def start_slow_build(home: Path, seconds: float, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(seconds), str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "POSTLAB_HOME": str(home)})


def wait_until(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_building_one_model_leaves_another_processs_build_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    models = tmp_path / "models"
    slow = start_slow_build(tmp_path, 4.0, tmp_path / "builds.log")
    wait_until(lambda: models.is_dir() and any(models.glob(".tmp-slow-*/started")))
    ensure_builtin("tiny")  # meanwhile, in this process
    out, _ = slow.communicate(timeout=60)
    assert slow.returncode == 0, out
    assert (models / "slow" / "config.json").is_file() and (models / "tiny" / "config.json").is_file()
    assert not [p.name for p in models.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_two_processes_asking_for_one_model_build_it_once(tmp_path):
    log = tmp_path / "builds.log"
    procs = [start_slow_build(tmp_path, 1.5, log) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert log.read_text() == "built\n"  # the second waited for the first, then used its model
    assert {Path(o.strip().splitlines()[-1]) for o in outputs} == {tmp_path / "models" / "slow"}


def test_only_leftovers_whose_owner_is_gone_are_removed(tmp_path):
    for name in (".tmp-busy-abc123", ".tmp-gone-x_y9", ".old-gone-4242", ".tmp-mine-zz", "kept"):
        (tmp_path / name).mkdir()
    (tmp_path / ".tmp-config.json-q1").write_text("half a file")
    with entry_lock(tmp_path, "busy"):  # another build of "busy" is under way
        removed = remove_orphans(tmp_path, held="mine")
    assert sorted(removed) == [".old-gone-4242", ".tmp-config.json-q1", ".tmp-gone-x_y9", ".tmp-mine-zz"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock-")) == [".tmp-busy-abc123", "kept"]
    assert remove_orphans(tmp_path) == [".tmp-busy-abc123"]  # once its owner let go


def test_a_build_killed_midway_is_cleaned_up_by_the_next_build_of_any_model(tmp_path, monkeypatch):
    """kill -9 leaves the build's .tmp-* directory behind; once its owner is dead (its lock released by the
    kernel), the next build in that home removes it, whichever model it builds."""
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    models = tmp_path / "models"
    doomed = start_slow_build(tmp_path, 600.0, tmp_path / "builds.log")
    wait_until(lambda: models.is_dir() and any(models.glob(".tmp-slow-*/started")))
    stale = next(models.glob(".tmp-slow-*"))
    doomed.kill()
    doomed.wait(timeout=60)
    assert stale.is_dir()  # nothing cleaned up after a SIGKILL
    ensure_builtin("tiny")
    assert not stale.exists() and (models / "tiny" / "config.json").is_file()
    assert not (models / "slow").exists()
