"""How run fields look in the table and the panels: durations, times, rates, progress bars, status colours.

Pure functions returning plain strings or Rich `Text`, so the table can compare a cell's new value with
the old one and update only what changed.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text

if TYPE_CHECKING:
    from store.views import RunView, VizJobView

# Status colours (Rich styles). Kept here rather than in the .tcss because they colour table cells.
STATUS_STYLES: dict[str, str] = {
    "queued": "yellow",
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "bright_black",
    "killed": "magenta",
    "diverged": "dark_orange",
    "stopped": "dark_orange",
    "lost": "red",
}
STATUS_GLYPHS: dict[str, str] = {
    "queued": "…",
    "running": "▶",
    "completed": "✓",
    "failed": "✗",
    "cancelled": "■",
    "killed": "☠",
    "diverged": "↯",
    "stopped": "⊘",
    "lost": "?",
}


def status_text(status: str, queue_pos: int | None = None, cancelling: bool = False) -> Text:
    """`▶ running`, `… queued #2`, `✗ failed`; a running run being cancelled says so."""
    glyph = STATUS_GLYPHS.get(status, "·")
    label = status
    if status == "queued" and queue_pos is not None:
        label = f"queued #{queue_pos}"
    if cancelling and status == "running":
        label = "stopping"
    return Text(f"{glyph} {label}", style=STATUS_STYLES.get(status, ""))


# A health flag beside the status (a rule's warn, a stall): never a status of its own
HEALTH_GLYPH = "⚠"
HEALTH_STYLE = "bold yellow"

# A Slurm run that was submitted but has not started: a `running` row (the claim moved it out of the queue)
# that `ganmgr ls` and `show` call `pending`. Its own colour, so "waiting on the cluster" never reads as
# "training" (cyan) or "in our queue" (yellow).
PENDING_STYLE = "bold dodger_blue1"
PENDING_GLYPH = "◷"


def run_status_word(run: RunView) -> str:
    """The status word the table, `ganmgr ls` and `show` print: the row's status, except `cancelling` for a
    running run asked to stop and `pending` for a Slurm job submitted but not started by the cluster."""
    if run.status == "running" and run.cancel_requested:
        return "cancelling"
    if run.status == "running" and run.backend == "slurm" and run.cluster_state in ("SUBMITTING", "PENDING"):
        return "pending"
    return run.status


def run_status_text(run: RunView, queue_pos: int | None = None) -> Text:
    """status_text for a run row: `◷ pending` for a Slurm job waiting on the cluster, else as status_text;
    a health flag follows it (`▶ running ⚠ stalled`, `✓ completed ⚠ warn`: store.lifecycle.health_flag)."""
    if run_status_word(run) == "pending":
        text = Text(f"{PENDING_GLYPH} pending", style=PENDING_STYLE)
    else:
        text = status_text(run.status, queue_pos, run.cancel_requested)
    flag = run.health_flag
    if flag:
        text.append(f" {HEALTH_GLYPH} {flag}", style=HEALTH_STYLE)
    return text


def wait_reason(run: RunView) -> str:
    """Why a queued local run is not started yet (the supervisor's packing by GPU memory: "waiting: GPU 0 has
    3.1 GB free, run needs 6 GB"); '' when it says nothing."""
    if run.status != "queued" or run.managed_by != "supervisor":
        return ""
    return run.cluster_reason or ""


def cluster_reason(run: RunView) -> str:
    """Why a pending Slurm job waits, in Slurm's words (`Priority`, `Resources`, ...); `submitting` while
    sbatch has not answered; '' when Slurm gives no reason."""
    if run.cluster_state == "SUBMITTING":
        return "submitting"
    reason = run.cluster_reason or ""
    return "" if reason in ("None", "(null)") else reason


def progress_bar(progress: float | None, width: int = 8, style: str = "cyan", thin: bool = False) -> Text:
    """`█████░░░ 62%` with eighth-block resolution (`━━━━━───` when thin: a finished run, drawn calmer);
    empty text when there is no progress to show."""
    if progress is None or not math.isfinite(progress):
        return Text("")
    p = min(max(progress, 0.0), 1.0)
    text = Text()
    if thin:
        full = round(p * width)
        text.append("━" * full, style=style)
        text.append("─" * (width - full), style="bright_black")
    else:
        eighths = round(p * width * 8)
        full, part = divmod(eighths, 8)
        bar = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
        text.append(bar, style=style)
        text.append("░" * (width - len(bar)), style="bright_black")
    text.append(f" {p * 100:3.0f}%")
    return text


def fmt_duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`; empty for None."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def fmt_started(ts: float | None, now: float | None = None) -> str:
    """`14:03` today, `06-12 14:03` this year, `2024-06-12` before."""
    if ts is None:
        return ""
    now = time.time() if now is None else now
    t, n = time.localtime(ts), time.localtime(now)
    if (t.tm_year, t.tm_yday) == (n.tm_year, n.tm_yday):
        return time.strftime("%H:%M", t)
    if t.tm_year == n.tm_year:
        return time.strftime("%m-%d %H:%M", t)
    return time.strftime("%Y-%m-%d", t)


def fmt_rate(value: float | None) -> str:
    """Images per second: `812`, `12.3k`."""
    if value is None or not math.isfinite(value):
        return ""
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def fmt_pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.1f}"


def fmt_number(value: Any) -> str:
    """A metric value for a compact panel: 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def fmt_epoch(epoch: int, epochs: int) -> str:
    return f"{epoch}/{epochs}" if epochs else str(epoch)


def short_dataset(dataset: str) -> str:
    """`npz:/long/path/tiny.npz` as `npz:tiny.npz` for a narrow column."""
    if dataset.startswith("npz:"):
        return "npz:" + dataset[4:].rstrip("/").rsplit("/", 1)[-1]
    return dataset


def short_path(path: object, limit: int = 32) -> str:
    """A path for a title bar: the home folder as ~, cut from the left (the end says the most)."""
    import os

    text = str(path)
    home = os.path.expanduser("~")
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        text = "~" + text[len(home):]
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def log_line(text: str, limit: int = 400) -> str:
    """A log line for the log panel: control characters out, spacing kept (the epoch table is aligned)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text.replace("\t", "    ")).rstrip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def one_line(text: str, limit: int = 200) -> str:
    """A log or error line made safe for a one-line cell: control characters out, cut to `limit`."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text.replace("\t", " "))
    clean = " ".join(clean.split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def pack_items(items: list[Text], width: int, gap: int = 2) -> Text:
    """Items on as few lines as fit `width`, never splitting an item (legends, key bars)."""
    out = Text()
    used = 0
    for item in items:
        n = cell_len(item.plain)
        if used and used + gap + n > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(" " * gap)
            used += gap
        out.append_text(item)
        used += n
    return out


def job_summary(j: VizJobView) -> str:
    """One line: the message while running, the first output (or the error) when done."""
    if j.status == "completed":
        first = j.outputs[0] if j.outputs else ""
        return f"{len(j.outputs)} file(s): {first}" + (" ..." if len(j.outputs) > 1 else "")
    if j.status == "running":
        pct = f"{(j.progress or 0) * 100:3.0f}%  " if j.progress is not None else ""
        return pct + (j.message or "")
    if j.status == "queued":
        return f"{j.checkpoint or ''}".strip()
    return (j.message or j.error or "").splitlines()[0] if (j.message or j.error) else ""


def backend_lines(run: RunView, store_max_segments: int | None = None) -> list[tuple[str, str]]:
    """`show` and the run screen: where a cluster run runs, its options, its current job and state, and its segments."""
    if run.backend == "local":
        return [("backend", "local")]
    opts = dict(run.backend_options)
    extra = opts.pop("extra", None) or []
    words = "  ".join(f"{k}={v}" for k, v in opts.items()) + ("  extra=" + " ".join(extra) if extra else "")
    out = [("backend", f"{run.backend}    {words}".rstrip())]
    if run.cluster_job_id:
        state = run.cluster_state or "?"
        if run.cluster_reason and run.cluster_reason not in ("None", "(null)"):
            state += f" ({run.cluster_reason})"
        out.append(("cluster job", f"{run.cluster_job_id}    {state}"))
    limit: Any = run.max_segments
    if limit is None:
        limit = f"{store_max_segments or 20} (the store's max_segments)"
    out.append(("segments", f"{run.segments} of at most {limit}    (each listed in the history)"))
    if run.sweep:
        out.append(("sweep", run.sweep))
    return out


def gan_values(run: RunView) -> dict[str, float] | None:
    """What the GAN column shows for a recipe without a classifier (mlp-gan, lab5-gan, dcgan): its last
    epoch signal (the mode-collapse signal, `diversity`) and the last window's losses (`d_loss`, `g_loss`),
    from the row's `last_metrics` (engine.control.follow folds them there). None for a recipe with a
    classifier (its test accuracy says more) or an unknown one; {} before any value arrived."""
    from engine.control.config import RECIPES

    spec = RECIPES.get(run.recipe)
    if spec is None or spec.has_classifier:
        return None
    out: dict[str, float] = {}
    for name in (*spec.epoch_metrics, *spec.loss_metrics):
        v = run.last_metrics.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[name] = float(v)
    return out


GAN_SHORT = {"diversity": "div", "class_spread": "spread", "d_loss": "D", "g_loss": "G"}


def fmt_gan(run: RunView) -> str:
    """`div 0.42 D 1.21 G 0.83` for the GAN column ('' for a recipe with a classifier or no values yet)."""
    values = gan_values(run)
    if not values:
        return ""
    return " ".join(f"{GAN_SHORT.get(k, k)} {v:.3g}" for k, v in values.items())


def fmt_tags(tags: tuple[str, ...] | list[str]) -> str:
    """Tags for a table cell: comma-separated, as `ganmgr tag` and the filter `tag:x` name them."""
    return ",".join(tags)


def header_counts(runs: dict[str, int], viz: dict[str, int]) -> Text:
    """`▶ 2 running (1 viz)  … 3 queued`: the runs screen's header. A visualization job is work this store is
    doing too, so it counts (and says so), or the header reads "0 running" while a report renders."""
    t = Text()
    for word, glyph, style in (("running", "▶", "cyan"), ("queued", "…", "yellow")):
        n_viz = viz.get(word, 0)
        if t:
            t.append("  ")
        t.append(f"{glyph} {runs.get(word, 0) + n_viz} {word}", style=style)
        if n_viz:
            t.append(f" ({n_viz} viz)", style=style)
    return t
