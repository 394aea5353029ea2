"""User-facing errors: bad input named by file/field and what was expected. The CLI prints them without a traceback."""
from __future__ import annotations


class CamlabError(Exception):
    """An error caused by the user's input (file, field, value), reported as one clear line."""


class ConfigError(CamlabError):
    """A YAML/config file or one of its fields is not what its dataclass expects."""


class InputFileError(CamlabError):
    """A data file (raw frame, image, audio, model, bundle) is missing, unreadable or malformed."""
