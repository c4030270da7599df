"""The crash-safe store writer: finished parts -> a split's processed store.

The main process appends finished parts, in index order, to ``audio.i16.tmp`` and
``backing.i16.tmp`` (an in-kernel copy; parts from an earlier run get their CRC
checked, since an OS crash can lose unsynced data). Then it fsyncs and renames them
to ``audio.i16`` and ``backing.i16``, writes ``hits.npy`` and ``recordings.json``, then
``manifest.json`` last and atomically. A store without a manifest is incomplete;
readers refuse it. ``drumtx.recording_part`` makes the parts; ``drumtx.preprocess``
plans and runs the build.

Determinism: no timestamps, fixed JSON key order, ``repr`` floats, parts assembled in
index order; two runs over the same inputs give byte-identical files.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from drumtx import __version__, drums, storage
from drumtx.egmd import EgmdRecord
from drumtx.errors import DataError
from drumtx.processed import (
    AUDIO_FILE,
    BACKING_FILE,
    HITS_DTYPE,
    HITS_FILE,
    MANIFEST_FILE,
    PREPROCESS_HINT,
    RECORDINGS_FILE,
    STORE_FILES,
)
from drumtx.recording_part import (
    RESUME_HINT,
    Job,
    Outcome,
    part_is_done,
    stable_json,
)
from drumtx.synth.backing import BackingSpec

PARTS_DIR = ".parts"


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


def prepare_split_dir(plan: SplitPlan, roots: storage.Roots, console: Console) -> None:
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
    remove_stray_tmp(split_dir)
    (split_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)


def remove_stray_tmp(split_dir: Path) -> None:
    """Temporary files a killed run left beside the store files."""
    if not split_dir.is_dir():
        return
    for name in (*STORE_FILES, BACKING_FILE):
        for tmp in split_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for name in (AUDIO_FILE, BACKING_FILE):
        (split_dir / f"{name}.tmp").unlink(missing_ok=True)


# --- assembly -------------------------------------------------------------------------


class AudioWriter:
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

    def __enter__(self) -> AudioWriter:
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


def finish_store(
    plan: SplitPlan,
    n_selected: int,
    outcomes: list[Outcome],
    writer: AudioWriter,
    console: Console,
) -> SplitResult:
    """audio.i16, hits.npy, recordings.json, then manifest.json last."""
    jobs = [job for job, _ in writer.done]
    metas = [meta for _, meta in writer.done]
    skipped = [o.skip for o in outcomes if o.skip is not None]
    writer.commit()
    recordings, hits = _index(jobs, metas)
    hits_bytes = _npy_bytes(hits)
    recordings_text = stable_json(recordings)
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
    storage.atomic_write_text(plan.split_dir / MANIFEST_FILE, stable_json(manifest))
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


def _size_text(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes} bytes"


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
