"""Process-group helpers for runs under `torchrun`: rank, world size, barrier, broadcast, batch sharding.

Every helper is a no-op (or the identity) in a single process, so code that calls them runs unchanged
without `torchrun`. The training loop (`common.train`), the figure runner and the shared-artifact cache
(`common.experiment`) use them; nothing here imports the rest of `common`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "broadcast_object",
    "shutdown",
    "init_distributed",
    "is_distributed",
    "map_tensors",
    "rank",
    "shard_batch",
    "world_size",
]



def world_size() -> int:
    """Number of processes: from the process group when initialised, else WORLD_SIZE (torchrun), else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank: from the process group when initialised, else RANK (torchrun), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    """True when more than one process takes part (launched by torchrun with WORLD_SIZE > 1)."""
    return world_size() > 1


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def init_distributed(device: torch.device | str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment, if WORLD_SIZE > 1 and not done yet.

    The backend is nccl when `device` is a CUDA device (the current device is set to LOCAL_RANK), gloo
    otherwise. Returns whether the process runs distributed. The caller owns the group's teardown
    (`torch.distributed.destroy_process_group()` at the end of the script).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    if not dist.is_initialized():
        device = torch.device(device) if device is not None else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend="nccl")
        else:
            dist.init_process_group(backend="gloo")
    return dist.get_world_size() > 1


def shard_batch(batch: Any, rank_: int, world_size_: int) -> Any:
    """Rank `rank_`'s contiguous shard, rows [r*B/W, (r+1)*B/W), of every tensor in a (nested) batch.

    Raises if the batch size B is not divisible by W or if the tensors disagree on B.
    """
    sizes = _batch_sizes(batch)
    if not sizes:
        raise ValueError("the batch holds no tensor to shard")
    if len(set(sizes)) != 1:
        raise ValueError(f"tensors in the batch disagree on the batch dimension: {sorted(set(sizes))}")
    B = sizes[0]
    if B % world_size_ != 0:
        raise ValueError(f"global batch size {B} is not divisible by world size {world_size_}")
    per = B // world_size_
    return map_tensors(batch, lambda t: t[rank_ * per : (rank_ + 1) * per])


def _batch_sizes(batch: Any) -> list[int]:
    if isinstance(batch, torch.Tensor):
        return [batch.shape[0]]
    if isinstance(batch, dict):
        return [s for v in batch.values() for s in _batch_sizes(v)]
    if isinstance(batch, list | tuple):
        return [s for v in batch for s in _batch_sizes(v)]
    return []


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor of a (nested) tuple / list / NamedTuple / dict batch."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return type(batch)((k, map_tensors(v, fn)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # NamedTuple
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (any picklable object); `obj` itself in a single process."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shutdown() -> None:
    """End a torchrun script: wait for every rank (so no rank tears its gloo/nccl pairs down while another
    still talks to it, which aborts with "terminate called without an active exception"), then destroy
    the process group. A no-op in a single process."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
