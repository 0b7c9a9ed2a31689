"""The errors Infi raises for a person's input or for steps taken out of order.

Only an ``InfiError`` becomes a friendly message in the app and the CLI; anything else is a bug
and is reported with its traceback. Each family also derives from the built-in exception a caller
would expect (``ValueError`` for a bad value, ``OSError`` for a model that cannot be loaded), so
code written against the built-ins keeps working.
"""

from __future__ import annotations


class InfiError(Exception):
    """A problem the person can fix: bad input, a missing step, a file that is not what it says."""


class InputError(InfiError, ValueError):
    """A value, file or setting that Infi cannot use; the message names it and the fix."""


class ConfigError(InputError):
    """A distillation or PRG setting outside its valid range."""


class DataError(InputError):
    """The dataset cannot be read or used (empty, duplicate ids, unknown labels, bad archive)."""


class CorpusError(InputError):
    """A concept list is empty, too long or malformed."""


class TeacherError(InputError):
    """A teacher's outputs or files do not fit the dataset (shape, classes, ids, NaN)."""


class TuningError(InputError):
    """A tuning action names an unknown concept, class or kind, or has a bad scale."""


class BundleError(InputError):
    """The file is not a valid Infi bundle."""


class LimitError(InputError):
    """Input beyond the resource budget (size, count, pixels, rows)."""


class SessionError(InfiError, RuntimeError):
    """A step was asked for before the steps it depends on."""


class ModelLoadError(InfiError, OSError):
    """A model (hub id or local folder) could not be loaded."""


class MissingFileError(InfiError, FileNotFoundError):
    """A path given by the person does not exist."""
