"""Batched sampling with a KV cache: the engine behind RL, evals, preference sampling and serving."""

from postlab.rollout.engine import RolloutEngine, TorchEngine
from postlab.rollout.sampling import SamplingParams
from postlab.rollout.types import Rollout

__all__ = ["Rollout", "RolloutEngine", "SamplingParams", "TorchEngine"]
