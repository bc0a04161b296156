"""Run untrusted commands (code a model wrote, the tests that judge it) with limits and isolation.

Two tiers, chosen explicitly (never one in place of the other):

- ``namespaces``: Linux namespaces, no helper binaries. The command runs as PID 1 of its own PID
  namespace, in an empty network namespace (no interface but a down loopback), in a mount namespace
  whose root is a read-only tmpfs holding only read-only binds of the system directories and the
  Python interpreter (``ro_paths``) and the episode directory, read-write, at ``/sandbox`` (its working
  directory, ``HOME`` and ``TMPDIR``). As root it runs under an unprivileged uid of its own (so the
  process limit counts only its processes); otherwise in a user namespace with no capabilities.
  Limits: wall time (the whole namespace is killed), address space, processes, CPU time, file size,
  open files, and the output kept. When the kernel refuses the namespaces, ``SandboxUnavailable``.
- ``unsafe``: a plain subprocess in the episode directory with the same time, memory, CPU and output
  limits but **no isolation at all** (it can read and write anything the caller can, use the
  network, and signal the caller). For tests and trusted code only.

``run`` never raises for anything the command does: a timeout, a limit, a crash or a missing program is
a ``SandboxResult`` whose ``error`` says what happened (what a tool returns to the model).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from postlab.errors import PostlabError

TIERS = ("namespaces", "unsafe")
INIT_SCRIPT = Path(__file__).with_name("_sandbox_init.py")
DEFAULT_RO_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives", "/etc/ld.so.cache",
                    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf")
TIMEOUT_EXIT = 124  # as timeout(1)


class SandboxError(PostlabError):
    """The sandbox could not be set up (not something the command did)."""


class SandboxUnavailable(SandboxError):
    """The requested isolation tier is not available on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock, the whole process tree
    memory_bytes: int = 1 << 30  # address space per process (RLIMIT_AS)
    max_processes: int = 64  # processes of the sandbox alive at once, its own first process included
    max_output_bytes: int = 64 * 1024  # stdout + stderr kept; more and the command is killed
    max_file_bytes: int = 64 << 20  # largest file it may write (RLIMIT_FSIZE)


@dataclass
class SandboxResult:
    returncode: int  # the command's exit status; 128 + N when killed by signal N; 124 on timeout
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    output_limited: bool = False  # killed for writing more than max_output_bytes
    error: str | None = None  # None when the command exited 0; else a one-line account for the model

    @property
    def ok(self) -> bool:
        return self.error is None


def _python_paths() -> list[str]:
    """The interpreter's installation (binary, stdlib, shared libraries), not the virtualenv's packages."""
    return sorted({sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))})


@dataclass
class Sandbox:
    """Runs commands under ``limits`` in ``tier``; each ``run`` gets a fresh episode directory unless one
    is given. ``sandbox_python`` is the interpreter to name in commands (visible in both tiers)."""

    tier: str = "namespaces"
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    ro_paths: tuple[str, ...] = ()  # extra host paths made readable (read-only) inside

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise SandboxError(f"unknown sandbox tier {self.tier!r}; choose one of {', '.join(TIERS)}")
        if self.tier == "namespaces":
            require_namespaces()

    @property
    def sandbox_python(self) -> str:
        return os.path.realpath(sys.executable) if self.tier == "namespaces" else sys.executable

    def run(self, argv: list[str], *, workdir: str | Path, stdin: str | None = None,
            env: dict[str, str] | None = None) -> SandboxResult:
        """Run ``argv`` with ``workdir`` as its (only writable) directory; returns what happened."""
        if not argv:
            raise SandboxError("no command given")
        workdir = Path(workdir).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"episode directory {workdir} does not exist")
        if self.tier == "unsafe":
            return _run_unsafe(argv, workdir, self.limits, stdin, env)
        return _run_namespaces(argv, workdir, self.limits, stdin, env, self.ro_paths)


def _base_env(home: str, extra: dict[str, str] | None) -> dict[str, str]:
    py_bin = os.path.dirname(os.path.realpath(sys.executable))
    env = {"PATH": f"{py_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return {**env, **(extra or {})}


def _sandbox_uid() -> int:
    """An unprivileged uid no other live sandbox of this machine uses (derived from our pid, which is
    unique among live processes, and a per-process counter)."""
    _sandbox_uid.count = getattr(_sandbox_uid, "count", 0) + 1
    return 200_000 + (os.getpid() % 100_000) * 8 + _sandbox_uid.count % 8


def _run_namespaces(argv, workdir: Path, limits: SandboxLimits, stdin, env, extra_ro) -> SandboxResult:
    uid = _sandbox_uid() if os.geteuid() == 0 else os.geteuid()
    staging = Path(tempfile.mkdtemp(prefix="postlab-sandbox-root-"))
    if os.geteuid() == 0:
        _chown_tree(workdir, uid)
    cfg = {"argv": list(argv), "env": _base_env("/sandbox", env), "root": str(staging), "workdir": str(workdir),
           "uid": uid, "ro_paths": [*DEFAULT_RO_PATHS, *_python_paths(), *extra_ro],
           "memory_bytes": limits.memory_bytes, "max_processes": limits.max_processes,
           "cpu_seconds": int(limits.timeout_s) + 1, "max_file_bytes": limits.max_file_bytes}
    status_r, status_w = os.pipe()
    try:
        cmd = [os.path.realpath(sys.executable), "-I", "-S", str(INIT_SCRIPT), json.dumps(cfg), str(status_w)]
        result = _supervise(cmd, limits, stdin, cwd=None, env={}, pass_fds=(status_w,), close_fd=status_w)
        status = _read_all(status_r)
        if os.geteuid() == 0:
            _reap_uid(uid)
    finally:
        os.close(status_r)
        shutil.rmtree(staging, ignore_errors=True)
    if status.startswith("setup: "):
        raise SandboxUnavailable(f"the namespaces sandbox could not start: {status[7:]}")
    if status.startswith("exec: "):
        result.stderr += status[6:] + "\n"
        result.error = f"cannot run {argv[0]!r}: {status.split(': ')[-1]}"
    return result


def _reap_uid(uid: int, timeout_s: float = 5.0) -> None:
    """Kill what is left of a sandbox's own uid and wait until none of it runs. When the namespace's init
    exits the kernel kills the rest of the namespace, but asynchronously: without this a fork bomb's
    processes could still be alive when the sandbox returns."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = [int(p) for p in filter(str.isdigit, os.listdir("/proc")) if _uid_of(p) == uid]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _uid_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("Uid:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None


def _chown_tree(path: Path, uid: int) -> None:
    """Give the sandbox's uid the episode directory (and what is in it), so it may write there."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, uid, uid)


def _run_unsafe(argv, workdir: Path, limits: SandboxLimits, stdin, env) -> SandboxResult:
    import resource

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        cpu = int(limits.timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))

    try:
        return _supervise(list(argv), limits, stdin, cwd=str(workdir), env=_base_env(str(workdir), env),
                          preexec_fn=preexec)
    except FileNotFoundError:
        return SandboxResult(127, "", f"{argv[0]}: not found\n", 0.0, error=f"cannot run {argv[0]!r}: not found")


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _supervise(cmd, limits: SandboxLimits, stdin: str | None, *, cwd, env, close_fd: int | None = None,
               **popen) -> SandboxResult:
    """Run ``cmd`` in its own session; collect its output up to the cap; kill its process group on timeout
    or too much output."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            start_new_session=True, **popen)
    if close_fd is not None:
        os.close(close_fd)
    if stdin is not None:  # from a thread: a command that never reads must not block us past its time limit
        def feed() -> None:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
        threading.Thread(target=feed, daemon=True).start()
    out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for f in out:
        sel.register(f, selectors.EVENT_READ)
    timed_out = output_limited = False
    deadline = start + limits.timeout_s
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            room = limits.max_output_bytes - sum(len(b) for b in out.values())
            out[key.fileobj] += chunk[:max(room, 0)]
            if len(chunk) > room:
                output_limited = True
        if output_limited:
            break
    if timed_out or output_limited:
        _kill_group(proc)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0) + 1)
    except subprocess.TimeoutExpired:  # closed its output but kept running
        timed_out = True
        _kill_group(proc)
        proc.wait()
    sel.close()
    for f in out:
        f.close()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    if timed_out:
        code = TIMEOUT_EXIT
    stdout, stderr = (out[f].decode(errors="replace") for f in (proc.stdout, proc.stderr))
    result = SandboxResult(code, stdout, stderr, time.monotonic() - start, timed_out, output_limited)
    result.error = _describe(result, limits)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe(r: SandboxResult, limits: SandboxLimits) -> str | None:
    if r.timed_out:
        return f"timed out after {limits.timeout_s:g} s (killed)"
    if r.output_limited:
        return f"output exceeded {limits.max_output_bytes} bytes (killed; output truncated)"
    if r.returncode == 0:
        return None
    if r.returncode > 128:
        sig = r.returncode - 128
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        hint = " (CPU time limit)" if sig == signal.SIGXCPU else " (file size limit)" if sig == signal.SIGXFSZ else ""
        return f"killed by {name}{hint}"
    if "MemoryError" in r.stderr or "Cannot allocate memory" in r.stderr:
        return f"exit status {r.returncode} (out of memory: limit {limits.memory_bytes >> 20} MiB)"
    if "Resource temporarily unavailable" in r.stderr or "BlockingIOError" in r.stderr:
        return f"exit status {r.returncode} (process limit {limits.max_processes} reached)"
    return f"exit status {r.returncode}"


_PROBE: dict[str, str | None] = {}


def namespaces_problem() -> str | None:
    """None when the ``namespaces`` tier works here (probed once per process), else why not."""
    if "result" not in _PROBE:
        _PROBE["result"] = _probe()
    return _PROBE["result"]


def _probe() -> str | None:
    if sys.platform != "linux":
        return f"Linux namespaces are needed (this is {sys.platform})"
    import platform

    if platform.machine() not in ("x86_64", "aarch64"):
        return f"pivot_root's syscall number is not known for {platform.machine()}"
    with tempfile.TemporaryDirectory(prefix="postlab-sandbox-probe-") as d:
        try:
            r = _run_namespaces(["/bin/true"], Path(d), SandboxLimits(timeout_s=10), None, None, ())
        except SandboxUnavailable as e:
            return str(e)
        return None if r.returncode == 0 else f"a probe command failed: {r.error}: {r.stderr.strip()[-300:]}"


def require_namespaces() -> None:
    problem = namespaces_problem()
    if problem:
        raise SandboxUnavailable(f"{problem}. The namespaces tier needs unshare(2) to be allowed (root, or "
                                 "unprivileged user namespaces); refusing to run code tools without isolation "
                                 "(tier=unsafe runs them without any, for tests only)")
