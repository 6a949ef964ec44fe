"""Training precision chosen from the hardware: bf16 autocast only where the device computes bf16 natively.

On CPUs without native bf16 (AVX2 only) autocast emulates it and a train step is ~18x slower than fp32; on
CPUs with AVX512-BF16 or AMX and on CUDA GPUs with bf16 support it is ~2x faster.  ``auto`` decides from the
device; ``bf16`` and ``fp32`` force a choice.  Serving stays in the weights' dtype (fp32 for the shipped
model): a batch-1 answer is bound by per-pass overhead, not arithmetic, and casting would change answers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def cpu_features() -> dict[str, bool]:
    """What this CPU computes natively, as PyTorch's kernels see it.

    ``torch.backends.cpu.get_cpu_capability()`` names the vector ISA ("AVX2", "AVX512") but not bf16 support
    (an AVX512 CPU may lack AVX512-BF16), so the finer probes of ``torch.cpu`` are asked too.
    """
    cpu = torch.cpu
    return {
        name: bool(getattr(cpu, f"_is_{name}_supported", lambda: False)())
        for name in ("avx512_bf16", "amx_tile")
    }


def native_bf16(device: str | torch.device = "cpu") -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return any(cpu_features().values())


def resolve(precision: str, device: str | torch.device = "cpu") -> str:
    """``"bf16"`` or ``"fp32"`` for a configured ``precision`` (``auto``, ``bf16`` or ``fp32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(precision: str, device: str | torch.device = "cpu") -> AbstractContextManager:
    """The autocast context of a resolved precision (``auto`` is resolved here)."""
    device = torch.device(device)
    if resolve(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def describe(device: str | torch.device = "cpu") -> str:
    """One line for ``sc-mllm doctor`` and ``training.json``: the hardware seen and the choice made."""
    device = torch.device(device)
    if device.type == "cuda":
        seen = f"{torch.cuda.get_device_name(device)}, native bf16 {native_bf16(device)}"
    else:
        flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu_features().items())
        seen = f"CPU {torch.backends.cpu.get_cpu_capability()}, {flags}"
    return f"{seen} -> training precision auto = {resolve('auto', device)}"
