"""``drumtx evaluate``: onset F1 per class on a processed split, as papers report it.

Onsets match within +-50 ms per class (mir_eval semantics); micro F1 sums the counts of
all classes, macro F1 averages the per-class F1. Every 9-class result is also reduced
to adtof5, and velocity-aware F1 follows Onsets & Frames (mir_eval
transcription_velocity). ``--tune-thresholds`` picks per-class thresholds on the
validation split (never on the split being reported) and stores them in the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from drumtx.checkpoint import load_checkpoint, save_checkpoint
from drumtx.config import Config
from drumtx.decode import pick_onsets
from drumtx.drums import get_vocab
from drumtx.errors import ConfigError
from drumtx.inference import (
    LoadedModel,
    array_chunks,
    class_thresholds,
    load_model,
    predict_activations,
    reference_hits,
    resolve_device,
    segment_options,
    spread_indices,
    store_audio,
)
from drumtx.metrics import match_onsets, reduce_hits, summarize, velocity_f1
from drumtx.preprocess import load_store
from drumtx.storage import require_roots
from drumtx.transcribe import SHIPPED_MODELS_DIR, find_model

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def run_evaluate(
    cfg: Config,
    *,
    checkpoint: Path | None,
    split: str,
    as_json: bool,
    tune_thresholds: bool,
    limit: int | None,
    device: str | None,
) -> int:
    roots = require_roots(cfg, read=("processed_dir",))
    path = find_model(cfg, checkpoint)
    loaded = load_model(path, cfg, resolve_device(device or cfg.train.device))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if tune_thresholds:
        if path.parent.resolve() == SHIPPED_MODELS_DIR.resolve():
            raise ConfigError(
                "refusing to write tuned thresholds into the model shipped with drumtx",
                hint="copy it first and pass --checkpoint COPY.pt",
            )
        val = load_store(roots.processed_dir / "validation", loaded.cfg)
        tuned = tune(loaded, val, _indices(val, limit))
        store_thresholds(path, tuned)
        loaded.thresholds = tuned
        console.print(f"tuned thresholds on validation, stored in {path}: {tuned}")
    if tune_thresholds and split == "validation":
        console.print(
            "[yellow]warning:[/] thresholds were tuned on the split being reported; "
            "these validation numbers are optimistic (report --split test)"
        )
    store = load_store(roots.processed_dir / split, loaded.cfg)
    results = evaluate_store(
        loaded, store, _indices(store, limit), class_thresholds(loaded)
    )
    results.update(checkpoint=str(path), split=split)
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        print_results(results, Console())
    return 0


def _indices(store, limit: int | None) -> list[int]:
    """Every recording, or ``limit`` of them spread over the split (kits, drummers)."""
    return spread_indices(len(store.recordings), limit or 0)


def activations(loaded: LoadedModel, store, indices: Sequence[int]):
    """(index, onset, velocity, reference hits) of each recording, one at a time."""
    for index in indices:
        audio = store_audio(store, index)
        onset, velocity = predict_activations(
            loaded, array_chunks(audio), len(audio), **segment_options(loaded.cfg)
        )
        yield index, onset, velocity, reference_hits(store, index)


def evaluate_store(
    loaded: LoadedModel, store, indices: Sequence[int], thresholds: Sequence[float]
) -> dict[str, Any]:
    vocab, fps = loaded.vocab, loaded.cfg.frontend.fps
    totals: list = []
    reduced_totals: list = []
    per_kit: dict[str, list] = defaultdict(list)
    all_ref, all_est = [], []
    for index, onset, velocity, ref in activations(loaded, store, indices):
        est = pick_onsets(
            onset, velocity, fps, thresholds, loaded.cfg.decode.min_gap_sec
        )
        counts = match_onsets(ref, est, vocab.n_classes)
        totals = _add(totals, counts)
        kit = store.recordings[index].get("kit", "?")
        per_kit[kit] = _add(per_kit[kit], counts)
        if vocab.name == "roland9":
            adtof = get_vocab("adtof5")
            reduced = match_onsets(
                reduce_hits(ref, vocab), reduce_hits(est, vocab), adtof.n_classes
            )
            reduced_totals = _add(reduced_totals, reduced)
        all_ref.append(ref)
        all_est.append(est)
    results: dict[str, Any] = summarize(totals, vocab.codes)
    results["thresholds"] = dict(zip(vocab.codes, map(float, thresholds)))
    results["n_recordings"] = len(indices)
    if reduced_totals:
        results["adtof5"] = summarize(reduced_totals, get_vocab("adtof5").codes)
    results["velocity_f1"] = velocity_f1(all_ref, all_est, vocab.n_classes)
    results["per_kit"] = {
        kit: summarize(c, vocab.codes)["micro_f1"] for kit, c in sorted(per_kit.items())
    }
    results.pop("image", None)
    return results


def _add(totals: list, counts: list) -> list:
    return list(counts) if not totals else [a + b for a, b in zip(totals, counts)]


MIN_TUNING_HITS = 20  # fewer reference hits than this: keep the configured threshold
F1_TOLERANCE = 0.005  # F1 differences below this are noise; prefer the default then


def tune(loaded: LoadedModel, store, indices: Sequence[int]) -> dict[str, float]:
    """Per-class threshold maximising that class's F1 over the given recordings.

    A small validation set overfits: a class with few reference hits keeps its
    configured threshold, and among near-equal F1s the one nearest the default wins.
    """
    vocab, fps = loaded.vocab, loaded.cfg.frontend.fps
    gap = loaded.cfg.decode.min_gap_sec
    defaults = class_thresholds(dataclasses.replace(loaded, thresholds={}))
    cached = list(activations(loaded, store, indices))
    best: dict[str, float] = {}
    for c, code in enumerate(vocab.codes):
        n_ref = sum(1 for *_, ref in cached for h in ref if h.cls == c)
        if n_ref < MIN_TUNING_HITS:
            continue  # untuned: the config's threshold keeps applying
        scores = np.array(
            [_class_f1(cached, c, t, vocab.n_classes, fps, gap) for t in THRESHOLD_GRID]
        )
        near_best = np.flatnonzero(scores >= scores.max() - F1_TOLERANCE)
        pick = near_best[np.argmin(np.abs(THRESHOLD_GRID[near_best] - defaults[c]))]
        best[code] = float(THRESHOLD_GRID[pick])
    return best


def _class_f1(cached, c: int, threshold: float, n_classes: int, fps: int, gap: float):
    thresholds = [1.01] * n_classes  # above any probability: other classes stay silent
    thresholds[c] = float(threshold)
    total = None
    for _, onset, velocity, ref in cached:
        counts = match_onsets(
            ref, pick_onsets(onset, velocity, fps, thresholds, gap), n_classes
        )[c]
        total = counts if total is None else total + counts
    return total.f1 if total is not None else 0.0


def store_thresholds(path: Path, thresholds: dict[str, float]) -> None:
    """Rewrite the checkpoint (atomically) with the tuned thresholds added."""
    state = load_checkpoint(path)
    state["thresholds"] = thresholds
    save_checkpoint(
        path, {k: v for k, v in state.items() if k not in ("format", "version")}
    )


def print_results(results: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"onset F1 (+-50 ms), {results['split']} split, "
        f"{results['n_recordings']} recordings"
    )
    for column in (
        "class",
        "precision",
        "recall",
        "F1",
        "ref hits",
        "est hits",
        "threshold",
    ):
        table.add_column(column, justify="right" if column != "class" else "left")
    for code, row in results["classes"].items():
        table.add_row(
            code,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["n_ref"]),
            str(row["n_est"]),
            f"{results['thresholds'][code]:.2f}",
        )
    console.print(table)
    console.print(
        f"micro F1 {results['micro_f1']:.3f}   macro F1 {results['macro_f1']:.3f}"
        f"   velocity F1 {results['velocity_f1']['f1']:.3f}"
    )
    if "adtof5" in results:
        reduced = results["adtof5"]
        per = "  ".join(f"{c} {r['f1']:.3f}" for c, r in reduced["classes"].items())
        console.print(
            f"adtof5: micro F1 {reduced['micro_f1']:.3f}  macro F1 "
            f"{reduced['macro_f1']:.3f}   {per}"
        )
    kits = "  ".join(f"{k}: {v:.3f}" for k, v in results["per_kit"].items())
    console.print(f"micro F1 per kit: {kits}")
    console.print(f"checkpoint: {results['checkpoint']}")
