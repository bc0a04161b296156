"""Where postlab caches models and downloads: ``$POSTLAB_HOME`` (default ``~/.cache/postlab``)."""

from __future__ import annotations

import os
from pathlib import Path


def postlab_home() -> Path:
    return Path(os.environ.get("POSTLAB_HOME", "~/.cache/postlab")).expanduser()


def models_dir() -> Path:
    return postlab_home() / "models"


def downloads_dir() -> Path:
    return postlab_home() / "downloads"
