"""torch.distributed for ``python -m train`` and ``python -m astroae_core encode`` launched by torchrun.

Under ``torchrun --nproc_per_node=N`` (or ``--nnodes``), every process sees ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` in its environment; without them everything here is a no-op for a world
of one, so the single-process code paths stay the same.

The helpers:

- :func:`launched`, :func:`rank_world`, :func:`is_main_process`: who am I;
- :func:`init_process_group` / :func:`process_group`: gloo on CPU, nccl on GPU (``ASTROAE_DIST_BACKEND``
  overrides), a generous timeout (``ASTROAE_DIST_TIMEOUT_MIN``, default 240 minutes) because rank 0 alone does
  dataset-wide steps (UMAP) while the others wait;
- :func:`local_device`: the GPU of this process on a node (``cuda:LOCAL_RANK``);
- :func:`shard`: the contiguous block of a sequence that belongs to this rank (training and encoding);
- :func:`agree`: rank 0 runs a function (checks, reading a checkpoint) and every rank gets its result, or the
  same error, so that no rank waits forever for one that gave up;
- :func:`reduce_means`, :func:`broadcast_buffers`, :func:`gather_to_root`: the collectives the loop and the
  encoder need.

Objects travel between ranks as pickles (as in ``torch.distributed.*_object``): the processes of one job trust
each other. Keep the rendezvous endpoint on a network that only the job's machines can reach.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["launched", "rank_world", "is_main_process", "init_process_group", "process_group", "local_device",
           "shard", "agree", "reduce_means", "broadcast_buffers", "gather_to_root"]

_PIECE_BYTES = 64 << 20


def launched() -> bool:
    """True when this process was started by torchrun (or a similar launcher) with ``WORLD_SIZE`` above 1."""
    return _env_int("WORLD_SIZE", 1) > 1


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialized process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (or without a launcher): the process that writes files and prints summaries."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def local_device(device: torch.device | str) -> torch.device:
    """The device this process should use: ``cuda:LOCAL_RANK`` (modulo the GPUs present) for a CUDA device
    under a launcher, ``device`` unchanged otherwise."""
    device = torch.device(device)
    if device.type != "cuda" or not launched():
        return device
    return torch.device("cuda", _env_int("LOCAL_RANK", 0) % max(1, torch.cuda.device_count()))


def init_process_group(*, device_type: str = "cpu", backend: str | None = None) -> bool:
    """Join the process group torchrun set up, if launched and not joined yet.

    Parameters
    ----------
    device_type : {"cpu", "cuda"}
        Where the tensors that cross ranks live: nccl for CUDA, gloo for the CPU.
    backend : str, optional
        Force a backend; default: ``ASTROAE_DIST_BACKEND`` from the environment, else by ``device_type``.

    Returns
    -------
    bool
        True when this call initialized the group (so the caller tears it down), False otherwise.
    """
    if not launched() or dist.is_initialized():
        return False
    backend = backend or os.environ.get("ASTROAE_DIST_BACKEND") or ("nccl" if device_type == "cuda" else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"distributed backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        # nccl's object collectives use the current device: make it this process's own GPU.
        torch.cuda.set_device(local_device("cuda"))
    minutes = _env_int("ASTROAE_DIST_TIMEOUT_MIN", 240)
    if minutes <= 0:
        raise ValueError(f"ASTROAE_DIST_TIMEOUT_MIN must be positive, got {minutes}")
    dist.init_process_group(backend, timeout=timedelta(minutes=minutes))
    return True


@contextlib.contextmanager
def process_group(*, device_type: str = "cpu", backend: str | None = None) -> Iterator[tuple[int, int]]:
    """Context manager: join the launcher's process group (if any) and leave it on exit; yields
    ``(rank, world_size)``, ``(0, 1)`` without a launcher."""
    started = init_process_group(device_type=device_type, backend=backend)
    try:
        yield rank_world()
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def shard(seq: Sequence, *, rank: int, world: int) -> Sequence:
    """The contiguous block of ``seq`` that belongs to ``rank`` of ``world``.

    Blocks differ in length by at most one and, concatenated in rank order, give ``seq`` back: the encoder
    merges its ranks' results in the original order by plain concatenation.

    Parameters
    ----------
    seq : sequence
        Anything sliceable (list, range, tensor, array).
    rank, world : int
        This process's rank and the number of processes.

    Returns
    -------
    sequence
        ``seq[rank * n // world : (rank + 1) * n // world]``.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, world) with world >= 1, got rank={rank!r}, world={world!r}")
    n = len(seq)
    return seq[rank * n // world : (rank + 1) * n // world]


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(fn: Callable, *args, root: int = 0, **kwargs):
    """Run ``fn(*args, **kwargs)`` on rank ``root`` only and give every rank its result, or make every rank raise
    its exception.

    Used for the decisions one process must make for all (is there a run to resume, is the cache fresh) and for
    reading a file once. Without a process group it simply calls ``fn``. The result must be picklable. Rank
    ``root`` raises the exception itself; the others raise its nearest built-in class with the same message and
    an attribute ``from_rank`` (``root``), so that a command line can leave reporting it to ``root``.
    """
    rank, world = rank_world()
    if world == 1:
        return fn(*args, **kwargs)
    box, error = [None], None
    if rank == root:
        try:
            box[0] = (True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every error is shared, then re-raised on every rank
            error = exc
            box[0] = (False, (_builtin_base(type(exc)), str(exc)))
    dist.broadcast_object_list(box, src=root, device=_comm_device())
    ok, value = box[0]
    if ok:
        return value
    if error is not None:
        raise error
    cls, message = value
    shared = cls(message)
    shared.from_rank = root  # the error is root's: callers that print errors can leave it to root
    raise shared


def _builtin_base(cls: type) -> type:
    # Other ranks get the nearest built-in class (CheckpointError arrives as ValueError): always unpicklable,
    # and still caught by the caller's ``except ValueError``.
    return next(c for c in cls.__mro__ if c.__module__ == "builtins" and issubclass(c, Exception))


def reduce_means(values: dict, *, weight: float) -> dict:
    """Weighted means across ranks of per-rank means.

    Parameters
    ----------
    values : dict of str to float or None
        This rank's means (e.g. validation metrics over its shard). ``None`` on any rank makes that entry
        ``None`` everywhere (an undefined metric stays undefined); NaN stays NaN.
    weight : float
        What this rank's means are averaged over (its number of images or batches).

    Returns
    -------
    dict
        The same keys in the same order; every rank gets the same numbers. Without a process group, ``values``.
    """
    keys = list(values)  # every rank runs the same code, so the same keys in the same order
    undefined = [v is None for v in (values[k] for k in keys)]
    local = torch.tensor([0.0 if u else float(values[k]) for k, u in zip(keys, undefined)], dtype=torch.float64)
    rank, world = rank_world()
    if world == 1:
        return {k: (None if u else v) for k, u, v in zip(keys, undefined, local.tolist())}
    buf = torch.cat([local * weight, torch.tensor(undefined, dtype=torch.float64),
                     torch.tensor([float(weight)], dtype=torch.float64)]).to(_comm_device())
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    buf = buf.cpu().tolist()
    n, total = len(keys), buf[-1]
    return {k: (None if buf[n + i] > 0 or total == 0 else buf[i] / total) for i, k in enumerate(keys)}


def broadcast_buffers(module: torch.nn.Module, *, src: int = 0) -> None:
    """Copy ``src``'s buffers (BatchNorm running statistics) to every rank, in place.

    DistributedDataParallel only does this at the start of a forward pass, so after an epoch each rank still
    holds the statistics of its own last batches; validating or saving without this would use different models
    on different ranks.
    """
    if rank_world()[1] == 1:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


def gather_to_root(obj, *, root: int = 0, piece_bytes: int = _PIECE_BYTES) -> list | None:
    """Gather one picklable object from every rank onto ``root``, in pieces of at most ``piece_bytes``.

    Parameters
    ----------
    obj : object
        This rank's part (e.g. the encoder's results for its shard of the files).
    root : int
        The rank that receives.
    piece_bytes : int
        Largest message; big parts travel as several messages so no single buffer grows with the dataset.

    Returns
    -------
    list or None
        On ``root``: the objects of ranks 0, 1, ..., in rank order. Elsewhere: None. Without a process group:
        ``[obj]``.
    """
    rank, world = rank_world()
    if world == 1:
        return [obj]
    if piece_bytes < 1:
        raise ValueError(f"piece_bytes must be positive, got {piece_bytes!r}")
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    n_pieces = torch.tensor([max(1, math.ceil(len(data) / piece_bytes))], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(n_pieces, op=dist.ReduceOp.MAX)
    received = [bytearray() for _ in range(world)] if rank == root else None
    for i in range(int(n_pieces.item())):
        piece = data[i * piece_bytes : (i + 1) * piece_bytes]
        got = [None] * world if rank == root else None
        dist.gather_object(piece, got, dst=root)
        if received is not None:
            for r, p in enumerate(got):
                received[r] += p
    del data
    if received is None:
        return None
    parts = []
    for r in range(world):
        parts.append(pickle.loads(bytes(received[r])))  # noqa: S301 - from this job's own ranks (module doc)
        received[r] = bytearray()
    return parts
