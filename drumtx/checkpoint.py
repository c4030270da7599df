"""Checkpoints: atomic save, ``weights_only`` load, retention, and finding the newest run.

A checkpoint is a dict of tensors and plain Python values only, so it loads with
``torch.load(weights_only=True)``: a file carrying pickled code is refused, never run.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from drumtx.errors import CheckpointError
from drumtx.storage import fsync_dir

FORMAT = "drumtx"
VERSION = 1
STEP_PATTERN = re.compile(r"^step-(\d{6,})\.pt$")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one.

    The temporary file lives beside the target (same filesystem, so ``os.replace`` is
    atomic) and is removed on any failure, e.g. a full disk.
    """
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp_path, "wb") as handle:
            torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise CheckpointError(
                f"no space left on the device while writing {path}; "
                "the previous checkpoint is intact",
                hint="free space on the checkpoint disk, or lower train.keep_checkpoints",
            ) from None
        raise
    fsync_dir(path.parent)


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a drumtx checkpoint with ``weights_only=True``; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist",
            hint="list runs with: ls <storage.checkpoint_dir>; or train one: "
            "python -m drumtx train --profile quick",
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)", hint=_REMAKE)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain "
            f"values ({_first_line(exc)})",
            hint="only load checkpoints you trust; drumtx never unpickles code",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a PyTorch file ({_first_line(exc)})",
            hint=_REMAKE,
        ) from None
    _check_format(path, state)
    return state


_REMAKE = "use another checkpoint (best.pt, last.pt or a step-NNNNNN.pt of the run)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _check_format(path: Path, state: Any) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a drumtx checkpoint",
            hint="pass a file written by `python -m drumtx train`",
        )
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')!r}; this drumtx "
            f"reads version {VERSION}",
            hint="use the drumtx release that wrote it, or retrain",
        )
    for key in ("config", "model", "vocab"):
        if key not in state:
            raise CheckpointError(f"{path} lacks '{key}'", hint=_REMAKE)


def step_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"step-{step:06d}.pt"


def prune_step_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` step-NNNNNN.pt files; return what was removed."""
    steps = sorted(
        (int(m.group(1)), p)
        for p in Path(run_dir).glob("step-*.pt")
        if (m := STEP_PATTERN.match(p.name))
    )
    doomed = [p for _, p in steps[: max(len(steps) - keep, 0)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def newest_run(checkpoint_dir: Path, name: str = "best.pt") -> Path | None:
    """The ``name`` file of the most recently modified run under ``checkpoint_dir``."""
    candidates = [p for p in Path(checkpoint_dir).glob(f"*/{name}") if p.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime_ns)
