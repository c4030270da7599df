"""``drumtx transcribe``: drum audio files -> ``<stem>.drums.mid`` (and .csv, .json,
.musicxml, .png).

Every input is planned before any work: outputs that two inputs would share fail the
whole run at once, and outputs that exist are never replaced unless asked. One failed
input does not stop the others; the run then ends with an ``error:`` line and each
distinct ``hint:``, exit code 1. The MIDI carries the
tempo map found in the drums (drumtx.beats), or a constant ``--tempo``; ``--quantize``
snaps every output's hits to a grid on it. Every format is one view of the same hits and
tempo map, written through storage's atomic writer.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape

from drumtx.audio import (
    AUDIO_EXTENSIONS,
    OTHER_AUDIO_EXTENSIONS,
    AudioInfo,
    audio_info,
    format_hint,
    is_audio,
)
from drumtx.beats import BeatGrid, beat_grid
from drumtx.checkpoint import (
    ModelChoice,
    choose_model,
    is_shipped,
    shipped_models,
    trained_runs,
)
from drumtx.config import WHERE_SET, Config
from drumtx.console import Progress, make_console
from drumtx.drums import Hit, Vocab, output_notes
from drumtx.errors import ConfigError, DrumtxError, StorageError
from drumtx.harmony import ChromaStream
from drumtx.inference import (
    LoadedModel,
    class_thresholds,
    decode_hits,
    leveled_stream,
    load_model,
    precision_of,
    predict_activations,
    resolve_device,
)
from drumtx.levels import SILENT_DB, PeakMeter
from drumtx.meter import TEMPO_LIMITS_BPM
from drumtx.midi import Note, midi_bytes
from drumtx.storage import (
    atomic_write_files,
    check_not_raw,
    resolve_roots,
)
from drumtx.tempo import grid_step

FORMATS = ("mid", "csv", "json", "musicxml", "png")
ALL_FORMATS = ("mid", "csv", "json", "musicxml")  # -f all: png needs the plot extra
# -o given one of these names a file, not the folder it wants (made if missing)
FILE_SUFFIXES = (".mid", ".midi", ".csv", ".json", ".musicxml", ".xml", ".png",
                 *AUDIO_EXTENSIONS)  # fmt: skip
NOTATION_GRID = 0.25  # MusicXML's grid in beats (16ths) when --quantize is off


@dataclass(frozen=True)
class TranscribeOptions:
    """One ``transcribe`` call: what to read, where to write, and how.

    The fields from ``device`` on override the [transcribe] table (None keeps the
    config's value) and are validated like the TOML.
    """

    inputs: tuple[Path, ...] = ()
    out_dir: Path | None = None
    recursive: bool = False
    # A model file or run folder (Path), or as --checkpoint takes it (str): also
    # "shipped", "newest" or a run name. None: transcribe.checkpoint chooses.
    checkpoint: str | Path | None = None
    checkpoint_from: str = "--checkpoint"  # who named it, for the start line
    thresholds: tuple[str, ...] = ()  # "0.4" (every class) or "KD=0.3" (one class)
    overwrite: bool = False
    skip_existing: bool = False
    as_json: bool = False  # a JSON summary on stdout
    progress: bool = True  # a bar on a terminal
    list_models: bool = False
    device: str | None = None
    segment_sec: float | None = None
    overlap_sec: float | None = None
    batch_size: int | None = None
    drum_map: str | None = None
    velocity: str | None = None  # predicted | fixed:N
    formats: str | None = None  # mid,csv,json,musicxml,png | all
    tempo: float | None = None  # BPM; 0 = found from the drums
    quantize: str | None = None  # off | 1/8 | 1/8T | 1/16 | 1/16T | 1/32
    meter: str | None = None  # auto | 4/4 | 3/4 | 6/8 | 12/8
    plot: bool = False  # also <stem>.drums.png


@dataclass
class Job:
    """One input and the output files it will write (base path without extension)."""

    input_path: Path
    out_base: Path | None = None
    status: str = "pending"  # pending | done | skipped | failed
    reason: str = ""
    hint: str = ""  # the next step for a failed job, as an error's hint: line
    n_hits: int = 0
    outputs: list[Path] = field(default_factory=list)
    grid: BeatGrid | None = None  # the tempo map written (done jobs)
    gain_db: float = 0.0  # what the input was turned by before the model heard it
    peak_db: float = 0.0  # the input's loudest sample, dB re full scale (done jobs)
    info: AudioInfo | None = None  # the input file's header (once read)
    announced: bool = False  # its failure was printed as it happened
    formats: tuple[str, ...] | None = None  # to write; None: every format asked for
    kept: list[Path] = field(default_factory=list)  # outputs --skip-existing kept
    merged: int = 0  # hits --quantize merged into another of their class

    def out_path(self, fmt: str) -> Path:
        assert self.out_base is not None
        return self.out_base.with_name(self.out_base.name + f".drums.{fmt}")


@dataclass(frozen=True)
class Rendering:
    """How hits become files: thresholds, output notes, velocity, formats."""

    thresholds: list[float]  # one per class
    notes: tuple[int, ...]  # output MIDI note per class
    velocity_fixed: int | None  # None = the predicted velocity
    formats: tuple[str, ...]
    note_sec: float
    tempo_bpm: float | None = None  # None: the tempo map is found from the drums
    quantize_beats: float | None = None  # grid step in beats; None: no snapping
    meter: str = "auto"  # the bars' meter; auto: found from the drums
    overwrite: bool = False  # --overwrite: replace outputs that exist


def run_transcribe(cfg: Config, opts: TranscribeOptions) -> int:
    if opts.list_models:
        return list_models(cfg, opts.checkpoint, opts.checkpoint_from, opts.as_json)
    cfg = apply_options(cfg, opts)
    jobs = plan(cfg, opts)
    console = make_console(stderr=True)
    if not opts.recursive:  # a folder with no audio of its own already says -r
        empty = {j.input_path for j in jobs if j.input_path.is_dir()}
        read = [p for p in opts.inputs if p not in empty]
        for folder, subfolders in unread_subfolders(read):
            console.print(
                f"note: {escape(str(folder))} has subfolders with audio in them "
                f"({escape(', '.join(subfolders))}); without -r only its own files "
                "are read"
            )
    choice = choose_model(cfg, opts.checkpoint, opts.checkpoint_from)
    todo = [j for j in jobs if j.status == "pending"]
    if not todo and choice.path.is_file():  # a missing model is still reported
        model = {"path": str(choice.path), "chosen": choice.reason}
        return report(jobs, console, as_json=opts.as_json, model=model)  # not loaded
    device = resolve_device(cfg.transcribe.device)
    loaded = load_model(choice.path, cfg, device)
    rendering = make_rendering(cfg, loaded, opts.thresholds, opts.overwrite)
    console.print(f"model: {escape(str(choice.path))} {_model_line(loaded)}")
    console.print(f"  chosen: {escape(choice.reason)}")
    console.print(f"  {escape(thresholds_line(loaded, rendering, opts.thresholds))}")
    transcribe_all(todo, loaded, cfg, rendering, console,
                   progress=opts.progress and not opts.as_json)  # fmt: skip
    model = {
        "path": str(choice.path),
        "chosen": choice.reason,
        "thresholds": dict(zip(loaded.vocab.codes, rendering.thresholds)),
    }
    return report(jobs, console, as_json=opts.as_json, model=model)


def transcribe_all(
    todo: list[Job],
    loaded: LoadedModel,
    cfg: Config,
    rendering: Rendering,
    console: Console,
    progress: bool,
) -> None:
    """Each job in turn, its lines printed as it ends; on a terminal a bar counts the
    seconds of audio heard (a bar of files stood at 0/1 through a long song)."""
    seconds = [audio_seconds(job.input_path) for job in todo]
    bar = Progress(
        console,
        "transcribing",
        sum(seconds),
        unit="s of audio",
        log_every_sec=None,  # piped: the per-file lines below are the progress
        transient=True,
        enabled=progress,
    )
    with bar:
        for job, length in zip(todo, seconds):
            start = bar.done
            bar.update(start, info=job.input_path.name)

            def heard(sec: int, start: int = start, length: int = length) -> None:
                bar.update(start + min(sec, length))

            transcribe_job(job, loaded, cfg, rendering, heard)
            _print_job(console, job)
            bar.update(start + length)


def audio_seconds(path: Path) -> int:
    """Whole seconds of a file's audio, at least 1 (1 where its header is unread)."""
    try:
        return max(1, math.ceil(audio_info(path).duration_sec))
    except DrumtxError:
        return 1


def plan(cfg: Config, opts: TranscribeOptions) -> list[Job]:
    """Every input's job, checked before any work (formats, clashes, existing files)."""
    # Bad values fail here, before the model loads; make_rendering applies them.
    formats = parse_formats(cfg.transcribe.formats)
    if "png" in formats:
        from drumtx.plot import require_matplotlib

        require_matplotlib()
    parse_velocity(cfg.transcribe.velocity)
    parse_thresholds(opts.thresholds)
    if not opts.inputs:
        raise ConfigError(
            "no input given",
            hint="python -m drumtx transcribe song.wav [more files or dirs]",
        )
    if opts.out_dir is not None and opts.out_dir.exists() and not opts.out_dir.is_dir():
        raise ConfigError(
            f"-o {opts.out_dir} is a file, not a folder",
            hint="name a folder for the outputs (it is made if missing)",
        )
    out = opts.out_dir
    if out is not None and not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        raise ConfigError(
            f"-o {out} names a file; -o takes the folder the outputs go into",
            hint=f"-o {out.parent} writes {out.parent / '<input name>.drums.mid'} "
            "(a folder that does not exist is made)",
        )
    jobs = plan_jobs(list(opts.inputs), opts.out_dir, opts.recursive)
    refuse_raw_outputs(cfg, jobs)
    refuse_unwritable_folders(jobs, formats if opts.skip_existing else ())
    check_outputs(
        jobs, formats, overwrite=opts.overwrite, skip_existing=opts.skip_existing
    )
    return jobs


def make_rendering(
    cfg: Config,
    loaded: LoadedModel,
    threshold_args: Sequence[str],
    overwrite: bool = False,
) -> Rendering:
    overrides, global_threshold = parse_thresholds(threshold_args)
    if global_threshold is not None:
        overrides = {**{c: global_threshold for c in loaded.vocab.codes}, **overrides}
    t = cfg.transcribe
    return Rendering(
        thresholds=class_thresholds(loaded, overrides),
        notes=output_notes(loaded.vocab, t.drum_map),
        velocity_fixed=parse_velocity(t.velocity),
        formats=parse_formats(t.formats),
        note_sec=t.note_sec,
        tempo_bpm=t.tempo or None,
        quantize_beats=None if t.quantize == "off" else grid_step(t.quantize),
        meter=t.meter,
        overwrite=overwrite,
    )


def thresholds_line(
    loaded: LoadedModel, rendering: Rendering, threshold_args: Sequence[str]
) -> str:
    """The onset thresholds in use and where they come from."""
    values = "  ".join(
        f"{c} {t:.2f}" for c, t in zip(loaded.vocab.codes, rendering.thresholds)
    )
    base = (
        "tuned for this model by evaluate --tune-thresholds"
        if loaded.thresholds
        else "decode.threshold and decode.class_thresholds"
    )
    if threshold_args:
        given = " ".join(f"--threshold {a}" for a in threshold_args)
        every_class = any("=" not in a for a in threshold_args)  # --threshold 0.4
        rest = "" if every_class else f", the rest {base}"
        return f"thresholds: {values} ({given}{rest})"
    return f"thresholds: {values} ({base}; --threshold changes them)"


def _model_line(loaded: LoadedModel) -> str:
    return (
        f"({loaded.cfg.model.preset}, {loaded.vocab.name})  device: {loaded.device}  "
        f"dtype: {precision_of(loaded)}"
    )


def _print_job(console: Console, job: Job) -> None:
    for path in job.outputs:
        console.print(f"wrote {escape(str(path))}")
    if job.kept and job.status == "done":
        names = ", ".join(str(p) for p in job.kept)
        console.print(f"kept {escape(names)} (already there: --skip-existing)")
    if job.grid is not None:
        console.print(f"  {escape(tempo_line(job.grid))}")
    if job.merged:
        console.print(
            f"  --quantize merged {job.merged} of {job.n_hits + job.merged} hits into "
            "another of their class on the same grid point (a finer grid keeps them)"
        )
    if job.status == "done" and abs(job.gain_db) >= 0.05:  # as printed
        way = "up" if job.gain_db > 0 else "down"
        console.print(
            f"  input turned {way} {abs(job.gain_db):.1f} dB for the model "
            "(transcribe.min_input_db, max_input_db)"
        )
    for note in input_notes(job):
        console.print(f"  [yellow]{escape(note)}[/]")
    if job.status == "failed":
        console.print(
            f"[red]failed[/] {escape(str(job.input_path))}: {escape(job.reason)}"
        )
        job.announced = True


def input_notes(job: Job) -> list[str]:
    """What a done job's lines say of its input's faults: cut short, narrow band,
    silent; its outputs are the audio's doing there, not the model's."""
    if job.status != "done" or job.info is None:
        return []
    notes = []
    if job.info.promised_sec is not None:
        notes.append(
            f"input is cut short: its header promises {job.info.promised_sec:.1f} s, "
            f"the file holds {job.info.duration_sec:.1f} s (an interrupted copy or "
            "recording?)"
        )
    if job.info.sample_rate < NARROW_INPUT_HZ:
        notes.append(narrow_note(job.info.sample_rate))
    if job.peak_db < SILENT_DB:
        notes.append(silence_note(job.peak_db))
    return notes


# Below this sample rate an input holds nothing where hi-hats and cymbals ring most
# (an 8 kHz file, a phone's, lost every hi-hat of a groove without a word).
NARROW_INPUT_HZ = 22_050


def narrow_note(sample_rate: int) -> str:
    return (
        f"input's sample rate is {sample_rate} Hz: it holds nothing above "
        f"{sample_rate / 2000:.1f} kHz, where hi-hats and cymbals ring, so they may "
        "be missed"
    )


def silence_note(peak_db: float) -> str:
    """What a done job's line says of an input whose loudest sample is below
    SILENT_DB: its empty or sparse MIDI is the audio's, not the model's, doing."""
    if peak_db < -190:  # every sample 0 (non-finite ones are read as 0)
        return "input is silent: every sample is 0 (or not a number)"
    return f"input is nearly silent: its loudest sample is at {peak_db:.1f} dBFS"


def tempo_line(grid: BeatGrid) -> str:
    """What the outputs' tempo map says, e.g. ``tempo 92.4 BPM, 4/4, first bar line
    at 0.52 s (or 184.8 BPM? --tempo 184.8)``; a tempo that moves is given as the
    range of its steady stretches, ``tempo 105.1 to 138.0 BPM (median 121.2)``."""
    if not grid.found:
        return (
            f"tempo: too few hits to find one; {grid.bpm:g} BPM in {grid.meter} "
            "written (--tempo and --meter set them)"
        )
    first = float(grid.downbeats_sec[0]) if len(grid.downbeats_sec) else 0.0
    spread = grid.bpm_spread
    bpm = f"{grid.bpm:.1f} BPM" if spread is None else \
        "{:.1f} to {:.1f} BPM (median {:.1f})".format(*spread, grid.bpm)
    line = f"tempo {bpm}, {grid.meter}, first bar line at {first:.2f} s"
    if grid.rival_bpm is not None:
        line += f" (or {grid.rival_bpm:.1f} BPM? --tempo {grid.rival_bpm:.1f})"
    return line


def apply_options(cfg: Config, opts: TranscribeOptions) -> Config:
    """The options' [transcribe] overrides folded into cfg, validated like the TOML."""
    changes = {
        "device": opts.device,
        "segment_sec": opts.segment_sec,
        "overlap_sec": opts.overlap_sec,
        "batch_size": opts.batch_size,
        "drum_map": opts.drum_map,
        "velocity": opts.velocity,
        "formats": opts.formats,
        "tempo": opts.tempo,
        "quantize": opts.quantize,
        "meter": opts.meter,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if opts.tempo is not None and opts.tempo <= 0:  # 0 in the config: found
        raise ConfigError(
            f"--tempo {opts.tempo:g} is no tempo",
            hint="give the BPM to write ({:g} to {:g}), or leave --tempo out to find "
            "the tempo map from the drums".format(*TEMPO_LIMITS_BPM),
        )
    if opts.plot:
        formats = changes.get("formats", cfg.transcribe.formats)
        changes["formats"] = f"{formats},png"
    try:
        section = dataclasses.replace(cfg.transcribe, **changes)
    except ConfigError as exc:  # a bad option's generic hint names the option
        named = [k for k in OPTION_FLAGS if exc.message.startswith(f"transcribe.{k} ")]
        if not named or named[0] not in changes or not exc.hint.startswith(WHERE_SET):
            raise
        flag = OPTION_FLAGS[named[0]]
        raise ConfigError(
            exc.message, hint=f"it is {flag} {changes[named[0]]}: change that value"
        ) from None
    return dataclasses.replace(cfg, transcribe=section)


# [transcribe] keys and the options that set them, for an option's error
OPTION_FLAGS = {
    "segment_sec": "--segment",
    "batch_size": "--batch-size",
    "tempo": "--tempo",
}


def parse_formats(text: str) -> tuple[str, ...]:
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    if "all" in names:
        names = [*ALL_FORMATS, *(n for n in names if n != "all")]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ConfigError(
            f"unknown output format {', '.join(bad) or repr(text)}",
            hint="use -f mid, -f mid,csv,json,musicxml,png or -f all (all but png)",
        )
    return tuple(dict.fromkeys(names))


def parse_velocity(text: str) -> int | None:
    """None = predicted velocity; an int = every note at that velocity."""
    if text == "predicted":
        return None
    kind, _, number = text.partition(":")
    if kind == "fixed" and number.isdigit() and 1 <= int(number) <= 127:
        return int(number)
    raise ConfigError(
        f"--velocity {text!r} is not understood",
        hint="use predicted or fixed:N, N in 1..127",
    )


def parse_thresholds(items: Sequence[str]) -> tuple[dict[str, float], float | None]:
    """``--threshold 0.4`` (all classes) and ``--threshold KD=0.3`` (one class)."""
    per_class: dict[str, float] = {}
    global_value = None
    for item in items:
        code, sep, value = item.partition("=")
        text = value if sep else code
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            raise ConfigError(
                f"--threshold {item!r}: expected a probability in 0..1",
                hint="e.g. --threshold 0.4 or --threshold KD=0.3",
            )
        if sep:
            per_class[code.strip().upper()] = number
        else:
            global_value = number
    return per_class, global_value


def plan_jobs(inputs: list[Path], out_dir: Path | None, recursive: bool) -> list[Job]:
    """Expand folders; a missing or unsupported input becomes a failed job, not a crash.
    A file named twice (itself and in its folder) is transcribed once."""
    jobs: list[Job] = []
    for given in inputs:
        if given.is_dir():
            jobs += _folder_jobs(given, out_dir, recursive)
            continue
        job = Job(given)
        if not given.exists():
            job.status, job.reason = "failed", "no such file or directory"
            job.hint = f"check the spelling; a relative path starts in {Path.cwd()}"
        elif given.suffix.lower() in OTHER_AUDIO_EXTENSIONS and not is_audio(given):
            job = _unread_format_job(given)
        elif given.suffix.lower() not in AUDIO_EXTENSIONS and not is_audio(given):
            job.status = "failed"
            job.reason = (
                f"unsupported extension {given.suffix or '(none)'!r}; "
                f"expected one of {', '.join(AUDIO_EXTENSIONS)}"
            )
            job.hint = format_hint()
        else:
            stem = given.with_suffix("").name
            job.out_base = (out_dir / stem) if out_dir else given.with_suffix("")
        jobs.append(job)
    seen: set[tuple[Path, Path | None]] = set()
    return [j for j in jobs if not _seen_before(j, seen)]


def _unread_format_job(path: Path) -> Job:
    """A failed job for audio in a format libsndfile does not read (M4A, WMA, ...)."""
    wav = shlex.quote(str(path.with_suffix(".wav")))
    return Job(path, status="failed", hint=format_hint(), reason=(
        f"drumtx does not read {path.suffix[1:].upper()}: convert it, e.g. "
        f"ffmpeg -i {shlex.quote(str(path))} {wav}"))  # fmt: skip


def _seen_before(job: Job, seen: set[tuple[Path, Path | None]]) -> bool:
    """The same file to the same outputs (named itself and in its folder); a link
    to it writes under its own name and runs."""
    key = (job.input_path.resolve(), job.out_base and job.out_base.absolute())
    if key in seen:
        return True
    seen.add(key)
    return False


def _folder_jobs(given: Path, out_dir: Path | None, recursive: bool) -> list[Job]:
    """A folder's audio files (its tree's with ``recursive``), mirrored under
    ``out_dir``. Audio in a format drumtx does not read fails, saying how to
    convert it (as a file named directly does); macOS's ``._name`` files (metadata
    beside a copied file) are not audio and are passed over."""
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p for p in given.glob(pattern) if p.is_file() and not p.name.startswith("._")
    )
    jobs = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in AUDIO_EXTENSIONS:
            rel = path.relative_to(given).with_suffix("")
            base = (out_dir / rel) if out_dir else path.with_suffix("")
            jobs.append(Job(path, base))
        elif suffix in OTHER_AUDIO_EXTENSIONS:
            jobs.append(_unread_format_job(path))
    if not jobs:
        jobs.append(_empty_folder_job(given, recursive))  # silence would look done
    return jobs


SUBFOLDER_LOOK = 10_000  # entries looked at per subfolder for audio, at most


def unread_subfolders(inputs: Sequence[Path]) -> list[tuple[Path, list[str]]]:
    """(folder, names of its subfolders with audio somewhere in them) for each given
    folder that has such subfolders: without -r a folder's own files are read and
    these are not. A subfolder's tree is looked at only so far (SUBFOLDER_LOOK)."""
    found = []
    for given in inputs:
        if not given.is_dir():
            continue
        try:
            subfolders = sorted(p for p in given.iterdir() if p.is_dir())
            names = [
                sub.name
                for sub in subfolders
                if any(p.suffix.lower() in AUDIO_EXTENSIONS
                       for p in itertools.islice(sub.rglob("*"), SUBFOLDER_LOOK))
            ]  # fmt: skip
        except OSError:  # unreadable: transcribing what can be read is enough
            continue
        if names:
            found.append((given, names))
    return found


def _empty_folder_job(folder: Path, recursive: bool) -> Job:
    names = ", ".join(AUDIO_EXTENSIONS)
    job = Job(folder, status="failed")
    where = "in its tree" if recursive else "directly in it"
    job.reason = f"a folder with no audio file ({names}) {where}"
    pattern = "**/*" if recursive else "*"
    try:
        entries = list(folder.iterdir())
        others = sorted({p.suffix.lower() for p in folder.glob(pattern)
                         if p.is_file() and not p.name.startswith("._")})  # fmt: skip
    except OSError as exc:  # unreadable: that is the reason then
        job.reason = f"a folder drumtx cannot read ({exc.strerror or exc})"
        job.hint = "check its permissions"
        return job
    if not recursive and any(p.is_dir() for p in entries):
        job.hint = "-r also reads its subfolders"
    elif others:  # files, none of them audio drumtx reads
        kinds = ", ".join(s or "(no extension)" for s in others[:5])
        job.hint = f"its files are {kinds}: " + format_hint()
    else:
        job.hint = "the folder is empty: name the folder or files that hold the audio"
    return job


def refuse_raw_outputs(cfg: Config, jobs: list[Job]) -> None:
    """Before any work: no output may land inside the raw E-GMD root (it is read-only).
    """
    roots = resolve_roots(cfg)
    for job in jobs:
        if job.out_base is None:
            continue
        try:
            check_not_raw(job.out_base, roots)
        except StorageError as exc:
            raise StorageError(
                exc.message, hint="write the outputs elsewhere with -o DIR"
            ) from None


def refuse_unwritable_folders(jobs: list[Job], kept: tuple[str, ...] = ()) -> None:
    """Fail, before any work, the jobs whose outputs could not be written (a read-only
    mount, a folder without write permission): they failed only after transcribing.
    A job whose outputs of the ``kept`` formats (--skip-existing's) all exist writes
    nothing and is left to be skipped."""
    verdicts: dict[Path, bool] = {}
    for job in jobs:
        if job.status != "pending" or job.out_base is None:
            continue
        if kept and all(job.out_path(f).exists() for f in kept):
            continue
        folder = job.out_base.parent.absolute()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the outputs' folder is made in the nearest one
        if folder not in verdicts:
            verdicts[folder] = os.access(folder, os.W_OK | os.X_OK)
        if not folder.is_dir():
            job.status = "failed"
            job.reason = f"{folder} is a file, so no folder can be made in it"
            job.hint = "-o DIR writes the outputs into another folder"
        elif not verdicts[folder]:
            job.status = "failed"
            job.reason = f"cannot write into {folder} (read-only, or no permission)"
            job.hint = "-o DIR writes the outputs into another folder"


def check_outputs(
    jobs: list[Job], formats: tuple[str, ...], *, overwrite: bool, skip_existing: bool
) -> None:
    """Fail before any work if two inputs share an output; handle existing outputs."""
    owners: dict[Path, Path] = {}
    for job in jobs:
        if job.out_base is None:
            continue
        for fmt in formats:
            target = job.out_path(fmt).resolve()
            if target in owners:
                first = owners[target]
                same_folder = first.parent == job.input_path.parent
                why = "they differ only in extension: " if same_folder else ""
                raise ConfigError(
                    f"{first} and {job.input_path} would both write {target}",
                    hint=f"{why}rename one, or transcribe them in two runs with a "
                    "different -o DIR each",
                )
            owners[target] = job.input_path
        if job.status == "pending":  # an unwritable folder's failure stands
            _existing_outputs(job, formats, overwrite, skip_existing)


def _existing_outputs(
    job: Job, formats: tuple[str, ...], overwrite: bool, skip_existing: bool
) -> None:
    """Outputs already there fail the job, unless --overwrite replaces them or
    --skip-existing keeps them: then only the missing formats are written, and a job
    with none missing is skipped."""
    existing = [f for f in formats if job.out_path(f).exists()]
    if not existing or overwrite:
        return
    names = ", ".join(job.out_path(f).name for f in existing)
    if not skip_existing:
        job.status = "failed"
        job.reason = f"{job.out_path(existing[0])} exists"
        job.hint = "--overwrite replaces it, --skip-existing leaves it (and writes " \
            "what is missing), -o DIR writes elsewhere"
    elif len(existing) == len(formats):
        job.status, job.reason = "skipped", f"its outputs exist ({names})"
    else:
        job.formats = tuple(f for f in formats if f not in existing)
        job.kept = [job.out_path(f) for f in existing]


def transcribe_job(
    job: Job,
    loaded: LoadedModel,
    cfg: Config,
    rendering: Rendering,
    heard: Callable[[int], None] | None = None,
) -> None:
    """Transcribe one input into its outputs.

    What is wrong with this input or its outputs (undecodable audio, an unwritable
    folder, a full disk, a file too big for memory) fails this job alone, with the
    reason; the other inputs go on. Anything else is a bug in drumtx or a broken device
    (a shape mismatch, a CUDA error that poisons every later call): it propagates with
    its traceback, noted with the input it happened on.
    """
    t = cfg.transcribe
    try:
        rate = loaded.cfg.audio.sample_rate
        job.info = audio_info(job.input_path)
        n_samples, chunks, gain_db = leveled_stream(job.input_path, loaded.cfg)
        harmony = ChromaStream(rate)  # the band's chord changes: bar-line evidence
        meter = PeakMeter()
        onset, velocity = predict_activations(
            loaded,
            harmony.wrap(meter.wrap(counted(chunks, rate, heard))),
            n_samples,
            segment_sec=t.segment_sec,
            overlap_sec=t.overlap_sec,
            batch_size=t.batch_size,
            gain_db=gain_db,
        )
        hits = decode_hits(loaded, onset, velocity, rendering.thresholds)
        codes, fps = loaded.vocab.codes, loaded.cfg.frontend.fps
        grid = beat_grid(onset, velocity, codes, fps, bpm=rendering.tempo_bpm,
                         meter=rendering.meter, hits=hits,
                         chroma=harmony.chroma())  # fmt: skip
        hits = shaped_hits(job, hits, grid, rendering)
        job.outputs = write_outputs(job, hits, loaded.vocab, rendering, grid)
        job.status, job.n_hits, job.grid = "done", len(hits), grid
        job.gain_db, job.peak_db = gain_db, meter.peak_db
    except DrumtxError as exc:
        job.status, job.reason, job.hint = "failed", exc.message, exc.hint or ""
    except OSError as exc:
        job.status = "failed"
        job.reason = f"{exc.strerror or exc} ({exc.filename or ''})"
        job.hint = "check the file's and the output folder's permissions and free space"
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        _out_of_memory(job, type(exc).__name__)
    except RuntimeError as exc:
        if not is_cpu_out_of_memory(exc):  # a bug: its traceback, not a line
            _add_note(exc, f"drumtx: raised while transcribing {job.input_path}")
            raise
        _out_of_memory(job, "RuntimeError")
    except Exception as exc:
        _add_note(exc, f"drumtx: raised while transcribing {job.input_path}")
        raise


def counted(
    chunks: Iterator[np.ndarray], rate: int, heard: Callable[[int], None] | None
) -> Iterator[np.ndarray]:
    """The chunks, calling ``heard`` (if any) with the whole seconds passed on so far.
    """
    if heard is None:
        yield from chunks
        return
    n = 0
    for chunk in chunks:
        yield chunk
        n += len(chunk)
        heard(n // rate)


def _add_note(exc: BaseException, note: str) -> None:
    """Python 3.11's add_note: the note is printed under the traceback."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def is_cpu_out_of_memory(exc: RuntimeError) -> bool:
    """torch's CPU allocator reports a failed allocation as a plain RuntimeError."""
    text = str(exc)
    return "can't allocate memory" in text or "not enough memory" in text


def _out_of_memory(job: Job, kind: str) -> None:
    job.status = "failed"
    job.reason = f"out of memory ({kind})"
    job.hint = "a smaller --batch-size or --segment needs less"


def shaped_hits(
    job: Job, hits: list[Hit], grid: BeatGrid, rendering: Rendering
) -> list[Hit]:
    """The hits as the outputs write them: on --quantize's grid (``job.merged``
    counts the hits that met another of their class on one grid point), and at
    --velocity's fixed velocity."""
    if rendering.quantize_beats is not None:
        found = len(hits)
        hits = quantize_hits(hits, grid, rendering.quantize_beats)
        job.merged = found - len(hits)
    if rendering.velocity_fixed is not None:
        fixed = rendering.velocity_fixed
        hits = [dataclasses.replace(h, velocity=fixed) for h in hits]
    return hits


def quantize_hits(hits: Sequence[Hit], grid: BeatGrid, step_beats: float) -> list[Hit]:
    """Hits moved to the nearest grid point of the tempo map; two of one class landing
    on one point become one, the louder."""
    times = grid.tempo_map.snap(np.array([h.time_sec for h in hits]), step_beats)
    kept: dict[tuple[float, int], Hit] = {}
    for hit, time_sec in zip(hits, times):
        key = (round(float(time_sec), 6), hit.cls)
        if key not in kept or kept[key].velocity < hit.velocity:
            kept[key] = dataclasses.replace(hit, time_sec=float(time_sec))
    return sorted(kept.values(), key=lambda h: (h.time_sec, h.cls))


def tempo_json(grid: BeatGrid) -> dict:
    """The tempo map, beats and downbeats as the JSON output lists them."""
    tm = grid.tempo_map
    starts = np.asarray(tm.start_beats)
    return {
        "tempo": [
            {
                "beat": float(b),
                "time_sec": round(float(t), 6),
                "bpm": round(60 / spb, 3),
            }
            for b, t, spb in zip(starts, tm.seconds(starts), tm.sec_per_beat)
        ],
        "time_signatures": [
            {
                "beat": float(b),
                "time_sec": round(float(tm.seconds(b)), 6),
                "numerator": n,
                "denominator": d,
            }
            for b, n, d in tm.meters
        ],  # fmt: skip
        "beats_sec": [round(float(t), 6) for t in grid.beats_sec],
        "downbeats_sec": [round(float(t), 6) for t in grid.downbeats_sec],
        "found": grid.found,
    }


def output_bytes(
    fmt: str,
    rows: list[dict],
    hits: Sequence[Hit],
    vocab: Vocab,
    rendering,
    grid,
    title: str = "",
) -> bytes:
    """One format's file contents; the score and the picture carry ``title``."""
    if fmt == "csv":
        lines = ["time_sec,class,note,velocity"]
        lines += [
            f"{r['time_sec']:.6f},{r['class']},{r['note']},{r['velocity']}"
            for r in rows
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "json":
        data = {"hits": rows, **tempo_json(grid)}
        return (json.dumps(data, indent=1) + "\n").encode("utf-8")
    duration_sec = grid.duration_sec
    if fmt == "musicxml":
        from drumtx.notation import musicxml_bytes

        step = rendering.quantize_beats or NOTATION_GRID
        return musicxml_bytes(hits, vocab.codes, rendering.notes, grid.tempo_map,
                              step_beats=step, end_sec=duration_sec,
                              title=title)  # fmt: skip
    from drumtx.plot import drum_roll_png

    return drum_roll_png(hits, vocab.codes, grid.beats_sec, grid.downbeats_sec,
                         duration_sec, title=title)  # fmt: skip


def write_outputs(
    job: Job,
    hits: Sequence[Hit],
    vocab: Vocab,
    rendering: Rendering,
    grid: BeatGrid,
) -> list[Path]:
    """The job's files, one per format, written as one (atomic_write_files): an
    error leaves every earlier output as it was."""
    assert job.out_base is not None
    job.out_base.parent.mkdir(parents=True, exist_ok=True)
    notes = rendering.notes
    rows = [
        {
            "time_sec": round(h.time_sec, 6),
            "class": vocab.codes[h.cls],
            "note": notes[h.cls],
            "velocity": h.velocity,
        }
        for h in hits
    ]
    files = {}
    for fmt in job.formats or rendering.formats:
        if fmt == "mid":
            midi_notes = [Note(r["time_sec"], r["note"], r["velocity"]) for r in rows]
            data = midi_bytes(midi_notes, tempo_map=grid.tempo_map,
                              note_sec=rendering.note_sec,
                              end_sec=grid.duration_sec)  # fmt: skip
        else:
            title = job.input_path.stem
            data = output_bytes(fmt, rows, hits, vocab, rendering, grid, title)
        files[job.out_path(fmt)] = data
    try:
        atomic_write_files(files, replace=rendering.overwrite)
    except FileExistsError as exc:
        raise StorageError(
            f"{exc.filename} appeared while this input was transcribed (another run "
            "writing the same outputs?); it was kept, and none of this input's outputs "
            "were written",
            hint="--overwrite replaces it, -o DIR writes elsewhere",
        ) from None
    return list(files)


def job_summary(job: Job) -> dict:
    """One input's entry in the --json summary; done ones carry the tempo found."""
    entry = {
        "input": str(job.input_path),
        "status": job.status,
        "reason": job.reason,
        "hint": job.hint,
        "hits": job.n_hits,
        "outputs": [str(p) for p in job.outputs],
        **({"kept": [str(p) for p in job.kept]} if job.kept else {}),
    }
    if job.grid is not None:
        rival, spread = job.grid.rival_bpm, job.grid.bpm_spread
        entry["tempo"] = {
            "bpm": round(job.grid.bpm, 3),
            "meter": job.grid.meter,
            "found": job.grid.found,
            "rival_bpm": None if rival is None else round(rival, 3),
            "bpm_spread": None if spread is None else [round(x, 3) for x in spread],
        }
        entry["input_gain_db"] = round(job.gain_db, 2)
        entry["input_peak_db"] = round(max(job.peak_db, -200.0), 2)
        entry["input_sample_rate"] = None if job.info is None else job.info.sample_rate
        entry["merged_by_quantize"] = job.merged
    return entry


def report(
    jobs: list[Job],
    console: Console,
    *,
    as_json: bool,
    model: dict[str, Any] | None = None,
) -> int:
    """The closing lines, and with ``as_json`` the JSON summary; ``model`` (the path,
    why it was chosen and its thresholds) joins the JSON when a model was loaded."""
    done = [j for j in jobs if j.status == "done"]
    skipped = [j for j in jobs if j.status == "skipped"]
    failed = [j for j in jobs if j.status == "failed"]
    console.print(
        f"transcribed {len(done)}, skipped {len(skipped)}, failed {len(failed)}"
    )
    for job in skipped + failed:
        if job.announced and len(jobs) == 1:
            continue  # its line is just above
        console.print(
            f"  {job.status}: {escape(str(job.input_path))}: {escape(job.reason)}"
        )
    if failed:
        inputs = f"{len(jobs)} input" + ("" if len(jobs) == 1 else "s")
        console.print(f"[bold red]error:[/] {len(failed)} of {inputs} failed")
        for hint in dict.fromkeys(j.hint for j in failed if j.hint):
            console.print(f"[yellow]hint:[/] {escape(hint)}")
    if as_json:
        print(
            json.dumps(
                {
                    "transcribed": len(done),
                    "skipped": len(skipped),
                    "failed": len(failed),
                    **({"model": model} if model else {}),
                    "inputs": [job_summary(j) for j in jobs],
                },
                indent=1,
            )
        )
    return 1 if failed else 0


def list_models(
    cfg: Config,
    checkpoint: str | Path | None = None,
    named_by: str = "--checkpoint",
    as_json: bool = False,
) -> int:
    """Shipped models, trained runs' best.pt files, and the one transcribe would use
    (``as_json``: as one JSON object on stdout)."""
    shipped = []
    for path in shipped_models():
        card = path.with_suffix(".json")
        about = json.loads(card.read_text()).get("summary", "") if card.exists() else ""
        shipped.append({"path": str(path), "summary": about})
    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    runs = [
        {"name": run.name, "path": str(run / "best.pt")}
        for run in trained_runs(checkpoint_dir)
    ]
    if as_json:  # a wrong name: the error alone, no half a listing on stdout
        choice = choose_model(cfg, checkpoint, named_by)
        listing = {"shipped": shipped, "checkpoint_dir": str(checkpoint_dir),
                   "runs": runs, "uses": {"path": str(choice.path),
                                          "chosen": _plain(choice)}}  # fmt: skip
        print(json.dumps(listing, indent=2))
        return 0
    print("shipped with drumtx:")
    for model in shipped or [{"path": "(none)", "summary": ""}]:
        print(f"  {model['path']}  {model['summary']}".rstrip())
    print(
        f"trained runs under {checkpoint_dir}, oldest first (used only when named: "
        '--checkpoint RUN, or transcribe.checkpoint = "RUN" or "newest"):'
    )
    for run in runs or [{"name": "(none)", "path": ""}]:
        print(f"  {run['name']}  {run['path']}".rstrip())
    # a wrong name: error after the list
    choice = choose_model(cfg, checkpoint, named_by)
    print(f"transcribe uses: {choice.path}")
    print(f"  chosen: {_plain(choice)}")
    return 0


def _plain(choice: ModelChoice) -> str:
    """The reason, plus a warning where the chosen file is not there (yet)."""
    if choice.path.is_file() or is_shipped(choice.path):
        return choice.reason
    return f"{choice.reason} (no such file)"
