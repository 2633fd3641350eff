"""Small builders shared by the tests: tiny data sets and run folders for real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.control.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_npz(path: Path, n_train: int = 256, n_test: int = 128, channels: int = 3, size: int = 32,
             seed: int = 0) -> Path:
    """A small slice of the synthetic set as an npz, so a test epoch is a few steps."""
    from engine.compute.data import make_synthetic

    s = make_synthetic(n_train=n_train, n_test=n_test, seed=seed, channels=channels, size=size)
    np.savez(path, x_train=s.x_train, y_train=s.y_train.astype(np.uint8), x_test=s.x_test,
             y_test=s.y_test.astype(np.uint8))
    return path


def make_run_dir(base: Path, recipe: str, *assignments: str) -> Path:
    run_dir = base / "run"
    for sub in ("", "samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(recipe, assignments=list(assignments))
    (run_dir / "config.json").write_text(json.dumps(cfg))
    return run_dir


def worker_cmd(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "engine.worker", str(run_dir)]


def run_worker(run_dir: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(worker_cmd(run_dir), cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in out if kind is None or r["kind"] == kind]


def live_records(run_dir: Path, kind: str) -> list[dict]:
    """Like `records`, for a file a running job is still writing: no file yet is no records, and a line
    still being written is skipped."""
    path = run_dir / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("kind") == kind:
            out.append(rec)
    return out
