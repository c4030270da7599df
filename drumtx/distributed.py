"""Running under torchrun, and stopping cleanly: ranks, agreements, signals.

Without torchrun everything here degrades to one process (``Dist()``) and no
collective is ever called. Under torchrun each rank is one process: NCCL on GPUs, gloo
on the CPU. Whatever must be the same on every rank (the run name, when to stop) is
decided here by one collective, so no rank can leave the loop while another still waits
in an all-reduce.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

import torch

from drumtx.errors import ConfigError

# Other ranks wait at a barrier while rank 0 validates and saves: allow for it.
COLLECTIVE_TIMEOUT = timedelta(hours=2)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def device(self) -> torch.device:
        """Where collectives' tensors live: NCCL needs them on this rank's GPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def init_distributed() -> Dist:
    """Join the torchrun job if launched by torchrun (NCCL on GPUs, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    dist = Dist(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if not dist.enabled:
        return dist
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        check_local_rank(dist, torch.cuda.device_count())
        torch.cuda.set_device(dist.local_rank)
    torch.distributed.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return dist


def check_local_rank(dist: Dist, n_gpus: int) -> None:
    """Each rank drives one GPU: more ranks per node than GPUs is a launch error."""
    if dist.local_rank >= n_gpus:
        raise ConfigError(
            f"torchrun started local rank {dist.local_rank} but this node has "
            f"{n_gpus} GPU(s)",
            hint=f"use torchrun --nproc-per-node {n_gpus} (one rank per GPU)",
        )


def shutdown(dist: Dist) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.enabled:
        torch.distributed.barrier()


def gather_objects(obj: object, dist: Dist) -> list:
    """``obj`` from every rank, in rank order, on every rank (a collective)."""
    if not dist.enabled:
        return [obj]
    gathered: list = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def agree_on_run_name(run_name: str | None, dist: Dist) -> str:
    """The run name, the same on every rank (rank 0's timestamp wins)."""
    name = run_name or datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if dist.enabled:
        box = [name]
        torch.distributed.broadcast_object_list(box, src=0)
        name = box[0]
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(
            f"--run {name!r} is not a usable run name", hint="e.g. --run base-1"
        )
    return name


class StopSignals:
    """SIGINT and SIGTERM only raise a flag; the training loop reads it between steps.

    Schedulers and torchrun stop workers with SIGTERM, a user with Ctrl-C: either way
    the current optimizer step finishes, so what is saved is whole. A second signal
    gives up at once (KeyboardInterrupt), saving nothing more. Forked DataLoader
    workers inherit the handler; in them it does nothing: the parent shuts them down.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._pid = os.getpid()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum


class RunClock:
    """Wall time since the loop started, against train.time_limit_min (0 = none)."""

    def __init__(self, limit_min: float) -> None:
        self.limit_sec = 60.0 * limit_min
        self.start = time.monotonic()

    @property
    def elapsed_sec(self) -> float:
        return time.monotonic() - self.start

    @property
    def time_up(self) -> bool:
        return self.limit_sec > 0 and self.elapsed_sec > self.limit_sec


def agree_to_stop(stop: StopSignals, clock: RunClock, dist: Dist) -> tuple[bool, bool]:
    """(interrupted, out_of_time), the same on every rank.

    A signal to any rank stops them all; rank 0's clock alone decides the time limit.
    Under torchrun this is one small all-reduce (a sync point) per optimizer step.
    """
    if not dist.enabled:
        return stop.requested, clock.time_up
    flags = torch.tensor(
        [float(stop.requested), float(dist.is_main and clock.time_up)],
        device=dist.device,
    )
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    interrupted, out_of_time = (value > 0 for value in flags.tolist())
    return interrupted, out_of_time
