"""Issue 19: the sandbox. Each test tries an escape and checks it is contained, reported as a tool error,
and that the caller (the trainer, here the test process) keeps running."""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from postlab.agents.sandbox import Sandbox, SandboxError, SandboxLimits, SandboxUnavailable, namespaces_problem

needs_ns = pytest.mark.skipif(namespaces_problem() is not None, reason=f"no namespaces here: {namespaces_problem()}")


@pytest.fixture(scope="module")
def sb():
    if namespaces_problem() is not None:
        pytest.skip(namespaces_problem())
    return Sandbox(limits=SandboxLimits(timeout_s=5))


def py(sb, code, tmp_path, **kw):
    return sb.run([sb.sandbox_python, "-c", textwrap.dedent(code)], workdir=tmp_path, **kw)


def test_exit_status_and_output_pass_through(sb, tmp_path):
    r = sb.run(["sh", "-c", "echo out; echo err >&2; exit 3"], workdir=tmp_path)
    assert (r.returncode, r.stdout, r.stderr, r.error) == (3, "out\n", "err\n", "exit status 3")
    ok = py(sb, "import sys; print(sys.stdin.read().upper())", tmp_path, stdin="abc")
    assert ok.ok and ok.stdout == "ABC\n" and ok.returncode == 0
    deaf = Sandbox(limits=SandboxLimits(timeout_s=1)).run(["sleep", "30"], workdir=tmp_path, stdin="x" * (1 << 20))
    assert deaf.timed_out  # a megabyte of stdin it never reads does not hang the caller


def test_writes_only_inside_the_episode_directory(sb, tmp_path):
    outside = tmp_path.parent / f"outside-{os.getpid()}.txt"
    r = py(sb, f"""
        import os
        open('/sandbox/mine.txt', 'w').write('kept')
        for path in ['{outside}', '/usr/evil', '/evil', '/etc/evil', '/tmp/evil', '/proc/evil']:
            try:
                open(path, 'w').write('x'); print('WROTE', path)
            except OSError as e:
                print('refused', path, type(e).__name__)
        """, tmp_path)
    assert r.ok and "WROTE" not in r.stdout and r.stdout.count("refused") == 6, r.stdout + r.stderr
    assert (tmp_path / "mine.txt").read_text() == "kept"
    assert not outside.exists() and not os.path.exists("/usr/evil") and not os.path.exists("/evil")


def test_nothing_readable_outside_but_the_system_and_interpreter(sb, tmp_path):
    secret = tmp_path.parent / f"secret-{os.getpid()}.txt"
    secret.write_text("s3cret")
    try:
        r = py(sb, f"""
            import os
            for path in ['{secret}', '/work', '/root/.cache', '/etc/shadow', '/etc/passwd', '/home', '{os.getcwd()}']:
                print(path, os.path.exists(path))
            print(sorted(os.listdir('/')))
            """, tmp_path)
    finally:
        secret.unlink()
    assert r.ok, r.stderr
    lines = r.stdout.splitlines()
    assert all(line.endswith("False") for line in lines[:-1]), r.stdout
    assert "s3cret" not in r.stdout and "work" not in lines[-1] and "tmp" not in lines[-1]


def test_no_network_not_even_the_hosts_loopback(sb, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        r = py(sb, f"""
            import socket
            for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:
                try:
                    socket.create_connection(addr, timeout=2); print('CONNECTED', addr)
                except OSError as e:
                    print('refused', addr, e.errno)
            """, tmp_path)
    finally:
        server.close()
    assert r.ok and "CONNECTED" not in r.stdout and r.stdout.count("refused") == 2, r.stdout + r.stderr


def test_fork_bomb_is_capped_at_the_process_limit(tmp_path):
    if namespaces_problem():
        pytest.skip(namespaces_problem())
    sb = Sandbox(limits=SandboxLimits(timeout_s=5, max_processes=16))
    r = py(sb, """
        import os, time
        alive = 0
        for _ in range(200):
            try:
                if os.fork() == 0:
                    time.sleep(30); os._exit(0)
                alive += 1
            except OSError:
                break
        print('children', alive, flush=True)
        """, tmp_path)
    assert r.ok, r.stderr
    children = int(r.stdout.split()[1])
    assert 5 < children < 16, r.stdout  # the limit counts the sandbox's init and the forking process
    # the bomb's sleeping children died with the namespace when the command exited
    assert r.duration_s < 5


def sandbox_processes() -> list[str]:
    """Live processes of the sandboxes' uids (200000 and up, see sandbox._sandbox_uid)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if uid >= 200_000:
            out.append(pid)
    return out


def test_classic_shell_fork_bomb_is_contained(sb, tmp_path):
    start = time.monotonic()
    r = sb.run(["sh", "-c", "b() { b | b & }; b; sleep 1"], workdir=tmp_path)
    assert time.monotonic() - start < 8
    assert r.returncode in (0, 2, 124), (r.returncode, r.error)  # the shell ends or is killed at the limit
    if os.geteuid() == 0:  # nothing of it outlives the sandbox
        assert sandbox_processes() == []
    assert py(sb, "print(1)", tmp_path).stdout == "1\n"


def test_infinite_loop_is_killed_at_the_time_limit(tmp_path):
    if namespaces_problem():
        pytest.skip(namespaces_problem())
    sb = Sandbox(limits=SandboxLimits(timeout_s=1))
    start = time.monotonic()
    r = py(sb, "import os\nif os.fork() == 0:\n    os.setsid()\nwhile True: pass", tmp_path)
    assert r.timed_out and r.returncode == 124 and "timed out after 1 s" in r.error
    assert time.monotonic() - start < 3
    assert "timed out" in r.error


def test_huge_output_is_capped_and_killed(sb, tmp_path):
    r = sb.run(["sh", "-c", "yes"], workdir=tmp_path)
    assert r.output_limited and not r.ok and "output exceeded 65536 bytes" in r.error
    assert len(r.stdout) + len(r.stderr) == 65536 and r.duration_s < 4


def test_memory_limit(sb, tmp_path):
    r = py(sb, "x = bytearray(2 << 30)", tmp_path)
    assert not r.ok and "out of memory" in r.error, r.error


def test_killing_the_parent_or_everything_leaves_the_caller_running(sb, tmp_path):
    marker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # a bystander of ours
    try:
        r = py(sb, """
            import os, signal
            for pid in [os.getppid(), 1, -1]:
                try:
                    os.kill(pid, signal.SIGKILL); print('sent', pid)
                except OSError as e:
                    print('refused', pid, e.errno)
            """, tmp_path)
        assert marker.poll() is None  # the bystander survived
        assert r.returncode in (0, 137) or r.error  # reported, whatever the command did to itself
        r2 = sb.run(["sh", "-c", "kill -9 $PPID; kill -9 -1; echo after"], workdir=tmp_path)
        assert marker.poll() is None and r2.returncode in (0, 137)
    finally:
        marker.kill()
        marker.wait()
    assert os.getppid() > 0  # and we are still here


def test_missing_program_is_a_tool_error(sb, tmp_path):
    r = sb.run(["no-such-program"], workdir=tmp_path)
    assert r.returncode == 127 and "cannot run 'no-such-program'" in r.error


def test_no_capabilities_inside(sb, tmp_path):
    r = sb.run(["sh", "-c", "grep -E 'CapEff|CapBnd|NoNewPrivs' /proc/self/status"], workdir=tmp_path)
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1"}


def test_unsafe_tier_has_limits_but_no_isolation(tmp_path):
    sb = Sandbox(tier="unsafe", limits=SandboxLimits(timeout_s=1))
    r = sb.run([sys.executable, "-c", "import os; print(os.getcwd())"], workdir=tmp_path)
    assert r.ok and r.stdout.strip() == str(tmp_path.resolve())
    assert sb.run([sys.executable, "-c", "while True: pass"], workdir=tmp_path).timed_out


def test_unavailable_tier_refuses_instead_of_falling_back(monkeypatch):
    import postlab.agents.sandbox as mod

    monkeypatch.setitem(mod._PROBE, "result", "unshare: Operation not permitted")
    with pytest.raises(SandboxUnavailable, match="refusing to run code tools without isolation"):
        Sandbox(tier="namespaces")
    with pytest.raises(SandboxError, match="unknown sandbox tier"):
        Sandbox(tier="docker")


def test_concurrent_runs_do_not_share_the_process_limit(tmp_path):
    if namespaces_problem():
        pytest.skip(namespaces_problem())
    sb = Sandbox(limits=SandboxLimits(timeout_s=5, max_processes=8))
    results = []

    def go(i):
        d = tmp_path / str(i)
        d.mkdir()
        results.append(py(sb, "import os, time\nfor _ in range(4):\n    if os.fork() == 0: time.sleep(1); os._exit(0)\n"
                              "print('ok')", d))
    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.stdout for r in results] == ["ok\n"] * 3, [r.stderr for r in results]


@needs_ns
def test_cli_passes_exit_status_and_output_through(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    r = subprocess.run([sys.executable, "-m", "postlab", "sandbox", "exec", "--timeout", "3", "--",
                        "sh", "-c", "echo hello; echo oops >&2; exit 7"], capture_output=True, text=True, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (7, "hello\n", "oops\n")
    r = subprocess.run([sys.executable, "-m", "postlab", "sandbox", "exec", "--timeout", "1", "--", "sh", "-c",
                        "while :; do :; done"], capture_output=True, text=True, env=env)
    assert r.returncode == 124 and "timed out after 1 s" in r.stderr


@needs_ns
def test_unprivileged_user_namespace_path(tmp_path):
    """As a user without privileges (here: nobody, run from root): the user-namespace path, with the same
    guarantees (read-only system, no capabilities, a process limit counted inside the namespace)."""
    import postlab

    src = os.path.dirname(os.path.dirname(postlab.__file__))
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root (to become nobody) and /usr/bin/python3")
    import shutil
    import tempfile
    from pathlib import Path

    readable = Path(tempfile.mkdtemp(prefix="postlab-nobody-"))  # pytest's tmp_path is private to root
    readable.chmod(0o755)
    script = readable / "probe.py"
    script.write_text(textwrap.dedent(f"""
        import sys, tempfile
        sys.path.insert(0, {src!r})
        from postlab.agents.sandbox import Sandbox, SandboxLimits
        sb = Sandbox(limits=SandboxLimits(timeout_s=5, max_processes=16))
        d = tempfile.mkdtemp()
        r = sb.run(["sh", "-c", "echo hi > /sandbox/f && cat /sandbox/f; grep -E 'CapEff|CapBnd' /proc/self/status;"
                    "touch /usr/x 2>/dev/null || echo refused"], workdir=d)
        print(r.stdout, end="")
        bomb = "import os, time\\nn = 0\\nfor _ in range(100):\\n    try:\\n        if os.fork() == 0:\\n" \\
               "            time.sleep(10); os._exit(0)\\n        n += 1\\n    except OSError:\\n        break\\nprint(n)"
        print("children", sb.run([sb.sandbox_python, "-c", bomb], workdir=d).stdout, end="")
        import shutil; shutil.rmtree(d)
        """))
    script.chmod(0o644)

    def become_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    try:
        r = subprocess.run(["/usr/bin/python3", str(script)], preexec_fn=become_nobody, capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, cwd="/tmp", timeout=60)
    finally:
        shutil.rmtree(readable, ignore_errors=True)
    if "Permission denied" in r.stderr:
        pytest.skip(f"the sources are not readable by nobody: {r.stderr[-200:]}")
    lines = r.stdout.splitlines()
    assert lines[:4] == ["hi", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "refused"], r.stdout + r.stderr
    assert 5 < int(lines[4].split()[1]) < 16
