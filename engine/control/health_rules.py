"""GAN health rules: when a run's own numbers say it is going wrong, warn or stop (torch-free).

The worker evaluates the window rules on the train-window means it already reads at window close and the
epoch rules on its epoch record, so a rule costs no device sync. A rule's action (config, `--set`) is
`off`, `warn` (a `health` record: the supervisor flags the row and notifies) or `stop` (the worker
checkpoints and ends with status `stopped`). The rules:

- `critic` (acgan-wgangp): |d_real_source - d_fake_source| > health_critic_gap or gp > health_critic_gp for
  health_windows windows in a row.
- `saturation` (the BCE recipes): mean D(x) > health_saturation_real and mean D(G(z)) <
  health_saturation_fake for health_windows windows in a row.
- `collapse` (recipes with a collapse signal: diversity, class_spread): the epoch's signal below
  health_collapse_below for health_collapse_epochs epochs in a row.
- non-finite losses always stop (the run ends `diverged`, engine/compute/recipes/base.py), and `stalled`
  is judged by the supervisor (engine/daemon/stall.py, health_stall_seconds).

A rule acts once per streak: it acts again only after a clear window (or epoch) and a new streak.
`healthy_of` finds, for `fork --from-healthy`, the checkpoint the worker kept from before a rule fired.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.config import RecipeSpec
from engine.control.paths import METRICS_FILE
from engine.control.records import END, HEALTH, last_record

HEALTHY_CHECKPOINT = "checkpoints/healthy.pt"  # last.pt as it was before a rule's streak began
# GANMGR_DEBUG_HEALTH=critic|saturation|collapse[:N] feeds the rule a value beyond its bound at every window
# (or epoch) close from global step N on (default 0); =stall[:S] makes the worker write nothing for S seconds
# (default 30) once, after its first window: drills of each rule through the real worker
DRILL_VAR = "GANMGR_DEBUG_HEALTH"
DRILLS = ("critic", "saturation", "collapse", "stall")


@dataclass(frozen=True)
class Firing:
    """A rule that reached its streak: what the `health` record and a `stopped` end record say."""

    rule: str
    action: str  # "warn" | "stop"
    message: str  # "critic: |d_real_source - d_fake_source| > 1e+04 for 3 windows (last 2.3e+04)"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _num(means: Mapping[str, Any], key: str) -> float | None:
    v = means.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


class _Rule:
    """One rule's streak: `breach` says why a value set is over the bound (None: clear or not measured)."""

    name = ""
    per = "window"  # "window" | "epoch"
    count_field = "health_windows"

    def __init__(self, cfg: Mapping[str, Any], spec: RecipeSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.action = str(cfg[f"health_{self.name}"])
        self.needed = int(cfg[self.count_field])
        self.streak = 0
        self.fired = False  # in the current streak

    def breach(self, values: Mapping[str, Any]) -> tuple[str, str] | None:
        """(what is over its bound, in the words of the message; the last value) or None."""
        raise NotImplementedError

    def drill(self, values: dict[str, Any]) -> None:
        """Make `values` breach the rule (GANMGR_DEBUG_HEALTH)."""
        raise NotImplementedError

    def see(self, values: Mapping[str, Any]) -> Firing | None:
        hit = self.breach(values)
        if hit is None:
            self.streak, self.fired = 0, False
            return None
        self.streak += 1
        if self.fired or self.streak < self.needed:
            return None
        self.fired = True
        unit = "window" if self.per == "window" else "epoch"
        count = f"{self.needed} {unit}{'s' if self.needed != 1 else ''}"
        return Firing(self.name, self.action, f"{self.name}: {hit[0]} for {count} (last {hit[1]})")


class _Critic(_Rule):
    name = "critic"

    def breach(self, values: Mapping[str, Any]) -> tuple[str, str] | None:
        real, fake, gp = (_num(values, k) for k in ("d_real_source", "d_fake_source", "gp"))
        bound, gp_bound = self.cfg["health_critic_gap"], self.cfg["health_critic_gp"]
        if real is not None and fake is not None and abs(real - fake) > bound:
            return f"critic gap |d_real_source - d_fake_source| > {_g(bound)}", _g(abs(real - fake))
        if gp is not None and gp > gp_bound:
            return f"gp > {_g(gp_bound)}", _g(gp)
        return None

    def drill(self, values: dict[str, Any]) -> None:
        values["d_real_source"] = (_num(values, "d_fake_source") or 0.0) + 10 * self.cfg["health_critic_gap"]


class _Saturation(_Rule):
    name = "saturation"

    def breach(self, values: Mapping[str, Any]) -> tuple[str, str] | None:
        real, fake = _num(values, "d_real"), _num(values, "d_fake")
        hi, lo = self.cfg["health_saturation_real"], self.cfg["health_saturation_fake"]
        if real is not None and fake is not None and real > hi and fake < lo:
            return f"D(x) > {_g(hi)} and D(G(z)) < {_g(lo)}", f"{_g(real)}, {_g(fake)}"
        return None

    def drill(self, values: dict[str, Any]) -> None:
        hi, lo = self.cfg["health_saturation_real"], self.cfg["health_saturation_fake"]
        values["d_real"], values["d_fake"] = (hi + 1.0) / 2, lo / 2


class _Collapse(_Rule):
    name = "collapse"
    per = "epoch"
    count_field = "health_collapse_epochs"

    def breach(self, values: Mapping[str, Any]) -> tuple[str, str] | None:
        below = self.cfg["health_collapse_below"]
        epoch = _num(values, "epoch")
        if epoch is not None and epoch <= self.cfg.get("health_collapse_after", 0):
            return None  # too early to judge: a GAN's signal starts low while its models learn
        for signal in self.spec.epoch_metrics:
            v = _num(values, signal)
            if v is not None and v < below:
                return f"{signal} < {_g(below)}", _g(v)
        return None

    def drill(self, values: dict[str, Any]) -> None:
        for signal in self.spec.epoch_metrics:
            values[signal] = self.cfg["health_collapse_below"] / 2


_RULES = (_Critic, _Saturation, _Collapse)


class HealthMonitor:
    """The rules a run's config switches on, with their streaks; fed host floats the worker already has."""

    def __init__(self, cfg: Mapping[str, Any], spec: RecipeSpec, drill: str = "") -> None:
        self.rules = [r(cfg, spec) for r in _RULES if f"health_{r.name}" in cfg and cfg[f"health_{r.name}"] != "off"]
        self.drill = drill

    def window(self, means: Mapping[str, Any]) -> list[Firing]:
        """A train window's means (the values of the `train` record)."""
        return self._see("window", means)

    def epoch(self, record: Mapping[str, Any]) -> list[Firing]:
        """An epoch record (its collapse signal)."""
        return self._see("epoch", record)

    def open_streak(self) -> bool:
        """Some rule is over its bound now (its streak has begun): the checkpoint from before it matters."""
        return any(r.streak for r in self.rules)

    def _see(self, per: str, values: Mapping[str, Any]) -> list[Firing]:
        out = []
        for r in self.rules:
            if r.per != per:
                continue
            v = dict(values)
            if self.drill == r.name:
                r.drill(v)
            firing = r.see(v)
            if firing is not None:
                out.append(firing)
        return out


def parse_drill(text: str | None) -> tuple[str, float]:
    """GANMGR_DEBUG_HEALTH as (drill, number): 'stall:5' -> ('stall', 5.0) (seconds), 'critic:8' -> ('critic', 8.0)
    (from step 8); '' -> ('', 0). A word that names no drill is a ValueError (the worker fails with it)."""
    text = (text or "").strip()
    if not text:
        return "", 0.0
    name, _, arg = text.partition(":")
    if name not in DRILLS:
        raise ValueError(f"{DRILL_VAR}={text!r}: the drill must be one of {', '.join(DRILLS)}")
    try:
        number = float(arg) if arg else (30.0 if name == "stall" else 0.0)
    except ValueError:
        raise ValueError(f"{DRILL_VAR}={text!r}: the number after ':' must be a number") from None
    return name, number


def healthy_of(run_dir: Path) -> dict[str, Any] | None:
    """The newest `healthy_checkpoint` a worker named in metrics.jsonl (a `health` record, or a `stopped` or
    `diverged` end record), read backward from the file's end: {"path", "epoch", "step"}; {} when it named
    none (the rule fired before any checkpoint); None when no record names one (nothing fired)."""
    rec = last_record(run_dir / METRICS_FILE, b'"healthy_checkpoint"',
                      lambda r: r.get("kind") in (HEALTH, END) and "healthy_checkpoint" in r)
    if rec is None:
        return None
    ck = rec.get("healthy_checkpoint")
    return ck if isinstance(ck, dict) and isinstance(ck.get("path"), str) else {}
