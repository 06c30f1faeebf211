"""One training entry point for one process or many: under ``torchrun`` the same code runs
with DistributedDataParallel, NCCL on GPUs and gloo on CPU. Alone, every call here is a no-op.

    torchrun --nproc_per_node=4 -m <package> train --run-dir runs/<run>
"""

import gc
import os

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> None:
    """Join the process group torchrun describes in the environment (once)."""
    if launched_by_torchrun() and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def teardown() -> None:
    """Leave the process group after a successful run, every process at once.

    gloo can abort a process that closes its group while a peer still works (the main
    process writes the checkpoint last): "terminate called without an active exception".
    Unreachable DDP wrappers are collected first, so none holds the group until exit."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_and_world()[0] == 0


def device() -> torch.device:
    return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")


def wrap(module: nn.Module) -> nn.Module:
    """DistributedDataParallel when several processes train, else the module itself."""
    if rank_and_world()[1] == 1:
        return module
    ids = [local_rank()] if torch.cuda.is_available() else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def mean_of(total: float, count: int) -> float:
    """``total / count`` summed over every process (each holds its share of the data)."""
    if rank_and_world()[1] > 1:
        where = device() if torch.cuda.is_available() else torch.device("cpu")  # gloo reduces CPU tensors
        both = torch.tensor([float(total), float(count)], dtype=torch.float64, device=where)
        dist.all_reduce(both)
        total, count = both.tolist()
    return total / max(count, 1)


def log(message: str) -> None:
    if is_main():
        print(message, flush=True)
