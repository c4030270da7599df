"""Checkpoints: atomic save, ``weights_only`` load, retention, finding a run's model.

A checkpoint is a dict of tensors and plain Python values only, so it loads with
``torch.load(weights_only=True)``: a file carrying pickled code is refused, never run.
torch is imported by the functions that read or write one, so that ``doctor`` and
``transcribe --list-models`` find runs without it (doctor reports a broken torch).
"""

from __future__ import annotations

import contextlib
import difflib
import pickle
import re
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
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
    from rich.console import Console


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the
    new one.

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
            hint="check the path (python -m drumtx transcribe --list-models lists the "
            "trained runs' files); or train one: python -m drumtx train --profile "
            "quick",
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)", hint=_REMAKE)
    _refuse_other_files(path)
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
            f"checkpoint {path} is truncated or not a PyTorch file "
            f"({_first_line(exc)})",
            hint=_REMAKE,
        ) from None
    _check_format(path, state)
    return state


# How files that are often passed by mistake begin, and what they are.
_OTHER_FILES = (
    (b"RIFF", "WAV audio"),
    (b"fLaC", "FLAC audio"),
    (b"OggS", "Ogg audio"),
    (b"ID3", "MP3 audio"),
    (b"FORM", "AIFF audio"),
    (b"MThd", "a MIDI file"),
    (b"{", "JSON"),
    (b"[", "TOML or text"),
)


def _refuse_other_files(path: Path) -> None:
    """A PyTorch file is a zip archive (or, from torch before 1.6, a pickle); anything
    else given as a checkpoint (audio, MIDI, a config) is named for what it is."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return
    kind = next((k for magic, k in _OTHER_FILES if head.startswith(magic)), None)
    if kind is None and len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        kind = "MP3 audio"  # an MPEG frame's sync word, without an ID3 tag first
    audio = kind is not None and kind.endswith("audio")
    raise CheckpointError(
        f"{path} is not a model checkpoint"
        + (f": it looks like {kind}" if kind else " (not a PyTorch file)"),
        hint="a checkpoint is a .pt file written by python -m drumtx train (a run's "
        "best.pt or last.pt); transcribe --list-models lists them"
        + ("; the audio to transcribe goes before the options: transcribe song.wav "
           "--checkpoint best.pt" if audio else ""),
    )


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


def step_numbers(run_dir: Path) -> list[int]:
    """The steps of the run's step-NNNNNN.pt files, ascending."""
    return sorted(
        int(m.group(1))
        for p in Path(run_dir).glob("step-*.pt")
        if (m := STEP_PATTERN.match(p.name))
    )


def prune_step_checkpoints(
    run_dir: Path, keep: int, skip: Collection[int] = ()
) -> list[Path]:
    """Delete all but the newest ``keep`` step-NNNNNN.pt files; return what was removed.

    ``skip``: steps whose files are neither counted nor deleted: an earlier attempt's
    saves after the step this run was resumed from (``--resume step-NNNNNN.pt``).
    They are not this run's history (the newest would otherwise outrank, and delete,
    the run's own saves) and not this run's to delete; its saves replace them as it
    reaches their steps.
    """
    own = [n for n in step_numbers(run_dir) if n not in skip]
    doomed = [step_path(run_dir, n) for n in own[: max(len(own) - keep, 0)]]
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


def find_model(
    cfg: Config, checkpoint: str | Path | None, named_by: str = "--checkpoint"
) -> ModelChoice:
    """evaluate's model and why: --checkpoint (a path, a run name, "newest" or
    "shipped", as transcribe takes it), else best.pt of the newest run, else the
    shipped model (transcribe's default is the shipped model: it never uses a run it
    was not told to; evaluate scores what was trained last)."""
    if checkpoint is not None:
        return choose_model(cfg, checkpoint, named_by)
    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    best = newest_run(checkpoint_dir)
    if best is not None:
        name = best.parent.name
        return ModelChoice(best, f"best.pt of the newest run, {name} (the default)")
    shipped = SHIPPED_MODELS_DIR / "default.pt"
    if shipped.is_file():
        return ModelChoice(
            shipped, f"the shipped model: no trained run under {checkpoint_dir}"
        )
    raise ConfigError(
        f"no model found: no --checkpoint, no trained run under {checkpoint_dir}, "
        "and no model shipped with this install",
        hint="train one: python -m drumtx demo (CPU, minutes), or "
        "python -m drumtx preprocess && python -m drumtx train",
    )


SHIPPED, NEWEST = "shipped", "newest"  # transcribe.checkpoint's keywords


@dataclass(frozen=True)
class ModelChoice:
    """The model transcribe uses and why; ``reason`` is shown on its start line."""

    path: Path
    reason: str

    def announce(self, console: Console) -> Path:
        """Print ``model: PATH`` and ``  chosen: REASON``; returns the path."""
        console.print(f"model: {self.path}\n  chosen: {self.reason}", markup=False)
        return self.path


def choose_model(
    cfg: Config, checkpoint: str | Path | None, named_by: str = "--checkpoint"
) -> ModelChoice:
    """The model transcribe uses: ``checkpoint`` (named by ``named_by``), else
    transcribe.checkpoint, whose default is the shipped model.

    A trained run is used only when named (its name, "newest" or a path): a 300-step
    smoke run must not quietly replace the shipped model. Its recorded validation
    score is no ground for promoting it either: it was measured on that run's own
    validation split, not on the held-out audio the shipped model's card reports.
    A ``Path`` is a file or run folder; a ``str`` may also be a keyword or a run name.
    """
    if checkpoint is None:
        spec = cfg.transcribe.checkpoint
        if spec == SHIPPED:
            return _shipped_choice(cfg)
        return _resolve(cfg, spec, f'transcribe.checkpoint = "{spec}"')
    if isinstance(checkpoint, Path) or _looks_like_path(checkpoint):
        return _resolve(cfg, Path(checkpoint), named_by)
    return _resolve(cfg, checkpoint, f"{named_by} {checkpoint}")


def _resolve(cfg: Config, spec: str | Path, named_by: str) -> ModelChoice:
    """``spec`` as a path, "shipped", "newest" or a run name; ``named_by`` says who."""
    if isinstance(spec, Path) or _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir() and (path / "best.pt").is_file():
            return ModelChoice(path / "best.pt", f"best.pt of that folder ({named_by})")
        if not path.is_file():  # a usage error (exit 2), as a run name not found is
            raise _no_such_file(path, named_by)
        return ModelChoice(path, named_by)
    if spec == SHIPPED:
        return ModelChoice(_shipped_path(cfg), f"the shipped model ({named_by})")
    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    if spec == NEWEST:
        best = newest_run(checkpoint_dir)
        if best is None:
            raise ConfigError(
                f"{named_by}: no trained run with a best.pt under {checkpoint_dir}",
                hint="train one (python -m drumtx train --run NAME), or use the "
                'shipped model: transcribe.checkpoint = "shipped"',
            )
        name = best.parent.name
        return ModelChoice(best, f"best.pt of the newest run, {name} ({named_by})")
    best = checkpoint_dir / spec / "best.pt"
    if not best.is_file():
        raise _no_such_run(spec, checkpoint_dir, named_by)
    return ModelChoice(best, f"best.pt of run {spec} ({named_by})")


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith(".pt") or Path(spec).is_file()


def _no_such_file(path: Path, named_by: str) -> ConfigError:
    """A model path that names nothing, or a folder without a best.pt."""
    if path.is_dir():
        last = path / "last.pt"
        use = f"its latest weights: --checkpoint {last}" if last.is_file() else ""
        return ConfigError(
            f"{named_by}: {path} holds no best.pt",
            hint=use or "name a .pt file (python -m drumtx transcribe --list-models "
            "lists the trained runs' files)",
        )
    return ConfigError(
        f"{named_by}: checkpoint {path} does not exist",
        hint="check the path (python -m drumtx transcribe --list-models lists the "
        "trained runs' files)",
    )


def _no_such_run(name: str, checkpoint_dir: Path, named_by: str) -> ConfigError:
    last = checkpoint_dir / name / "last.pt"
    if last.is_file():
        return ConfigError(
            f"{named_by}: run {name!r} has no best.pt yet (it has not reached its "
            "first validation, train.eval_every)",
            hint=f"use its latest weights by path: --checkpoint {last}",
        )
    runs = [r.name for r in trained_runs(checkpoint_dir)]
    close = difflib.get_close_matches(name, runs, n=1)
    known = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(
        f"{named_by}: no run {name!r} with a best.pt under {checkpoint_dir} "
        f"(runs: {', '.join(runs) or 'none'})",
        hint=f"{known}list the models: python -m drumtx transcribe --list-models",
    )


def _shipped_choice(cfg: Config) -> ModelChoice:
    """The default, with a pointer to trained runs: they are there but not used."""
    reason = 'the shipped model, the default (transcribe.checkpoint = "shipped")'
    with contextlib.suppress(OSError):  # the pointer is a courtesy, never an error
        runs = trained_runs(resolve_roots(cfg).checkpoint_dir)
        if runs:
            newest = runs[-1].name
            reason += f"; a trained run is used when named: --checkpoint {newest}"
    return ModelChoice(_shipped_path(cfg), reason)


def _shipped_path(cfg: Config) -> Path:
    shipped = SHIPPED_MODELS_DIR / "default.pt"
    if shipped.is_file():
        return shipped
    runs = trained_runs(resolve_roots(cfg).checkpoint_dir)
    use = f"--checkpoint {runs[-1].name}, or " if runs else ""
    raise ConfigError(
        "no model found: this install ships no model (drumtx/models/default.pt)",
        hint=f"use a trained run: {use}train one: python -m drumtx demo (CPU, "
        "minutes), or python -m drumtx preprocess && python -m drumtx train",
    )


def trained_runs(checkpoint_dir: Path) -> list[Path]:
    """Run folders under ``checkpoint_dir`` that hold a best.pt, oldest first."""
    if not Path(checkpoint_dir).is_dir():
        return []
    return [run for run in run_dirs(checkpoint_dir) if (run / "best.pt").is_file()]


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
