"""The errors that cross layers: the CLI, the forms, the daemon and the workers catch these by name.

They live apart from the code that raises them so that a low module (datasets, slurm_options) can raise
them without importing a higher one (config, the daemon's backends).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value; the message is one line that names the field and the problem."""


class BackendError(RuntimeError):
    """A Slurm option, submission, query or cancel that failed; the message is one line naming the cause."""
