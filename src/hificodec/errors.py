"""Exceptions that carry a message meant for users (the CLI prints them without a traceback)."""


class HificodecError(Exception):
    """Base class: anything raised as this is a user-facing error with a clear message."""


class UsageError(HificodecError):
    """Arguments that do not go together (the CLI exits 2, as argparse does for malformed ones)."""


class AudioError(HificodecError):
    """Audio could not be read, is empty, or holds invalid samples."""


class ConfigError(HificodecError):
    """A preset or recipe is unknown or invalid."""


class CheckpointError(HificodecError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class HificodecWarning(UserWarning):
    """Something suspicious about the input that does not stop the work (the CLI prints it on stderr)."""
