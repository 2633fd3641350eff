"""`python -m bench.tui charts`: opening a run with a million-line metrics.jsonl, compare on it, and the ratio
to TensorBoard's loader (issue 16). Numbers, no asserts.

- A realistic `acgan-wgangp` file is generated (a start record; per epoch 40 train windows with the eight
  train metrics, 20 progress records, 2 resources samples, the epoch record with its means, accuracies and
  `class_spread`, a samples artifact; the end record): `--lines` lines, 1,000,000 by default.
- open: the real app (headless, `App.run_test`) pushes the run screen of that run; CPU seconds (user+sys of
  the process) and wall time until every record is charted and the last draw is done, the number of
  chart draws on the way, and the process's peak RSS.
- compare: the compare screen on that run and a 10,000-line one; CPU until loaded, the process's peak RSS,
  and the UI-thread time of each key (m, e, s, M ...: the action, its draw included).
Both run in a child process per measurement, for today's code and for the code before issue 16 (`--base`,
default `e76187a`: a `git archive` copy, same interpreter, same store and files), taking turns (`--reps`
rounds), so a loaded machine slows both.
- tensorboard: the same scalars (every train metric of every train window, the epoch records' values) in a
  TensorBoard event file written by tensorboard's own writer; CPU of `EventAccumulator.Reload()` and
  `Scalars(tag)` for every tag, against CPU of today's column reader building the run screen's series
  from the JSON-lines file (in this process).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.code_copy import BEFORE_ISSUE_16, code_copy
from tests.tui_helpers import train_record

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class", "gen_source", "gen_class")
WINDOWS, PROGRESS, RESOURCES, STEPS_PER_WINDOW = 40, 20, 2, 10


# ------------------------------------------------------------------------------------------ the file


def write_acgan_metrics(path: Path, lines: int, seed: int = 0) -> int:
    """A realistic acgan-wgangp metrics.jsonl of about `lines` lines; returns the records written."""
    rng = random.Random(seed)
    per_epoch = WINDOWS + PROGRESS + RESOURCES + 2
    epochs = max(1, (lines - 2) // per_epoch)
    steps_per_epoch = WINDOWS * STEPS_PER_WINDOW
    t0 = 1.76e9
    n = 0
    with open(path, "wb") as f:
        def put(rec: dict[str, Any]) -> None:
            nonlocal n
            f.write(orjson.dumps(rec) + b"\n")
            n += 1

        put({"kind": "start", "time": t0, "pid": 4242, "host": "node1", "epoch": 0, "step": 0, "resumed": False,
             "epochs": epochs, "forked_from": None, "steps_per_epoch": steps_per_epoch, "device": "cuda:0",
             "precision": "bf16", "compile": False, "channels_last": True, "torch": "2.14.0",
             "params": {"generator": 2_451_075, "discriminator": 1_622_347}, "train_images": 50000,
             "test_images": 10000})
        step = 0
        for e in range(1, epochs + 1):
            sums = dict.fromkeys(LOSSES, 0.0)
            for w in range(WINDOWS):
                step += STEPS_PER_WINDOW
                rec = train_record(step, e, rng, scale=4000.0)
                if rng.random() < 1e-4:
                    rec["gp"] = 40.0  # a rare spike the charts must still show
                for k in LOSSES:
                    sums[k] += rec[k]
                put(rec)
                if w % 2 == 0:
                    put({"kind": "progress", "epoch": e, "step": step + 5, "steps_per_epoch": steps_per_epoch,
                         "time": t0 + step * 0.01, "images_per_s": 12_000 + 500 * rng.random()})
                if w % 20 == 10:
                    put({"kind": "resources", "t": t0 + step * 0.01, "cpu_percent": 97.5, "rss_mb": 3100.0,
                         "gpu": [{"index": 0, "util_percent": 96.0, "mem_used_mb": 21000.0,
                                  "mem_total_mb": 143771.0}], "proc_gpu_mem_mb": 20480.0})
            ep = {"kind": "epoch", "epoch": e, "step": step, "train_acc": min(99.0, 20 + e * 0.01),
                  "test_acc": min(95.0, 15 + e * 0.009), "seconds": 4.1, "images_per_s": 12_400.0, "lr": 1e-4,
                  "class_spread": 0.8 + 0.1 * rng.random()}
            for k in LOSSES:
                if k not in ("gen_source", "gen_class"):
                    ep[f"mean_{k}"] = sums[k] / WINDOWS
            put(ep)
            put({"kind": "artifact", "path": f"samples/epoch_{e:03d}.png", "what": "samples", "epoch": e})
        put({"kind": "end", "status": "completed", "time": t0 + step * 0.01})
    return n


# ------------------------------------------------------------------------------ the child processes

CHILD = r'''
import asyncio, json, resource, sys, time
from pathlib import Path
from store import runs as store_runs
from tui.app import GanmgrApp

mode, home, big, small, expected = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def main():
    out = {}
    app = GanmgrApp(home, welcome=False, reconcile=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        out["rss_before_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        run = store_runs.get_run(home, big)
        c0, t0 = cpu(), time.perf_counter()
        if mode == "open":
            from tui.screens.run_detail import RunScreen
            screen = RunScreen(run)
            app.push_screen(screen)
            chart = None
            while True:
                await pilot.pause(0.05)
                if chart is None:
                    try:
                        chart = screen.query_one("#loss-chart")
                    except Exception:
                        continue
                if (screen.charts_data.records_seen >= expected and not screen._pending and not screen._dirty
                        and chart.draws):
                    break
                if time.perf_counter() - t0 > 900:
                    raise SystemExit("open: timed out")
            out["cpu_s"], out["wall_s"] = cpu() - c0, time.perf_counter() - t0
            out["draws"] = chart.draws
            out["points"] = len(screen.charts_data.loss_series["step"]["gp"])
        else:
            from tui.screens.compare import CompareScreen
            screen = CompareScreen([run, store_runs.get_run(home, small)])
            app.push_screen(screen)
            while screen.metric is None:
                await pilot.pause(0.05)
                if time.perf_counter() - t0 > 900:
                    raise SystemExit("compare: timed out")
            out["cpu_s"], out["wall_s"] = cpu() - c0, time.perf_counter() - t0
            keys = [("m", screen.action_metric, (1,)), ("e", screen.action_toggle_axis, ()),
                    ("s", screen.action_toggle_smooth, ()), ("M", screen.action_metric, (-1,)),
                    ("e", screen.action_toggle_axis, ()), ("s", screen.action_toggle_smooth, ())]
            from textual_plotext import PlotextPlot
            plot = screen.query_one("#compare-chart").query_one(PlotextPlot)
            per_key = []
            for name, fn, args in keys[: int(sys.argv[6])]:
                t = time.perf_counter()
                fn(*args)
                plot.render()  # plotext builds the plot when painted: the same work, done here to time it
                per_key.append(time.perf_counter() - t)
                await pilot.pause(0.05)
            out["key_s"] = per_key
        out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))

asyncio.run(main())
'''


def child(code_root: Path, mode: str, home: Path, big: int, small: int, expected: int, keys: int) -> dict:
    env = {**os.environ, "GANMGR_CACHE": str(Path(tempfile.gettempdir()) / "gcache")}
    env.pop("DISPLAY", None)
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(home), str(big), str(small), str(expected),
                          str(keys)], cwd=code_root, capture_output=True, text=True, env=env, timeout=1800)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{mode} in {code_root} failed: {out.stderr[-2000:]}")


# -------------------------------------------------------------------------------------- tensorboard


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def column_reader_cpu(path: Path) -> tuple[float, int]:
    """CPU of today's run-screen data path on `path`: the one reader (orjson) slice by slice, the charts'
    columns picked per slice and added to the bounded series; returns (seconds, scalars charted)."""
    from engine.control.config import RECIPES
    from engine.control.records import PROGRESS, MetricsTail
    from tui.charts.series import RunCharts

    spec = RECIPES["acgan-wgangp"]
    charts = RunCharts(losses=spec.loss_metrics, probes=spec.probe_metrics())
    c0 = cpu_now()
    tail = MetricsTail(path, latest_only=(PROGRESS,))  # as the run screen's follower reads
    added = 0
    while True:
        before = tail.offset
        records = tail.read_new()
        added += charts.extend(charts.batch(records), len(records))
        if tail.offset == before:
            break
    return cpu_now() - c0, added


def write_event_file(path: Path, logdir: Path) -> int:
    """Every train window's scalars (its eight metrics at its step) and every epoch record's numbers (at its
    epoch) as TensorBoard scalars, one event per record, written by tensorboard's EventFileWriter."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(logdir))
    n = 0
    with open(path, "rb") as f:
        for line in f:
            rec = orjson.loads(line)
            kind = rec.get("kind")
            if kind == "train":
                x, keys = rec["step"], [*LOSSES, "acc"]
            elif kind == "epoch":
                x, keys = rec["epoch"], [k for k in rec if k not in ("kind", "epoch", "step")]
            else:
                continue
            values = [summary_pb2.Summary.Value(tag=f"{kind}/{k}", simple_value=float(rec[k])) for k in keys]
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(x),
                                             summary=summary_pb2.Summary(value=values)))
            n += len(values)
    writer.close()
    return n


def tensorboard_cpu(logdir: Path) -> tuple[float, int]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    c0 = cpu_now()
    acc = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})  # 0: keep every scalar
    acc.Reload()
    n = sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    return cpu_now() - c0, n


# ----------------------------------------------------------------------------------------------- main


def bench_charts(lines: int, reps: int, tb_lines: int = 200_000, old_compare_keys: int = 3,
                 base: str = BEFORE_ISSUE_16) -> None:
    from tests.tui_helpers import make_run

    tmp = Path(tempfile.mkdtemp(prefix="ganmgr-charts-"))
    home = tmp / "store"
    big = make_run(home, "completed", name="million", epochs=4, epoch=4)
    small = make_run(home, "completed", name="small", epochs=4, epoch=4)
    t = time.perf_counter()
    n_big = write_acgan_metrics(Path(big.run_dir) / "metrics.jsonl", lines)
    write_acgan_metrics(Path(small.run_dir) / "metrics.jsonl", 10_000, seed=1)
    size_mb = (Path(big.run_dir) / "metrics.jsonl").stat().st_size / 1e6
    print(f"charts   ({n_big:,} records, {size_mb:.0f} MB acgan-wgangp metrics.jsonl, written in "
          f"{time.perf_counter() - t:.0f} s; {reps} interleaved rounds, today vs {base})")
    old = code_copy(tmp / "base", base)
    res: dict[tuple[str, str], list[dict]] = {}
    for _ in range(reps):
        for label, root in (("today", ROOT), (base, old)):
            res.setdefault(("open", label), []).append(child(root, "open", home, big.id, small.id, n_big, 0))
            keys = 6 if label == "today" else old_compare_keys
            res.setdefault(("compare", label), []).append(
                child(root, "compare", home, big.id, small.id, n_big, keys))

    def med(mode: str, label: str, key: str) -> float:
        return statistics.median(r[key] for r in res[(mode, label)])

    for label in ("today", base):
        print(f"  open a run, {label:<7}  CPU {med('open', label, 'cpu_s'):7.2f} s   wall {med('open', label, 'wall_s'):6.1f} s"
              f"   draws {med('open', label, 'draws'):4.0f}   peak RSS {med('open', label, 'rss_peak_mb'):6.0f} MB "
              f"(app alone {med('open', label, 'rss_before_mb'):.0f} MB)")
    print(f"  open a run: {base} / today CPU = {med('open', base, 'cpu_s') / med('open', 'today', 'cpu_s'):.1f}x "
          f"(target >= 5x); today's peak RSS {med('open', 'today', 'rss_peak_mb'):.0f} MB (target <= 250 MB)")
    for label in ("today", base):
        keys = [k for r in res[("compare", label)] for k in r["key_s"]]
        print(f"  compare {n_big:,} + 10k lines, {label:<7}  load CPU {med('compare', label, 'cpu_s'):6.2f} s   "
              f"peak RSS {med('compare', label, 'rss_peak_mb'):6.0f} MB   per key median "
              f"{statistics.median(keys) * 1000:7.1f} ms, max {max(keys) * 1000:7.1f} ms ({len(keys)} keys)")
    print("  compare targets: <= 250 MB, <= 50 ms per key after load")

    logdir = tmp / "tb"
    t = time.perf_counter()
    tb_file = tmp / "tb-metrics.jsonl"  # tensorboard's writer takes ~40 us a scalar: a shorter file of the same mix
    tb_records = write_acgan_metrics(tb_file, tb_lines)
    n_scalars = write_event_file(tb_file, logdir)
    print(f"tensorboard  ({tb_records:,} records; {n_scalars:,} scalars written with tensorboard's "
          f"EventFileWriter in {time.perf_counter() - t:.0f} s)")
    ours, tb = [], []
    for _ in range(reps):
        ours.append(column_reader_cpu(tb_file))
        tb.append(tensorboard_cpu(logdir))
    o, b = statistics.median(c for c, _ in ours), statistics.median(c for c, _ in tb)
    print(f"  ganmgr's column reader (the file -> every chart series)   CPU {o:6.2f} s ({ours[0][1]:,} points)")
    print(f"  EventAccumulator.Reload + Scalars(tag) for every tag      CPU {b:6.2f} s ({tb[0][1]:,} scalars)")
    print(f"  TensorBoard / ganmgr = {b / o:.1f}x (target >= 10x)")
