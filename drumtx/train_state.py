"""Training state on disk: what a checkpoint holds, how a run resumes, what is kept.

A training checkpoint is always whole: the weights, the optimizer and scaler state and
the step number are taken together between two optimizer steps (never while one is half
applied). A resumed run continues from there with those, the learning-rate schedule
(drumtx/schedule.py), the validation history and best score, and on each rank that
rank's own torch RNG state (dropout). It does not replay the crops the saved run would
have drawn next: the loader is seeded from (seed, step, rank, worker), so a resumed run
draws fresh crops and its losses part from an uninterrupted run's after the resume.
"""

from __future__ import annotations

import random
import shutil
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drumtx import __version__
from drumtx.checkpoint import (
    load_checkpoint,
    prune_step_checkpoints,
    save_checkpoint,
    step_path,
)
from drumtx.config import Config
from drumtx.errors import CheckpointError, ConfigError, DrumtxError
from drumtx.schedule import Schedule
from drumtx.train_step import TrainParts, set_weight_decay

CHECKPOINT_BYTES_GUESS = 64 * 2**20  # a base model with AdamW state, rounded up


@dataclass
class TrainState:
    """Where a run stands. A validation score is the mean of the micro-F1 of the drums
    alone and mixed into their backing at 0 dB (the first alone without backing)."""

    step: int = 0
    best_score: float = -1.0  # the best validation score so far; picks best.pt
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "score"}
    schedule: Schedule | None = None  # the learning-rate schedule the run follows
    # steps of step-NNNNNN.pt files an earlier attempt saved after the step this run
    # resumed from: not this run's to count or prune (until its saves replace them)
    abandoned: frozenset[int] = frozenset()

    @property
    def evaluated_step(self) -> int:
        """The last step validated (-1: none); a resumed run must not redo it."""
        return int(self.history[-1]["step"]) if self.history else -1

    def record(self, step: int, score: float) -> bool:
        """Note one validation score; True when it beats the best so far."""
        improved = score > self.best_score
        self.best_score = max(self.best_score, score)
        self.history.append({"step": step, "score": score})
        return improved


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """``auto``: the run's last.pt if any; a path: that file; None: a fresh run."""
    last = run_dir / "last.pt"
    if resume is None:
        if last.exists():
            raise ConfigError(
                f"run {run_dir.name} already has checkpoints in {run_dir}",
                hint=f"continue it with --resume auto --run {run_dir.name}, "
                "or start another with --run NEW_NAME",
            )
        return None
    if resume == "auto":
        return last if last.exists() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(
            f"--resume {resume}: no such checkpoint",
            hint="use --resume auto, or the path of a last.pt / step-NNNNNN.pt",
        )
    if "optimizer" not in load_checkpoint(path):
        raise CheckpointError(
            f"--resume {resume}: this checkpoint holds weights only (best.pt keeps no "
            "optimizer state), so training cannot continue from it",
            hint="resume from last.pt or a step-NNNNNN.pt of the same run",
        )
    return path


def rng_state() -> dict[str, Any]:
    """Global torch/CUDA/Python RNG states. Crops draw from their own seeded generators
    (seed, step, rank, worker), so numpy's global state plays no part."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def seed_rank(seed: int, rank: int, *more: int) -> None:
    """Seed torch's global generator for this rank alone: dropout differs between
    ranks (the model's initial weights, drawn before, are the same on all)."""
    entropy = np.random.SeedSequence([seed, rank, *more]).generate_state(1)
    torch.manual_seed(int(entropy[0]))


def restore_rng(rng: dict[str, Any]) -> None:
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "python" in rng:
        random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        # One state per GPU saved; a resume may see fewer GPUs than the run that saved.
        for index, cuda_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def restore(
    saved: dict[str, Any], parts: TrainParts, state: TrainState, rank: int = 0
) -> None:
    """Load a training checkpoint into freshly built parts and state, on ``rank``;
    ``state.schedule``, when set, is the schedule the resumed run follows."""
    parts.model.load_state_dict(saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    if state.schedule is not None:  # the saved one, or the config's on "new"
        set_weight_decay(parts.optimizer, state.schedule.weight_decay)
    if saved.get("scaler"):  # {} from a bf16 or fp32 run: a fresh scaler
        parts.scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    # Checkpoints before drumtx named the score best_f1 and micro_f1.
    state.best_score = float(saved.get("best_score", saved.get("best_f1", -1.0)))
    state.history = [
        {"step": h["step"], "score": h.get("score", h.get("micro_f1"))}
        for h in saved.get("history", [])
    ]
    by_rank = saved.get("rng_by_rank") or [saved.get("rng", {})]
    if rank < len(by_rank):
        restore_rng(by_rank[rank])
    else:  # more ranks than the saved run had: a fresh stream of its own
        seed_rank(parts.cfg.train.seed, rank, state.step)


def training_payload(
    cfg: Config,
    parts: TrainParts,
    state: TrainState,
    rngs: Sequence[dict[str, Any]] | None = None,
) -> dict:
    """A checkpoint's contents; the model is the uncompiled, unwrapped network.

    ``rngs``: every rank's rng_state(), in rank order (this process's alone if None).
    """
    scaler = parts.scaler
    rngs = list(rngs) if rngs is not None else [rng_state()]
    schedule = state.schedule or Schedule.from_config(cfg)
    return {
        "config": cfg.to_dict(),
        "vocab": cfg.data.vocab,
        "drumtx_version": __version__,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": state.step,
        "best_score": state.best_score,
        "history": state.history,
        "schedule": schedule.to_dict(),
        "rng": rngs[0],
        "rng_by_rank": rngs,
    }


def save_training(
    cfg: Config,
    run_dir: Path,
    parts: TrainParts,
    state: TrainState,
    improved: bool,
    rngs: Sequence[dict[str, Any]] | None = None,
) -> None:
    """last.pt, step-NNNNNN.pt, and best.pt on improvement (call on rank 0 only)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = training_payload(cfg, parts, state, rngs)
    # last.pt first: whatever else a kill interrupts, resume finds the newest state.
    save_checkpoint(run_dir / "last.pt", payload)
    keep = make_room(run_dir, cfg.train.keep_checkpoints, state.abandoned)
    if keep > 0:
        save_checkpoint(step_path(run_dir, state.step), payload)
        state.abandoned -= {state.step}  # replaced by this run's own save
        prune_step_checkpoints(run_dir, keep, skip=state.abandoned)
    if improved:
        # best.pt carries no optimizer state: it is the model users transcribe with.
        best = {k: v for k, v in payload.items() if k not in ("optimizer", "scaler")}
        save_checkpoint(run_dir / "best.pt", best)


def keep_better_best(run_dir: Path, state: TrainState) -> str | None:
    """On a resume from an older step, best.pt may be a later step's of the attempt
    abandoned, scored higher than anything up to the resumed step: this run then
    replaces it only by scoring higher still (state.best_score takes its score), not
    with whatever first beats the resumed step's best. Returns the line to print."""
    best = run_dir / "best.pt"
    if state.step == 0 or not best.is_file():
        return None
    try:
        saved = load_checkpoint(best)
    except DrumtxError:  # unreadable: the next improvement replaces it
        return None
    step, score = int(saved.get("step", 0)), float(saved.get("best_score", -1.0))
    if step <= state.step or score <= state.best_score:
        return None
    state.best_score = score
    return (
        f"resume: best.pt is step {step}'s of an earlier attempt (validation score "
        f"{score:.3f}); it stays best.pt until this run scores higher"
    )


def make_room(run_dir: Path, keep: int, abandoned: Collection[int] = ()) -> int:
    """Step checkpoints to keep; fewer, and old ones pruned, when the disk fills
    (never the ``abandoned`` attempt's: prune_step_checkpoints)."""
    last = run_dir / "last.pt"
    size = last.stat().st_size if last.exists() else CHECKPOINT_BYTES_GUESS
    free = shutil.disk_usage(run_dir).free
    if free > (keep + 3) * size:
        return keep
    reduced = max(0, min(keep, int(free // size) - 3))
    prune_step_checkpoints(run_dir, reduced, skip=abandoned)
    print(
        f"warning: {free / 2**30:.1f} GiB free under {run_dir}; keeping {reduced} "
        f"step checkpoints instead of {keep}",
        file=sys.stderr,
    )
    return reduced
