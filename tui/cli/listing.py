"""`ganmgr ls` and `ganmgr show`: the read commands a user types most, kept quick.

They read through `store.read_view` (the standard library's sqlite3, one snapshot) and import nothing of
the database layer, the supervisor or the submit path: on a store with nothing running, the whole command
is a fraction of the third of a second SQLAlchemy's import alone costs (issue 16, bench/cli_startup.py;
tests/test_cli_startup.py keeps those imports out). A store the read view cannot open (an older schema)
is read through the full store instead.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from engine.control.eval_summary import QUALITY_KEY, cell_text, run_quality, summary_lines
from engine.control.records import json_safe
from engine.control.resource_use import RESOURCES_KEY, mb_short, run_resources, summary_line
from engine.control.viz_spec import best_checkpoint
from store.checks import normalize_tags
from store.location import db_path
from store.reads import reads
from store.views import RunView
from tui.cli.args import EXIT_OK, CliError
from tui.cli.lookup import require_store
from tui.present import (
    backend_lines,
    fmt_gan,
    fmt_tags,
    gan_values,
    job_summary,
    run_status_word,
    wait_reason,
)
from tui.run_query import order_runs, sort_of_field


def cmd_ls(args: argparse.Namespace, home: Path) -> int:
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit} must be 1 or more")
    if args.tag is not None:
        normalize_tags([args.tag])
    sort = None
    if args.sort is not None:
        try:
            sort = sort_of_field(args.sort)
        except ValueError as e:
            raise CliError(f"--sort: {e}") from None
    runs: list[RunView] = []
    if db_path(home).exists():
        with reads(home) as store:
            runs = store.list_runs(status=args.status, recipe=args.recipe, tag=args.tag,
                                   text=args.text or None, order="id", sweep=args.sweep)
    if args.limit:
        runs = runs[-args.limit:]
    if sort is not None or args.reverse:  # the table's own order (tui.run_query): one rule for both
        runs = order_runs(runs, sort or "id", args.reverse)
    if args.json:
        print(json.dumps([run_json(r) for r in runs], allow_nan=False))
        return EXIT_OK
    if not runs:
        print("no runs" + (" match" if any((args.status, args.recipe, args.tag, args.text)) else " yet"))
        return EXIT_OK
    now = time.time()
    header = ("ID", "NAME", "RECIPE", "DATASET", "STATUS", "PROG", "EPOCH", "TEST ACC", "GAN", "IMG/S", "AGE",
              "TAGS", "HEALTH", "GPU MEM", "RSS")
    rows = [(str(r.id), _cut(r.name, 28), r.recipe, _cut(_short_dataset(r.dataset), 18), run_status_word(r),
             f"{r.progress * 100:.0f}%", f"{r.epoch}/{r.epochs}", _acc_text(r), _gan_text(r),
             f"{r.images_per_s:.0f}" if r.images_per_s else "-", _age(now - r.created_at),
             _cut(fmt_tags(r.tags), 24), r.health_flag or _cut(wait_reason(r), 60), *_resources_cells(r))
            for r in runs]
    if any(run_quality(r.last_metrics) for r in runs):  # evaluation during training: latest/best (eval_summary)
        header = (*header, "QUALITY")
        rows = [(*row, cell_text(run_quality(r.last_metrics))) for row, r in zip(rows, runs)]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {0, 5, 6, 7, 9, 10}
    for row in (header, *rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    return EXIT_OK


def _resources_cells(r: RunView) -> tuple[str, str]:
    """The peak GPU memory with the mean GPU util ('5.1G 87%') and the peak RSS of a run ('-': not measured)."""
    d = run_resources(r.last_metrics)
    gpu = mb_short(d.get("peak_gpu_mem_mb"))
    if "mean_gpu_util" in d:
        gpu += f" {d['mean_gpu_util']:.0f}%"
    return gpu, mb_short(d.get("peak_rss_mb"))


def run_json(r: RunView) -> dict[str, Any]:
    """Every column of a run as strict JSON (a non-finite number becomes null), with what the tables show
    beside the columns: its health flag, its shown status (`pending`, `cancelling`), its duration and the GAN
    column (`gan`: the last collapse signal and losses of a recipe without a classifier, else null)."""
    return json_safe({**r.to_dict(), "health_flag": r.health_flag, "shown_status": run_status_word(r),
                      "duration_s": r.duration_s, "gan": gan_values(r)})


def _gan_text(r: RunView) -> str:
    """The GAN column: '' for a recipe with a classifier, '-' for a GAN without values yet."""
    values = gan_values(r)
    if values is None:
        return ""
    return fmt_gan(r) or "-"


def _acc_text(r: RunView) -> str:
    if r.last_test_acc is None:
        return "-"
    best = r.best_test_acc if r.best_test_acc is not None else r.last_test_acc
    return f"{r.last_test_acc:.1f}/{best:.1f}"


def _short_dataset(ds: str) -> str:
    return "npz:" + Path(ds[4:]).name if ds.startswith("npz:") else ds


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_show(args: argparse.Namespace, home: Path) -> int:
    require_store(home, args.run)
    with reads(home) as store:  # one snapshot: the run, its history, files and jobs agree
        run = store.find_run(args.run)
        events = store.list_events(run.id)
        artifacts = store.list_artifacts(run.id)
        jobs = store.list_viz_jobs(run.id)
        max_segments = store.setting("max_segments")
    folder = Path(run.run_dir) if run.run_dir else None
    best = best_checkpoint(folder) if folder is not None else None
    if args.json:
        print(json.dumps(json_safe({"run": run.to_dict(), "events": [e.to_dict() for e in events],
                                  "artifacts": [a.to_dict() for a in artifacts],
                                  "viz_jobs": [j.to_dict() for j in jobs], "best": best}), allow_nan=False))
        return EXIT_OK
    out: list[tuple[str, str]] = []
    status = run_status_word(run)
    print(f"run {run.id}  {run.name}  [{status}]")
    out.append(("recipe", f"{run.recipe}    dataset {run.dataset}"))
    dur = run.duration_s
    out.append(("created", f"{_when(run.created_at)}    started {_when(run.started_at)}    ended "
                           f"{_when(run.ended_at)}{f'    ran {_age(dur)}' if dur is not None else ''}"))
    out.append(("progress", f"{run.progress * 100:.0f}%    epoch {run.epoch}/{run.epochs}    step {run.step}"))
    if run.health_flag == "stalled":
        out.append(("health", f"stalled: nothing written since {_when(run.stalled_since)}"))
    elif run.health:
        out.append(("health", f"{run.health_flag or run.status}: {run.health}"))
    if run.last_test_acc is not None or run.last_train_acc is not None:
        out.append(("accuracy", f"test last {_num(run.last_test_acc)} best {_num(run.best_test_acc)}    "
                                f"train {_num(run.last_train_acc)}    images/s {_num(run.images_per_s, 0)}"))
    latest = {k: v for k, v in run.last_metrics.items() if k not in (RESOURCES_KEY, QUALITY_KEY)}
    if latest:
        out.append(("latest", "  ".join(f"{k} {_num(v, 4)}" for k, v in latest.items())))
    if run_resources(run.last_metrics):
        out.append(("resources", summary_line(run_resources(run.last_metrics))))
    for i, line in enumerate(summary_lines(run_quality(run.last_metrics))):  # eval records: latest, best
        out.append(("quality" if i == 0 else "", line))
    if wait_reason(run):
        out.append(("waiting", wait_reason(run).removeprefix("waiting: ")))
    if run.pid is not None:
        where = f"pid {run.pid} on {run.host or '?'}" + (f", GPU {run.gpu}" if run.gpu else "")
        out.append(("process", where + ("" if run.status == "running" else " (ended)")))
    if run.exit_code is not None or run.signal is not None:
        out.append(("exit", f"code {run.exit_code}" if run.signal is None else f"signal {run.signal}"))
    out.append(("queue", f"priority {run.priority}    managed by {run.managed_by}"))
    out.extend(backend_lines(run, max_segments))
    if run.parent_id is not None:
        out.append(("parent", f"run {run.parent_id} ({run.parent_relation} at epoch {run.parent_epoch})"))
    out.append(("git", run.git_commit or "-"))
    if run.tags:
        out.append(("tags", ", ".join(run.tags)))
    if run.notes:
        out.append(("notes", run.notes.replace("\n", "\n" + " " * 15)))
    if folder is not None:
        out.append(("folder", str(folder)))
        out.append(("log", str(folder / "log.txt")))
        out.append(("metrics", str(folder / "metrics.jsonl")))
        ckpts = sorted(p.name for p in (folder / "checkpoints").glob("*.pt")) if folder.is_dir() else []
        out.append(("checkpoints", ", ".join(ckpts) if ckpts else "none yet"))
        if best is not None:
            out.append(("best", f"{best.get('path', 'checkpoints/best.pt')}: epoch {best['epoch']}, "
                                f"{best.get('metric')} {_num(best.get('value'))} ({best.get('mode', 'max')} wins)"))
        samples = [a.path for a in artifacts if a.kind == "samples"]
        if samples:
            out.append(("samples", f"{len(samples)} grids, latest {folder / samples[-1]}"))
    for k, v in out:
        print(f"  {k:<13}{v}")
    if run.error:
        print("  error")
        for line in run.error.strip().splitlines()[-25:]:
            print(f"    {line}")
    if jobs:
        print("  viz jobs")
        for j in jobs:
            print(f"    #{j.id:<4} {j.kind:<13}{j.status:<11}{job_summary(j)}")
    print("  config")
    width = max((len(k) for k in run.config), default=0) + 2  # eval_baseline_ckpt is longer than the old 16
    for k in sorted(run.config):
        print(f"    {k:<{width}}{json.dumps(run.config[k])}")
    print("  history")
    for e in events:
        print(f"    {_when(e.at)}  {e.status:<10}{e.message or ''}")
    return EXIT_OK


def _num(v: Any, digits: int = 2) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-" if v is None else str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
