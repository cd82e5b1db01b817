"""torchrun / DDP set-up, rank helpers and device choice.

Under ``torchrun`` the environment carries RANK, WORLD_SIZE and LOCAL_RANK; without them the
run is a single process and every helper here is a no-op. CUDA ranks use NCCL, CPU ranks gloo.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from stemsplit.settings import pick_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(requested_device: str | None = None) -> DistContext:
    """Join the process group when launched by torchrun; pick this rank's device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistContext(device=pick_device(requested_device or "auto"))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = pick_device(requested_device or "auto", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                timeout=timedelta(minutes=30))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(net: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP around ``net`` when there are several ranks; BatchNorm becomes SyncBatchNorm on GPUs.

    SyncBatchNorm keeps the batch statistics those of the global batch, so N ranks x batch B
    train like one process with batch N*B (PyTorch implements it for GPUs only).
    """
    if not ctx.distributed:
        return net
    if ctx.device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a small float tensor over ranks (a copy on every rank; identity for one process)."""
    if not ctx.distributed:
        return values
    out = values.detach().to(ctx.device if ctx.device.type == "cuda" else "cpu", torch.float64).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.cpu()


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (for decisions that must agree, e.g. the resume state)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: DistContext) -> list | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere); ``[obj]`` for one process."""
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
