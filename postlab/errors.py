"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class PostlabError(Exception):
    """Base class for errors caused by user input (config, data, model names)."""


class ConfigError(PostlabError):
    """An invalid, unknown or missing config field, or a config file that cannot be read."""


class DataError(PostlabError):
    """A data file that cannot be used; the message names the file and line."""


class ModelError(PostlabError):
    """A model name, directory or download that cannot be resolved."""
