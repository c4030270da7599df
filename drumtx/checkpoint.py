"""Checkpoints: atomic save, ``weights_only`` load, retention, finding a run's model.

A checkpoint is a dict of tensors and plain Python values only, so it loads with
``torch.load(weights_only=True)``: a file carrying pickled code is refused, never run.
torch is imported by the functions that read or write one, so that ``doctor`` and
``transcribe --list-models`` find runs without it (doctor reports a broken torch).
"""

from __future__ import annotations

import contextlib
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drumtx.config import MODEL_TABLES, Config, config_from_dict
from drumtx.errors import CheckpointError, ConfigError
from drumtx.storage import replacing, resolve_roots

FORMAT = "drumtx"
VERSION = 1
STEP_PATTERN = re.compile(r"^step-(\d{6,})\.pt$")
SHIPPED_MODELS_DIR = Path(__file__).parent / "models"

if TYPE_CHECKING:
    import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one.

    torch.save writes a temporary file beside the target (same filesystem, so the
    rename is atomic), removed on any failure; a full disk is a StorageError.
    """
    import torch

    full_hint = "or lower train.keep_checkpoints; the previous checkpoint is intact"
    with replacing(path, full_hint=full_hint) as fd:
        with open(fd, "wb", closefd=False) as handle:
            torch.save({"format": FORMAT, "version": VERSION, **state}, handle)


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a drumtx checkpoint with ``weights_only=True``; anything else is refused."""
    import torch

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


def run_time_ns(run_dir: Path) -> int:
    """When training last wrote a run: last.pt's mtime, else best.pt's, else the dir's.

    Training rewrites last.pt at every save; best.pt is not the clock, because
    ``evaluate --tune-thresholds`` rewrites it, and tuning an old run must not make it
    the newest.
    """
    for name in ("last.pt", "best.pt"):
        with contextlib.suppress(FileNotFoundError):
            return (Path(run_dir) / name).stat().st_mtime_ns
    return Path(run_dir).stat().st_mtime_ns


def run_dirs(parent: Path) -> list[Path]:
    """The run folders under ``parent`` (checkpoint or log dir), oldest first."""
    runs = [p for p in Path(parent).iterdir() if p.is_dir()]
    return sorted(runs, key=lambda p: (run_time_ns(p), p.name))


def newest_run(checkpoint_dir: Path, name: str = "best.pt") -> Path | None:
    """The ``name`` file of the newest run under ``checkpoint_dir`` that has one."""
    if not Path(checkpoint_dir).is_dir():
        return None
    having = [run / name for run in run_dirs(checkpoint_dir) if (run / name).is_file()]
    return having[-1] if having else None


def shipped_models() -> list[Path]:
    """The models inside the drumtx package."""
    return sorted(SHIPPED_MODELS_DIR.glob("*.pt"))


def is_shipped(path: Path) -> bool:
    """True for a model that ships inside the drumtx package."""
    return Path(path).parent.resolve() == SHIPPED_MODELS_DIR.resolve()


def find_model(cfg: Config, checkpoint: Path | None) -> Path:
    """--checkpoint, else best.pt of the newest run, else the model drumtx ships."""
    if checkpoint is not None:
        return checkpoint
    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    best = newest_run(checkpoint_dir)
    if best is not None:
        return best
    shipped = SHIPPED_MODELS_DIR / "default.pt"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no model found: no --checkpoint, no trained run under {checkpoint_dir}, "
        "and no model shipped with this install",
        hint="train one: python -m drumtx demo (CPU, minutes), or "
        "python -m drumtx preprocess && python -m drumtx train",
    )


def model_config(cfg: Config, state: Mapping[str, Any]) -> Config:
    """``cfg`` with the tables that shape the network taken from a checkpoint ``state``.

    audio, frontend and model come from the checkpoint's config (a table it lacks gets
    the defaults, never the current TOML); data.vocab is the checkpoint's vocab.
    """
    saved = state.get("config", {})
    tables = cfg.to_dict()
    for name in MODEL_TABLES:
        tables[name] = saved.get(name, {})
    tables["data"] = {**tables["data"], "vocab": state["vocab"]}
    return config_from_dict(tables)
