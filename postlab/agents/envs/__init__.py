"""The environments that ship, by name: ``make_env(name)`` builds one, ``env_rows(name, split)`` gives
its tasks (``train`` or ``test``; evaluations use ``test``, held out from training)."""

from __future__ import annotations

import importlib

from postlab.errors import ConfigError

# name -> (module, class); modules load only when asked for
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "calculator": ("postlab.agents.envs.calculator", "CalculatorEnv"),
    "fixcode": ("postlab.agents.envs.fixcode", "FixCodeEnv"),
    "lookup": ("postlab.agents.envs.lookup", "LookupEnv"),
}


def _module(name: str):
    if name not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {name!r}; environments: {', '.join(ENVIRONMENTS)}")
    return importlib.import_module(ENVIRONMENTS[name][0])


def env_class(name: str):
    return getattr(_module(name), ENVIRONMENTS[name][1])


def make_env(name: str, **kwargs):
    return env_class(name)(**kwargs)


def env_rows(name: str, split: str = "test") -> list[dict]:
    if split not in ("train", "test"):
        raise ConfigError(f"split {split!r}: expected train or test")
    return _module(name).rows(split)


def env_kwargs(name: str, *, max_turns: int | None = None, tools: bool = True, sandbox_tier: str | None = None,
               fault_rate: float = 0.0) -> dict:
    """The constructor arguments of environment ``name`` for these settings: ``sandbox_tier`` where it runs code,
    ``tools=False`` and ``fault_rate`` > 0 only where it supports them (else a ConfigError saying so)."""
    import inspect

    accepted = inspect.signature(env_class(name)).parameters
    kwargs: dict = {"max_turns": max_turns}
    if not tools:
        if "tools" not in accepted:
            raise ConfigError(f"tools=false: environment {name!r} cannot be played without its tools")
        kwargs["tools"] = False
    if fault_rate:
        if "fault_rate" not in accepted:
            raise ConfigError(f"fault_rate: environment {name!r} has no injected tool faults (calculator has)")
        kwargs["fault_rate"] = fault_rate
    if "sandbox_tier" in accepted and sandbox_tier is not None:
        kwargs["sandbox_tier"] = sandbox_tier
    return kwargs
