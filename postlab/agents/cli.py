"""``postlab sandbox ...`` and ``postlab env ...``: Typer apps only; the work is imported inside each command
(so ``postlab --help`` stays fast)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from postlab.errors import PostlabError

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                          help="Run commands in the sandbox that code-executing tools use.")
env_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                      help="List and evaluate the agent environments (multi-turn, tool-using).")


def parse_size(text: str) -> int:
    """Bytes from ``1073741824``, ``512M``, ``1G``, ``64k`` (binary units)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise PostlabError(f"--memory {text!r}: expected bytes or a size like 512M, 1G") from None


@sandbox_app.command("exec", help="Run CMD in the sandbox (a fresh episode directory at /sandbox unless --dir); its "
                                  "exit status and output pass through (124 on timeout). Put CMD after `--`.",
                     context_settings={"allow_interspersed_args": False})
def sandbox_exec(
    cmd: list[str] = typer.Argument(..., metavar="-- CMD ...", help="the command and its arguments"),
    timeout: float = typer.Option(10.0, "--timeout", help="wall-clock limit in seconds"),
    memory: str = typer.Option("1G", "--memory", help="address-space limit per process (bytes, or 512M, 1G)"),
    processes: int = typer.Option(64, "--processes", help="most processes alive at once"),
    tier: str = typer.Option("namespaces", "--tier", help="namespaces (isolated) | unsafe (no isolation; tests only)"),
    workdir: Optional[str] = typer.Option(None, "--dir", help="episode directory (made writable for the sandbox); "
                                                              "default: a fresh temporary one, removed after"),
) -> None:
    import tempfile

    from postlab.agents.sandbox import Sandbox, SandboxLimits

    limits = SandboxLimits(timeout_s=timeout, memory_bytes=parse_size(memory), max_processes=processes)
    sandbox = Sandbox(tier=tier, limits=limits)
    if workdir is not None:
        result = sandbox.run(cmd, workdir=workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="postlab-episode-") as d:
            result = sandbox.run(cmd, workdir=d)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.error and (result.timed_out or result.output_limited or result.returncode > 128):
        print(f"sandbox: {result.error}", file=sys.stderr)
    sys.stdout.flush()
    sys.exit(result.returncode)
