"""Errors a user can cause. The CLI prints them as one line; tracebacks are kept for bugs."""


class DeepresError(Exception):
    """A problem with the user's input (file, flag, data); the message says what was expected."""


class WeightsError(DeepresError, ValueError):
    """A weights file that cannot be read or does not match the model."""

    def __init__(self, message: str, missing=(), unexpected=(), misshaped=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.misshaped = list(misshaped)


class ConfigError(DeepresError, ValueError):
    """An unknown model, recipe or option, or a value of the wrong type or range."""


class RunInUse(DeepresError):
    """A run directory another deepres training holds."""
