"""Device, numeric precision and compilation in one place: every CUDA-specific switch of the engine lives here.

Keeping these decisions together means the CPU tests exercise the same functions a GPU run calls,
with only the branches that need CUDA skipped. What each switch is worth was measured with
`python -m bench.train_speed` / `python -m bench.switches` (docs/readme/performance.md):

- fused Adam on CUDA (one kernel for all parameters), foreach Adam elsewhere;
- bf16 autocast on CUDA (`precision=auto`), TF32 for what stays fp32, cuDNN autotuning (`benchmark`);
- channels-last on CUDA only: on the CPU the course's LayerNorm over [C, H, W] turns every activation back
  into NCHW, so channels-last only adds copies there (measured slower);
- `compile=true`: the recipes' loss computations (forward passes, and the gradient penalty written with
  `torch.func`) go through `torch.compile`; where that cannot work the run says so in one line and
  trains eagerly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class DeviceError(ValueError):
    """The requested device cannot be used here."""


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" | "tf32" | "bf16" (resolved, never "auto")
    channels_last: bool
    optimizer: str = ""  # "fused" | "foreach" | "single"; "" picks fused on CUDA, foreach elsewhere

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """bf16 autocast when the precision is bf16 (only ever resolved on CUDA); a no-op context otherwise.

        The CPU branch exists for the tolerance tests, which emulate the GPU's bf16 numerics on the CPU.
        """
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def optimizer_kwargs(self) -> dict:
        """Fused Adam on CUDA (one kernel for all parameters, no host-side step counter), foreach elsewhere."""
        impl = self.optimizer or ("fused" if self.is_cuda else "foreach")
        if impl == "fused":
            return {"fused": True}
        if impl == "foreach":
            return {"foreach": True}
        return {"foreach": False}

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    # --- torch.compile -------------------------------------------------------------------------------
    def compile_unavailable(self) -> str | None:
        """Why torch.compile cannot serve on this device, or None when it can."""
        return compile_unavailable(self.device)

    def compile(self, fn: Callable, *, name: str, log: Callable[[str], None], backend: str = "inductor",
                mode: str | None = None) -> CompiledFn:
        """`torch.compile(fn)` (whole graph, static shapes) that falls back to `fn` if the first call fails."""
        compiled = torch.compile(fn, backend=backend, mode=mode, fullgraph=True, dynamic=False)
        return CompiledFn(compiled, fn, name, log)


class CompiledFn:
    """A compiled function with an eager twin: if compiling fails (first call), say so once and run eagerly.

    Only the first call may fall back: compilation happens there, and the recipes keep their compiled
    functions free of side effects other than BatchNorm statistics (applied after the graph ran), so the
    eager retry sees the same state. A failure after a successful first call is a real error and is raised.
    """

    def __init__(self, compiled: Callable, eager: Callable, name: str, log: Callable[[str], None]):
        self.compiled = compiled
        self.eager = eager
        self.name = name
        self.log = log
        self.state = "new"  # new -> compiled | eager

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.state == "eager":
            return self.eager(*args, **kwargs)
        if self.state == "compiled":
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure means: train eagerly instead
            self.state = "eager"
            detail = " ".join(str(e).split())[:300] or type(e).__name__
            self.log(f"compile: {self.name} could not be compiled ({type(e).__name__}: {detail}); "
                     f"running it eagerly")
            return self.eager(*args, **kwargs)
        self.state = "compiled"
        return out


def compile_unavailable(device: torch.device) -> str | None:
    """The reason torch.compile's default backend (inductor) cannot run for `device`, or None."""
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:  # pragma: no cover - very old torch
            return "this torch has no Triton support"
        return None if has_triton() else "Triton is not installed (inductor needs it for CUDA kernels)"
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or "g++"
        if not any(shutil.which(c) for c in (cxx, "g++", "c++", "clang++")):
            return "no C++ compiler found (inductor builds CPU kernels with g++/clang++)"
        return None
    return f"torch.compile is not supported on {device.type} by this engine"


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but this machine has no usable CUDA device")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA "
                              f"device(s) are visible")
        return dev
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("device 'mps' asked for, but MPS is not available")
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16" and device.type != "cuda":
        # bf16 autocast on CPU is slower than fp32 on most CPUs and changes the numbers: refuse quietly
        return "fp32"
    if precision == "tf32" and device.type != "cuda":
        return "fp32"  # TF32 is a tensor-core format: on other devices it is plain fp32
    return precision


def set_tf32(allowed: bool) -> None:
    """TF32 for fp32 matmuls and convolutions (CUDA), through the legacy flags only.

    torch 2.14 refuses to read a TF32 flag after the other API set it ("mix of the legacy and new APIs");
    inductor still reads the legacy `cudnn.allow_tf32`, so setting the legacy flags keeps both readable.
    """
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed


def setup_runtime(device_spec: str, precision: str, *, deterministic: bool = False,
                  threads: int = 0) -> Runtime:
    """Resolve device and precision and set the global backend switches that go with them."""
    device = resolve_device(device_spec)
    prec = resolve_precision(precision, device)
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        set_tf32(prec in ("tf32", "bf16"))  # bf16 runs leave some ops in fp32: let those use TF32 too
        torch.backends.cudnn.benchmark = not deterministic  # fixed shapes (drop_last): autotune once
    return Runtime(device=device, precision=prec, channels_last=device.type == "cuda")


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
