"""DDP numerics: two gloo ranks on the CPU run drumtx's own optimizer step.

Each rank builds the parts as train() does (build_parts, seed_rank, wrap_model) and
takes optimizer steps with accum_steps=2, so the first micro-step runs under no_sync.
Checked: both ranks end with identical parameters; 2 ranks x batch B move the weights
as 1 process x batch 2B does; gradients are all-reduced once per optimizer step, not
once per micro-step; and dropout draws differ between ranks.

"2 x B equals 1 x 2B" holds for the per-example computation. BatchNorm in training
mode normalises with each rank's own batch statistics (no SyncBatchNorm), as in any
DDP run, so that comparison runs the model in eval mode (running statistics, no
dropout); the identical-parameters check runs in training mode.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from pipeline import tiny_config

from drumtx.distributed import Dist
from drumtx.frontend import n_frames
from drumtx.train_state import seed_rank
from drumtx.train_step import build_parts, optimizer_step, wrap_model

N_CLASSES, B, N_STEPS, ACCUM = 9, 4, 2, 2
CROP_SAMPLES, HOP, LR = 12000, 240, 1e-3
WORLD = 2

needs_gloo = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="no torch.distributed with gloo",
)


def _cfg(batch_size: int):
    return tiny_config(
        Path("/nonexistent"),
        f"train.batch_size={batch_size}",
        f"train.accum_steps={ACCUM}",
        "train.amp='off'",
    )


def _global_micro_batches() -> list[tuple[torch.Tensor, ...]]:
    """N_STEPS x ACCUM micro-batches of WORLD * B crops, the same in every process.

    Every crop has the same number of velocity targets, so the velocity loss (a mean
    over a micro-batch's targets) of the whole batch is the mean of its halves'.
    """
    gen = torch.Generator().manual_seed(0)
    n_t = n_frames(CROP_SAMPLES, HOP)
    batches = []
    for _ in range(N_STEPS * ACCUM):
        n = WORLD * B
        audio = 0.1 * torch.randn(n, CROP_SAMPLES, generator=gen)  # (n, N)
        onset = (torch.rand(n, n_t, N_CLASSES, generator=gen) < 0.05).float()
        velocity = torch.rand(n, n_t, N_CLASSES, generator=gen)
        mask = torch.zeros(n, n_t, N_CLASSES)
        for i in range(n):  # 6 targets per crop, at random frames
            frames = torch.randperm(n_t, generator=gen)[:6]
            mask[i, frames, i % N_CLASSES] = 1.0
        batches.append((audio, onset, velocity * mask, mask))
    return batches


def _run_steps(parts, micro_batches) -> None:
    feed = iter(micro_batches)
    for _ in range(N_STEPS):
        result = optimizer_step(parts, lambda: next(feed), LR)
        assert result.applied and not result.bad


def _params(parts) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in parts.model.named_parameters()}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    dist = Dist(rank=rank, local_rank=rank, world_size=WORLD)
    cfg, cpu = _cfg(B), torch.device("cpu")
    mine = [
        tuple(t[rank * B : (rank + 1) * B] for t in batch)  # this rank's half
        for batch in _global_micro_batches()
    ]
    out: dict[str, object] = {}
    try:
        # Training mode, as train() builds it: dropout, BatchNorm batch statistics.
        parts = build_parts(cfg, cpu, N_CLASSES)
        seed_rank(cfg.train.seed, rank)
        wrap_model(parts, dist)
        with torch.no_grad():  # one input on both ranks: only dropout can differ
            out["logits"] = parts.net(parts.frontend(_global_micro_batches()[0][0]))[0]
        _run_steps(parts, mine)
        out["train"] = _params(parts)

        # Eval mode (running statistics, no dropout): comparable with one process.
        parts = build_parts(cfg, cpu, N_CLASSES)
        seed_rank(cfg.train.seed, rank)
        wrap_model(parts, dist)
        parts.model.eval()
        reduced: list[int] = []
        parts.net.register_comm_hook(reduced, _counting_allreduce)
        _run_steps(parts, mine)
        out["eval"], out["reduced"] = _params(parts), reduced
    finally:
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
        torch.distributed.destroy_process_group()


def _counting_allreduce(state: list, bucket):
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import (
        allreduce_hook,
    )

    state.append(bucket.index())
    return allreduce_hook(None, bucket)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    env = {"OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        torch.multiprocessing.spawn(
            _worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=True
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@needs_gloo
@pytest.mark.slow
def test_both_ranks_end_with_identical_parameters(ranks: list[dict]) -> None:
    for name, tensor in ranks[0]["train"].items():
        assert torch.equal(tensor, ranks[1]["train"][name]), name
    assert ranks[0]["train"].keys() == ranks[1]["train"].keys()


@needs_gloo
@pytest.mark.slow
def test_two_ranks_of_b_step_like_one_process_of_2b(ranks: list[dict]) -> None:
    torch.set_num_threads(1)
    parts = build_parts(_cfg(WORLD * B), torch.device("cpu"), N_CLASSES)
    parts.model.eval()
    start = _params(parts)
    _run_steps(parts, _global_micro_batches())
    single = _params(parts)
    moved = 0.0
    for name, tensor in single.items():
        ddp = ranks[0]["eval"][name]
        assert torch.equal(ddp, ranks[1]["eval"][name]), name
        torch.testing.assert_close(ddp, tensor, rtol=1e-4, atol=2e-6, msg=name)
        moved = max(moved, float((tensor - start[name]).abs().max()))
    assert moved > 1e-3  # not vacuous: the two AdamW steps moved the weights


@needs_gloo
@pytest.mark.slow
def test_gradients_are_reduced_once_per_optimizer_step(ranks: list[dict]) -> None:
    """accum_steps=2: the first micro-step runs under no_sync."""
    for rank in ranks:
        n_buckets = len(set(rank["reduced"]))
        assert len(rank["reduced"]) == N_STEPS * n_buckets, rank["reduced"]


@needs_gloo
@pytest.mark.slow
def test_dropout_differs_between_ranks(ranks: list[dict]) -> None:
    assert not torch.equal(ranks[0]["logits"], ranks[1]["logits"])
