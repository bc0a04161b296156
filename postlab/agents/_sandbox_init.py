"""The sandbox's first process: builds the namespaces and the read-only root, then execs the command.

Run as ``python -I -S _sandbox_init.py <config json> <status fd>`` by ``postlab.agents.sandbox`` (stdlib
only: it must not import postlab, whose files are not visible inside). Steps:

1. ``unshare`` mount, network, PID, IPC and UTS namespaces (plus a user namespace when not root).
2. Fork: the child is PID 1 of the new PID namespace and dies with this process (PDEATHSIG); this
   process waits and exits with the child's status (128 + signal when killed), so killing it (the
   caller's timeout) kills the whole namespace.
3. In the child: make every mount private, build a tmpfs root holding read-only binds of the system
   directories and the interpreter, a few device nodes, a fresh /proc, and the episode directory
   read-write at ``/sandbox``; remount the tmpfs read-only; ``pivot_root`` into it.
4. Drop privileges (root: to the unprivileged ``uid``; otherwise: empty capability bounding set),
   set ``no_new_privs`` and the resource limits, and exec the command.

Setup failures are written to the status pipe (close-on-exec, so a successful exec leaves it empty).
"""

import ctypes
import json
import os
import platform
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# statvfs flags that share their bit with a MS_* flag and must be kept on a read-only remount
# (an unprivileged user namespace may not clear them: "locked" flags).
KEEP_FLAGS = 1 | 2 | 4 | 8 | 1024 | 2048 | 4096  # rdonly nosuid nodev noexec noatime nodiratime relatime

libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(src, dst, fstype, flags, data=None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    check(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {src} on {dst}")


def bind_ro(src: str, dst: str) -> None:
    mount(src, dst, None, MS_BIND | MS_REC)
    keep = os.statvfs(dst).f_flag & KEEP_FLAGS
    mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | keep)


def add_path(root: str, path: str) -> None:
    """Mirror ``path`` (a directory, file or symlink of the host) read-only at the same place under root."""
    if not os.path.lexists(path):
        return
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(path):
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
        real = os.path.realpath(path)
        if real != path:
            add_path(root, real)
        return
    if os.path.lexists(target):
        return  # already there (a parent directory was bound)
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        open(target, "w").close()
    bind_ro(path, target)


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def build_root(cfg: dict) -> None:
    root = cfg["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount reaches the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in cfg["ro_paths"]:
        add_path(root, path)
    os.makedirs(root + "/dev", exist_ok=True)
    for dev in ("null", "zero", "full", "random", "urandom"):
        open(f"{root}/dev/{dev}", "w").close()
        mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/sandbox")
    mount(cfg["workdir"], root + "/sandbox", None, MS_BIND)
    mount(None, root + "/sandbox", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    check(libc.syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "unmount the old root")
    os.chdir("/sandbox")


def drop_privileges(cfg: dict, root_user: bool) -> None:
    # An empty bounding set: no exec (of a setuid binary, or by uid 0 of our user namespace) regains a capability.
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if root_user:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])  # a real uid change: every capability is cleared
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def set_limits(cfg: dict) -> None:
    limits = {resource.RLIMIT_AS: cfg["memory_bytes"], resource.RLIMIT_NPROC: cfg["max_processes"],
              resource.RLIMIT_CPU: cfg["cpu_seconds"], resource.RLIMIT_FSIZE: cfg["max_file_bytes"],
              resource.RLIMIT_CORE: 0, resource.RLIMIT_NOFILE: 256}
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def child(cfg: dict, status_fd: int, root_user: bool) -> None:
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    try:
        build_root(cfg)
        drop_privileges(cfg, root_user)
        set_limits(cfg)
    except (SetupError, OSError) as e:
        os.write(status_fd, f"setup: {e}".encode())
        os._exit(125)
    try:
        os.execvpe(cfg["argv"][0], cfg["argv"], cfg["env"])
    except OSError as e:
        os.write(status_fd, f"exec: {cfg['argv'][0]}: {e.strerror}".encode())
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = int(sys.argv[2])
    root_user = os.geteuid() == 0
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    try:
        if not root_user:
            uid, gid = os.geteuid(), os.getegid()
            check(libc.unshare(flags | CLONE_NEWUSER), "unshare")
            write("/proc/self/setgroups", "deny")
            write("/proc/self/uid_map", f"0 {uid} 1")
            write("/proc/self/gid_map", f"0 {gid} 1")
        else:
            check(libc.unshare(flags), "unshare")
    except (SetupError, OSError) as e:
        os.write(status_fd, f"setup: {e}".encode())
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        child(cfg, status_fd, root_user)
    os.close(status_fd)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
