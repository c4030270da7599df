"""A small processed store for the tools: generated grooves through synth kits.

Needs nothing beyond drumtx's own dependencies and no dataset, so it runs on a machine
that can reach no package registry or download (a lent GPU machine).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from drumtx.config import load_config
from drumtx.make_dataset import make_dataset
from drumtx.preprocess import run_preprocess

MADE_KITS = ("synth:1", "synth:2")


def build_made_store(
    data_root: Path,
    *,
    n_performances: int,
    max_sec: float = 30.0,
    kits: Sequence[str] = MADE_KITS,
    splits: Sequence[str] = ("train",),
    workers: int = 2,
) -> None:
    """make-dataset then preprocess ``splits`` into ``data_root/processed_data``."""
    with contextlib.redirect_stdout(sys.stderr):  # keep the tool's stdout its report
        make_dataset(
            data_root,
            midi_dir=None,
            kits=list(kits),
            limit=n_performances,
            seed=0,
            max_sec=max_sec,
            splits=list(splits),
        )
        cfg = load_config(None, [f"storage.data_root='{data_root}'"])
        status = run_preprocess(
            cfg, splits=list(splits), limit=None, workers=workers, allow_skips=True
        )
    if status != 0:
        raise SystemExit(f"preprocess of the made store failed (exit {status})")
