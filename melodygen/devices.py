"""Where tensors live: device auto-detection (CUDA, then MPS, then CPU), threads, autocast.

Threads: each command's job has its own default (`pick_threads`). Drawing ids one step at a
time gives each step too little work to share, so extra threads only spin-wait for each other,
and where other processes hold the cores that collapses: `sample folk-band -n 2 --bars 4` took
55-76 s with torch's 2 threads on a busy 2-core machine against 9-10 s with 1 (the same bytes),
and 20 training steps 4 min 24 s against 20 s.

bf16 autocast is used on CUDA only: on the CPUs we measured, bf16 matmuls run at half the
fp32 speed (no AMX), and some CPUs lack bf16 kernels altogether (oneDNN has no bf16 LSTM
without AVX-512), so CPU training stays in fp32 on every CPU.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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


# Each job's threads when --threads is not given; None: the physical cores (`physical_cores`).
# Sampling (the studio's jobs too) decodes a row an id at a time: one thread. Training and
# evaluation run whole batches of windows, which threads share: `evaluate folk-band` took 15.3 s
# with 2 threads against 22.8 s with 1 on a quiet 2-core machine (folk-melody 3.8 against 4.2 s;
# with other jobs running, folk-melody's 2 threads took up to 14 s: `busy_note`). The report's
# work is reading and measuring files, not torch's: one thread.
JOB_THREADS: dict[str, int | None] = {"sample": 1, "studio": 1, "evaluate": None, "report": 1, "train": None,
                                      "fit": None}
CPU_QUOTA = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" (microseconds) or "max PERIOD"


def pick_threads(job: str, requested: int | None = None) -> int:
    """The intra-op threads for `job` (a key of `JOB_THREADS`): `requested` when given (0:
    torch's default), else the job's default. The count for `set_threads` (0 keeps torch's)."""
    if requested is not None:
        return requested
    default = JOB_THREADS[job]
    return physical_cores() if default is None else default


def use_threads(job: str, requested: int | None = None) -> int:
    """Sets the threads `pick_threads` picks for `job`; returns the count torch now uses."""
    set_threads(pick_threads(job, requested))
    return torch.get_num_threads()


def physical_cores() -> int:
    """Torch's thread count (by default the physical cores, or $OMP_NUM_THREADS), at most the
    CPUs this process may run on: torch counts the machine's cores, not a CPU affinity
    (`taskset`) or a container's CPU quota (cgroup v2 `cpu.max`), so it would oversubscribe."""
    from melodygen.dataset.files import default_workers  # the CPUs this process may run on

    cpus = default_workers()
    try:
        quota, period = CPU_QUOTA.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, min(torch.get_num_threads(), cpus))


def busy_note(threads: int, device: str = "cpu") -> str | None:
    """One line when the work runs on the CPU (`device`, as `resolve_device` takes it) with
    `threads` > 1 and the machine runs more than it has cores (the 1-minute load average above
    the CPU count), saying what to do; None otherwise or without a load average (Windows)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    if threads <= 1 or load <= cores or resolve_device(device).type != "cpu":
        return None
    return (f"note: this machine is busier than its {cores} cores (load average {load:.1f}), where "
            f"torch's {threads} threads can mostly wait for each other: if this crawls, stop it and "
            f"run again with --threads 1")


def accumulator_dtype(device: str | torch.device) -> torch.dtype:
    """The dtype of running sums kept on `device`: float64, but float32 on MPS, which has no
    float64 (creating such a tensor there is a TypeError, pytorch#122602)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
