"""The visualization launcher (`v`) as data: which choices a run offers and the checked request.

Pure (no Textual): the kinds a run can take, its checkpoints, the baseline runs to pair it with, and the
parameter texts checked field by field through `engine.control.viz_spec` (the same rules as `ganmgr viz
--set` and the job itself), each error one line under its input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import check_field, parse_value
from engine.control.errors import ConfigError
from engine.control.viz_spec import (
    VIZ_KINDS,
    best_checkpoint,
    checkpoint_choice,
    kept_epochs,
    resolve_viz_params,
    viz_kind,
)
from store.views import RunView, VizJobView

GENERAL = "viz-form"
FINAL = "final"


def param_text(value: Any) -> str:
    """A parameter's default as the text the user edits (lists comma-separated, bools true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value) if not isinstance(value, str) else value


def kinds_for(run: RunView) -> list[str]:
    """Every kind, the ones that cannot read this run left out (a baseline run has no generator)."""
    from engine.control.viz_jobs import recipe_refusal

    return [name for name in VIZ_KINDS if recipe_refusal(run.recipe, name) is None]


def checkpoints_for(run: RunView) -> list[tuple[str, str]]:
    """(label, value) of the checkpoints a job can read, those present: final, best (with its epoch and
    value), last (a run that stopped early has no final), then every kept epoch, newest first. The value is
    the `--checkpoint` word, or the epoch number."""
    run_dir = Path(run.run_dir) if run.run_dir else None
    if run_dir is None:
        return []
    ckpts = run_dir / "checkpoints"
    out: list[tuple[str, str]] = []
    if (ckpts / "final.pt").is_file():
        out.append((f"final (epoch {run.epoch})", FINAL))
    if (ckpts / "best.pt").is_file():
        best = best_checkpoint(run_dir)
        what = (f" (epoch {best['epoch']}, {best.get('metric')} {_value(best.get('value'))})" if best else "")
        out.append((f"best{what}", "best"))
    if (ckpts / "last.pt").is_file():
        out.append((f"last (epoch {run.epoch})", "last"))
    for e in reversed(kept_epochs(run_dir)):
        out.append((f"epoch {e}", str(e)))
    return out


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def baselines_from(runs: list[RunView]) -> list[tuple[str, int]]:
    """(label, id) of completed baseline runs, newest first, with their test accuracy."""
    out = []
    for r in sorted(runs, key=lambda r: -r.id):
        if r.recipe == "baseline" and r.status == "completed":
            acc = f"  test {r.last_test_acc:.1f}%" if r.last_test_acc is not None else ""
            out.append((f"#{r.id} {r.name}{acc}", r.id))
    return out


@dataclass(frozen=True)
class VizRequest:
    kind: str
    params: dict[str, Any]
    epoch: int | None  # a kept epoch
    baseline_id: int | None
    checkpoint: str | None = None  # else best, last or final (None: the default, final)


@dataclass
class VizCheck:
    request: VizRequest | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors


def check_viz_form(kind: str, texts: Mapping[str, str], checkpoint: str | None,
                   baseline_id: int | None) -> VizCheck:
    """Parse and check every parameter input; errors keyed by parameter name (or GENERAL)."""
    try:
        spec = viz_kind(kind)
    except ConfigError as e:
        return VizCheck(None, {GENERAL: str(e)})
    fields = spec.field_map()
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        f = fields.get(name)
        if f is None:
            continue
        try:
            values[name] = check_field(f, parse_value(f, text))
        except ConfigError as e:
            errors[name] = str(e)
    if spec.needs_checkpoint and not checkpoint:
        errors["checkpoint"] = "this run has no checkpoint yet (it never finished an epoch)"
    if spec.needs_baseline and baseline_id is None:
        errors["baseline"] = "pick a completed baseline run: its classifier scores the generator"
    if errors:
        return VizCheck(None, errors)
    try:
        params = resolve_viz_params(kind, values)
    except ConfigError as e:
        return VizCheck(None, {GENERAL: str(e)})
    epoch, named = None, None
    if spec.needs_checkpoint and checkpoint not in (None, FINAL):
        epoch, named = (int(checkpoint), None) if checkpoint.isdigit() else (None, checkpoint)
        try:
            checkpoint_choice(named, epoch)  # the rule of `ganmgr viz --checkpoint`
        except ConfigError as e:
            return VizCheck(None, {"checkpoint": str(e)})
    return VizCheck(VizRequest(kind, params, epoch, baseline_id if spec.needs_baseline else None, named))


def defaults_text(kind: str) -> dict[str, str]:
    return {k: param_text(v) for k, v in viz_kind(kind).defaults().items()}


def params_line(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def viz_output_rel(run_dir: Path | None, job: VizJobView) -> str | None:
    """The job's main file relative to the run folder (what the image panel lists), or None."""
    from engine.control.viz_spec import primary_output

    if run_dir is None or not job.job_dir:
        return None
    try:
        folder = Path(job.job_dir).relative_to(run_dir)
    except ValueError:
        return None
    return f"{folder.as_posix()}/{primary_output(job.kind, job.params)}"
