"""A fork's `epochs`: the one rule `ganmgr fork`, `fork_run` and the fork form apply, and what the form offers.

Kept apart from engine.control.submit (which imports the store's database layer) so the form can check
as the user types without loading SQLAlchemy on the UI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.control.errors import SubmitError

if TYPE_CHECKING:
    from store.views import RunView


def fork_epochs_error(epochs: int, start_epoch: int) -> SubmitError | None:
    """A fork counts its epochs from the parent's start, so `epochs` must lie above the epoch it starts after."""
    if epochs > start_epoch:
        return None
    return SubmitError(f"the fork starts after epoch {start_epoch}; set epochs above it "
                       f"(--set epochs={start_epoch + 10})", field="epochs",
                       form_message=f"epochs must be above {start_epoch}: the fork starts after epoch "
                                    f"{start_epoch} and counts its epochs from the parent's start")


def fork_default_epochs(parent: RunView) -> int:
    """The epochs a fork of `parent` is offered: the parent's own target while it lies ahead (a run that
    stopped early), else the epochs it reached plus as many as it trained itself (a fork of a fork counts
    from its own start), so forking a finished run continues it instead of being refused."""
    target = parent.config.get("epochs", parent.epochs)
    target = target if isinstance(target, int) and not isinstance(target, bool) else parent.epochs
    if parent.epoch < target:
        return target
    own = target - (parent.parent_epoch or 0) if parent.parent_relation == "fork" else target
    return parent.epoch + max(1, own)
