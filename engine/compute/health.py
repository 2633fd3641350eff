"""The worker's side of the health rules (engine/control/health_rules.py): evaluate, keep, record, stop.

`HealthWatch` is fed what the trainer already holds on the host (a train window's means at window close,
the epoch record), so it adds no device sync. It keeps the checkpoint from before a rule's streak as
`checkpoints/healthy.pt`: a hard link to `last.pt` made just before `last.pt` is first overwritten while a
streak is open (or when the rule fires), so it costs no copy; once a rule has fired it is frozen for the
attempt. A `warn` writes a `health` record (the supervisor flags the row and notifies); a `stop` writes the
same record and asks the loop to checkpoint and end with status `stopped`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.control.health_rules import DRILL_VAR, HEALTHY_CHECKPOINT, Firing, HealthMonitor, parse_drill
from engine.control.records import HEALTH

if TYPE_CHECKING:
    from engine.compute.recipes.base import Trainer

LAST = "checkpoints/last.pt"


class HealthWatch:
    """One attempt's rules, the pinned healthy checkpoint and a pending stop."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer
        self.drill, self.drill_arg = parse_drill(os.environ.get(DRILL_VAR))
        self.monitor = HealthMonitor(trainer.cfg, trainer.spec)
        self.pinned: dict[str, Any] | None = None  # {"epoch", "step"} of healthy.pt, when pinned
        self.frozen = False  # a rule fired: healthy.pt stays as it is for this attempt
        self.stop: Firing | None = None
        self.stop_healthy: dict[str, Any] | None = None
        self._stalled_once = False

    # --- hooks the loop calls -------------------------------------------------------------------------
    def window(self, means: dict[str, float]) -> None:
        """A train window closed (its record written): the window rules."""
        self._arm_drill()
        self._act(self.monitor.window(means))
        if self.drill == "stall" and not self._stalled_once:
            self._stalled_once = True
            self._sleep(self.drill_arg)

    def epoch(self, record: dict[str, Any]) -> list[Firing]:
        """An epoch record was written, before its checkpoint: the epoch rules (acted on in `after_epoch`,
        once last.pt holds the epoch)."""
        self._arm_drill()
        firings = self.monitor.epoch(record)
        self._settle()
        return firings

    def after_epoch(self, firings: list[Firing]) -> None:
        self._act(firings)

    def before_save(self) -> None:
        """last.pt is about to be overwritten: while a streak is open, keep the one from before it."""
        if self.monitor.open_streak() and self.pinned is None:
            self._pin()

    # --- the actions ----------------------------------------------------------------------------------
    def healthy(self) -> dict[str, Any] | None:
        """The checkpoint from before the rule fired, as the records name it (None: there was none)."""
        if self.pinned is None or not (self.t.run_dir / HEALTHY_CHECKPOINT).is_file():
            return None
        return {"path": HEALTHY_CHECKPOINT, **self.pinned}

    def _act(self, firings: list[Firing]) -> None:
        self._settle()
        for f in firings:
            if self.pinned is None:
                self._pin()
            self.frozen = True
            healthy = self.healthy()
            t = self.t
            t.metrics.write({"kind": HEALTH, "rule": f.rule, "action": f.action, "message": f.message,
                             "epoch": t.epoch + (0 if t.batch == 0 else 1), "step": t.global_step,
                             "time": time.time(), "healthy_checkpoint": healthy})
            t.log(f"health: {f.message} -> {f.action}")
            if f.action == "stop" and self.stop is None:
                self.stop, self.stop_healthy = f, healthy

    def _settle(self) -> None:
        """Every rule clear and none fired: the next streak pins afresh."""
        if not self.frozen and not self.monitor.open_streak():
            self.pinned = None

    def _pin(self) -> None:
        """healthy.pt := last.pt (a hard link; a copy where links fail), with last.pt's epoch and step."""
        run_dir: Path = self.t.run_dir
        src, dst = run_dir / LAST, run_dir / HEALTHY_CHECKPOINT
        if self.t.healthy is None or not src.is_file():
            self.pinned = {}  # nothing to keep: the rule fired before any checkpoint
            dst.unlink(missing_ok=True)
            return
        tmp = dst.with_name(".healthy.pt.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        self.pinned = dict(self.t.healthy)

    def _arm_drill(self) -> None:
        """GANMGR_DEBUG_HEALTH=RULE:N: the rule sees values beyond its bound from global step N on."""
        armed = self.drill != "stall" and self.t.global_step >= self.drill_arg
        self.monitor.drill = self.drill if armed else ""

    def _sleep(self, seconds: float) -> None:
        """The stall drill: write nothing for `seconds`, but still honour a stop signal."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.t.stop_signal is None:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
