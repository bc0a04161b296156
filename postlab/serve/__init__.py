"""Serving: an OpenAI-compatible HTTP API over the rollout engine, with continuous batching and a
monitor that scores every answer against the behaviour spec (docs/serving.md)."""

from postlab.serve.app import ServeSettings, create_app, serve

__all__ = ["ServeSettings", "create_app", "serve"]
