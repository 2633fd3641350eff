"""The errors that cross layers: the CLI, the forms, the daemon and the workers catch these by name.

They live apart from the code that raises them so that a low module (datasets, slurm_options) can raise
them without importing a higher one (config, the daemon's backends).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value; the message is one line that names the field and the problem."""


class BackendError(RuntimeError):
    """A Slurm option, submission, query or cancel that failed; the message is one line naming the cause."""


class SubmitError(ValueError):
    """A refused resume, fork, cancel or delete; the message is one line naming the reason.

    `field` names the config field at fault when there is one, and `form_message` says it in a form's words
    (no CLI syntax), so the new-run and fork form can put it under that input. Raised by
    engine.control.submit (which re-exports it) and its neighbours."""

    def __init__(self, message: str, *, field: str | None = None, form_message: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.form_message = form_message or message
