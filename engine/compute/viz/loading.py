"""Reading a run for a visualization: its checkpoint (models rebuilt from the config it carries), its test
data, its config and its metrics stream. Every problem is a one-line `JobFailed` that names the file and
says what to do, because the person reading it is choosing a run and an epoch in a form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.compute.checkpoint import CheckpointError, load_checkpoint
from engine.compute.data.device_data import DeviceData, to_unit_range
from engine.compute.data.sources import load_splits
from engine.compute.data.splits import DataError, conform
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator, ACGANGConfig, ACGANGenerator
from engine.compute.viz.job import Job, JobFailed
from engine.control import records as kinds
from engine.control.errors import ConfigError
from engine.control.paths import METRICS_FILE
from engine.control.records import read_all
from engine.control.run_dir import read_run_config
from engine.control.viz_spec import VizSpecError, checkpoint_path, missing_checkpoint_message


@dataclass
class LoadedRun:
    """A checkpoint's models in eval mode on the job's device, with what they were trained on."""

    run_dir: Path
    checkpoint: str
    config: dict[str, Any]
    epoch: int
    classes: list[str]
    data_shape: list[int]  # [C, H, W]
    D: ACGANDiscriminator
    G: ACGANGenerator | None

    @property
    def recipe(self) -> str:
        return str(self.config.get("recipe", "?"))

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_run(job: Job, run_dir: Path, checkpoint: str) -> LoadedRun:
    """The models of `run_dir/checkpoint`, cached per job (a report loads each run once)."""
    key = f"run:{run_dir}:{checkpoint}"
    if key in job.cache:
        return job.cache[key]
    if not run_dir.is_dir():
        raise JobFailed(f"run folder {run_dir} does not exist")
    try:
        path = checkpoint_path(run_dir, checkpoint)  # never a file outside the run folder
    except VizSpecError as e:
        raise JobFailed(str(e)) from None
    if not path.is_file():
        raise JobFailed(missing_checkpoint_message(run_dir, checkpoint))
    try:
        state = load_checkpoint(path, map_location="cpu")
    except CheckpointError as e:
        raise JobFailed(str(e)) from None
    cfg = state["config"]
    models = state["models"]
    channels, size = (int(v) for v in state.get("data_shape", [3, 32, 32])[:2])
    classes = [str(c) for c in state.get("classes", [])] or [str(i) for i in range(state.get("num_classes", 10))]
    if "D" not in models:
        raise JobFailed(f"checkpoint {path} holds no discriminator (models: {', '.join(models)})")
    try:
        D = ACGANDiscriminator(ACGANDConfig(width=cfg["width"], in_channels=channels, image_size=size,
                                            num_classes=len(classes), leaky_slope=cfg.get("leaky_slope", 0.01)))
        D.load_state_dict(models["D"])
        G = None
        if "G" in models:
            G = ACGANGenerator(ACGANGConfig(width=cfg["width"], n_z=cfg["n_z"], out_channels=channels))
            G.load_state_dict(models["G"])
    except (KeyError, RuntimeError) as e:
        raise JobFailed(f"checkpoint {path} does not fit the models of its config "
                        f"({' '.join(str(e).split())[:200]})") from None
    dev = job.device
    D = D.to(dev).eval().requires_grad_(False)
    if G is not None:
        G = G.to(dev).eval().requires_grad_(False)
    run = LoadedRun(run_dir, checkpoint, cfg, int(state.get("epoch", 0)), classes, [channels, size, size], D, G)
    job.cache[key] = run
    return run


def load_test_data(job: Job, run: LoadedRun) -> DeviceData:
    """The run's test split, shaped like its training input, on the job's device (cached per data set)."""
    cfg = run.config
    key = f"data:{cfg['dataset']}:{cfg.get('data_root')}:{run.data_shape}"
    if key in job.cache:
        return job.cache[key]
    try:
        splits = load_splits(cfg["dataset"], cfg.get("data_root"), False)
        splits = conform(splits, run.data_shape[0], run.data_shape[1])
    except DataError as e:
        raise JobFailed(f"the test data of run {run.name} cannot be read: {e}") from None
    data = DeviceData(splits, job.device)
    job.cache[key] = data
    return data


def first_test_batch(data: DeviceData, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's `testloader.next()`: the first `batch_size` test images in order, in [-1, 1]."""
    n = min(batch_size, data.num_test)
    return to_unit_range(data.x_test[:n]), data.y_test[:n]


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, validated (engine/control/run_dir.py)."""
    try:
        return read_run_config(run_dir)
    except ConfigError as e:
        raise JobFailed(str(e)) from None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of the run's metrics.jsonl (engine/control/records.py; a cut last line is skipped)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise JobFailed(f"run {run_dir.name} has no metrics.jsonl: it never started")
    return read_all(path)


def epoch_test_accuracy(records: list[dict[str, Any]], epoch: int | None = None) -> dict[str, Any]:
    """Test accuracy from a run's epoch records: at `epoch` (the checkpoint's), the last and the best."""
    by_epoch: dict[int, float] = {}
    for r in records:
        if r.get("kind") == kinds.EPOCH and isinstance(r.get("epoch"), int) and r.get("test_acc") is not None:
            by_epoch[r["epoch"]] = float(r["test_acc"])  # a resumed epoch logged twice: the last one wins
    if not by_epoch:
        return {"epochs": 0, "at_epoch": None, "test_acc": None, "last_test_acc": None, "best_test_acc": None,
                "best_epoch": None}
    last = max(by_epoch)
    best = max(by_epoch, key=lambda e: (by_epoch[e], -e))
    at = epoch if epoch in by_epoch else last
    return {"epochs": len(by_epoch), "at_epoch": at, "test_acc": by_epoch[at], "last_test_acc": by_epoch[last],
            "best_test_acc": by_epoch[best], "best_epoch": best}
