"""Training state on disk: what a checkpoint holds, how a run resumes, what is kept.

A training checkpoint is always whole: the weights, the optimizer and scaler state and
the step number are taken together between two optimizer steps (never while one is half
applied), so a resumed run continues exactly where the saved one stood.
"""

from __future__ import annotations

import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from drumtx import __version__
from drumtx.checkpoint import (
    load_checkpoint,
    prune_step_checkpoints,
    save_checkpoint,
    step_path,
)
from drumtx.config import Config
from drumtx.errors import CheckpointError, ConfigError
from drumtx.train_step import TrainParts

CHECKPOINT_BYTES_GUESS = 64 * 2**20  # a base model with AdamW state, rounded up


@dataclass
class TrainState:
    step: int = 0
    best_f1: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per eval

    @property
    def evaluated_step(self) -> int:
        """The last step validated (-1: none); a resumed run must not redo it."""
        return int(self.history[-1]["step"]) if self.history else -1

    def record(self, step: int, micro_f1: float) -> bool:
        """Note one validation; True when it beats the best so far."""
        improved = micro_f1 > self.best_f1
        self.best_f1 = max(self.best_f1, micro_f1)
        self.history.append({"step": step, "micro_f1": micro_f1})
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
            "optimizer state), so training cannot continue from it exactly",
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


def restore_rng(rng: dict[str, Any]) -> None:
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "python" in rng:
        random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        # One state per GPU saved; a resume may see fewer GPUs than the run that saved.
        for index, cuda_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def restore(saved: dict[str, Any], parts: TrainParts, state: TrainState) -> None:
    """Load a training checkpoint into freshly built parts and state."""
    parts.model.load_state_dict(saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler"):  # {} from a bf16 or fp32 run: a fresh scaler
        parts.scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    state.best_f1 = float(saved["best_f1"])
    state.history = list(saved.get("history", []))
    restore_rng(saved.get("rng", {}))


def training_payload(cfg: Config, parts: TrainParts, state: TrainState) -> dict:
    """A checkpoint's contents; the model is the uncompiled, unwrapped network."""
    scaler = parts.scaler
    return {
        "config": cfg.to_dict(),
        "vocab": cfg.data.vocab,
        "drumtx_version": __version__,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": state.step,
        "best_f1": state.best_f1,
        "history": state.history,
        "rng": rng_state(),
    }


def save_training(
    cfg: Config, run_dir: Path, parts: TrainParts, state: TrainState, improved: bool
) -> None:
    """last.pt, step-NNNNNN.pt, and best.pt on improvement (call on rank 0 only)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = training_payload(cfg, parts, state)
    # last.pt first: whatever else a kill interrupts, resume finds the newest state.
    save_checkpoint(run_dir / "last.pt", payload)
    keep = make_room(run_dir, cfg.train.keep_checkpoints)
    if keep > 0:
        save_checkpoint(step_path(run_dir, state.step), payload)
        prune_step_checkpoints(run_dir, keep)
    if improved:
        # best.pt carries no optimizer state: it is the model users transcribe with.
        best = {k: v for k, v in payload.items() if k not in ("optimizer", "scaler")}
        save_checkpoint(run_dir / "best.pt", best)


def make_room(run_dir: Path, keep: int) -> int:
    """Step checkpoints to keep; fewer, and old ones pruned, when the disk fills."""
    last = run_dir / "last.pt"
    size = last.stat().st_size if last.exists() else CHECKPOINT_BYTES_GUESS
    free = shutil.disk_usage(run_dir).free
    if free > (keep + 3) * size:
        return keep
    reduced = max(0, min(keep, int(free // size) - 3))
    prune_step_checkpoints(run_dir, reduced)
    print(
        f"warning: {free / 2**30:.1f} GiB free under {run_dir}; keeping {reduced} "
        f"step checkpoints instead of {keep}",
        file=sys.stderr,
    )
    return reduced
