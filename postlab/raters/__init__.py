"""Raters: score one response or compare two for the same item (gold, simulated humans, ...)."""

from postlab.raters.base import Preference, Rater
from postlab.raters.gold import CheckResult, GoldRater, GoldResult
from postlab.raters.simulated import RaterPool, SimulatedRater, default_pool

__all__ = ["CheckResult", "GoldRater", "GoldResult", "Preference", "Rater", "RaterPool", "SimulatedRater",
           "default_pool"]
