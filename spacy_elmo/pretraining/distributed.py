"""torch.distributed for pretraining: one process per GPU (torchrun), gloo on CPU, nccl on GPU."""
import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..devices import parse_device


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Context:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = parse_device(device)
    cuda = chosen.type == "cuda"
    if world <= 1:
        return Context(device=chosen)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), torch.device("cuda", local) if cuda else torch.device("cpu"))


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """DistributedDataParallel when distributed; adaptive softmax tails can go unused in a batch."""
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def all_sum(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def gather(obj: Any, ctx: Context) -> List[Any]:
    """Every rank's ``obj``, in rank order."""
    if not ctx.distributed:
        return [obj]
    out: List[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def teardown(ctx: Context, finished: bool) -> None:
    """Leave the process group. After a finished run, wait for every rank first: a rank that closes its
    gloo connections while another still sends on them can abort at exit."""
    if ctx.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
