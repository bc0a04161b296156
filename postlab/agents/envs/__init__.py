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
