"""Data-parallel training on real engines: MPI (mpi4py) between CPU processes, NCCL between GPUs.

    import ember.distributed as dist
    dist.init()                                   # launched as: mpiexec -n 4 python train.py
    model = dist.DistributedDataParallel(model)   # same start on every rank, averaged gradients
    loader = em.data.DataLoader(ds, batch_size=32, sampler=dist.DistributedSampler(ds))

or, with the Keras loop, model.fit(x, y, batch_size=128, distributed=True): each rank takes its
share of every global batch of 128; only rank 0 prints progress and writes checkpoints.
Nothing here imports mpi4py or NCCL until init() is called. See docs/distributed.md."""
from .comm import (DistributedError, DistributedTimeoutError, ReduceOp, Work, all_gather, all_gather_object,
                   all_reduce, backend, barrier, broadcast, broadcast_object, device, init, is_initialized, rank,
                   world_size)
from .ddp import DistributedDataParallel
from .sampler import DistributedSampler

__all__ = ["DistributedDataParallel", "DistributedError", "DistributedSampler", "DistributedTimeoutError",
           "ReduceOp", "Work", "all_gather", "all_gather_object", "all_reduce", "backend", "barrier", "broadcast",
           "broadcast_object", "device", "init", "is_initialized", "rank", "world_size"]
