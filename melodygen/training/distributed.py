"""Distributed data parallel under `torchrun`: process group, model wrapping, reductions.

`torchrun --nproc_per_node N -m melodygen train ...` sets RANK / LOCAL_RANK / WORLD_SIZE;
without them everything here is a no-op for a single process. NCCL on CUDA, Gloo on CPU.
Only rank 0 writes files and prints; each rank draws its own windows (seeded by rank).
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Joins the process group when launched by torchrun with more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """Under DDP on CUDA each process drives the GPU of its local rank."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def teardown(info: DistInfo) -> None:
    """Leaves the process group once every rank is done with it.

    Gloo's worker threads abort the process ("terminate called without an active exception")
    when the group is destroyed, or the interpreter exits, while a rank still has work or a
    live DDP reducer on it: so free the wrappers first (the caller drops its references), wait
    for all ranks, then destroy.
    """
    if info.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel under DDP, else as it is."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def no_sync(model: nn.Module, sync: bool):
    """Skips DDP's gradient all-reduce on the micro-batches before the last one."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (itself when single-process)."""
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / info.world_size


def sum_floats(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sums of `values` over all ranks."""
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is True on at least one (so all ranks stop together)."""
    return sum_floats([float(flag)], info, device)[0] > 0 if info.enabled else flag


def gather(obj, info: DistInfo) -> list:
    """Every rank's `obj`, in rank order (the list [obj] when single-process)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Every rank waits here for the others (nothing without DDP)."""
    if info.enabled:
        dist.barrier()
