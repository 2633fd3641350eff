"""`python -m engine.compute.viz JOB_DIR`: run the visualization job described by JOB_DIR/job.json.

Like the training worker it needs no database and writes only files: its outputs (each PNG/HTML written
atomically) and JOB_DIR/metrics.jsonl with a `start` record, one `artifact` record per file, a `result`
record with the numbers, and a last `end` record (`completed`, `failed` with `error`, or `cancelled`).
Exit codes: 0 completed, 1 failed (e.g. the run has no such checkpoint), 2 bad job.json or parameters,
128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from engine.control.paths import METRICS_FILE
from engine.control.records import START, MetricsWriter
from engine.control.run_dir import read_job
from engine.control.viz_spec import VizSpecError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    umask = os.umask(0o077)  # everything the job writes is readable by its owner only
    torch = sys.modules.get("torch")  # imported already: we run in-process (tests), not as a worker
    threads = torch.get_num_threads() if torch is not None else None
    try:
        return _main(argv)
    finally:  # in-process: leave the caller's signal handlers, umask and torch threads as they were
        os.umask(umask)
        if torch is not None:
            torch.set_num_threads(threads)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.compute.viz", description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", help="the job folder holding job.json")
    args = parser.parse_args(argv)
    job_dir = Path(args.job_dir).resolve()
    if not job_dir.is_dir():
        print(f"viz: error: job folder {job_dir} does not exist", file=sys.stderr)
        return EXIT_BAD_INPUT

    stop: list[int] = []

    def on_signal(signum, _frame):
        stop.append(signum)
        if armed:
            from engine.compute.viz.job import Cancelled

            raise Cancelled(signum)

    armed = False
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    metrics = MetricsWriter(job_dir / METRICS_FILE, who="viz")
    end = metrics.exit_with

    try:
        spec = read_job(job_dir)
    except VizSpecError as e:
        print(f"viz: error: {e}", file=sys.stderr)
        return end("failed", EXIT_BAD_INPUT, str(e))

    # torch is imported only past this point
    from engine.compute.device import DeviceError
    from engine.compute.viz import run_kind
    from engine.compute.viz.job import Cancelled, Job, JobFailed

    base = spec["baseline_run_dir"]
    job = Job(kind=spec["kind"], params=spec["params"], run_dir=Path(spec["run_dir"]),
              checkpoint=spec["checkpoint"], baseline_run_dir=Path(base) if base else None,
              baseline_checkpoint=spec["baseline_checkpoint"], out_dir=job_dir, root_dir=job_dir, metrics=metrics,
              inception_weights=spec["inception_weights"], inception_uncalibrated=spec["inception_uncalibrated"],
              log=lambda msg: print(msg, flush=True))
    armed = True
    try:
        if stop:
            raise Cancelled(stop[0])
        import torch

        if job.params.get("threads"):
            torch.set_num_threads(job.params["threads"])
        torch.manual_seed(job.params.get("seed", 0))
        metrics.write({"kind": START, "viz": job.kind, "time": time.time(), "pid": os.getpid(),
                       "host": socket.gethostname(), "device": str(job.device), "run_dir": str(job.run_dir),
                       "checkpoint": job.checkpoint, "baseline_run_dir": base,
                       "baseline_checkpoint": spec["baseline_checkpoint"], "params": job.params})
        job.log(f"viz {job.kind} on {job.run_dir.name} ({job.checkpoint}), device {job.device}")
        started = time.perf_counter()
        result = run_kind(job)
        result["seconds"] = round(time.perf_counter() - started, 3)
        job.write_result(result)
        failed = result.get("failed_parts")
        armed = False
    except Cancelled as e:
        armed = False
        print(f"viz: {e}", file=sys.stderr)
        return end("cancelled", 128 + e.signum, str(e))
    except DeviceError as e:
        armed = False
        print(f"viz: error: {e}", file=sys.stderr)
        return end("failed", EXIT_BAD_INPUT, str(e))
    except JobFailed as e:
        armed = False
        print(f"viz: error: {e}", file=sys.stderr)
        return end("failed", EXIT_FAILED, str(e))
    except Exception as e:  # the traceback goes to the log; the record keeps the last line
        armed = False
        traceback.print_exc()
        return end("failed", EXIT_FAILED, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    if failed:
        summary = "; ".join(f"{k}: {v}" for k, v in failed.items())
        print(f"viz: error: parts failed: {summary}", file=sys.stderr)
        return end("failed", EXIT_FAILED, f"{len(failed)} part(s) failed (the rest is written): {summary}")
    job.log(f"viz {job.kind}: completed in {result['seconds']:.1f}s; outputs: "
            + ", ".join(str(p.relative_to(job_dir)) for p in job.outputs))
    return end("completed", EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
