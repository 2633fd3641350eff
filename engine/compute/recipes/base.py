"""The run loop every recipe shares: epochs, metric windows, test accuracy, checkpoints, signals.

A recipe supplies the models, the optimizers and `train_step`, which returns the step's metric values as
one device tensor (no host sync). The loop adds them to device accumulators and reads them only when a
train window closes (after `log_every` steps or `log_seconds` seconds, whichever comes first, judged by a
host clock read, and at every epoch end), so a training step never waits for the GPU. Between windows
it writes a `progress` record (host counters only) at most once a second.

Divergence is caught at the step it happens without a per-step read: each step adds one to a device
counter while the window's sums are still finite, so at window close the first non-finite step is the
window's first step plus that count. Nothing is checkpointed after it, and the `Diverged` error names it
and the healthy checkpoint. Everything needed to continue a run exactly — models, optimizers, RNG states,
the epoch's order and position, partial accumulators — goes into `checkpoints/last.pt` at every epoch end
and when a stop is requested.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.compute.checkpoint import CheckpointError, keep_best, load_checkpoint, save_checkpoint
from engine.compute.data.device_data import DeviceData
from engine.compute.data.sources import load_splits
from engine.compute.data.splits import Splits, conform
from engine.compute.device import Runtime, make_generator, setup_runtime
from engine.compute.evaluation import evaluate_epoch
from engine.compute.health import HealthWatch
from engine.control.config import EVAL_KEYS, HEALTH_KEYS, RecipeSpec, recipe_spec
from engine.control.records import ARTIFACT, EPOCH, PROGRESS, START, TRAIN, MetricsWriter

# runtime keys that may differ between a checkpoint and the config it resumes under
RUNTIME_KEYS = frozenset({"epochs", "device", "precision", "compile", "threads", "log_every", "log_seconds",
                          "keep_every", "name", "data_root", "download", "deterministic", "best_metric", "best_mode"})
RUNTIME_KEYS |= HEALTH_KEYS  # the health rules' actions and bounds (engine/control/config.py)
RUNTIME_KEYS |= EVAL_KEYS  # evaluation reads the models, never trains them (engine/compute/evaluation.py)
LAST_CHECKPOINT = "checkpoints/last.pt"


class Diverged(RuntimeError):
    """A non-finite loss or weight: the run stops without overwriting the last good checkpoint.

    `step` and `epoch` name where it happened (step None when only an epoch-end check saw it); `healthy`
    is the checkpoint to resume or fork from (`{"path", "epoch", "step"}`), None when the run has none.
    """

    def __init__(self, message: str, *, step: int | None = None, epoch: int | None = None,
                 healthy: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.healthy = healthy

    def record(self) -> dict[str, Any]:
        """The fields the `end` record carries beside status and error."""
        return {"step": self.step, "epoch": self.epoch, "healthy_checkpoint": self.healthy}


class Trainer:
    """Base class; subclasses set `metric_names` and implement build/train_step/model dicts."""

    spec: RecipeSpec
    input_channels: int | None = 3  # what the models take; data is conformed to it
    input_size: int | None = 32
    # torch.compile settings for compile=true (the benchmark overrides them to try others)
    compile_backend: str | Callable = "inductor"
    compile_mode: str | None = None
    # Runtime fields to replace after setup_runtime (the CPU tests of the GPU paths, the switch benchmark)
    runtime_overrides: dict[str, Any] | None = None
    # Seconds between progress records (0: none), and the device-side first-bad-step counter: on in every
    # run; the speed benchmark turns both off (with log_seconds=0) to price them.
    progress_seconds: float = 1.0
    watch_steps: bool = True

    def __init__(self, cfg: dict[str, Any], run_dir: Path, *, log=print):
        self.cfg = cfg
        self.run_dir = run_dir
        self.log = log
        self.spec = recipe_spec(cfg["recipe"])
        self.metric_names: tuple[str, ...] = self.spec.train_metrics
        self.stop_signal: int | None = None
        self.early_stop: list[int] = []  # signals the worker caught before the trainer existed
        self.forked_from: str | None = None
        self.ckpt_dir = run_dir / "checkpoints"
        self.samples_dir = run_dir / "samples"
        for d in (self.ckpt_dir, self.samples_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- to be provided by recipes ------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        """One optimisation step; returns the metric values (len(metric_names)) as a device tensor."""
        raise NotImplementedError

    def metric_present(self, step_in_epoch: int) -> tuple[float, ...]:
        """Which metrics the step produced (1) or skipped (0); host-known, so no sync. Default: all."""
        return self._all_present

    def classifier(self) -> nn.Module:
        """The module whose fc10 output is the test accuracy."""
        raise NotImplementedError

    def compile_step(self, compile_fn: Callable[[Callable, str], Callable]) -> list[str]:
        """Swap the recipe's loss computations for `compile_fn(fn, name)` versions; returns what was compiled.

        Only pure loss computations are compiled (random draws, `zero_grad`, `backward` and the optimizer
        step stay eager), so a compiled function that fails on its first call can fall back to eager.
        """
        return []

    def on_epoch_end(self, epoch: int) -> None:
        """Per-epoch outputs (sample grids); default none."""

    def epoch_signals(self) -> dict[str, float]:
        """Per-epoch values for the epoch record (the mode-collapse signal: `spec.epoch_metrics`); default none."""
        return {}

    def select_data(self, splits: Splits) -> Splits:
        """The recipe's view of the loaded data (e.g. a subset of labels) before it is conformed; default all."""
        return splits

    def lr_for_epoch(self, epoch_index: int) -> float:
        return self.cfg["lr"]

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # --- the loop -------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.rt: Runtime = setup_runtime(cfg["device"], cfg["precision"], deterministic=cfg["deterministic"],
                                         threads=cfg["threads"])
        if self.runtime_overrides:
            self.rt = dataclasses.replace(self.rt, **self.runtime_overrides)
        torch.manual_seed(cfg["seed"])
        splits = load_splits(cfg["dataset"], cfg["data_root"], cfg["download"], image_size=self.input_size)
        splits = conform(self.select_data(splits), self.input_channels, self.input_size)
        self.data = DeviceData(splits, self.rt.device)
        self.steps_per_epoch = self.data.steps_per_epoch(cfg["batch_size"])  # DataError if < 1 batch
        # separate streams: data order + augmentation, and the recipe's noise draws
        self.data_gen = make_generator(self.rt.device, cfg["seed"] * 2 + 1)
        self.noise_gen = make_generator(self.rt.device, cfg["seed"] * 2 + 2)
        self.build()
        self.compiled = self._enable_compile() if cfg["compile"] else False
        self._all_present = tuple(1.0 for _ in self.metric_names)
        n = len(self.metric_names)
        dev = self.rt.device
        self.win_sum = torch.zeros(n, device=dev, dtype=torch.float64)
        self.win_count = [0.0] * n
        self.ep_sum = torch.zeros(n, device=dev, dtype=torch.float64)
        self.ep_count = [0.0] * n
        self.epoch = 0  # completed epochs
        self.batch = 0  # next batch index within the current epoch
        self.global_step = 0
        self.order: torch.Tensor | None = None
        self.epoch_seconds = 0.0  # training time spent in the current epoch so far (for resume)
        # steps of the open window whose sums were still all finite (device; read when the window closes)
        self.ok_steps = torch.zeros((), device=dev, dtype=torch.int64)
        self.window_first_step = 0  # global step before the open window's first step
        self.healthy: dict[str, Any] | None = None  # what checkpoints/last.pt holds (epoch, step)
        now = time.monotonic()
        self.window_opened = now  # host clock: when the open window started
        self.progress_at = now  # host clock of the last train or progress record
        self.rate_mark: tuple[float, int] | None = None  # (clock, step) the progress rate is measured from
        # GANMGR_DEBUG_NAN_STEP=N feeds a NaN batch at global step N: a drill of the divergence path;
        # GANMGR_DEBUG_STEP_SLEEP=S makes every step S seconds slower: a drill of the time-bounded windows
        self._nan_step = int(os.environ.get("GANMGR_DEBUG_NAN_STEP", "0") or 0)
        self._step_sleep = float(os.environ.get("GANMGR_DEBUG_STEP_SLEEP", "0") or 0)
        self.health = HealthWatch(self)  # the health rules (engine/compute/health.py)

    def _enable_compile(self) -> bool:
        """compile=true: compile the recipe's loss computations, or say in one line why not and go eager."""
        reason = self.rt.compile_unavailable()
        if reason is not None:
            self.log(f"compile: not available here ({reason}); training eagerly")
            return False

        def compile_fn(fn: Callable, name: str) -> Callable:
            return self.rt.compile(fn, name=name, log=self.log, backend=self.compile_backend,
                                   mode=self.compile_mode)

        parts = self.compile_step(compile_fn)
        if not parts:
            self.log(f"compile: recipe {self.spec.name} has nothing to compile; training eagerly")
            return False
        backend = getattr(self.compile_backend, "__name__", str(self.compile_backend))
        how = backend + (f", mode {self.compile_mode}" if self.compile_mode else "")
        note = "" if self.rt.is_cuda else " (on a CPU it measured slower than eager: README, Performance)"
        self.log(f"compile: torch.compile ({how}) of the {', '.join(parts)} on {self.rt.device}; "
                 f"the first steps compile, minutes on a CPU{note}")
        return True

    def _reset_window(self) -> None:
        self.win_sum.zero_()
        self.win_count = [0.0] * len(self.metric_names)
        self.ok_steps.zero_()
        self.window_first_step = self.global_step
        self.window_opened = self.progress_at = time.monotonic()

    def _reset_epoch(self) -> None:
        self.ep_sum.zero_()
        self.ep_count = [0.0] * len(self.metric_names)
        self._reset_window()

    def run(self, metrics: MetricsWriter) -> str:
        """Train to the configured epochs; returns the end status ('completed', 'cancelled' or
        'stopped': a health rule's stop, `self.health.stop`)."""
        self.metrics = metrics
        self._install_signal_handlers()
        if self.early_stop:
            self.stop_signal = self.early_stop[0]
        self.setup()
        resumed = self._maybe_resume()
        # the open window counts from here: a resume's restored sums are finite (checked before the save)
        self.window_first_step = self.global_step
        total_epochs = self.cfg["epochs"]
        metrics.write({
            "kind": START, "time": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
            "epoch": self.epoch, "step": self.global_step, "resumed": resumed, "epochs": total_epochs,
            "forked_from": self.forked_from,
            "steps_per_epoch": self.steps_per_epoch, "device": str(self.rt.device),
            "precision": self.rt.precision, "compile": self.compiled, "channels_last": self.rt.channels_last,
            "torch": torch.__version__,
            "params": {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()},
            "train_images": self.data.num_train, "test_images": self.data.num_test,
        })
        self.log(f"{self.spec.name}: {self.data.num_train} train / {self.data.num_test} test images, "
                 f"{self.steps_per_epoch} steps/epoch, device {self.rt.device}, precision {self.rt.precision}"
                 f"{', resumed at epoch ' + str(self.epoch) + ' step ' + str(self.global_step) if resumed else ''}")
        self._print_header()
        if self.stop_signal is not None:
            return "cancelled"
        if self.epoch >= total_epochs:
            self._finish()
            return "completed"
        while self.epoch < total_epochs:
            status = self._run_epoch()
            if status != "ok":
                return status
        self._finish()
        return "completed"

    def begin_epoch(self) -> float:
        """Set the epoch's lr, draw its data order (unless resuming inside it), enter train mode."""
        lr = self.lr_for_epoch(self.epoch)
        for opt in self.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = lr
        if self.order is None or self.batch == 0:
            self.order = self.data.epoch_order(self.data_gen)
            self.batch = 0
            self._reset_epoch()
        for m in self.modules().values():
            m.train()
        return lr

    def run_step(self) -> None:
        """One iteration of the loop: cut and augment the next batch, train on it, accumulate its metrics.

        Nothing here reads a value back to the host; the benchmark drives exactly this method.
        """
        bs = self.cfg["batch_size"]
        i = self.batch
        if self.rate_mark is None:
            self.rate_mark = (time.monotonic(), self.global_step)
        idx = self.order[i * bs:(i + 1) * bs]
        x, y = self.data.train_batch(idx, self.data_gen, self.cfg["augment"])
        if self.global_step + 1 == self._nan_step:  # fault injection for divergence drills
            x = torch.full_like(x, float("nan"))
        if self._step_sleep:
            time.sleep(self._step_sleep)
        vals = self.train_step(self.rt.prepare_input(x), y, i)
        present = self.metric_present(i)
        vals = vals.detach().to(torch.float64)
        self.win_sum += vals
        self.ep_sum += vals
        if self.watch_steps:  # +1 while every sum of the window is finite: the first bad step, on the device
            self.ok_steps += torch.isfinite(self.win_sum).all()
        for k, p in enumerate(present):
            self.win_count[k] += p
            self.ep_count[k] += p
        self.batch += 1
        self.global_step += 1
        if self.global_step % self.cfg["log_every"] == 0:
            self._log_window()
            return
        now = time.monotonic()  # a host clock read, never a device sync
        log_seconds = self.cfg["log_seconds"]
        if log_seconds and now - self.window_opened >= log_seconds:
            self._log_window()
        elif (self.progress_seconds and now - self.progress_at >= self.progress_seconds
              and self.batch < self.steps_per_epoch):  # (the epoch's end writes its window next)
            self._write_progress(now)

    def _write_progress(self, now: float) -> None:
        """A sign of life between windows: host counters only (on a GPU, the steps queued so far)."""
        rec: dict[str, Any] = {"kind": PROGRESS, "epoch": self.epoch + 1, "step": self.global_step,
                               "steps_per_epoch": self.steps_per_epoch, "time": time.time()}
        if self.rate_mark is not None and now > self.rate_mark[0] and self.global_step > self.rate_mark[1]:
            rec["images_per_s"] = round((self.global_step - self.rate_mark[1]) * self.cfg["batch_size"]
                                        / (now - self.rate_mark[0]), 1)
        self.rate_mark = (now, self.global_step)
        self.metrics.write(rec)
        self.progress_at = now

    def _run_epoch(self) -> str:
        cfg = self.cfg
        lr = self.begin_epoch()
        start = time.perf_counter()
        start_batch = self.batch
        while self.batch < self.steps_per_epoch:
            self.run_step()
            if (self.stop_signal is not None or self.health.stop) and self.batch < self.steps_per_epoch:
                self.epoch_seconds += time.perf_counter() - start
                return self._stop()
        self.rt.synchronize()
        seconds = self.epoch_seconds + time.perf_counter() - start
        images = (self.batch - start_batch) * cfg["batch_size"]
        self.epoch_seconds = 0.0
        self._epoch_end(seconds, images / max(time.perf_counter() - start, 1e-9), lr)
        if (self.stop_signal is not None or self.health.stop) and self.epoch < cfg["epochs"]:
            return self._stop(at_epoch_end=True)
        return "ok"

    def _means(self, sums: torch.Tensor, counts: list[float]) -> dict[str, float]:
        values = sums.tolist()  # the one host sync of a window
        return {name: (v / c if c else float("nan")) for name, v, c in zip(self.metric_names, values, counts)}

    def _diverged(self, message: str, step: int | None = None) -> Diverged:
        return Diverged(message, step=step, epoch=self.epoch + 1, healthy=self.healthy_checkpoint())

    def _check_finite(self, means: dict[str, float], where: str) -> None:
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise self._diverged(f"non-finite {', '.join(bad)} {where}")

    def _read_window(self) -> tuple[dict[str, float], int]:
        """The open window's means and how many of its steps kept its sums finite (one host sync)."""
        values = torch.cat([self.win_sum, self.ok_steps.to(torch.float64).reshape(1)]).tolist()
        means = {name: (v / c if c else float("nan"))
                 for name, v, c in zip(self.metric_names, values, self.win_count)}
        return means, int(values[-1])

    def _check_window(self, means: dict[str, float], ok_steps: int) -> None:
        """Diverged, naming the first step whose metrics were not finite, if the open window holds one."""
        if self.watch_steps:
            if ok_steps >= self.global_step - self.window_first_step:
                return
            bad_step = self.window_first_step + ok_steps + 1
            names = [k for k, v, c in zip(means, means.values(), self.win_count) if c and not math.isfinite(v)]
            names = names or list(self.metric_names)  # (a metric the window's steps did not produce)
            raise self._diverged(f"non-finite {', '.join(names)} at step {bad_step} (epoch {self.epoch + 1})",
                                 bad_step)
        self._check_finite({k: v for k, v, c in zip(means, means.values(), self.win_count) if c},
                           f"at step {self.global_step} (epoch {self.epoch + 1})")

    def _log_window(self) -> None:
        if not any(self.win_count):
            return
        means, ok_steps = self._read_window()
        rec = {"kind": TRAIN, "epoch": self.epoch + 1, "step": self.global_step}
        rec.update({k: v for k, v, c in zip(means, means.values(), self.win_count) if c})
        self.metrics.write(rec)
        self._check_window(means, ok_steps)
        self._reset_window()
        self.health.window(rec)  # the window rules, on the means just written

    def evaluate(self) -> float:
        """Exact test accuracy (percent) of the classifier head fc10 over the whole test split."""
        model = self.classifier()
        was_training = model.training
        model.eval()
        correct = torch.zeros((), device=self.rt.device, dtype=torch.int64)
        total = 0
        with torch.no_grad(), self.rt.autocast():
            for x, y in self.data.test_batches(max(256, self.cfg["batch_size"])):
                _, logits = model(self.rt.prepare_input(x))
                correct += (logits.argmax(1) == y).sum()
                total += y.shape[0]
        model.train(was_training)
        return 100.0 * correct.item() / max(total, 1)

    def _epoch_end(self, seconds: float, images_per_s: float, lr: float) -> None:
        if any(self.win_count):
            self._log_window()
        ep_means = self._means(self.ep_sum, self.ep_count)
        self._check_finite({k: v for k, v, c in zip(ep_means, ep_means.values(), self.ep_count) if c},
                           f"in epoch {self.epoch + 1}")
        self._check_params_finite()
        self.epoch += 1
        self.batch = 0
        self.order = None
        rec: dict[str, Any] = {"kind": EPOCH, "epoch": self.epoch, "step": self.global_step}
        if self.spec.has_classifier:  # a GAN without one reports no accuracy (absent, not null)
            rec.update(train_acc=ep_means.get("acc", float("nan")), test_acc=self.evaluate())
        rec.update({"seconds": round(seconds, 3), "images_per_s": round(images_per_s, 1), "lr": lr})
        rec.update({f"mean_{k}": v for k, v in ep_means.items() if k != "acc"})
        rec.update(self.epoch_signals())
        self.metrics.write(rec)
        self._print_row(rec, ep_means)
        self.on_epoch_end(self.epoch)
        quality = evaluate_epoch(self, self.epoch)  # every eval_every epochs (engine/compute/evaluation.py)
        firings = self.health.epoch(rec)  # the epoch rules, acted on once last.pt holds this epoch
        self.save_last()
        keep_best(self, {**rec, **quality})  # checkpoints/best.pt by best_metric (engine/compute/checkpoint.py)
        keep = self.cfg["keep_every"]
        if keep and self.epoch % keep == 0:
            path = self.ckpt_dir / f"epoch_{self.epoch:03d}.pt"
            save_checkpoint(path, self.model_state())
            self.artifact(path, "checkpoint", self.epoch)
        self.metrics.sync()
        self.health.after_epoch(firings)

    def _check_params_finite(self) -> None:
        for name, module in self.modules().items():
            flags = [torch.isfinite(p).all() for p in module.parameters()]
            if flags and not bool(torch.stack(flags).all()):
                raise self._diverged(f"non-finite weights in {name} after epoch {self.epoch + 1}")

    def _finish(self) -> None:
        path = self.ckpt_dir / "final.pt"
        save_checkpoint(path, self.model_state())
        self.artifact(path, "final", self.epoch)

    def _stop(self, at_epoch_end: bool = False) -> str:
        """A requested stop: keep the partial window in the checkpoint and report 'cancelled'."""
        if not at_epoch_end:
            if any(self.win_count):
                self._check_window(*self._read_window())
            means = self._means(self.ep_sum, self.ep_count)
            self._check_finite({k: v for k, v, c in zip(means, means.values(), self.ep_count) if c},
                               f"at step {self.global_step}")
            self._check_params_finite()
            self.save_last()
        if self.health.stop is not None:
            self.log(f"stopped by the health rule {self.health.stop.message} at epoch {self.epoch} step "
                     f"{self.global_step}; checkpoint saved")
            return "stopped"
        self.log(f"stopped by signal {self.stop_signal} at epoch {self.epoch} step {self.global_step}; "
                 f"checkpoint saved")
        return "cancelled"

    # --- checkpoints ----------------------------------------------------------------------------------
    def model_state(self) -> dict[str, Any]:
        return {
            "config": dict(self.cfg), "recipe": self.spec.name, "epoch": self.epoch, "step": self.global_step,
            "models": {k: m.state_dict() for k, m in self.modules().items()},
            "data_shape": [self.data.channels, self.data.image_size, self.data.image_size],
            "num_classes": self.data.num_classes, "classes": list(self.data.classes),
        }

    def save_last(self) -> None:
        self.health.before_save()  # keeps last.pt as healthy.pt while a health rule's streak is open
        state = self.model_state()
        state.update({
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "batch": self.batch,
            "order": self.order.cpu() if self.order is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.rt.is_cuda else [],
                "data": self.data_gen.get_state(),
                "noise": self.noise_gen.get_state(),
            },
            "accum": {
                "win_sum": self.win_sum.cpu(), "win_count": list(self.win_count),
                "ep_sum": self.ep_sum.cpu(), "ep_count": list(self.ep_count),
                "epoch_seconds": self.epoch_seconds,
            },
            "extra": self.extra_state(),
        })
        save_checkpoint(self.ckpt_dir / "last.pt", state)
        self.healthy = {"epoch": self.epoch, "step": self.global_step}

    def healthy_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to resume or fork from after a divergence: last.pt, written only by healthy paths
        (an epoch end or a stop, after their checks), with its epoch and step; None if there is none."""
        if self.healthy is None or not (self.run_dir / LAST_CHECKPOINT).is_file():
            return None
        return {"path": LAST_CHECKPOINT, **self.healthy}

    def _maybe_resume(self) -> bool:
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            init = self.ckpt_dir / "init.pt"
            if init.exists():
                self._init_from(init)
            return False
        state = load_checkpoint(path, map_location=self.rt.device)
        if "optimizers" not in state:
            raise CheckpointError(f"checkpoint {path} holds no optimizer state; it cannot be resumed")
        old = state["config"]
        changed = sorted(k for k in set(old) | set(self.cfg)
                         if k not in RUNTIME_KEYS and k != "config_version" and old.get(k) != self.cfg.get(k))
        if changed:
            raise CheckpointError(f"checkpoint {path} was written with a different config "
                                  f"({', '.join(changed)}); fork the run to change it")
        for k, m in self.modules().items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if self.rt.is_cuda and rng["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        self.data_gen.set_state(rng["data"].cpu())
        self.noise_gen.set_state(rng["noise"].cpu())
        self.epoch = int(state["epoch"])
        self.global_step = int(state["step"])
        self.batch = int(state["batch"])
        order = state.get("order")
        self.order = order.to(self.rt.device) if order is not None and self.batch > 0 else None
        acc = state["accum"]
        self.win_sum.copy_(acc["win_sum"])
        self.win_count = list(acc["win_count"])
        self.ep_sum.copy_(acc["ep_sum"])
        self.ep_count = list(acc["ep_count"])
        self.epoch_seconds = float(acc.get("epoch_seconds", 0.0))
        self.load_extra_state(state.get("extra", {}))
        self.healthy = {"epoch": self.epoch, "step": self.global_step}
        return True

    def _init_from(self, path: Path) -> None:
        """A fork: start from another run's weights (and optimizer moments) under this run's own config.

        The epoch counter continues from the parent's, so `epochs` means the same total as in the parent;
        the data order, augmentation and noise streams start fresh from this run's seed.
        """
        state = load_checkpoint(path, map_location=self.rt.device)
        try:
            for k, m in self.modules().items():
                m.load_state_dict(state["models"][k])
            for k, o in self.optimizers().items():
                if k in state.get("optimizers", {}):
                    o.load_state_dict(state["optimizers"][k])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} does not fit this run's models "
                                  f"({str(e).splitlines()[0][:200]}); a fork cannot change their shape") from None
        for o in self.optimizers().values():  # the fork's own hyperparameters win over the parent's
            for group in o.param_groups:
                group["betas"] = tuple(self.cfg["betas"])
                group["lr"] = self.cfg["lr"]
        self.epoch = int(state.get("epoch", 0))
        self.global_step = int(state.get("step", 0))
        self.forked_from = str(path)

    # --- signals and output ---------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):
            if self.stop_signal is None:  # the first signal is the cause; a forwarded copy changes nothing
                self.log(f"signal {signum}: finishing the step, then checkpointing")
                self.stop_signal = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, request_stop)

    def artifact(self, path: Path, what: str, epoch: int | None = None) -> None:
        self.metrics.write({"kind": ARTIFACT, "path": str(path.relative_to(self.run_dir)), "what": what,
                            "epoch": epoch})

    def _columns(self) -> list[str]:
        return [m for m in self.metric_names if m != "acc"]

    def _acc_columns(self) -> list[str]:
        return ["train_acc", "test_acc"] if self.spec.has_classifier else []

    def _print_header(self) -> None:
        cols = ["epoch", *self._columns(), *self._acc_columns(), *self.spec.epoch_metrics, "seconds", "img/s"]
        self.log("  ".join(f"{c:>13}" for c in cols))

    def _print_row(self, rec: dict[str, Any], means: dict[str, float]) -> None:
        vals = [rec["epoch"], *[means[c] for c in self._columns()],
                *[rec.get(c, float("nan")) for c in (*self._acc_columns(), *self.spec.epoch_metrics)],
                rec["seconds"], rec["images_per_s"]]
        self.log("  ".join(f"{v:>13.4f}" if isinstance(v, float) else f"{v:>13}" for v in vals))
        sys.stdout.flush()
