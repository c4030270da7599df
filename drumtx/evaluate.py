"""``drumtx evaluate``: onset F1 per class on a processed split, as papers report it.

Onsets match within +-50 ms per class (mir_eval semantics); micro F1 sums the counts of
all classes, macro F1 averages the per-class F1 of the classes with reference hits.
Every 9-class result is also reduced
to adtof5, and velocity-aware F1 follows Onsets & Frames (mir_eval
transcription_velocity). ``--tune-thresholds`` picks per-class thresholds on the
validation split (never on the split being reported) and stores them in the checkpoint.

Where the store holds backing tracks, the same recordings are also scored mixed into
their backing at each ``backing_db`` drums-to-music level (default +6 and 0 dB), side by
side with the drums alone; tuning then pools the drums alone and every mix. With
``--music-dir`` the mixes hear real music instead, in tuning too (tune on validation
with the pool's *train* split, report on test with its held-out *test* split), and the
pool's music is also heard alone: every hit found there is a false one (``music_alone``:
hits per minute by class, what a song's intro or break would get).

Every report carries fingerprints of what it scored (``set``: the store's recordings,
every label and a sample of its audio; ``music``: the pool's excerpts and a sample of
its audio), so numbers from another machine's rebuild of a held-out set (other renders,
a pool screened otherwise) can be told apart from numbers on the same set.

Where the recordings' MIDI files are at hand (the E-GMD root), the tempo map transcribe
would write is scored against each MIDI's (GMD is played to a click from time 0): beat
and downbeat F-measure (mir_eval.beat, +-70 ms) and tempo within 4 %, per beat type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from drumtx.audio import to_int16
from drumtx.checkpoint import find_model, is_shipped, load_checkpoint, save_checkpoint
from drumtx.config import Config
from drumtx.console import Progress, make_console
from drumtx.drums import Hit
from drumtx.errors import ConfigError, DataError
from drumtx.inference import (
    LoadedModel,
    array_activations,
    class_thresholds,
    decode_hits,
    load_model,
    precision_of,
    resolve_device,
)
from drumtx.metrics import ClassCounts, match_onsets
from drumtx.music import MusicPool, fixed_excerpt, load_music_pool
from drumtx.processed import Store, load_store, reference_hits, spread_indices
from drumtx.scoring import score_store, store_activations
from drumtx.storage import require_roots

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
# Audio samples hashed: one in this many (a prime, so no period locks onto it). A set
# rendered or mixed otherwise differs nearly everywhere; one edited sample may not show.
FINGERPRINT_STRIDE = 65521


def fingerprint(text: str, *arrays: np.ndarray | None, stride: int = 1) -> str:
    """12 hex digits of SHA-256 over ``text`` and every ``stride``-th element of each
    array (and its length)."""
    digest = hashlib.sha256(text.encode("utf-8"))
    for array in arrays:
        if array is not None:
            digest.update(f"|{len(array)}|".encode())
            digest.update(np.ascontiguousarray(array[::stride]).tobytes())
    return digest.hexdigest()[:12]


def store_fingerprint(store: Store) -> str:
    """What was scored: the recordings (names, lengths, kits), every label, and a
    sample of the drums' audio and of the backing the store holds."""
    recs = json.dumps([[r.get("audio_path"), r.get("length"), r.get("kit")]
                       for r in store.recordings])  # fmt: skip
    labels = fingerprint(recs, store.hits)
    return fingerprint(labels, store.audio, store.backing, stride=FINGERPRINT_STRIDE)


def pool_fingerprint(pool: MusicPool) -> str:
    """The music a pool puts under the drums: its excerpts and a sample of its audio."""
    segments = json.dumps([[s.get("file"), s.get("file_offset_sec"), s.get("length")]
                           for s in pool.segments])  # fmt: skip
    return fingerprint(segments, pool.audio, stride=FINGERPRINT_STRIDE)


def model_wants(path: Path) -> str:
    """Whose settings a store is checked against in evaluate: the model's."""
    return f"the model ({path})"


def run_evaluate(
    cfg: Config,
    *,
    checkpoint: str | Path | None,
    split: str,
    as_json: bool,
    tune_thresholds: bool,
    limit: int | None,
    device: str | None,
    backing_db: Sequence[float] = (6.0, 0.0),
    music_dir: Path | None = None,
    tune_objective: str = "micro",
    progress: bool = True,
    named_by: str = "--checkpoint",
) -> int:
    roots = require_roots(cfg, read=("processed_dir",))
    pool = load_music_pool(music_dir) if music_dir else None  # fail before the work
    console = make_console(stderr=True)
    path = find_model(cfg, checkpoint, named_by).announce(console)
    cfg = comparable_precision(cfg)
    loaded = load_model(path, cfg, resolve_device(device or cfg.transcribe.device))
    if tune_thresholds:
        val_dir = roots.processed_dir / "validation"
        tune_and_store(
            loaded, path, val_dir, limit, console, backing_db, pool, tune_objective,
            progress,
        )  # fmt: skip
    if tuned_on_this(loaded.thresholds_tuned_on, roots.processed_dir, split):
        console.print(
            "[yellow]warning:[/] this model's thresholds were tuned on the split being "
            "reported; these numbers are optimistic (report --split test)"
        )
    store, fingerprints = open_scored(roots.processed_dir / split, loaded, path, pool)
    egmd_dir = roots.egmd_dir if roots.egmd_dir.is_dir() else None
    indices = _indices(store, limit)
    n_levels = 1 + (len(backing_db) if store.backing is not None else 0)
    label = f"scoring {split}" + scoring_levels(n_levels)
    with progress_bar(console, label, len(indices) * n_levels, progress) as bar:
        results = evaluate_store(
            loaded, store, indices, backing_db, egmd_dir=egmd_dir, tick=bar.advance
        )
    results.update(checkpoint=str(path), split=split, precision=precision_of(loaded))
    results["fingerprints"] = fingerprints
    results["thresholds_tuned_on"] = loaded.thresholds_tuned_on
    t = loaded.cfg.transcribe  # the active levels inputs were brought into, dBFS
    results["input_levels_db"] = [t.min_input_db, t.max_input_db]
    if pool is not None:
        results["music"] = f"real music pool {pool.split_dir} ({pool.hours:.2f} h)"
        n_stretches = len(pool.segments)
        with progress_bar(console, "music alone", n_stretches, progress) as bar:
            results["music_alone"] = music_alone(loaded, pool, bar.advance)
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        print_results(results, make_console())
    return 0


def open_scored(
    split_dir: Path, loaded: LoadedModel, path: Path, pool: MusicPool | None
) -> tuple[Store, dict[str, str]]:
    """The split as it is scored (its backing replaced by the pool's music, if any)
    and the fingerprints of what it holds."""
    store = load_store(split_dir, loaded.cfg, model_wants(path))
    fingerprints = {"set": store_fingerprint(store)}
    if pool is None:
        return store, fingerprints
    fingerprints["music"] = pool_fingerprint(pool)
    return with_music_from(store, pool), fingerprints


def scoring_levels(n_levels: int) -> str:
    """The progress label's tail: ", alone and in 2 mixes" (nothing for one)."""
    if n_levels <= 1:
        return ""
    return f", alone and in {n_levels - 1} mix" + "es" * (n_levels > 2)


def tuned_on_this(tuned_on: dict | None, processed_dir: Path, split: str) -> bool:
    """Whether stored thresholds were tuned on this very split of this data."""
    if not tuned_on:
        return False
    same_data = tuned_on.get("processed_dir") == str(Path(processed_dir).resolve())
    return same_data and tuned_on.get("split") == split


def comparable_precision(cfg: Config) -> Config:
    """transcribe.cpu_precision "auto" would run bf16 convolutions on CPUs with bf16
    units and fp32 elsewhere: evaluate takes fp32 instead, so its numbers are the
    same on every machine (an explicit bf16 is honoured; either way the report says
    which: on the shipped model the two differ by about 1e-4 in micro F1)."""
    if cfg.transcribe.cpu_precision != "auto":
        return cfg
    table = dataclasses.replace(cfg.transcribe, cpu_precision="fp32")
    return dataclasses.replace(cfg, transcribe=table)


def with_music_from(store: Store, pool: MusicPool) -> Store:
    """The store with each recording's backing track replaced by a fixed excerpt of
    the pool's music, chosen by the recording's audio file name (the same music on
    every evaluation); the mixes then score the drums under real music."""
    if pool.sample_rate != store.manifest["sample_rate"]:
        raise DataError(
            f"{pool.split_dir} holds music at {pool.sample_rate} Hz, the store "
            f"{store.manifest['sample_rate']} Hz",
            hint="build the pool at the store's rate: tools/build_music_pool.py",
        )
    backing = np.zeros(len(store.audio), dtype=np.int16)
    for rec in store.recordings:
        music = fixed_excerpt(pool, str(rec["audio_path"]), int(rec["length"]))
        lo = int(rec["offset"])
        backing[lo : lo + len(music)] = to_int16(music)
    return dataclasses.replace(store, backing=backing)


def progress_bar(console: Console, label: str, total: int, enabled: bool) -> Progress:
    """evaluate's progress: a bar on a terminal that goes when done; off one, a line
    every 30 s (a long evaluation in a log shows it is alive and when it ends)."""
    return Progress(
        console, label, total, unit="recordings", log_every_sec=30.0, transient=True,
        enabled=enabled,
    )  # fmt: skip


def music_alone(
    loaded: LoadedModel, pool: MusicPool, tick: Callable[[], None] | None = None
) -> dict[str, Any]:
    """What the model finds in the pool's music without drums, each stretch heard as
    a file: {"minutes", "hits" (per class), "per_minute" (all classes)}; ``tick``
    after each stretch."""
    counts = dict.fromkeys(loaded.vocab.codes, 0)
    n_samples = 0
    for segment in pool.segments:
        start, length = int(segment["start"]), int(segment["length"])
        found = hits_by_class(loaded, np.asarray(pool.audio[start : start + length]))
        for code, n in found.items():
            counts[code] += n
        n_samples += length
        if tick is not None:
            tick()
    minutes = n_samples / pool.sample_rate / 60
    per_minute = sum(counts.values()) / minutes if minutes else 0.0
    return {"minutes": minutes, "hits": counts, "per_minute": per_minute}


def hits_by_class(loaded: LoadedModel, audio: np.ndarray) -> dict[str, int]:
    """How many hits of each class transcribe would find in ``audio`` (as heard at
    the model's rate, brought to its input level), only the classes found."""
    onset, velocity = array_activations(loaded, audio)
    counts: dict[str, int] = {}
    for hit in decode_hits(loaded, onset, velocity, class_thresholds(loaded)):
        code = loaded.vocab.codes[hit.cls]
        counts[code] = counts.get(code, 0) + 1
    return counts


def _indices(store: Store, limit: int | None) -> list[int]:
    """Every recording, or ``limit`` of them spread over the split (kits, drummers)."""
    return spread_indices(len(store.recordings), limit or 0)


def evaluate_store(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    backing_db: Sequence[float] = (),
    egmd_dir: Path | None = None,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """score_store's report with the model's thresholds; and
    under ``mixes`` the same for each backing level, where the store has backing.
    With ``egmd_dir``, also the beats, downbeats and tempo (``beats``). ``tick`` after
    each recording at each level."""
    thresholds = class_thresholds(loaded)
    results = score_store(
        loaded, store, indices, thresholds, egmd_dir=egmd_dir, tick=tick, standout=True
    )
    if store.backing is not None and backing_db:
        results["mixes"] = {}
        for level in backing_db:
            mixed = score_store(
                loaded, store, indices, thresholds, level, egmd_dir, tick=tick,
                standout=True,
            )  # fmt: skip
            results["mixes"][mix_name(level)] = mixed
    return results


def mix_name(level_db: float) -> str:
    """How a drums-to-music level is named in reports: "+6 dB", "0 dB", "-3 dB"."""
    return f"{level_db:+g} dB" if level_db else "0 dB"


def tune_and_store(
    loaded: LoadedModel,
    path: Path,
    val_dir: Path,
    limit: int | None,
    console: Console,
    backing_db: Sequence[float] = (),
    pool: MusicPool | None = None,
    objective: str = "micro",
    progress: bool = False,
) -> None:
    """Tune thresholds on the validation split and write them into the checkpoint;
    with a music ``pool``, the mixes are heard under its real music (as reported)."""
    if is_shipped(path):
        raise ConfigError(
            "refusing to write tuned thresholds into the model shipped with drumtx",
            hint="copy it first and pass --checkpoint COPY.pt",
        )
    val = load_store(val_dir, loaded.cfg, model_wants(path))
    if pool is not None:
        val = with_music_from(val, pool)
    levels = [None, *backing_db] if val.backing is not None else [None]
    indices = _indices(val, limit)
    label = "tuning thresholds on validation"
    with progress_bar(console, label, len(indices) * len(levels), progress) as bar:
        tuned = tune(loaded, val, indices, levels, objective, tick=bar.advance)
    tuned_on = {
        "split": "validation",
        "processed_dir": str(val_dir.parent.resolve()),
        "recordings": len(indices),
        "levels": ["drums alone" if x is None else mix_name(x) for x in levels],
        "music": str(pool.split_dir) if pool is not None else None,
        "objective": objective,
    }
    store_thresholds(path, tuned, tuned_on)
    loaded.thresholds, loaded.thresholds_tuned_on = tuned, tuned_on
    console.print(
        f"tuned thresholds ({objective} F1) on validation, stored in {path}: {tuned}"
    )


MIN_TUNING_HITS = 20  # fewer reference hits than this: keep the configured threshold
F1_TOLERANCE = 0.005  # F1 differences below this are noise; prefer the default then
MICRO_TOLERANCE = 0.0005  # the same for micro F1, which one class moves much less
TUNE_OBJECTIVES = ("micro", "class")


def tune(
    loaded: LoadedModel,
    store,
    indices: Sequence[int],
    levels: Sequence[float | None] = (None,),
    objective: str = "micro",
    tick: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Per-class thresholds over the given recordings, each heard at every level
    (None: drums alone; a number: mixed with its backing).

    ``objective`` "class" maximises each class's own F1; "micro" maximises micro F1 over
    all classes (coordinate ascent, one class at a time). They differ: lowering a weak
    class's threshold can raise its F1 while its new hits, half of them wrong, lower
    the micro F1 every class shares.
    A small validation set overfits: a class with few reference hits keeps its
    configured threshold, and among near-equal scores the one nearest the default wins.
    """
    if objective not in TUNE_OBJECTIVES:
        raise ValueError(f"unknown tuning objective {objective!r}")
    defaults = class_thresholds(dataclasses.replace(loaded, thresholds={}))
    refs = {index: reference_hits(store, index) for index in indices}
    cached = [
        (onset, velocity, refs[index])
        for level in levels
        for index, onset, velocity in store_activations(
            loaded, store, indices, level, tick
        )
    ]
    codes = loaded.vocab.codes
    # distinct reference hits (cached holds each recording once per level)
    per_class = np.bincount(
        [h.cls for hits in refs.values() for h in hits], minlength=len(codes)
    )
    tunable = [c for c in range(len(codes)) if per_class[c] >= MIN_TUNING_HITS]
    # the rest keep the config's threshold
    grid = {
        c: [_class_counts(loaded, cached, c, t) for t in THRESHOLD_GRID]
        for c in tunable
    }
    if objective == "class":
        picks = {c: _nearest_best([n.f1 for n in grid[c]], defaults[c], F1_TOLERANCE)
                 for c in tunable}  # fmt: skip
    else:
        fixed = [
            _class_counts(loaded, cached, c, defaults[c])
            for c in range(len(codes))
            if c not in grid
        ]
        picks = _micro_ascent(grid, fixed, defaults)
    return {codes[c]: float(THRESHOLD_GRID[i]) for c, i in picks.items()}


def _nearest_best(scores: Sequence[float], default: float, tolerance: float) -> int:
    """The grid index scoring within ``tolerance`` of the best, nearest ``default``."""
    scores = np.asarray(scores)
    near_best = np.flatnonzero(scores >= scores.max() - tolerance)
    return int(near_best[np.argmin(np.abs(THRESHOLD_GRID[near_best] - default))])


def _micro_ascent(
    grid: dict[int, list[ClassCounts]],
    fixed: Sequence[ClassCounts],
    defaults: Sequence[float],
    max_rounds: int = 4,
) -> dict[int, int]:
    """Grid indices maximising micro F1, one class at a time from the defaults, until
    a whole round changes nothing. Counts add across classes, so no decoding here."""
    picks = {c: int(np.argmin(np.abs(THRESHOLD_GRID - defaults[c]))) for c in grid}
    untuned = sum(fixed, ClassCounts())
    for _ in range(max_rounds):
        changed = False
        for c in grid:
            others = sum((grid[o][picks[o]] for o in grid if o != c), untuned)
            scores = [(others + counts).f1 for counts in grid[c]]
            pick = _nearest_best(scores, defaults[c], MICRO_TOLERANCE)
            changed |= pick != picks[c]
            picks[c] = pick
        if not changed:
            break
    return picks


def _class_counts(
    loaded: LoadedModel,
    cached: Sequence[tuple[np.ndarray, np.ndarray, list[Hit]]],
    c: int,
    threshold: float,
) -> ClassCounts:
    """Counts of class ``c`` alone at ``threshold`` over the cached activations."""
    n_classes = loaded.vocab.n_classes
    thresholds = [1.01] * n_classes  # above any probability: other classes stay silent
    thresholds[c] = float(threshold)
    total = ClassCounts()
    for onset, velocity, ref in cached:
        est = decode_hits(loaded, onset, velocity, thresholds)
        total = total + match_onsets(ref, est, n_classes)[c]
    return total


def store_thresholds(
    path: Path, thresholds: dict[str, float], tuned_on: dict[str, Any] | None = None
) -> None:
    """Rewrite the checkpoint (atomically) with the tuned thresholds added, and where
    they were tuned (``tuned_on``; None: not known, any earlier record is dropped)."""
    state = load_checkpoint(path)
    state["thresholds"] = thresholds
    state.pop("thresholds_tuned_on", None)
    if tuned_on is not None:
        state["thresholds_tuned_on"] = tuned_on
    save_checkpoint(
        path, {k: v for k, v in state.items() if k not in ("format", "version")}
    )


def _levels_note(results: dict[str, Any]) -> str:
    low, high = results.get("input_levels_db", (-60.0, 0.0))
    return "" if low <= -60 and high >= 0 else f", input levels {low:g}..{high:g} dBFS"


def print_results(results: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"onset F1 (+-50 ms), {results['split']} split, "
        f"{results['n_recordings']} recordings, {results.get('precision', 'fp32')}"
        + _levels_note(results)
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
            _score(row, "precision"),
            _score(row, "recall"),
            _score(row, "f1"),
            str(row["n_ref"]),
            str(row["n_est"]),
            f"{results['thresholds'][code]:.2f}",
        )
    console.print(table)
    _dash_legend([results], console)
    console.print(
        f"micro F1 {results['micro_f1']:.3f}   macro F1 {results['macro_f1']:.3f}"
        f"   velocity F1 {results['velocity_f1']['f1']:.3f}"
    )
    if "adtof5" in results:
        reduced = results["adtof5"]
        per = "  ".join(f"{c} {_score(r, 'f1')}" for c, r in reduced["classes"].items())
        console.print(
            f"adtof5: micro F1 {reduced['micro_f1']:.3f}  macro F1 "
            f"{reduced['macro_f1']:.3f}   {per}"
        )
    kits = "  ".join(f"{k}: {v:.3f}" for k, v in results["per_kit"].items())
    console.print(f"micro F1 per kit: {kits}")
    if results.get("mixes"):
        print_mixes(results, console)
    if results.get("music_alone"):
        print_music_alone(results["music_alone"], console)
    print_confusion(results, console)
    print_velocity_recall(results, console)
    print_standout_recall(results, console)
    if results.get("beats"):
        print_beats(results, console)
    console.print(f"checkpoint: {results['checkpoint']}")
    if results.get("fingerprints"):
        said = "  ".join(f"{k} {v}" for k, v in results["fingerprints"].items())
        console.print(f"fingerprints: {said} (other digits: another set or music)")


def print_music_alone(alone: dict[str, Any], console: Console) -> None:
    """One line: the false hits a minute on the music pool without drums."""
    minutes = max(alone["minutes"], 1e-9)
    top = sorted(((n, c) for c, n in alone["hits"].items() if n), reverse=True)[:5]
    classes = "  ".join(f"{c} {n / minutes:.1f}" for n, c in top)
    console.print(
        f"music alone ({alone['minutes']:.1f} min, no drums): "
        f"{alone['per_minute']:.1f} false hits a minute   {classes}"
    )


def _score(row: dict[str, Any], key: str) -> str:
    """A class's score, or "-" where neither the reference nor the output has a hit
    (mir_eval's 0 there is no measurement)."""
    return f"{row[key]:.3f}" if row["n_ref"] or row["n_est"] else "-"


def print_mixes(results: dict[str, Any], console: Console) -> None:
    """Per-class F1 of the drums alone and of each mix with backing, side by side."""
    mixes = results["mixes"]
    table = Table(title="onset F1: drums alone and mixed with backing (drums-to-music)")
    table.add_column("class")
    for name in ("drums only", *mixes):
        table.add_column(name, justify="right")
    for code, row in results["classes"].items():
        cells = [_score(m["classes"][code], "f1") for m in mixes.values()]
        table.add_row(code, _score(row, "f1"), *cells)
    micro = [f"{m['micro_f1']:.3f}" for m in mixes.values()]
    table.add_row("micro", f"{results['micro_f1']:.3f}", *micro)
    macro = [f"{m['macro_f1']:.3f}" for m in mixes.values()]
    table.add_row("macro", f"{results['macro_f1']:.3f}", *macro)
    console.print(table)
    _dash_legend([results, *mixes.values()], console)


def _dash_legend(conditions: list[dict[str, Any]], console: Console) -> None:
    """Under a table that shows a "-" (see _score), what it means."""
    rows = [r for c in conditions for r in c["classes"].values()]
    if any(not (r["n_ref"] or r["n_est"]) for r in rows):
        console.print("-: a class with no hits in the reference or the output")
    if any(not r["n_ref"] for r in rows):
        console.print("macro F1 averages the classes with reference hits")


TOP_ERRORS = 3  # a printed confusion cell names the row's three commonest columns


def print_confusion(results: dict[str, Any], console: Console) -> None:
    """Where the errors sit, drums alone and each mix: per class, its false positives
    by the reference class there and its misses by the class predicted there (the
    commonest three, as shares of the row; the full tables are in --json)."""
    views = {"drums only": results, **results.get("mixes", {})}
    for name, view in views.items():
        if "confusion" not in view:
            continue
        table = Table(
            title=f"where the errors sit, {name} (+-50 ms)",
            caption="reference class at each false positive, predicted class at each "
            "miss; none: no hit there; the row's own class: a double hit or a flam",
        )
        for column in ("class", "FP", "reference there", "misses", "predicted there"):
            counts = column in ("FP", "misses")
            table.add_column(column, justify="right" if counts else "left")
        for code in view["classes"]:
            false_positives = view["confusion"]["false_positives"][code]
            misses = view["confusion"]["misses"][code]
            table.add_row(
                code,
                str(sum(false_positives.values())),
                top_errors(false_positives),
                str(sum(misses.values())),
                top_errors(misses),
            )
        console.print(table)


def print_velocity_recall(results: dict[str, Any], console: Console) -> None:
    """Recall of each played class by the reference hits' velocity, drums alone (the
    mixes' are in --json): are the misses ghost notes or accents?"""
    rows = results.get("recall_by_velocity", {})
    played = {
        code: bins
        for code, bins in rows.items()
        if any(b["n_ref"] for b in bins.values())
    }
    if not played:
        return
    table = Table(
        title="recall by reference velocity, drums only",
        caption="recall (reference hits) of the hits in each MIDI velocity range",
    )
    table.add_column("class")
    for name in next(iter(played.values())):
        table.add_column(name, justify="right")
    for code, bins in played.items():
        cells = [
            f"{b['recall']:.2f} ({b['n_ref']})" if b["n_ref"] else "-"
            for b in bins.values()
        ]
        table.add_row(code, *cells)
    console.print(table)


def print_standout_recall(results: dict[str, Any], console: Console) -> None:
    """Recall of all classes together by how far each reference hit stands out of
    what sounds around it (drumtx.standout), drums alone and in each mix, and micro F1
    over the hits at or above the audible level: could the misses be heard?"""
    views = {"drums only": results, **results.get("mixes", {})}
    views = {n: v for n, v in views.items() if "recall_by_standout" in v}
    if not views:
        return
    first = next(iter(views.values()))
    table = Table(
        title="recall by standout (the hit's energy over what sounds there, best band)",
        caption=f"recall (reference hits); audible: micro F1 without the hits under "
        f"{first['audible']['standout_db']:g} dB (a crude model of masking, no "
        "ceiling)",
    )
    table.add_column("audio")
    for name in first["recall_by_standout"]["all"]:
        table.add_column(f"{name} dB", justify="right")
    table.add_column("micro F1", justify="right")
    table.add_column("audible", justify="right")
    for name, view in views.items():
        cells = [
            f"{b['recall']:.2f} ({b['n_ref']})" if b["n_ref"] else "-"
            for b in view["recall_by_standout"]["all"].values()
        ]
        audible = f"{view['audible']['micro_f1']:.3f}"
        table.add_row(name, *cells, f"{view['micro_f1']:.3f}", audible)
    console.print(table)


def top_errors(row: dict[str, int], n_top: int = TOP_ERRORS) -> str:
    """"LT 41%  none 30%  MT 9%": the row's commonest columns and their shares."""
    total = sum(row.values())
    ranked = sorted(row.items(), key=lambda item: -item[1])[:n_top]  # stable on ties
    cells = [f"{column} {count / total:.0%}" for column, count in ranked if count]
    return "  ".join(cells) or "-"


def print_beats(results: dict[str, Any], console: Console) -> None:
    """Tempo and meter accuracy, beat and downbeat F (median / mean) of the drums
    alone and of each mix."""
    views = {"drums only": results["beats"]}
    views.update({n: m["beats"] for n, m in results.get("mixes", {}).items()})
    table = Table(
        title="tempo map vs the MIDI's (beat and downbeat F: mir_eval, median / mean)"
    )
    for column in ("audio", "type", "recordings", "tempo within 4 %", "meter",
                   "beat F", "downbeat F"):  # fmt: skip
        table.add_column(column, justify="left" if column == "audio" else "right")
    for name, view in views.items():
        for kind, row in view.items():
            cells = [f"{row[k]:.3f}" for k in ("tempo_accuracy", "meter_accuracy")]
            for key in ("beat_f", "downbeat_f"):
                median, mean = row[f"{key}_median"], row[f"{key}_mean"]
                cells.append("-" if median is None else f"{median:.3f} / {mean:.3f}")
            table.add_row(name, kind, str(row["n_recordings"]), *cells)
    console.print(table)
