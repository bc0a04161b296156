"""Recipes, one per stage, each a ``train(cfg)`` function composed from components."""
