"""``postlab sandbox ...`` and ``postlab env ...``: Typer apps only; the work is imported inside each command
(so ``postlab --help`` stays fast)."""

from __future__ import annotations

import json
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


@env_app.command("list", help="The environments that ship: one per line, its name first.")
def env_list() -> None:
    from postlab.agents.envs import ENVIRONMENTS, env_class

    for name in ENVIRONMENTS:
        cls = env_class(name)
        print(f"{name:<12} {cls.description}")


@env_app.command("eval", help="Play a model through an environment's held-out tasks; writes --out (metrics: success "
                              "rate, mean turns, tool-call validity, recovery rate) and <stem>.transcripts.jsonl.")
def env_eval(
    env: str = typer.Option(..., "--env", help="environment name (postlab env list)"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="built-in name, local HF directory or hub id"),
    episodes: Optional[int] = typer.Option(None, "--episodes", help="only the first N tasks of the split"),
    out: str = typer.Option("env_eval/results.json", "--out", help="results JSON"),
    split: str = typer.Option("test", "--split", help="test (held out) or train"),
    tools: bool = typer.Option(True, "--tools/--no-tools", help="offer the tools (--no-tools: calculator without its tool)"),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", help="assistant turns per episode"),
    max_total_tokens: int = typer.Option(1024, "--max-total-tokens", help="tokens per episode after the prompt"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="tokens per model turn"),
    sandbox_tier: str = typer.Option("namespaces", "--sandbox-tier", help="namespaces | unsafe (no isolation)"),
    batch_size: int = typer.Option(8, "--batch-size", help="episodes played together"),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="share of tasks whose first valid tool call fails "
                                     "with a transient fault (calculator), to measure recovery"),
) -> None:
    from pydantic import ValidationError

    from postlab.agents.evaluate import EnvEvalConfig, evaluate, format_summary
    from postlab.errors import ConfigError

    try:
        cfg = EnvEvalConfig(env=env, model=model, episodes=episodes, out=out, split=split, tools=tools,
                            max_turns=max_turns, max_total_tokens=max_total_tokens, sandbox_tier=sandbox_tier,
                            batch_size=batch_size, fault_rate=fault_rate, sampling={"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": 0})
    except ValidationError as e:
        raise ConfigError("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())) from None
    from postlab.agents.envs import env_class

    from postlab.cli import _quiet_libraries

    env_class(cfg.env)  # an unknown name fails now, before the model loads
    _quiet_libraries()
    result = evaluate(cfg, log=lambda m: print(m, file=sys.stderr))
    print(format_summary(result))
    print(f"wrote {cfg.out} and {result['transcripts']}")


@env_app.command("demos", help="Write tool-use demonstrations (SFT rows with tool calls, for `postlab sft`) of an "
                               "environment's tasks: calculator only.")
def env_demos(
    env: str = typer.Option("calculator", "--env", help="environment (calculator)"),
    out: str = typer.Option(..., "--out", help="JSONL file to write"),
    split: str = typer.Option("train", "--split", help="train or test"),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="the environment's transient faults: the tasks that "
                                     "fault show the error and the same call again"),
) -> None:
    if env != "calculator":
        raise PostlabError(f"--env {env!r}: demonstrations exist for calculator only")
    if split not in ("train", "test"):
        raise PostlabError(f"--split {split!r}: expected train or test")
    from postlab.agents.demos import write_calculator_demos

    if not 0 <= fault_rate <= 1:
        raise PostlabError(f"--fault-rate {fault_rate}: expected a share between 0 and 1")
    print(f"wrote {write_calculator_demos(out, split, fault_rate)} demonstrations to {out}")


@env_app.command("train", help="Multi-turn GRPO / RLOO on an environment's train tasks (postlab.agents.grpo: fields "
                               "as KEY=VALUE, e.g. env=calculator steps=20 k=4 model=DIR).")
def env_train(
    out: Optional[str] = typer.Option(None, "--out", help="run directory (default runs/agent)"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config file; KEY=VALUE overrides apply on top"),
    overrides: Optional[list[str]] = typer.Argument(None, metavar="[KEY=VALUE]...", help="config fields"),
) -> None:
    from postlab.agents.grpo import AgentGRPOConfig, train
    from postlab.cli import _quiet_libraries
    from postlab.config import load_config

    _quiet_libraries()
    cfg = load_config(AgentGRPOConfig, config, list(overrides or []) + [f"out_dir={out}"] * bool(out))
    print(json.dumps(train(cfg), indent=2))
