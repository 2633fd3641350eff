"""Device and numeric precision in one place: every CUDA-specific switch of the engine lives here.

Keeping these decisions together means the CPU tests exercise the same functions a GPU run calls,
with only the branches that need CUDA skipped.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch


class DeviceError(ValueError):
    """The requested device cannot be used here."""


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" | "tf32" | "bf16" (resolved, never "auto")
    channels_last: bool

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """bf16 autocast on CUDA when asked for; a no-op context otherwise."""
        if self.precision == "bf16" and self.is_cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def optimizer_kwargs(self) -> dict:
        """Fused Adam on CUDA (one kernel for all parameters), foreach elsewhere."""
        return {"fused": True} if self.is_cuda else {"foreach": True}

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)


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
    return precision


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
        allow_tf32 = prec in ("tf32", "bf16")
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        torch.backends.cudnn.benchmark = not deterministic
    return Runtime(device=device, precision=prec, channels_last=device.type == "cuda")


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
