"""Errors a user can fix, as distinct from bugs: the CLIs print their message as one line and exit with status 2.

Each message says what is wrong, names the setting or file involved and what to do about it. They subclass the
built-in type a caller would expect (``ValueError`` for settings, ``OSError`` for files and data) so code that
catches those keeps working.
"""


class UserError(Exception):
    """A problem with the settings, the files or the environment, whose message says how to fix it."""


class SettingsError(UserError, ValueError):
    """Settings that cannot work: against the data (batch larger than the split) or an existing run's settings."""


class DamagedFile(UserError, ValueError):
    """A file the project reads back (run settings, results, bounds, a search's record, a CSV) is not what it
    should be: not JSON, not an object, a folder, or missing a field; the message names the file and the fix."""


class DatasetUnavailable(UserError, OSError):
    """The dataset is not prepared and cannot be: no network, no archive in ``manual_dir``, a bad archive."""


class CheckpointError(UserError, OSError):
    """No intact checkpoint to resume from, or a checkpoint that could not be written (e.g. a full disk)."""


class CheckpointMismatch(UserError, ValueError):
    """An intact checkpoint that does not fit the model the run's settings describe (edited settings, another run's
    checkpoints): reported as such, never treated as damage, never moved."""


class ExportError(UserError, OSError):
    """A SavedModel version could not be written (e.g. a full disk); earlier versions are untouched."""


class RunInUse(UserError, RuntimeError):
    """Another process is training in the same ``model_dir``."""


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the newest checkpoint in model_dir is the last good one."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after saving a checkpoint; rerun the same command to resume (exit 130)."""
