"""Where tensors live: device auto-detection (CUDA, then MPS, then CPU), threads, autocast.

bf16 autocast is used on CUDA only: on the CPUs we measured, bf16 matmuls run at half the
fp32 speed (no AMX), and some CPUs lack bf16 kernels altogether (oneDNN has no bf16 LSTM
without AVX-512), so CPU training stays in fp32 on every CPU.
"""

from __future__ import annotations

import contextlib

import torch

from melodygen.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> the best available device; `cpu`, `cuda`, `cuda:N`, `mps` -> that device if
    present, else ConfigError naming it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def set_threads(threads: int) -> None:
    """Sets torch's intra-op CPU threads; 0 keeps torch's default. One thread never collapses
    when other CPU-bound processes share the machine (two can spin-wait 4-7x slower)."""
    if threads > 0:
        torch.set_num_threads(threads)


def accumulator_dtype(device: str | torch.device) -> torch.dtype:
    """The dtype of running sums kept on `device`: float64, but float32 on MPS, which has no
    float64 (creating such a tensor there is a TypeError, pytorch#122602)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
