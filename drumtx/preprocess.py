"""E-GMD -> processed store (DESIGN.md §3): parallel, resumable, crash-safe, repeatable.

Per split folder ``processed_dir/<split>/``:

1. Select rows of the split (every k-th row when limited, so kits and drummers vary).
2. Worker processes (``--workers``) turn each recording into a *part* in ``.parts/``:
   ``NNNNNN.i16`` (int16 audio at ``audio.sample_rate``), ``NNNNNN.backing.i16`` (the
   recording's backing track, rendered from its MIDI's tempo map; ``[backing]``), then
   ``NNNNNN.json`` (hits, length, CRC-32s, config fingerprint). Each is written
   tmp-then-``os.replace`` (no fsync) and the json goes last, so it is the commit
   marker: a part counts as done only when its json exists, carries this run's
   fingerprint and its audio files have the length the json names. A rerun after a
   crash (even SIGKILL) skips finished parts.
3. Meanwhile the main process appends finished parts, in index order, to
   ``audio.i16.tmp`` and ``backing.i16.tmp`` (an in-kernel copy; parts from an
   earlier run get their CRC checked, since an OS crash can lose unsynced data). Then
   it fsyncs and renames them to ``audio.i16`` and ``backing.i16``, writes
   ``hits.npy`` and ``recordings.json``, then ``manifest.json`` last and atomically,
   and removes ``.parts``. A store without a manifest is incomplete; readers refuse it.

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
import multiprocessing
import os
import shutil
import signal
import sys
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drumtx import __version__, audio, drums, egmd, midi, storage
from drumtx.config import Config
from drumtx.console import Progress, make_console
from drumtx.drums import Hit
from drumtx.egmd import EgmdRecord
from drumtx.errors import AudioError, ConfigError, DataError
from drumtx.store import (
    AUDIO_FILE,
    BACKING_FILE,
    FORMAT_VERSION,
    HITS_DTYPE,
    HITS_FILE,
    MANIFEST_FILE,
    PREPROCESS_HINT,
    RECORDINGS_FILE,
    STORE_FILES,
    read_manifest,
    sha256_file,
)
from drumtx.synth.backing import KICK_PITCHES, BackingSpec, render_backing

PART_VERSION = 2  # bump when the content of a part changes meaning
MIDI_TAIL_TOL_SEC = 1.0  # a hit may sit this far past the audio's end (then dropped)
CSV_DURATION_TOL_SEC = 2.0  # |audio duration - CSV duration| allowed
PARTS_DIR = ".parts"
# Manifest keys that must equal the planned build for a store to count as up to date.
MATCH_KEYS = (
    "format_version",
    "sample_rate",
    "vocab",
    "backing",
    "source_csv_sha256",
    "selection_sha256",
)
# A full disk mid-build: the next run resumes from the parts already finished.
RESUME_HINT = f"finished parts are kept; run {PREPROCESS_HINT} again: it resumes"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


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
    backing: BackingSpec | None = None  # render a backing track, and how

    @property
    def audio_part(self) -> Path:
        return self.parts_dir / f"{self.index:06d}.i16"

    @property
    def backing_part(self) -> Path:
        return self.parts_dir / f"{self.index:06d}.backing.i16"

    def track_parts(self) -> list[tuple[Path, str]]:
        """(part file, CRC key in the json) of every track this job writes."""
        parts = [(self.audio_part, "audio_crc32")]
        if self.backing is not None:
            parts.append((self.backing_part, "backing_crc32"))
        return parts

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
    backing: BackingSpec | None = None

    @property
    def store_files(self) -> tuple[str, ...]:
        return STORE_FILES + ((BACKING_FILE,) if self.backing else ())


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
    backing: BackingSpec | None,
) -> SplitPlan:
    selected = select_records(records, split, limit)
    selection = hashlib.sha256(
        _dumps([asdict(r) for r in selected]).encode("utf-8")
    ).hexdigest()
    expected = {
        "format_version": FORMAT_VERSION,
        "sample_rate": cfg.audio.sample_rate,
        "vocab": cfg.data.vocab,
        "backing": backing.describe() if backing else None,
        "source_csv_sha256": csv_sha256,
        "selection_sha256": selection,
    }
    split_dir = roots.processed_dir / split
    return SplitPlan(split, split_dir, selected, limit, expected, backing)


def _is_up_to_date(plan: SplitPlan) -> bool:
    """A complete store whose manifest matches the plan, with all of its files."""
    try:
        manifest = read_manifest(plan.split_dir)
    except DataError:
        return False
    if manifest is None or any(manifest.get(k) != v for k, v in plan.expected.items()):
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
        fingerprint = _dumps(
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
    except (OSError, ValueError):
        return False
    if not (isinstance(meta, dict) and meta.get("fingerprint") == job.fingerprint):
        return False
    try:
        sizes = [path.stat().st_size for path, _ in job.track_parts()]
    except OSError:
        return False
    return all(size == 2 * meta.get("length", -1) for size in sizes)


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
    tracks = [audio.to_int16(samples)]
    if job.backing is not None:
        tracks.append(audio.to_int16(_backing_track(job, notes, len(samples))))
    _write_part(job, tracks, hits)
    return Outcome(job.index, None, len(samples) / job.sample_rate)


def _backing_track(job: Job, notes: Sequence[midi.Note], n_samples: int) -> np.ndarray:
    """The recording's accompaniment, on its MIDI's beats; seeded by its path."""
    kicks = np.array([n.time_sec for n in notes if n.pitch in KICK_PITCHES])
    return render_backing(
        job.egmd_dir / job.record.midi_filename,
        kicks,
        n_samples,
        job.sample_rate,
        job.backing,
        key=job.record.audio_filename,
    )


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


def _write_part(job: Job, tracks: Sequence[np.ndarray], hits: Sequence[Hit]) -> None:
    """Audio (and backing) first, then the json commit marker; each atomically."""
    n_samples = len(tracks[0])
    onsets = [
        (round(h.time_sec * job.sample_rate), h.cls, h.velocity, h.pitch) for h in hits
    ]
    onsets = sorted(o for o in onsets if o[0] < n_samples)  # within MIDI_TAIL_TOL_SEC
    columns = list(zip(*onsets)) if onsets else [(), (), (), ()]
    views = [memoryview(np.ascontiguousarray(t, dtype="<i2")).cast("B") for t in tracks]
    meta: dict[str, Any] = {"fingerprint": job.fingerprint, "length": n_samples}
    for (_, crc_key), view in zip(job.track_parts(), views):
        meta[crc_key] = zlib.crc32(view)
    meta |= {
        "sample": list(columns[0]),
        "class": list(columns[1]),
        "velocity": list(columns[2]),
        "pitch": list(columns[3]),
    }
    # Parts skip the fsyncs (a third of preprocessing time on small files): they only
    # matter after an OS crash, and then the CRC that assembly checks on every part
    # from an earlier run catches a part whose data did not reach the disk.
    files = [(path, view) for (path, _), view in zip(job.track_parts(), views)]
    for path, data in [*files, (job.meta_part, _dumps(meta).encode("utf-8"))]:
        storage.atomic_write_bytes(path, data, durable=False, full_hint=RESUME_HINT)


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
    _prepare_split_dir(plan, roots, console)
    for name in plan.store_files:
        storage.check_not_raw(plan.split_dir / name, roots)
    jobs = _jobs(plan, roots)
    tracks = [AUDIO_FILE] + ([BACKING_FILE] if plan.backing else [])
    with _AudioWriter([plan.split_dir / name for name in tracks]) as writer:
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
        for name in (
            MANIFEST_FILE,
            AUDIO_FILE,
            HITS_FILE,
            RECORDINGS_FILE,
            BACKING_FILE,
        ):
            (split_dir / name).unlink(missing_ok=True)
        shutil.rmtree(split_dir / PARTS_DIR, ignore_errors=True)
    _remove_stray_tmp(split_dir)
    (split_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)


def _remove_stray_tmp(split_dir: Path) -> None:
    """Temporary files a killed run left beside the store files."""
    if not split_dir.is_dir():
        return
    for name in (*STORE_FILES, BACKING_FILE):
        for tmp in split_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for name in (AUDIO_FILE, BACKING_FILE):
        (split_dir / f"{name}.tmp").unlink(missing_ok=True)


# --- assembly -------------------------------------------------------------------------


class _AudioWriter:
    """Concatenates each track's parts in index order into its file (via a tmp file):
    ``audio.i16`` always, ``backing.i16`` when backing tracks are rendered.

    Parts left by an earlier run (``resumed``) have their CRC checked: after an OS
    crash a part's data may be lost although its commit marker survived. Parts this
    run's workers wrote are read back from the page cache and need no check.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.tmps = [p.with_name(f"{p.name}.tmp") for p in self.paths]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self.fds = [os.open(tmp, flags, 0o666) for tmp in self.tmps]
        self.next = 0  # position in the job list of the next part to append
        self.done: list[tuple[Job, dict[str, Any]]] = []  # appended parts, in order
        self.resumed: set[int] = set()  # job indices of parts from an earlier run

    def __enter__(self) -> _AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd, tmp in zip(self.fds, self.tmps):
            if fd >= 0:  # not committed: drop the partial file
                os.close(fd)
                tmp.unlink(missing_ok=True)

    def append_ready(self, jobs: Sequence[Job], outcomes: dict[int, Outcome]) -> None:
        while self.next < len(jobs) and jobs[self.next].index in outcomes:
            job = jobs[self.next]
            if outcomes[job.index].skip is None:
                meta = _read_part_meta(job)
                self._append(job, meta)
                self.done.append((job, meta))
            self.next += 1

    def _append(self, job: Job, meta: dict[str, Any]) -> None:
        for fd, path, (part, crc_key) in zip(self.fds, self.paths, job.track_parts()):
            if (
                job.index in self.resumed
                and zlib.crc32(part.read_bytes()) != meta[crc_key]
            ):
                job.meta_part.unlink(missing_ok=True)
                raise DataError(
                    f"part {part} is damaged (CRC mismatch, as an OS crash can leave "
                    "it); it was removed",
                    hint=f"run {PREPROCESS_HINT} again: it redoes that part only",
                )
            # On a full disk __exit__ drops the tmp file.
            with storage.disk_full_error(path, RESUME_HINT):
                _copy_into(fd, part, 2 * meta["length"])

    def commit(self) -> None:
        """fsync and move into place."""
        for i, (path, tmp) in enumerate(zip(self.paths, self.tmps)):
            with storage.disk_full_error(path, RESUME_HINT):
                os.fsync(self.fds[i])
            os.close(self.fds[i])
            self.fds[i] = -1
            os.replace(tmp, path)


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
        "tracks": [BACKING_FILE.split(".")[0]] if plan.backing else [],
        "skipped": skipped,
        "hits_sha256": hashlib.sha256(hits_bytes).hexdigest(),
        "recordings_sha256": _sha256_text(recordings_text),
        "created_by": f"drumtx {__version__}",
    }
    storage.atomic_write_text(plan.split_dir / MANIFEST_FILE, _dumps(manifest))
    for name in plan.store_files:
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
