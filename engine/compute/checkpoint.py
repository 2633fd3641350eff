"""Checkpoints: one dict per file, written atomically, read back with weights_only=True only.

A checkpoint carries the run's config, so a visualization job rebuilds the models from the file alone.
An interrupted write (kill, full disk) leaves the previous file in place: we write a temp file in the same
folder, fsync it, and rename it over the old one.

`keep_best` keeps `checkpoints/best.pt`: the model weights of the epoch whose record has the best value of
the run's `best_metric` (config), with a `best` entry saying which; each new best is announced by an
`artifact` record (`what`: "best") in metrics.jsonl.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from engine.control.config import best_direction
from engine.control.paths import is_disk_full, write_bytes_atomic
from engine.control.records import ARTIFACT, BEST_WHAT

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    state = {"format": FORMAT, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        write_bytes_atomic(path, buf.getbuffer())
    except OSError as e:
        if is_disk_full(e):
            raise CheckpointError(f"disk full while writing {path}; the previous checkpoint is kept") from e
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in _detail(e).lower():  # bytes that are no pickle it knows ("Unsupported operand 110")
            raise CheckpointError(f"checkpoint {path} is unreadable (not a checkpoint: "
                                  f"{_detail(e)})") from None
        # the weights-only unpickler refused a global the file names (a function it would call)
        raise CheckpointError(f"checkpoint {path} is refused: it holds more than tensors and plain data "
                              f"({_detail(e)}); ganmgr loads checkpoints as weights only and never runs code "
                              f"from them, so a damaged or untrusted file cannot be used") from None
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {_detail(e)})") from None
    if not isinstance(state, dict) or "models" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a ganmgr checkpoint")
    if state.get("format", 0) > FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}; this ganmgr reads up to {FORMAT}")
    return state


# torch's lines that are advice, not facts about the file: never repeated (one of them says that
# weights_only=False "will likely succeed", which for a file just refused as unsafe is dangerous advice)
_ADVICE = re.compile(r"weights_only|trusted source|documentation|file an issue|load failed|"
                     r"high likelihood|can happen if", re.IGNORECASE)


def _detail(e: BaseException) -> str:
    """What torch said about the file, without its advice: the first factual line (sentence), cut short."""
    for line in str(e).splitlines():
        facts = [s for s in re.split(r"(?<=\.)\s+", line.strip()) if s and not _ADVICE.search(s)]
        if facts:
            return " ".join(facts[:1])[:200]
    return "corrupt"


# --------------------------------------------------------------------------------- the best checkpoint

BEST_FILE = "best.pt"


class _TrainerLike(Protocol):
    """What keep_best reads of a Trainer (engine/compute/recipes/base.py), named here to avoid a cycle."""

    cfg: dict[str, Any]
    run_dir: Path
    ckpt_dir: Path
    metrics: Any  # a MetricsWriter

    def model_state(self) -> dict[str, Any]: ...


class BestKeeper:
    """The best value of `best_metric` seen so far, and the writer of checkpoints/best.pt.

    After a resume the best so far is read back from best.pt itself (once), so a resumed run only replaces
    it with a better epoch; a best.pt kept under another metric does not count.
    """

    def __init__(self, cfg: dict[str, Any], ckpt_dir: Path) -> None:
        self.metric: str | None = cfg.get("best_metric")
        self.direction = best_direction(self.metric, cfg.get("best_mode", "auto")) if self.metric else "max"
        self.path = ckpt_dir / BEST_FILE
        self.value: float | None = None
        self._read_back = False

    def _recall(self) -> None:
        self._read_back = True
        if not self.path.is_file():
            return
        try:
            best = load_checkpoint(self.path).get("best")
        except CheckpointError:
            return  # unreadable: the next epoch with a value replaces it
        if isinstance(best, dict) and best.get("metric") == self.metric and _finite(best.get("value")):
            self.value = float(best["value"])

    def improves(self, value: float) -> bool:
        if self.value is None:
            return True
        return value > self.value if self.direction == "max" else value < self.value

    def offer(self, rec: dict[str, Any], state: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Write best.pt when `rec` (an epoch record) beats the best so far; returns what was kept, or None."""
        if not self.metric:
            return None
        value = rec.get(self.metric)
        if not _finite(value):
            return None
        if not self._read_back:
            self._recall()
        if not self.improves(float(value)):
            return None
        best = {"metric": self.metric, "value": float(value), "epoch": int(rec["epoch"]), "mode": self.direction}
        save_checkpoint(self.path, {**state(), "best": best})
        self.value = float(value)
        return best


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def keep_best(trainer: _TrainerLike, rec: dict[str, Any]) -> None:
    """The trainer's epoch-end hook: keep best.pt by the run's best_metric and record it in metrics.jsonl."""
    keeper = trainer.__dict__.get("_best_keeper")
    if keeper is None:
        keeper = trainer.__dict__["_best_keeper"] = BestKeeper(trainer.cfg, trainer.ckpt_dir)
    best = keeper.offer(rec, trainer.model_state)
    if best is not None:
        trainer.metrics.write({"kind": ARTIFACT, "what": BEST_WHAT,
                               "path": keeper.path.relative_to(trainer.run_dir).as_posix(), **best})
