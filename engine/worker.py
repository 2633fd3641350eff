"""`python -m engine.worker RUN_DIR`: train the run described by RUN_DIR/config.json.

The worker writes only files inside RUN_DIR (metrics.jsonl, samples, checkpoints) and needs no database,
so it also runs by hand or on another node. Its last metrics record is always `{"kind": "end", ...}`
unless the process is killed outright. Exit codes: 0 completed, 1 failed, 2 bad config or data,
3 diverged, 4 stopped by a health rule (after checkpointing), 128+N stopped by signal N (after
checkpointing).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from pathlib import Path

from engine.control.config import recipe_spec
from engine.control.errors import ConfigError
from engine.control.paths import METRICS_FILE
from engine.control.records import MetricsWriter  # torch-free
from engine.control.run_dir import read_run_config

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_STOPPED = 0, 1, 2, 3, 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the run directory holding config.json")
    args = parser.parse_args(argv)
    os.umask(0o077)  # everything the run writes is readable by its owner only
    run_dir = Path(args.run_dir).resolve()
    if not run_dir.is_dir():
        print(f"worker: error: run directory {run_dir} does not exist", file=sys.stderr)
        return EXIT_BAD_INPUT

    # a stop asked for while torch and the data load is remembered and honoured before training starts
    early_stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early_stop.append(signum))

    metrics = MetricsWriter(run_dir / METRICS_FILE, who="worker")
    end = metrics.exit_with

    try:
        cfg = read_run_config(run_dir)
    except ConfigError as e:
        print(f"worker: error: {e}", file=sys.stderr)
        return end("failed", EXIT_BAD_INPUT, str(e))

    # torch is imported only past this point
    from torch.cuda import OutOfMemoryError

    from engine.compute.checkpoint import CheckpointError
    from engine.compute.data.splits import DataError
    from engine.compute.device import DeviceError
    from engine.compute.recipes.base import Diverged
    from engine.compute.resources import oom_fields, sampler_for_run

    trainer = None
    try:
        module = importlib.import_module(recipe_spec(cfg["recipe"]).module)
        trainer = module.TRAINER(cfg, run_dir, log=lambda msg: print(msg, flush=True))
        trainer.early_stop = early_stop
        # the resources records (engine/compute/resources.py): a thread, stopped before any end record
        with sampler_for_run(cfg, metrics.write, trainer, log=lambda msg: print(msg, flush=True)):
            status = trainer.run(metrics)
    except (DataError, DeviceError, ConfigError) as e:
        print(f"worker: error: {e}", file=sys.stderr)
        return end("failed", EXIT_BAD_INPUT, str(e))
    except Diverged as e:
        print(f"worker: diverged: {e}", file=sys.stderr)
        return end("diverged", EXIT_DIVERGED, str(e), **e.record())  # the step, the healthy checkpoint
    except CheckpointError as e:
        print(f"worker: error: {e}", file=sys.stderr)
        return end("failed", EXIT_FAILED, str(e))
    except OutOfMemoryError as e:  # follow.py turns `oom` into "out of GPU memory (peak N MB of M)" + a hint
        traceback.print_exc()
        return end("failed", EXIT_FAILED, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                   **oom_fields(trainer))
    except Exception as e:  # the traceback goes to log.txt; the record keeps the last line
        traceback.print_exc()
        return end("failed", EXIT_FAILED, f"{type(e).__name__}: {e}")
    if status == "stopped":  # a health rule: its message, and the checkpoint from before its streak
        stop = trainer.health.stop
        return end("stopped", EXIT_STOPPED, stop.message if stop else "stopped by a health rule",
                   rule=stop.rule if stop else None, epoch=trainer.epoch, step=trainer.global_step,
                   healthy_checkpoint=trainer.health.stop_healthy)
    if status == "cancelled":
        sig = trainer.stop_signal or signal.SIGTERM
        return end("cancelled", 128 + sig, stop_reason(sig))
    return end("completed", EXIT_OK)


def stop_reason(sig: int) -> str:
    """The end record's `error` for a stop by signal: SIGINT is a terminal's Ctrl-C (the user), any other
    signal is named by its number (SIGTERM: a cancel, a batch system, `kill`)."""
    if sig == signal.SIGINT:
        return "interrupted by the user (SIGINT)"
    return f"stopped by signal {sig}"


if __name__ == "__main__":
    sys.exit(main())
