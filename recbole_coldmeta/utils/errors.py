"""Errors that carry a message meant for the user: what is wrong and how to fix it."""


class ColdMetaError(Exception):
    """Base class of every error whose message is a complete, user-facing explanation.

    Entry points print ``str(error)`` on one line and exit non-zero instead of a traceback.
    """


class ConfigError(ColdMetaError, ValueError):
    """A configuration value, key or file is missing, misspelled or out of range."""


class DataError(ColdMetaError, ValueError):
    """Input data is missing, empty or inconsistent with the configuration."""
