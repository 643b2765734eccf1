"""Errors that a user can act on: each names the problem and the fix."""


class KDGANError(Exception):
    """Base class of the errors this package raises on bad input or a failed run."""


class ConfigError(KDGANError, ValueError):
    """A configuration key, type or value is invalid."""


class DataError(KDGANError, ValueError):
    """A data file or directory is missing, truncated, or does not match the model."""


class UnsafeFileError(DataError):
    """A file holds objects that could run code when loaded, so it is refused unread."""


class DivergenceError(KDGANError, RuntimeError):
    """A loss became NaN or infinite during training."""


class OutputError(KDGANError, OSError):
    """A file or folder could not be written (disk full, permission denied, a path under a file).

    Also an ``OSError``, so code that catches write failures keeps working; its message is the
    one-line explanation, without the ``[Errno N]`` prefix."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunInUseError(KDGANError, RuntimeError):
    """Another process (or thread) is writing the run directory."""
