"""The errors toymi raises for things a user can fix, all under one base class."""


class ToymiError(Exception):
    """Base of toymi's user-facing errors."""


class ConfigError(ToymiError, ValueError):
    """A configuration or spec that cannot work, with a message saying what to change."""


class SpecFileMissing(ToymiError, FileNotFoundError):
    """The spec file given does not exist."""


class UnknownName(ConfigError, KeyError):
    """A task, setting or key that does not exist (a KeyError too, for code that catches one)."""

    __str__ = Exception.__str__


class RunDirectoryError(ToymiError):
    """The run directory would lose data (it exists and is not being resumed) or cannot be resumed."""


class NoCheckpoints(RunDirectoryError, FileNotFoundError):
    """The run directory has no checkpoint yet (a FileNotFoundError too, for code that catches one)."""


class CheckFailed(ToymiError):
    """An on-device check inside compiled code failed (an index or token id out of range under `jit`/`vmap`)."""


# On-device check messages start with this, so that `toymi.jit` can find them inside JAX's runtime error.
CHECK_PREFIX = "toymi check failed: "


class TrainingDiverged(ToymiError):
    """The loss became NaN or infinite; the run stopped and its checkpoints end at the last good one."""


class CheckpointDamaged(ToymiError):
    """A checkpoint's files do not match the checksums written when it was saved (or are missing)."""


class TrainingInterrupted(ToymiError):
    """SIGINT or SIGTERM stopped training at a safe point; the run resumes from its last checkpoint."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
