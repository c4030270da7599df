"""E-GMD -> processed store (DESIGN.md §3): parallel, resumable, crash-safe, repeatable.

Per split folder ``processed_dir/<split>/``:

1. Select rows of the split (every k-th row when limited, so kits and drummers vary).
2. Worker processes (``--workers``) turn each recording into a *part* in ``.parts/``:
   ``NNNNNN.i16`` (int16 audio at ``audio.sample_rate``) then ``NNNNNN.json`` (hits,
   length, audio CRC-32, config fingerprint). Both are written tmp-then-``os.replace``
   (no fsync) and the json goes last, so it is the commit marker: a part counts as done
   only when its json exists, carries this run's fingerprint and its audio file has the
   length the json names. A rerun after a crash (even SIGKILL) skips finished parts.
3. Meanwhile the main process appends finished parts, in index order, to
   ``audio.i16.tmp`` (an in-kernel copy; parts from an earlier run get their CRC
   checked, since an OS crash can lose unsynced data). Then it fsyncs and renames it
   to ``audio.i16``, writes ``hits.npy`` and ``recordings.json``, then
   ``manifest.json`` last and atomically, and removes ``.parts``. A store without a
   manifest is incomplete; readers refuse it.

Skips are never cached as parts: a file that failed (perhaps on a flaky disk) is tried
again on the next run, so the manifest's ``skipped`` list describes the current data.
A recording is skipped, with its reason, when:

- its MIDI cannot be read (DataError), or holds no hit of the vocabulary;
- its audio cannot be decoded (AudioError);
- a MIDI hit lies more than MIDI_TAIL_TOL_SEC past the end of the audio: the label would
  point at audio that does not exist, so the pair is truncated or mismatched. Hits past
  the end but within the tolerance are dropped (they have no frame to live in);
- the decoded audio and the CSV's duration differ by more than CSV_DURATION_TOL_SEC: the
  file on disk is not the recording the index describes (truncated or replaced).

Determinism: no timestamps, fixed JSON key order, ``repr`` floats, parts assembled in
index order; two runs over the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from drumtx import __version__, audio, drums, egmd, midi, storage
from drumtx.config import Config
from drumtx.egmd import EgmdRecord
from drumtx.errors import AudioError, ConfigError, DataError, StorageError

FORMAT_VERSION = 1
PART_VERSION = 2  # bump when the content of a part changes meaning
HITS_DTYPE = np.dtype(
    [
        ("recording", "<i4"),
        ("sample", "<i8"),
        ("class", "<i2"),
        ("velocity", "<i2"),
        ("pitch", "<i2"),
    ]
)
MIDI_TAIL_TOL_SEC = 1.0  # a hit may sit this far past the audio's end (then dropped)
CSV_DURATION_TOL_SEC = 2.0  # |audio duration - CSV duration| allowed
AUDIO_FILE, HITS_FILE, RECORDINGS_FILE = "audio.i16", "hits.npy", "recordings.json"
MANIFEST_FILE, PARTS_DIR = "manifest.json", ".parts"
STORE_FILES = (AUDIO_FILE, HITS_FILE, RECORDINGS_FILE, MANIFEST_FILE)
# Manifest keys that must equal the planned build for a store to count as up to date.
MATCH_KEYS = (
    "format_version",
    "sample_rate",
    "vocab",
    "source_csv_sha256",
    "selection_sha256",
)
PREPROCESS_HINT = "python -m drumtx preprocess"
_COPY_CHUNK_BYTES = 16 << 20
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


# --- reading a store (data.py, evaluate, doctor) --------------------------------------


@dataclass
class Store:
    """A processed split, opened for reading; ``audio`` is memory-mapped."""

    audio: np.ndarray  # (n_samples,) int16, np.memmap unless cached in RAM
    recordings: list[dict[str, Any]]
    hits: np.ndarray  # (n_hits,) HITS_DTYPE, sorted by recording then sample
    manifest: dict[str, Any]


def load_store(split_dir: Path, cfg: Config | None = None) -> Store:
    """Open a complete store; refuse an incomplete one or one for another config."""
    split_dir = Path(split_dir)
    manifest = _read_manifest(split_dir)
    if manifest is None:
        raise DataError(
            f"{split_dir} is an incomplete store (manifest.json missing)",
            hint=PREPROCESS_HINT,
        )
    _check_manifest(split_dir, manifest, cfg)
    recordings = _read_json(split_dir / RECORDINGS_FILE)
    hits = _read_hits(split_dir / HITS_FILE)
    audio_data = _map_audio(split_dir / AUDIO_FILE, int(manifest["n_samples"]))
    if len(recordings) != manifest["n_recordings"] or len(hits) != manifest["n_hits"]:
        raise DataError(
            f"{split_dir}: recordings.json or hits.npy disagrees with manifest.json",
            hint=f"delete {split_dir} and run {PREPROCESS_HINT}",
        )
    return Store(audio_data, recordings, hits, manifest)


def recording_hits(store: Store, index: int) -> np.ndarray:
    """The hits of recording ``index`` (a view of ``store.hits``, sorted by sample)."""
    if not 0 <= index < len(store.recordings):
        raise IndexError(f"recording {index} outside 0..{len(store.recordings) - 1}")
    lo, hi = np.searchsorted(store.hits["recording"], [index, index + 1])
    return store.hits[lo:hi]


def recording_audio(store: Store, index: int) -> np.ndarray:
    """The int16 samples of recording ``index`` (a view into ``store.audio``)."""
    rec = store.recordings[index]
    return store.audio[rec["offset"] : rec["offset"] + rec["length"]]


def _check_manifest(
    split_dir: Path, manifest: dict[str, Any], cfg: Config | None
) -> None:
    hint = f"re-run {PREPROCESS_HINT} (it rebuilds stores made with other settings)"
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{split_dir}: store format {manifest.get('format_version')!r}, this "
            f"drumtx reads format {FORMAT_VERSION}",
            hint=hint,
        )
    if cfg is None:
        return
    for key, wanted in (
        ("sample_rate", cfg.audio.sample_rate),
        ("vocab", cfg.data.vocab),
    ):
        if manifest.get(key) != wanted:
            raise DataError(
                f"{split_dir} was built with {key} = {manifest.get(key)!r}, the config "
                f"asks for {wanted!r}",
                hint=hint,
            )


def _read_manifest(split_dir: Path) -> dict[str, Any] | None:
    path = split_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = _read_json(path)
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a JSON object", hint=PREPROCESS_HINT)
    return manifest


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=PREPROCESS_HINT) from None


def _read_hits(path: Path) -> np.ndarray:
    try:
        hits = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=PREPROCESS_HINT) from None
    if hits.dtype != HITS_DTYPE or hits.ndim != 1:
        raise DataError(
            f"{path} holds {hits.dtype} {hits.shape}, expected {HITS_DTYPE} (N,)",
            hint=PREPROCESS_HINT,
        )
    return hits


def _map_audio(path: Path, n_samples: int) -> np.ndarray:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    if size != 2 * n_samples:
        raise DataError(
            f"{path} is {size} bytes, the manifest says {2 * n_samples}",
            hint=f"delete {path.parent} and run {PREPROCESS_HINT}",
        )
    if n_samples == 0:  # mmap refuses an empty file
        return np.zeros(0, dtype=np.int16)
    return np.memmap(path, dtype=np.int16, mode="r", shape=(n_samples,))


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One selected recording: everything a worker needs, picklable."""

    index: int  # position in the split's selection; names the part files
    record: EgmdRecord
    egmd_dir: Path
    parts_dir: Path
    sample_rate: int
    vocab_name: str
    fingerprint: str

    @property
    def audio_part(self) -> Path:
        return self.parts_dir / f"{self.index:06d}.i16"

    @property
    def meta_part(self) -> Path:
        return self.parts_dir / f"{self.index:06d}.json"


@dataclass
class SplitPlan:
    split: str
    split_dir: Path
    records: list[EgmdRecord]
    limit: int  # 0 = all rows of the split
    expected: dict[str, Any]  # the MATCH_KEYS values this build produces


@dataclass
class SplitResult:
    split: str
    status: str  # "built" | "up to date"
    n_recordings: int
    n_hits: int
    audio_sec: float
    skipped: list[dict[str, str]] = field(default_factory=list)


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


def _plan_split(
    cfg: Config,
    roots: storage.Roots,
    split: str,
    records: list[EgmdRecord],
    csv_sha256: str,
    limit: int,
) -> SplitPlan:
    selected = select_records(records, split, limit)
    selection = hashlib.sha256(
        _dumps([asdict(r) for r in selected]).encode("utf-8")
    ).hexdigest()
    expected = {
        "format_version": FORMAT_VERSION,
        "sample_rate": cfg.audio.sample_rate,
        "vocab": cfg.data.vocab,
        "source_csv_sha256": csv_sha256,
        "selection_sha256": selection,
    }
    return SplitPlan(split, roots.processed_dir / split, selected, limit, expected)


def _is_up_to_date(plan: SplitPlan) -> bool:
    """A complete store whose manifest matches the plan, with all of its files."""
    try:
        manifest = _read_manifest(plan.split_dir)
    except DataError:
        return False
    if manifest is None or any(manifest.get(k) != v for k, v in plan.expected.items()):
        return False
    audio_path = plan.split_dir / AUDIO_FILE
    return all(
        (plan.split_dir / name).is_file() for name in STORE_FILES
    ) and audio_path.stat().st_size == 2 * manifest.get("n_samples", -1)


def _jobs(plan: SplitPlan, roots: storage.Roots) -> list[Job]:
    parts_dir = plan.split_dir / PARTS_DIR
    jobs = []
    for index, record in enumerate(plan.records):
        fingerprint = _dumps(
            {
                "part_version": PART_VERSION,
                "sample_rate": plan.expected["sample_rate"],
                "vocab": plan.expected["vocab"],
                "tolerances_sec": [MIDI_TAIL_TOL_SEC, CSV_DURATION_TOL_SEC],
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
            )
        )
    return jobs


def _need_bytes(plans: Sequence[SplitPlan], sample_rate: int) -> int:
    """Free space a build needs: every store's audio plus one split's parts at a time.

    Parts stay until their split's manifest is written (crash safety), so the largest
    split briefly exists twice. Estimated from the CSV durations, int16 mono.
    """
    sizes = [int(sum(r.duration for r in p.records) * sample_rate) * 2 for p in plans]
    return sum(sizes) + max(sizes, default=0)


# --- the worker: one recording -> one part --------------------------------------------


@dataclass(frozen=True)
class Outcome:
    index: int
    skip: dict[str, str] | None  # {"path", "reason"} when the recording was skipped
    audio_sec: float = 0.0


def part_is_done(job: Job) -> bool:
    """True when the part's commit marker has this job's fingerprint and is whole."""
    try:
        meta = json.loads(job.meta_part.read_text(encoding="utf-8"))
        size = job.audio_part.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and meta.get("fingerprint") == job.fingerprint
        and size == 2 * meta.get("length", -1)
    )


def process_job(job: Job) -> Outcome:
    """Decode one recording, write its part; bad input is a skip, not a crash."""
    _exit_if_orphaned()
    record = job.record
    try:
        notes = midi.read_notes(job.egmd_dir / record.midi_filename)
    except DataError as exc:
        return _skip(job, record.midi_filename, exc.message)
    vocab = drums.get_vocab(job.vocab_name)
    hits = midi.notes_to_hits(notes, vocab)
    if not hits:
        pitches = sorted({n.pitch for n in notes})
        return _skip(
            job,
            record.midi_filename,
            f"no drum hits of vocabulary {vocab.name} ({len(notes)} notes, pitches "
            f"{pitches[:12]})",
        )
    try:
        samples = audio.load_audio(
            job.egmd_dir / record.audio_filename, job.sample_rate
        )
    except AudioError as exc:
        return _skip(job, record.audio_filename, exc.message)
    reason = _duration_problem(
        record, len(samples) / job.sample_rate, hits[-1].time_sec
    )
    if reason:
        return _skip(job, record.audio_filename, reason)
    _write_part(job, audio.to_int16(samples), hits)
    return Outcome(job.index, None, len(samples) / job.sample_rate)


def _skip(job: Job, rel_path: str, message: str) -> Outcome:
    # Messages name the absolute path; the manifest keeps root-relative ones so it does
    # not depend on where the data root is mounted.
    text = message.replace(str(job.egmd_dir / rel_path), rel_path)
    return Outcome(job.index, {"path": rel_path, "reason": text})


def _duration_problem(record: EgmdRecord, audio_sec: float, last_hit_sec: float) -> str:
    if last_hit_sec > audio_sec + MIDI_TAIL_TOL_SEC:
        return (
            f"MIDI hit at {last_hit_sec:.3f} s lies past the end of the audio "
            f"({audio_sec:.3f} s) by more than {MIDI_TAIL_TOL_SEC:g} s"
        )
    if record.duration > 0 and abs(audio_sec - record.duration) > CSV_DURATION_TOL_SEC:
        return (
            f"audio lasts {audio_sec:.3f} s but the CSV says {record.duration:.3f} s "
            f"(tolerance {CSV_DURATION_TOL_SEC:g} s)"
        )
    return ""


def _write_part(job: Job, samples_i16: np.ndarray, hits: Sequence[midi.Hit]) -> None:
    """Audio first, then the json commit marker; each is replaced atomically."""
    n_samples = len(samples_i16)
    onsets = [
        (round(h.time_sec * job.sample_rate), h.cls, h.velocity, h.pitch) for h in hits
    ]
    onsets = sorted(o for o in onsets if o[0] < n_samples)  # within MIDI_TAIL_TOL_SEC
    columns = list(zip(*onsets)) if onsets else [(), (), (), ()]
    audio_view = memoryview(np.ascontiguousarray(samples_i16, dtype="<i2")).cast("B")
    meta = {
        "fingerprint": job.fingerprint,
        "length": n_samples,
        "audio_crc32": zlib.crc32(audio_view),
        "sample": list(columns[0]),
        "class": list(columns[1]),
        "velocity": list(columns[2]),
        "pitch": list(columns[3]),
    }
    _replace_write(job.audio_part, audio_view)
    _replace_write(job.meta_part, _dumps(meta).encode("utf-8"))


def _replace_write(path: Path, data: bytes | memoryview) -> None:
    """tmp + os.replace without fsync: a killed process never leaves half a part.

    Parts skip the fsyncs (a third of preprocessing time on small files): they only
    matter after an OS crash, and then the CRC that assembly checks on every part
    from an earlier run catches a part whose data did not reach the disk.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise _no_space(path) from None
        raise


def _no_space(path: Path) -> StorageError:
    """A full disk: the error names the file; a rerun resumes from finished parts."""
    return StorageError(
        f"no space left on the device while writing {path}; finished parts are kept "
        "and the partial file was removed",
        hint=f"free space on the disk holding {path.parent}, then run "
        f"{PREPROCESS_HINT} again: it resumes",
    )


def _init_worker(parent_pid: int) -> None:
    """Workers die with the parent and leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _PARENT_PID
    _PARENT_PID = parent_pid
    try:  # Linux: SIGKILL this worker when the parent dies, even by SIGKILL
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere _exit_if_orphaned catches it before the next recording
    _exit_if_orphaned()


_PARENT_PID: int | None = None


def _exit_if_orphaned() -> None:
    # An orphan would keep writing parts under a rerun's feet.
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)


# --- running a split ------------------------------------------------------------------


class _Progress:
    """A rich bar on a terminal; else a plain log line every ~5 s and at the end."""

    def __init__(self, console: Console, split: str, total: int, done: int) -> None:
        self.console, self.split, self.total = console, split, total
        self.done, self.start_done = done, done
        self.t0 = self.t_log = time.monotonic()
        self.bar = Progress(
            TextColumn(f"[bold]{escape(split)}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.bar.add_task(split, total=total, completed=done, rate="")
        self.bar.start()

    def stop(self) -> None:
        self.bar.stop()

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        self.bar.update(self.task, completed=self.done, rate=f"{rate:.1f} files/s")
        if not self.console.is_terminal and (
            now - self.t_log > 5 or self.done == self.total
        ):
            self.t_log = now
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            self.console.print(
                f"preprocess {self.split}: {self.done}/{self.total} recordings, "
                f"{rate:.1f} files/s, ETA {eta:.0f} s"
            )


def _run_jobs(
    jobs: list[Job], pool: Any, console: Console, split: str, writer: _AudioWriter
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
    progress = _Progress(console, split, len(jobs), len(outcomes))
    writer.resumed = set(outcomes)
    try:
        writer.append_ready(jobs, outcomes)
        # Completion order for the progress bar; the writer restores index order.
        for outcome in pool.imap_unordered(process_job, todo, chunksize=1):
            outcomes[outcome.index] = outcome
            progress.advance()
            writer.append_ready(jobs, outcomes)
    finally:
        progress.stop()
    return [outcomes[j.index] for j in jobs]


def _build_split(
    plan: SplitPlan, roots: storage.Roots, pool: Any, console: Console
) -> SplitResult:
    _prepare_split_dir(plan, roots, console)
    for name in STORE_FILES:
        storage.check_not_raw(plan.split_dir / name, roots)
    jobs = _jobs(plan, roots)
    with _AudioWriter(plan.split_dir / AUDIO_FILE) as writer:
        outcomes = _run_jobs(jobs, pool, console, plan.split, writer)
        result = _finish_store(plan, len(jobs), outcomes, writer, console)
    shutil.rmtree(plan.split_dir / PARTS_DIR, ignore_errors=True)
    _remove_stray_tmp(plan.split_dir)
    return result


def _prepare_split_dir(plan: SplitPlan, roots: storage.Roots, console: Console) -> None:
    """Make the split folder; a store built for other settings is removed first."""
    split_dir = plan.split_dir
    storage.check_not_raw(split_dir, roots)
    storage.check_not_raw(split_dir / PARTS_DIR, roots)
    if (split_dir / MANIFEST_FILE).exists():
        # The manifest goes first, so a crash mid-removal leaves an incomplete store.
        console.print(
            f"{plan.split}: store at {escape(str(split_dir))} is stale, rebuilding"
        )
        for name in (MANIFEST_FILE, AUDIO_FILE, HITS_FILE, RECORDINGS_FILE):
            (split_dir / name).unlink(missing_ok=True)
        shutil.rmtree(split_dir / PARTS_DIR, ignore_errors=True)
    _remove_stray_tmp(split_dir)
    (split_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)


def _remove_stray_tmp(split_dir: Path) -> None:
    """Temporary files a killed run left beside the store files."""
    if not split_dir.is_dir():
        return
    for name in STORE_FILES:
        for tmp in split_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    (split_dir / f"{AUDIO_FILE}.tmp").unlink(missing_ok=True)


# --- assembly -------------------------------------------------------------------------


class _AudioWriter:
    """Concatenates audio parts in index order into audio.i16 (via a tmp file).

    Parts left by an earlier run (``resumed``) have their CRC checked: after an OS
    crash a part's data may be lost although its commit marker survived. Parts this
    run's workers wrote are read back from the page cache and need no check.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, path.with_name(f"{path.name}.tmp")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self.next = 0  # position in the job list of the next part to append
        self.done: list[tuple[Job, dict[str, Any]]] = []  # appended parts, in order
        self.resumed: set[int] = set()  # job indices of parts from an earlier run

    def __enter__(self) -> _AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:  # not committed: drop the partial file
            os.close(self.fd)
            self.tmp.unlink(missing_ok=True)

    def append_ready(self, jobs: Sequence[Job], outcomes: dict[int, Outcome]) -> None:
        while self.next < len(jobs) and jobs[self.next].index in outcomes:
            job = jobs[self.next]
            if outcomes[job.index].skip is None:
                meta = _read_part_meta(job)
                self._append(job, meta)
                self.done.append((job, meta))
            self.next += 1

    def _append(self, job: Job, meta: dict[str, Any]) -> None:
        if job.index in self.resumed:
            data = job.audio_part.read_bytes()
            if zlib.crc32(data) != meta["audio_crc32"]:
                job.meta_part.unlink(missing_ok=True)
                raise DataError(
                    f"part {job.audio_part} is damaged (CRC mismatch, as an OS crash "
                    "can leave it); it was removed",
                    hint=f"run {PREPROCESS_HINT} again: it redoes that part only",
                )
        try:
            _copy_into(self.fd, job.audio_part, 2 * meta["length"])
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _no_space(self.path) from None  # __exit__ drops the tmp file
            raise

    def commit(self) -> None:
        """fsync and move into place."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _no_space(self.path) from None  # __exit__ drops the tmp file
            raise
        os.close(self.fd)
        self.fd = -1
        os.replace(self.tmp, self.path)


# copy_file_range errors that mean "not here" (old kernel, other filesystem type,
# across filesystems), after which a plain read/write copy takes over.
_NO_COPY_RANGE = {
    errno.ENOSYS,
    errno.EXDEV,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.EBADF,
}


def _copy_into(out_fd: int, src_path: Path, n_bytes: int) -> None:
    """Append a file: an in-kernel copy where the OS offers one, else read/write.

    The in-kernel copy keeps the main process light: it stays ahead of the workers.
    """
    with open(src_path, "rb") as src:
        copied = 0
        try:
            while copied < n_bytes:
                n = os.copy_file_range(src.fileno(), out_fd, n_bytes - copied)
                if n == 0:
                    break
                copied += n
        except AttributeError:
            pass  # not Linux
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
        src.seek(copied)
        view = memoryview(src.read())
    while view:
        view = view[os.write(out_fd, view) :]


def _finish_store(
    plan: SplitPlan,
    n_selected: int,
    outcomes: list[Outcome],
    writer: _AudioWriter,
    console: Console,
) -> SplitResult:
    """audio.i16, hits.npy, recordings.json, then manifest.json last."""
    jobs = [job for job, _ in writer.done]
    metas = [meta for _, meta in writer.done]
    skipped = [o.skip for o in outcomes if o.skip is not None]
    writer.commit()
    recordings, hits = _index(jobs, metas)
    hits_bytes = _npy_bytes(hits)
    recordings_text = _dumps(recordings)
    storage.atomic_write_bytes(plan.split_dir / HITS_FILE, hits_bytes)
    storage.atomic_write_text(plan.split_dir / RECORDINGS_FILE, recordings_text)
    n_samples = sum(m["length"] for m in metas)
    manifest = {
        **plan.expected,
        "split": plan.split,
        "classes": list(drums.get_vocab(plan.expected["vocab"]).codes),
        "limit": plan.limit,
        "n_selected": n_selected,
        "n_recordings": len(jobs),
        "n_hits": len(hits),
        "n_samples": n_samples,
        "skipped": skipped,
        "hits_sha256": hashlib.sha256(hits_bytes).hexdigest(),
        "recordings_sha256": _sha256_text(recordings_text),
        "created_by": f"drumtx {__version__}",
    }
    storage.atomic_write_text(plan.split_dir / MANIFEST_FILE, _dumps(manifest))
    for name in STORE_FILES:
        path = plan.split_dir / name
        console.print(f"wrote {escape(str(path))} ({_size_text(path.stat().st_size)})")
    audio_sec = n_samples / plan.expected["sample_rate"]
    return SplitResult(plan.split, "built", len(jobs), len(hits), audio_sec, skipped)


def _read_part_meta(job: Job) -> dict[str, Any]:
    if not part_is_done(job):  # a worker reported success, so this is a real fault
        raise DataError(
            f"part {job.meta_part} is missing or damaged after processing",
            hint=f"run {PREPROCESS_HINT} again; finished parts are kept",
        )
    return json.loads(job.meta_part.read_text(encoding="utf-8"))


def _index(
    jobs: Sequence[Job], metas: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """recordings.json entries and the hits array, offsets in concatenation order."""
    recordings, arrays, offset = [], [], 0
    sr = jobs[0].sample_rate if jobs else 1
    for rec_index, (job, meta) in enumerate(zip(jobs, metas)):
        recordings.append(_recording_entry(job.record, offset, meta["length"], sr))
        offset += meta["length"]
        hits = np.zeros(len(meta["sample"]), dtype=HITS_DTYPE)  # (n_hits,)
        hits["recording"] = rec_index
        for name in ("sample", "class", "velocity", "pitch"):
            hits[name] = meta[name]
        arrays.append(hits)
    hits = np.concatenate(arrays) if arrays else np.zeros(0, dtype=HITS_DTYPE)
    return recordings, hits  # parts are sorted by sample, so by (recording, sample)


def _recording_entry(
    record: EgmdRecord, offset: int, length: int, sample_rate: int
) -> dict[str, Any]:
    return {
        "audio_path": record.audio_filename,
        "midi_path": record.midi_filename,
        "offset": offset,
        "length": length,
        "split": record.split,
        "kit": record.kit_name,
        "style": record.style,
        "duration_sec": round(length / sample_rate, 6),
        "drummer": record.drummer,
        "id": record.id,
        "bpm": record.bpm,
        "beat_type": record.beat_type,
        "time_signature": record.time_signature,
    }


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _dumps(value: Any) -> str:
    """Stable JSON: the code's key order, repr floats, one trailing newline."""
    return json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _size_text(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes} bytes"


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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
    console = Console(highlight=False)
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
    csv_sha256 = _sha256_file(csv_path)
    n_limit = cfg.data.max_recordings if limit is None else limit
    unique = list(dict.fromkeys(splits))
    return [_plan_split(cfg, roots, s, records, csv_sha256, n_limit) for s in unique]


class _worker_pool:
    """A Pool of n worker processes; the calling process writes the store meanwhile."""

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self.pool: Any = None

    def __enter__(self) -> Any:
        ctx = multiprocessing.get_context(_start_method())
        self.pool = ctx.Pool(
            self.n_workers, initializer=_init_worker, initargs=(os.getpid(),)
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
    soundfile and mido code (never torch/OpenMP, whose thread pools do not survive a
    fork). Elsewhere spawn, the only safe choice on macOS and Windows.
    """
    if sys.platform.startswith("linux"):
        return "fork"
    return "spawn"


def _up_to_date_result(plan: SplitPlan, console: Console) -> SplitResult:
    manifest = _read_manifest(plan.split_dir) or {}
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
        err = Console(stderr=True, highlight=False)
        err.print(
            f"[bold red]error:[/] {n_skipped} recording(s) skipped (listed above and "
            "in each split's manifest.json)"
        )
        err.print(
            "[yellow]hint:[/] fix or remove them, or pass --allow-skips to accept"
        )
        return 1
    return 0
