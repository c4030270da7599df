"""One E-GMD recording -> one *part* of the processed store, in a worker process.

A part is ``NNNNNN.i16`` (int16 audio at ``audio.sample_rate``), ``NNNNNN.backing.i16``
(the recording's backing track, rendered from its MIDI's tempo map; ``[backing]``),
then ``NNNNNN.json`` (hits, length, CRC-32s, config fingerprint). Each is written
tmp-then-``os.replace`` (no fsync) and the json goes last, so it is the commit marker:
a part counts as done only when its json exists, carries this run's fingerprint and
its audio files have the length the json names. ``drumtx.processed_writer`` assembles
finished parts into the store.

Skips are never cached as parts: a file that failed (perhaps on a flaky disk) is tried
again on the next run. A recording is skipped, with its reason, when:

- its MIDI cannot be read (DataError), or holds no hit of the vocabulary;
- its audio cannot be decoded (AudioError);
- a MIDI hit lies more than MIDI_TAIL_TOL_SEC past the end of the audio: the label would
  point at audio that does not exist, so the pair is truncated or mismatched. Hits past
  the end but within the tolerance are dropped (they have no frame to live in);
- the decoded audio and the CSV's duration differ by more than CSV_DURATION_TOL_SEC: the
  file on disk is not the recording the index describes (truncated or replaced).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drumtx import audio, drums, midi, storage
from drumtx.drums import Hit
from drumtx.egmd import EgmdRecord
from drumtx.errors import AudioError, ConfigError, DataError
from drumtx.processed import PREPROCESS_HINT, PSEUDO_KIT_PREFIX, UNSURE_VELOCITY
from drumtx.synth.backing import KICK_PITCHES, BackingSpec, render_backing

PART_VERSION = 2  # bump when the content of a part changes meaning
MIDI_TAIL_TOL_SEC = 1.0  # a hit may sit this far past the audio's end (then dropped)
CSV_DURATION_TOL_SEC = 2.0  # |audio duration - CSV duration| allowed
# A full disk mid-build: the next run resumes from the parts already finished.
RESUME_HINT = f"finished parts are kept; run {PREPROCESS_HINT} again: it resumes"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


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
    try:
        hits = hits + unsure_hits(job.egmd_dir / record.midi_filename, vocab)
    except DataError as exc:
        return _skip(job, record.midi_filename, exc.message)
    tracks = [audio.to_int16(samples)]
    if job.backing is not None:
        tracks.append(audio.to_int16(_backing_track(job, notes, len(samples))))
    _write_part(job, tracks, hits)
    return Outcome(job.index, None, len(samples) / job.sample_rate)


def unsure_hits(midi_path: Path, vocab: drums.Vocab) -> list[Hit]:
    """A pseudo-labelled recording's unsure peaks (``<stem>.unsure.json`` beside its
    MIDI, written by tools/pseudo_label.py), as hits of velocity UNSURE_VELOCITY that
    training leaves out of the loss; [] for every other recording."""
    path = midi_path.with_suffix(".unsure.json")
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["unsure"]
        return [Hit(float(t), vocab.index(str(code)), UNSURE_VELOCITY, -1)
                for t, code in entries]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise DataError(f"{path} is not a list of unsure peaks ({exc})") from None


def _backing_track(job: Job, notes: Sequence[midi.Note], n_samples: int) -> np.ndarray:
    """The recording's accompaniment, on its MIDI's beats; seeded by its path. A
    pseudo-labelled song (kit ``pseudo:...``) has its band already: silence."""
    if job.record.kit_name.startswith(PSEUDO_KIT_PREFIX):
        return np.zeros(n_samples, dtype=np.float32)
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
    for path, data in [*files, (job.meta_part, stable_json(meta).encode("utf-8"))]:
        storage.atomic_write_bytes(path, data, durable=False, full_hint=RESUME_HINT)


def init_worker(parent_pid: int) -> None:
    """Workers die with the parent, leave Ctrl-C to it, and run OpenMP on one thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _one_openmp_thread()
    global _PARENT_PID
    _PARENT_PID = parent_pid
    try:  # Linux: SIGKILL this worker when the parent dies, even by SIGKILL
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere _exit_if_orphaned catches it before the next recording
    _exit_if_orphaned()


_PARENT_PID: int | None = None


def _one_openmp_thread() -> None:
    """FluidSynth loads a SoundFont's samples in OpenMP regions, through the libgomp
    torch loaded (one library per process, by its soname). Where the parent had run
    torch on several threads, a forked worker inherits that library's thread pool
    without its threads, and its first parallel region waited for them forever (a
    preprocess called after a transcribe in one process hung). One thread runs the
    regions inline; a worker renders on one core anyway."""
    torch = sys.modules.get("torch")  # only a parent that imported it can have run it
    if torch is not None:
        torch.set_num_threads(1)


def _exit_if_orphaned() -> None:
    # An orphan would keep writing parts under a rerun's feet.
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)


def stable_json(value: Any) -> str:
    """Stable JSON: the code's key order, repr floats, one trailing newline."""
    return json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
