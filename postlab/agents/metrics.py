"""Episode metrics: success rate, mean turns, tool-call validity rate and recovery rate."""

from __future__ import annotations

from collections.abc import Sequence

from postlab.agents.env import EpisodeState


def summarize(states: Sequence[EpisodeState]) -> dict:
    """Aggregates over episodes. Rates are fractions (0-1); a rate with nothing to measure is None
    (JSON null): validity without any tool call, recovery without any episode that hit an error.

    - ``success_rate``: episodes whose reward reached the environment's success threshold;
    - ``mean_turns``: assistant turns per episode;
    - ``tool_call_validity_rate``: calls that parsed, named a tool and fit its arguments, over all calls;
    - ``recovery_rate``: among episodes with at least one tool error or invalid call, those that succeeded.
    """
    n = len(states)
    calls = sum(s.tool_calls for s in states)
    with_errors = [s for s in states if s.errors > 0]
    return {
        "episodes": n,
        "success_rate": sum(s.success for s in states) / n if n else None,
        "mean_reward": sum(s.reward for s in states) / n if n else None,
        "mean_turns": sum(s.turns for s in states) / n if n else None,
        "tool_calls": calls,
        "tool_call_validity_rate": (calls - sum(s.invalid_calls for s in states)) / calls if calls else None,
        "episodes_with_tool_calls": sum(s.tool_calls > 0 for s in states),
        "episodes_with_errors": len(with_errors),
        "recovery_rate": sum(s.success for s in with_errors) / len(with_errors) if with_errors else None,
        "truncated_rate": sum(s.truncated for s in states) / n if n else None,
    }
