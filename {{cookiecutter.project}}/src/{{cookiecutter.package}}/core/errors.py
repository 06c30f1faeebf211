"""Errors that are the user's to fix, importable without torch (the command line catches them)."""


class ConfigError(ValueError):
    """A setting has a value the project cannot use; the message names the parameter and what it takes."""


class DataError(ValueError):
    """The images given cannot make a dataset; the message says how to fix it."""


class TrackingError(RuntimeError):
    """The tracking store or server cannot be used; the message names its URI and the fix."""
