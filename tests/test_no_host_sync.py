"""No host synchronisation inside a training step: nothing in `train_step` reads a tensor back to Python.

On a GPU every such read (`.item()`, `.tolist()`, `float(t)`, `if t:` ...) stalls the host until the queued
kernels finish, so the next step's launches cannot overlap this step's work. The CPU check replaces those
Tensor methods with ones that raise, for the duration of the step. The one read allowed is Adam's own
`state["step"]` counter: without `fused`/`capturable` it is a host-side CPU tensor (on CUDA too), so reading
it waits for nothing. The GPU check asks CUDA itself (`torch.cuda.set_sync_debug_mode("error")`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from engine.compute.recipes.acgan import ACGANTrainer
from engine.compute.recipes.baseline import BaselineTrainer
from engine.control.config import resolve_config
from tests.helpers import tiny_npz

READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")
TRAINERS = {"acgan-wgangp": ACGANTrainer, "baseline": BaselineTrainer}


class HostRead(AssertionError):
    pass


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("sync") / "d.npz", n_train=64, n_test=32)


def make_trainer(recipe: str, npz: Path, tmp: Path, *extra: str, cls=None):
    cfg = resolve_config(recipe, assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=16", "epochs=1",
                                              "device=cpu", *extra])
    t = (cls or TRAINERS[recipe])(cfg, tmp / "run", log=lambda m: None)
    t.setup()
    return t


def _is_adam_step_counter(t: torch.Tensor, optimizers) -> bool:
    return any(st.get("step") is t for opt in optimizers for st in opt.state.values())


@contextlib.contextmanager
def no_host_reads(monkeypatch, optimizers):
    """Every Tensor read-back raises inside the block (Adam's host-side step counter excepted)."""
    with monkeypatch.context() as m:
        for name in READS:
            original = getattr(torch.Tensor, name)

            def guarded(self, *args, _name=name, _original=original, **kwargs):
                if _is_adam_step_counter(self, optimizers):
                    return _original(self, *args, **kwargs)
                raise HostRead(f"Tensor.{_name}() inside train_step")

            m.setattr(torch.Tensor, name, guarded)
        yield


def guarded_steps(monkeypatch, trainer, steps: int = 2) -> list[torch.Tensor]:
    out = []
    x, y = trainer.data.train_batch(torch.arange(16, device=trainer.rt.device), trainer.data_gen, True)
    x = trainer.rt.prepare_input(x)
    for i in range(steps):  # the first step creates Adam's state, the second uses it
        with no_host_reads(monkeypatch, list(trainer.optimizers().values())):
            vals = trainer.train_step(x, y, i)
        out.append(vals)
    return out


@pytest.mark.parametrize("recipe", sorted(TRAINERS))
def test_train_step_reads_nothing_back(monkeypatch, tmp_path, npz, recipe):
    trainer = make_trainer(recipe, npz, tmp_path)
    vals = guarded_steps(monkeypatch, trainer)
    # outside the guard the values are real: finite metrics of the right length
    assert all(v.shape == (len(trainer.metric_names),) and torch.isfinite(v).all() for v in vals)


def test_gan_step_without_generator_step_reads_nothing_back(monkeypatch, tmp_path, npz):
    trainer = make_trainer("acgan-wgangp", npz, tmp_path, "gen_every=2")
    vals = guarded_steps(monkeypatch, trainer, steps=2)  # step 1 skips the generator
    assert float(vals[1][5]) == 0.0 and float(vals[0][5]) != 0.0


def test_the_guard_catches_a_read_inside_the_step(monkeypatch, tmp_path, npz):
    class Chatty(BaselineTrainer):
        def train_step(self, x, y, step_in_epoch):
            vals = super().train_step(x, y, step_in_epoch)
            print(f"loss {vals[0].item():.3f}")  # what the course's loop does every step
            return vals

    trainer = make_trainer("baseline", npz, tmp_path, cls=Chatty)
    with pytest.raises(HostRead, match=r"Tensor.item\(\)"):
        guarded_steps(monkeypatch, trainer, steps=1)
    t = torch.ones(2)
    reads = {"__bool__": lambda: bool(t[0]), "__float__": lambda: float(t[0]), "tolist": lambda: t.tolist(),
             "__index__": lambda: [0, 1][t[0].long()]}
    for name, read in reads.items():
        with no_host_reads(monkeypatch, []), pytest.raises(HostRead, match=name):
            read()


def test_the_run_loop_reads_only_at_log_boundaries(monkeypatch, tmp_path, npz):
    """The whole loop iteration (batch cut, augmentation, step, accumulation) between two log records."""
    trainer = make_trainer("acgan-wgangp", npz, tmp_path, "log_every=3", "log_seconds=3600")  # clock read, no close
    trainer.begin_epoch()
    reads: list[int] = []
    original = trainer._log_window

    def log_window():
        reads.append(trainer.global_step)
        original()

    class Sink:
        def write(self, rec):
            pass

    trainer.metrics = Sink()
    monkeypatch.setattr(trainer, "_log_window", log_window)
    opts = list(trainer.optimizers().values())
    for _ in range(3):
        if trainer.global_step % 3 == 2:  # the step that ends a window reads back: outside the guard
            trainer.run_step()
            continue
        with no_host_reads(monkeypatch, opts):
            trainer.run_step()
    assert reads == [3]


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", sorted(TRAINERS))
def test_cuda_step_has_no_synchronizing_call(tmp_path, npz, recipe):
    """On CUDA (bf16, channels-last, fused Adam): CUDA's own sync detector raises on any blocking call."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = resolve_config(recipe, assignments=[f"dataset=npz:{npz}", "width=16", "batch_size=16", "epochs=1",
                                              "device=cuda", "precision=bf16"])
    trainer = TRAINERS[recipe](cfg, tmp_path / "run", log=lambda m: None)
    trainer.setup()
    x, y = trainer.data.train_batch(torch.arange(16, device="cuda"), trainer.data_gen, True)
    x = trainer.rt.prepare_input(x)
    trainer.train_step(x, y, 0)  # first step: optimizer state, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(1, 3):
            trainer.train_step(x, y, i)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.gpu
def test_cuda_loop_iteration_has_no_synchronizing_call(tmp_path, npz):
    """The whole loop iteration on CUDA: batch cut, augmentation, step, metric accumulation."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = resolve_config("acgan-wgangp", assignments=[f"dataset=npz:{npz}", "width=16", "batch_size=16",
                                                      "epochs=1", "device=cuda", "log_every=1000"])
    trainer = ACGANTrainer(cfg, tmp_path / "run", log=lambda m: None)
    trainer.setup()
    trainer.begin_epoch()
    trainer.run_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.run_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
