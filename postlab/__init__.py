"""postlab: an open post-training lab for language models."""

__version__ = "0.1.0"
