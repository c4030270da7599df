"""How torch work on the CPU uses threads where its thread pool does not pay.

A bidirectional GRU over a segment is thousands of small steps. On torch's thread pool
each step is a parallel region whose threads meet at a barrier, so when another program
holds a core, the step waits for a descheduled thread to get that core back, once per
step. :func:`bidirectional_gru` runs the two directions side by side instead, each on
one thread of its own: no barrier inside the sequence, one join at its end. On this
project's 2-core machine (``tools/bench_transcribe.py --gru split,pool``, README *On a
busy CPU*) a 5-minute file beside two busy programs took 8.65 s against 14.79 s on the
pool, and 4.01 s against 4.64 s on an idle machine, where the pool hardly helps the
GRU: its steps, a few segments each, are too small to share.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor, nn

_GRU_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch on ``n`` intra-op threads, then restore the count."""
    import torch  # here: drumtx.harmony, which uses this, is imported without torch

    threads = torch.get_num_threads()
    if threads == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_torch_thread() -> AbstractContextManager[None]:
    """Run the block with torch on one intra-op thread, then restore the count."""
    return torch_threads(1)


def splits_directions(gru: nn.GRU, x: Tensor) -> bool:
    """Whether :func:`bidirectional_gru` applies: CPU inference without autocast, a
    batch-first bidirectional GRU with biases, and more than one thread to use."""
    import torch

    return (
        x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not gru.training
        and not torch.is_autocast_enabled("cpu")
        and gru.bidirectional
        and gru.batch_first
        and gru.bias
        and gru.proj_size == 0
        and torch.get_num_threads() > 1
    )


def bidirectional_gru(gru: nn.GRU, x: Tensor) -> Tensor:
    """``gru(x)[0]`` for a bidirectional, batch-first GRU in inference: each layer's
    backward direction runs on a thread of its own beside the forward one, both on one
    torch thread. Every segment of a batch has the same length, so the backward
    direction is the forward recursion over the time-reversed input."""
    import torch

    inference = torch.is_inference_mode_enabled()
    with one_torch_thread():
        for layer in range(gru.num_layers):
            backward: list[Tensor | BaseException] = []
            worker = threading.Thread(
                target=_backward_direction, args=(gru, layer, x, inference, backward)
            )
            worker.start()
            try:
                forward = _direction(gru, layer, x, "")
            finally:
                worker.join()
            [result] = backward
            if isinstance(result, BaseException):
                raise result
            x = torch.cat([forward, result], dim=-1)
    return x


def _backward_direction(
    gru: nn.GRU,
    layer: int,
    x: Tensor,
    inference: bool,
    out: list[Tensor | BaseException],
) -> None:
    """The backward direction on the calling (worker) thread; its result, or what it
    raised, goes to ``out`` for the caller to return or raise."""
    import torch

    try:
        torch.set_num_threads(1)  # this thread's own count; the process's is 1 too
        mode = torch.inference_mode() if inference else torch.no_grad()
        with mode:  # grad mode is per thread: a new one starts with gradients on
            out.append(_direction(gru, layer, x.flip(1), "_reverse").flip(1))
    except BaseException as error:  # re-raised on the caller's thread
        out.append(error)


def _direction(gru: nn.GRU, layer: int, x: Tensor, suffix: str) -> Tensor:
    """One direction of one layer as a unidirectional GRU over ``x``."""
    from torch import nn
    from torch.func import functional_call

    # A shell on the meta device allocates nothing; the real weights replace its own.
    shell = nn.GRU(x.shape[-1], gru.hidden_size, batch_first=True, device="meta")
    params = {f"{name}_l0": getattr(gru, f"{name}_l{layer}{suffix}")
              for name in _GRU_PARAMS}  # fmt: skip
    return functional_call(shell, params, (x,))[0]
