"""E-GMD -> processed store (DESIGN.md §3): parallel, resumable, crash-safe, repeatable.

Per split folder ``processed_dir/<split>/``:

1. Select rows of the split (every k-th row when limited, so kits and drummers vary);
   training rows are shuffled (``store_order``) so that a batch mixes sessions.
2. Worker processes (``--workers``) turn each recording into a *part* in ``.parts/``
   (``drumtx.recording_part``: what a recording becomes, and when it is skipped). A
   rerun after a crash (even SIGKILL) skips finished parts.
3. Meanwhile the main process appends finished parts, in index order, to the store
   files and writes ``manifest.json`` last (``drumtx.processed_writer``: the crash-safe
   writer), then removes ``.parts``. A store without a manifest is incomplete; readers
   refuse it.

Skips are never cached as parts, so the manifest's ``skipped`` list describes the
current data. Two runs over the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drumtx import egmd, storage
from drumtx.config import Config
from drumtx.console import Progress, make_console
from drumtx.egmd import EgmdRecord
from drumtx.errors import ConfigError, DataError
from drumtx.processed import (
    AUDIO_FILE,
    BACKING_FILE,
    FORMAT_VERSION,
    ORDER_CSV,
    ORDER_SHUFFLED,
    read_manifest,
    sha256_file,
)
from drumtx.processed_writer import (
    PARTS_DIR,
    AudioWriter,
    SplitPlan,
    SplitResult,
    finish_store,
    prepare_split_dir,
    remove_stray_tmp,
)
from drumtx.recording_part import (
    CSV_DURATION_TOL_SEC,
    MIDI_TAIL_TOL_SEC,
    PART_VERSION,
    Job,
    Outcome,
    init_worker,
    part_is_done,
    process_job,
    stable_json,
)
from drumtx.synth.backing import BackingSpec

# Manifest keys that must equal the planned build for a store to count as up to date.
MATCH_KEYS = (
    "format_version",
    "sample_rate",
    "vocab",
    "backing",
    "source_csv_sha256",
    "selection_sha256",
    "order",
)


# --- planning -------------------------------------------------------------------------


def select_records(
    records: Sequence[EgmdRecord], split: str, limit: int
) -> list[EgmdRecord]:
    """Rows of ``split`` in CSV order; at most ``limit`` (0 = all), evenly spread."""
    rows = [r for r in records if r.split == split]
    if limit <= 0 or limit >= len(rows):
        return rows
    # Evenly strided picks: the CSV groups rows by drummer and session, so a prefix
    # would hold one drummer; striding keeps kits, drummers and styles mixed.
    return [rows[(i * len(rows)) // limit] for i in range(limit)]


def store_order(
    records: Sequence[EgmdRecord], split: str
) -> tuple[list[EgmdRecord], str]:
    """The order of the split's recordings in its store, and its manifest name.

    The CSV groups rows by drummer and session, and the loader cuts a batch's crops out
    of a few contiguous blocks (data.block_mb): in CSV order a batch hears a few
    sessions of one drummer. Training recordings are shuffled by a hash of their audio
    path, the same on every machine and numpy, so builds stay repeatable and resumable.
    Validation and test keep the CSV order, where spread_indices picks subsets evenly
    spread over drummers and sessions.
    """
    if split != "train":
        return list(records), ORDER_CSV
    return sorted(records, key=_shuffle_key), ORDER_SHUFFLED


def _shuffle_key(record: EgmdRecord) -> str:
    return hashlib.sha256(record.audio_filename.encode("utf-8")).hexdigest()


def _plan_split(
    cfg: Config,
    roots: storage.Roots,
    split: str,
    records: list[EgmdRecord],
    csv_sha256: str,
    limit: int,
    backing: BackingSpec | None,
) -> SplitPlan:
    selected, order = store_order(select_records(records, split, limit), split)
    selection = hashlib.sha256(
        stable_json([asdict(r) for r in selected]).encode("utf-8")
    ).hexdigest()
    expected = {
        "format_version": FORMAT_VERSION,
        "sample_rate": cfg.audio.sample_rate,
        "vocab": cfg.data.vocab,
        "backing": backing.describe() if backing else None,
        "source_csv_sha256": csv_sha256,
        "selection_sha256": selection,
        "order": order,
    }
    split_dir = roots.processed_dir / split
    return SplitPlan(split, split_dir, selected, limit, expected, backing)


def _is_up_to_date(plan: SplitPlan) -> bool:
    """A complete store whose manifest matches the plan, with all of its files."""
    try:
        manifest = read_manifest(plan.split_dir)
    except DataError:
        return False
    if manifest is None:
        return False
    found = {"order": ORDER_CSV, **manifest}  # stores made before the key: CSV order
    if any(found.get(k) != v for k, v in plan.expected.items()):
        return False
    sizes_ok = all(
        (plan.split_dir / name).stat().st_size == 2 * manifest.get("n_samples", -1)
        for name in plan.store_files
        if name.endswith(".i16") and (plan.split_dir / name).is_file()
    )
    return sizes_ok and all((plan.split_dir / n).is_file() for n in plan.store_files)


def _jobs(plan: SplitPlan, roots: storage.Roots) -> list[Job]:
    parts_dir = plan.split_dir / PARTS_DIR
    jobs = []
    for index, record in enumerate(plan.records):
        fingerprint = stable_json(
            {
                "part_version": PART_VERSION,
                "sample_rate": plan.expected["sample_rate"],
                "vocab": plan.expected["vocab"],
                "tolerances_sec": [MIDI_TAIL_TOL_SEC, CSV_DURATION_TOL_SEC],
                "backing": plan.expected["backing"],
                "index": index,
                "row": asdict(record),
            }
        )
        digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
        jobs.append(
            Job(
                index,
                record,
                roots.egmd_dir,
                parts_dir,
                plan.expected["sample_rate"],
                plan.expected["vocab"],
                digest,
                plan.backing,
            )
        )
    return jobs


def _need_bytes(plans: Sequence[SplitPlan], sample_rate: int) -> int:
    """Free space a build needs: every store's audio plus one split's parts at a time.

    Parts stay until their split's manifest is written (crash safety), so the largest
    split briefly exists twice. Estimated from the CSV durations, int16 mono.
    """
    sizes = [
        int(sum(r.duration for r in p.records) * sample_rate)
        * 2
        * (2 if p.backing else 1)
        for p in plans
    ]
    return sum(sizes) + max(sizes, default=0)


# --- running a split ------------------------------------------------------------------


def _run_jobs(
    jobs: list[Job], pool: Any, console: Console, split: str, writer: AudioWriter
) -> list[Outcome]:
    """Outcome per job, in job order; finished parts from an earlier run are reused.

    The writer appends parts in index order as soon as they are ready, so the store's
    audio is written while the workers still decode.
    """
    outcomes: dict[int, Outcome] = {
        j.index: Outcome(j.index, None) for j in jobs if part_is_done(j)
    }
    todo = [j for j in jobs if j.index not in outcomes]
    if outcomes:
        console.print(f"{split}: resuming, {len(outcomes)} of {len(jobs)} parts done")
    progress = Progress(
        console, f"preprocess {split}", len(jobs), done=len(outcomes), unit="recordings"
    )
    writer.resumed = set(outcomes)
    try:
        writer.append_ready(jobs, outcomes)
        # Completion order for the progress bar; the writer restores index order.
        for outcome in pool.imap_unordered(process_job, todo, chunksize=1):
            outcomes[outcome.index] = outcome
            progress.advance()
            writer.append_ready(jobs, outcomes)
    finally:
        progress.close()
    return [outcomes[j.index] for j in jobs]


def _build_split(
    plan: SplitPlan, roots: storage.Roots, pool: Any, console: Console
) -> SplitResult:
    prepare_split_dir(plan, roots, console)
    for name in plan.store_files:
        storage.check_not_raw(plan.split_dir / name, roots)
    jobs = _jobs(plan, roots)
    tracks = [AUDIO_FILE] + ([BACKING_FILE] if plan.backing else [])
    with AudioWriter([plan.split_dir / name for name in tracks]) as writer:
        outcomes = _run_jobs(jobs, pool, console, plan.split, writer)
        result = finish_store(plan, len(jobs), outcomes, writer, console)
    shutil.rmtree(plan.split_dir / PARTS_DIR, ignore_errors=True)
    remove_stray_tmp(plan.split_dir)
    return result


# --- the command ----------------------------------------------------------------------


def run_preprocess(
    cfg: Config,
    *,
    splits: Sequence[str] = egmd.SPLITS,
    limit: int | None = None,
    workers: int | None = None,
    allow_skips: bool = False,
) -> int:
    """Build (or resume, or confirm) the processed store of each split; exit code."""
    _check_args(splits, limit, workers)
    # Roots first, before any other I/O; free space is checked again once the CSV
    # tells how much audio there is.
    roots = storage.require_roots(
        cfg, read=("egmd_dir",), write=("processed_dir",), create=("processed_dir",)
    )
    console = make_console()
    plans = _plan(cfg, roots, splits, limit)
    pending = [p for p in plans if not _is_up_to_date(p)]
    if pending:
        storage.require_roots(
            cfg,
            read=("egmd_dir",),
            write=("processed_dir",),
            need_bytes={"processed_dir": _need_bytes(pending, cfg.audio.sample_rate)},
        )
    n_jobs = max([1, *(len(p.records) for p in pending)])
    n_workers = min(workers or os.cpu_count() or 1, n_jobs)
    pending_ids = {id(p) for p in pending}
    results = []
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(_worker_pool(n_workers)) if pending else None
        for plan in plans:
            if id(plan) in pending_ids:
                results.append(_build_split(plan, roots, pool, console))
            else:
                results.append(_up_to_date_result(plan, console))
    _print_summary(console, results)
    return _exit_code(results, allow_skips)


def _check_args(splits: Sequence[str], limit: int | None, workers: int | None) -> None:
    unknown = [s for s in splits if s not in egmd.SPLITS]
    if unknown:
        raise ConfigError(
            f"unknown split(s) {unknown}; choose from {list(egmd.SPLITS)}"
        )
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be >= 0 (0 = all), got {limit}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")


def _plan(
    cfg: Config, roots: storage.Roots, splits: Sequence[str], limit: int | None
) -> list[SplitPlan]:
    csv_path = egmd.egmd_csv_path(roots.egmd_dir)
    records = egmd.read_egmd_csv(csv_path)
    csv_sha256 = sha256_file(csv_path)
    n_limit = cfg.data.max_recordings if limit is None else limit
    unique = list(dict.fromkeys(splits))
    backing = None
    if cfg.backing.enabled:
        b = cfg.backing
        backing = BackingSpec.from_settings(
            b.soundfonts, b.songs_dir, b.song_prob, b.seed, b.own_prob
        )
    return [
        _plan_split(cfg, roots, s, records, csv_sha256, n_limit, backing)
        for s in unique
    ]


class _worker_pool:
    """A Pool of n worker processes; the calling process writes the store meanwhile."""

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self.pool: Any = None

    def __enter__(self) -> Any:
        ctx = multiprocessing.get_context(_start_method())
        self.pool = ctx.Pool(
            self.n_workers, initializer=init_worker, initargs=(os.getpid(),)
        )
        return self.pool

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()


def _start_method() -> str:
    """fork on Linux: a spawned worker spends ~1.5 s importing scipy before its first
    recording, longer than a small split takes. Forking is safe here because the pool
    is made before the progress thread starts, and workers run only numpy, scipy,
    soundfile, mido and FluidSynth code, never torch; FluidSynth's OpenMP regions run
    on one thread (recording_part.init_worker), as OpenMP's thread pool does not
    survive a fork. Elsewhere spawn, the only safe choice on macOS and Windows.
    """
    if sys.platform.startswith("linux"):
        return "fork"
    return "spawn"


def _up_to_date_result(plan: SplitPlan, console: Console) -> SplitResult:
    manifest = read_manifest(plan.split_dir) or {}
    shutil.rmtree(plan.split_dir / PARTS_DIR, ignore_errors=True)  # a crash's leftovers
    console.print(f"{plan.split}: {escape(str(plan.split_dir))} is up to date")
    return SplitResult(
        plan.split,
        "up to date",
        manifest["n_recordings"],
        manifest["n_hits"],
        manifest["n_samples"] / manifest["sample_rate"],
        list(manifest["skipped"]),
    )


def _print_summary(console: Console, results: Sequence[SplitResult]) -> None:
    table = Table(title="processed store")
    for column in ("split", "status", "recordings", "hits", "audio h", "skipped"):
        table.add_column(
            column, justify="left" if column in ("split", "status") else "right"
        )
    for r in results:
        table.add_row(
            r.split,
            r.status,
            str(r.n_recordings),
            str(r.n_hits),
            f"{r.audio_sec / 3600:.3f}",
            str(len(r.skipped)),
        )
    console.print(table)
    for r in results:
        for skip in r.skipped:
            console.print(
                f"skipped {r.split}: {escape(skip['path'])}: {escape(skip['reason'])}"
            )


def _exit_code(results: Sequence[SplitResult], allow_skips: bool) -> int:
    n_skipped = sum(len(r.skipped) for r in results)
    if n_skipped and not allow_skips:
        err = make_console(stderr=True)
        err.print(
            f"[bold red]error:[/] {n_skipped} recording(s) skipped (listed above and "
            "in each split's manifest.json)"
        )
        err.print(
            "[yellow]hint:[/] fix or remove them, or pass --allow-skips to accept"
        )
        return 1
    return 0
