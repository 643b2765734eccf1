"""Errors that a user can act on: each names the problem and the fix."""


class KDGANError(Exception):
    """Base class of the errors this package raises on bad input or a failed run."""


class ConfigError(KDGANError, ValueError):
    """A configuration key, type or value is invalid."""


class DataError(KDGANError, ValueError):
    """A data file or directory is missing, truncated, or does not match the model."""


class DivergenceError(KDGANError, RuntimeError):
    """A loss became NaN or infinite during training."""
