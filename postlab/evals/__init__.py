"""Evaluation: the eval harness (gold-rated suites), win rates and leaderboards."""
