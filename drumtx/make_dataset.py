"""Build an E-GMD-shaped dataset by rendering MIDI performances through drum kits.

The output, ``OUT_DIR/e-gmd-v1.0.0/``, has E-GMD's CSV schema, folder layout and file
names, 44.1 kHz 16-bit mono WAVs and ``.midi`` files in TD-17 pitch numbers, so
``preprocess`` reads it exactly as it reads the real dataset. Performances come from a
Groove MIDI Dataset folder or, without one, from grooves and fills generated here.
Every performance is rendered through every kit, as E-GMD does with its 43 kits.

Reruns reuse finished files: each WAV carries a key of everything its audio depends on
(kit, notes, length, seed) in its INFO comment, and a WAV whose key matches is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from drumtx import egmd, midi, synth
from drumtx.errors import ConfigError, DataError, StorageError
from drumtx.midi import Note
from drumtx.storage import atomic_write_bytes

EGMD_DIR_NAME = "e-gmd-v1.0.0"
SAMPLE_RATE = 44_100  # E-GMD's audio rate
TICKS_PER_BEAT = 480  # of the .midi files written
MARKER_NAME = ".drumtx-make-dataset"  # marks a folder this module may rewrite
FORMAT_VERSION = 1  # part of every render key
DEFAULT_N_GENERATED = 40  # generated performances when no --limit is given
TAIL_SEC = 1.5  # audio kept after the last note so cymbals can ring out
# Splits by position, so that any three consecutive performances cover all three.
SPLIT_PATTERN = ("train", "validation", "test") + ("train",) * 7


@dataclass(frozen=True)
class Performance:
    """One drum performance to render: its notes and its E-GMD index fields."""

    drummer: str  # "drummer1"
    session: str  # "drummer1/session1"
    number: str  # "1": the file's leading number and the id's last part
    stem: str  # "1_funk-groove1_138_beat_4-4" (no kit number, no suffix)
    style: str  # "funk/groove1"
    bpm: int
    beat_type: str  # "beat" | "fill"
    time_signature: str  # "4-4"
    split: str
    duration_sec: float
    notes: tuple[Note, ...]


def make_dataset(
    out_dir: Path,
    *,
    midi_dir: Path | None,
    kits: Sequence[str],
    limit: int | None,
    seed: int,
    max_sec: float | None,
    splits: Sequence[str] | None = None,
    kits_per_performance: int | None = None,
) -> Path:
    """Render performances x kits into ``out_dir/e-gmd-v1.0.0``; returns that folder.

    ``splits`` keeps only performances of those splits (e.g. render the test split
    through held-out kits into another root); ``kits_per_performance`` renders each
    performance through that many kits drawn (seeded) from ``kits`` instead of all.
    """
    console = Console(soft_wrap=True)  # paths stay on one line
    _check_args(kits, limit, max_sec)
    if kits_per_performance is not None and not 1 <= kits_per_performance <= len(kits):
        raise ConfigError(
            f"--kits-per-performance must be 1..{len(kits)} (the number of kits), "
            f"got {kits_per_performance}"
        )
    kit_objs = [synth.load_kit(spec) for spec in kits]  # fail on a bad kit before I/O
    if midi_dir is not None:
        performances = load_gmd(Path(midi_dir), limit=limit, seed=seed)
    else:
        n = DEFAULT_N_GENERATED if limit is None else limit
        performances = generate_performances(n, seed=seed)
    if splits is not None:
        performances = [p for p in performances if p.split in splits]
    performances = [crop(p, max_sec) for p in performances]
    egmd_dir = _prepare_out_dir(Path(out_dir).expanduser(), kits, seed)
    for number, kit in enumerate(kit_objs, start=1):
        console.print(f"kit {number}: {escape(kit.name)}")
    records, n_reused = _render_all(
        egmd_dir, performances, kit_objs, seed, console, kits_per_performance
    )
    csv_path = egmd.egmd_csv_path(egmd_dir)
    egmd.write_egmd_csv(csv_path, records)
    minutes = sum(r.duration for r in records) / 60
    console.print(
        f"wrote {escape(str(csv_path))}: {len(records)} recordings "
        f"({len(records) - n_reused} rendered, {n_reused} reused), {minutes:.1f} min"
    )
    return egmd_dir


def _check_args(kits: Sequence[str], limit: int | None, max_sec: float | None) -> None:
    if not kits:
        raise ConfigError("no drum kits given", hint="e.g. --kits synth:1 synth:2")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if max_sec is not None and not max_sec > 0:
        raise ConfigError(f"--max-sec must be positive, got {max_sec}")


def _prepare_out_dir(out_dir: Path, kits: Sequence[str], seed: int) -> Path:
    """Create OUT_DIR/e-gmd-v1.0.0, refusing a folder that drumtx did not make."""
    egmd_dir = out_dir / EGMD_DIR_NAME
    marker = egmd_dir / MARKER_NAME
    if egmd_dir.is_dir() and any(egmd_dir.iterdir()) and not marker.is_file():
        raise StorageError(
            f"{egmd_dir} exists and was not made by drumtx make-dataset "
            "(a real E-GMD copy?); refusing to write into it",
            hint="choose another OUT_DIR",
        )
    try:
        egmd_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"kits": list(kits), "seed": seed}, indent=1) + "\n"
        if not marker.is_file() or marker.read_text() != text:
            atomic_write_bytes(marker, text.encode())
    except OSError as exc:
        raise StorageError(
            f"cannot create the dataset folder {egmd_dir}: {exc.strerror or exc}",
            hint="choose an OUT_DIR inside a writable folder",
        ) from None
    return egmd_dir


def _render_all(
    egmd_dir: Path,
    performances: Sequence[Performance],
    kits: Sequence[synth.Kit],
    seed: int,
    console: Console,
    kits_per_performance: int | None = None,
) -> tuple[list[egmd.EgmdRecord], int]:
    """Render every performance through every kit (or k of them); (records, reused)."""
    records: list[egmd.EgmdRecord] = []
    n_reused = 0
    k = kits_per_performance or len(kits)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("rendering", total=len(performances) * k)
        for index, perf in enumerate(performances):
            (egmd_dir / perf.session).mkdir(parents=True, exist_ok=True)
            # Kit numbers stay indices into the full list, so names are stable.
            picked = np.random.default_rng([seed, index]).permutation(len(kits))[:k]
            for number, kit in enumerate(kits, start=1):
                if number - 1 not in picked:
                    continue
                record, reused = render_one(egmd_dir, perf, kit, number, seed)
                records.append(record)
                n_reused += reused
                progress.advance(task)
    return records, n_reused


def render_key(
    perf: Performance, notes: Sequence[Note], kit: synth.Kit, seed: int
) -> str:
    """A digest of everything a recording's audio depends on."""
    h = hashlib.sha256(
        f"v{FORMAT_VERSION}|{kit.fingerprint}|{SAMPLE_RATE}|{seed}|"
        f"{perf.duration_sec:.6f}|".encode()
    )
    for n in notes:
        h.update(f"{n.time_sec:.9f},{n.pitch},{n.velocity};".encode())
    return "drumtx make-dataset " + h.hexdigest()


def render_one(
    egmd_dir: Path, perf: Performance, kit: synth.Kit, kit_number: int, seed: int
) -> tuple[egmd.EgmdRecord, bool]:
    """Write one kit's WAV and MIDI of a performance unless already there; (record,
    reused)."""
    stem = f"{perf.session}/{perf.stem}_{kit_number}"
    wav_path, midi_path = egmd_dir / f"{stem}.wav", egmd_dir / f"{stem}.midi"
    notes = kit.playable(perf.notes)  # label only what the kit can sound
    key = render_key(perf, notes, kit, seed)
    midi_data = midi.midi_bytes(notes, bpm=perf.bpm, ticks_per_beat=TICKS_PER_BEAT)
    reused = _wav_key(wav_path) == key
    if not reused:
        audio = kit.render(notes, perf.duration_sec, SAMPLE_RATE, seed=seed)
        atomic_write_bytes(wav_path, wav_bytes(audio, comment=key))
    if not (midi_path.is_file() and midi_path.read_bytes() == midi_data):
        atomic_write_bytes(midi_path, midi_data)
    n_frames = round(perf.duration_sec * SAMPLE_RATE)
    record = egmd.EgmdRecord(
        drummer=perf.drummer, session=perf.session, id=f"{perf.session}/{perf.number}",
        style=perf.style, bpm=perf.bpm, beat_type=perf.beat_type,
        time_signature=perf.time_signature, duration=round(n_frames / SAMPLE_RATE, 6),
        split=perf.split, midi_filename=f"{stem}.midi", audio_filename=f"{stem}.wav",
        kit_name=kit.name,
    )  # fmt: skip
    return record, reused


def wav_bytes(audio: np.ndarray, *, comment: str) -> bytes:
    """A 44.1 kHz 16-bit mono WAV of float audio in [-1, 1], with an INFO comment."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, "PCM_16", format="WAV") as handle:
        handle.comment = comment
        handle.write(pcm)
    return buffer.getvalue()


def _wav_key(path: Path) -> str | None:
    """The render key of an existing, complete WAV written here; None otherwise."""
    if not path.is_file():
        return None
    try:
        with sf.SoundFile(path) as handle:
            return handle.comment or None
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None  # truncated or foreign: render it again


# ---------------------------------------------------------------- performances


def quantize(notes: Sequence[Note], bpm: float) -> tuple[Note, ...]:
    """Notes moved to the MIDI tick they will be written at, so audio and the .midi
    file agree exactly; velocities clamped to 1..127; sorted."""
    ticks_per_sec = TICKS_PER_BEAT * 1e6 / mido.bpm2tempo(bpm)
    out = {
        Note(round(n.time_sec * ticks_per_sec) / ticks_per_sec, n.pitch,
             min(127, max(1, n.velocity)))
        for n in notes
        if n.time_sec >= 0
    }  # fmt: skip
    return tuple(sorted(out, key=lambda n: (n.time_sec, n.pitch, n.velocity)))


def crop(perf: Performance, max_sec: float | None) -> Performance:
    """Cut a performance at ``max_sec`` seconds (notes from then on are dropped)."""
    if max_sec is None or perf.duration_sec <= max_sec:
        return perf
    notes = tuple(n for n in perf.notes if n.time_sec < max_sec)
    return replace(perf, notes=notes, duration_sec=float(max_sec))


def load_gmd(midi_dir: Path, *, limit: int | None, seed: int) -> list[Performance]:
    """Performances of a Groove MIDI Dataset folder (info.csv + MIDI), keeping splits.

    With ``limit``, a seeded choice that takes train, validation and test in turn.
    """
    if not midi_dir.is_dir():
        raise ConfigError(
            f"--midi-dir {midi_dir} is not a folder",
            hint="pass the Groove MIDI Dataset folder that holds info.csv "
            "(e.g. .../groove), or leave --midi-dir out to generate grooves",
        )
    info = midi_dir / "info.csv"
    if not info.is_file():
        raise DataError(
            f"{info} is missing: {midi_dir} is not a Groove MIDI Dataset folder",
            hint="GMD's groove/ folder holds info.csv next to the drummerN/ folders",
        )
    records = egmd.read_gmd_info(info)
    if limit is not None:
        records = _choose(records, limit, seed)
    return [p for rec in records if (p := _gmd_performance(midi_dir, rec)) is not None]


def _choose(records: list[egmd.GmdRecord], limit: int, seed: int) -> list:
    """``limit`` records drawn split by split in SPLIT_PATTERN order, in file order."""
    rng = np.random.default_rng(seed)
    pools = {s: [r for r in records if r.split == s] for s in egmd.SPLITS}
    for pool in pools.values():
        rng.shuffle(pool)  # type: ignore[arg-type]
    chosen: list[egmd.GmdRecord] = []
    i = 0
    while len(chosen) < min(limit, len(records)):
        pool = pools[SPLIT_PATTERN[i % len(SPLIT_PATTERN)]]
        if pool:
            chosen.append(pool.pop())
        i += 1
    order = {id(r): k for k, r in enumerate(records)}
    return sorted(chosen, key=lambda r: order[id(r)])


def _gmd_performance(midi_dir: Path, rec: egmd.GmdRecord) -> Performance | None:
    notes = quantize(midi.read_notes(midi_dir / rec.midi_filename), rec.bpm)
    if not notes:
        return None  # an empty take has nothing to learn from
    duration = max(rec.duration, notes[-1].time_sec + TAIL_SEC)
    return Performance(
        drummer=rec.drummer, session=rec.session, number=rec.id.rsplit("/", 1)[-1],
        stem=Path(rec.midi_filename).stem, style=rec.style, bpm=rec.bpm,
        beat_type=rec.beat_type, time_signature=rec.time_signature, split=rec.split,
        duration_sec=round(duration, 6), notes=notes,
    )  # fmt: skip


def generate_performances(n: int, *, seed: int) -> list[Performance]:
    """``n`` generated grooves and fills, splits by SPLIT_PATTERN."""
    out = []
    for i in range(n):
        g = generate_groove(np.random.default_rng([seed, i]))
        notes = quantize(g.notes, g.bpm)
        number = str(i + 1)
        stem = f"{number}_{g.style.replace('/', '-')}_{g.bpm}_{g.beat_type}_{g.meter}"
        out.append(Performance(
            drummer="drummer1", session="drummer1/session1", number=number, stem=stem,
            style=g.style, bpm=g.bpm, beat_type=g.beat_type, time_signature=g.meter,
            split=SPLIT_PATTERN[i % len(SPLIT_PATTERN)],
            duration_sec=round(notes[-1].time_sec + TAIL_SEC, 6), notes=notes,
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------- groove generator
# TD-17 pitches the generator plays (the same numbers E-GMD's MIDI uses).
KICK, SNARE, X_STICK, RIMSHOT = 36, 38, 37, 40
HH_CLOSED, HH_EDGE, HH_PEDAL, HH_OPEN = 42, 22, 44, 46
RIDE, RIDE_BELL, CRASHES = 51, 53, (49, 55, 57, 52)
TOMS = ((48, 50), (45, 47), (43, 58))  # high, mid, low: (head, rim)


@dataclass(frozen=True)
class GrooveStyle:
    """How one genre is played on a step grid."""

    name: str
    bpm_range: tuple[int, int]
    meter: str  # "4-4", "3-4" or "6-8"
    steps_per_beat: int  # 4: sixteenths, 3: triplets (swung feels)
    timekeeper: int  # HH_CLOSED or RIDE
    tk_every: int  # timekeeper on every n-th step
    kick_prob: float  # extra kicks on off-beat steps
    ghost_prob: float  # quiet snare notes between backbeats
    open_prob: float  # an open hat on the bar's last off-beat
    snare: int  # backbeat pitch: SNARE or X_STICK
    swing: float  # delay of odd sixteenths, in steps
    jitter_sec: float  # timing spread of a human player


_STYLE_ROWS = (
    # name, bpm range, meter, steps/beat, timekeeper, every, kick, ghost, open,
    # backbeat, swing, jitter
    ("rock", 90, 150, "4-4", 4, "hh", 2, 0.2, 0.05, 0.3, "sd", 0, 0.006),
    ("funk", 85, 115, "4-4", 4, "hh", 1, 0.3, 0.3, 0.3, "sd", 0, 0.005),
    ("pop", 95, 125, "4-4", 4, "hh", 2, 0.2, 0.05, 0.2, "sd", 0, 0.005),
    ("hiphop", 80, 98, "4-4", 4, "hh", 1, 0.3, 0.1, 0.1, "sd", 0.3, 0.008),
    ("jazz", 110, 220, "4-4", 3, "ride", 1, 0.05, 0.25, 0, "xs", 0, 0.009),
    ("latin", 110, 140, "4-4", 4, "hh", 2, 0.3, 0, 0.1, "xs", 0, 0.005),
    ("reggae", 65, 85, "4-4", 3, "hh", 1, 0.05, 0.1, 0.2, "xs", 0, 0.007),
    ("punk", 160, 200, "4-4", 2, "hh", 1, 0.3, 0, 0.1, "sd", 0, 0.006),
    ("metal", 100, 170, "4-4", 4, "ride", 2, 0.9, 0, 0, "sd", 0, 0.004),
    ("shuffle", 90, 130, "4-4", 3, "hh", 1, 0.15, 0.15, 0.1, "sd", 0, 0.007),
    ("afrobeat", 100, 125, "4-4", 4, "hh", 1, 0.25, 0.2, 0.3, "sd", 0, 0.006),
    ("waltz", 90, 160, "3-4", 2, "ride", 1, 0.1, 0.1, 0, "sd", 0, 0.008),
    ("ballad", 55, 80, "6-8", 3, "hh", 1, 0.1, 0.05, 0.2, "sd", 0, 0.008),
)
_PITCH = {"hh": HH_CLOSED, "ride": RIDE, "sd": SNARE, "xs": X_STICK}
STYLES = tuple(
    GrooveStyle(r[0], (r[1], r[2]), r[3], r[4], _PITCH[r[5]], r[6], r[7], r[8], r[9],
                _PITCH[r[10]], r[11], r[12])
    for r in _STYLE_ROWS
)  # fmt: skip


@dataclass(frozen=True)
class Groove:
    style: str  # "rock/groove3"
    bpm: int
    beat_type: str
    meter: str
    notes: tuple[Note, ...]


def _beats_per_bar(meter: str) -> int:
    return {"4-4": 4, "3-4": 3, "6-8": 2}[meter]  # 6/8 counts two dotted quarters


def generate_groove(rng: np.random.Generator) -> Groove:
    """One human-like performance: a groove of 8-24 bars, or a short fill (20 %)."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    bpm = int(rng.integers(style.bpm_range[0], style.bpm_range[1] + 1))
    is_fill = rng.random() < 0.2
    n_bars = int(rng.integers(1, 3)) if is_fill else int(rng.integers(8, 25))
    fill_prob = float(rng.uniform(0.2, 0.8))
    bar_sec = _beats_per_bar(style.meter) * 60.0 / bpm
    start_sec = float(rng.uniform(0.05, 0.5))
    events: list[tuple[float, int, int]] = []  # (time in steps, pitch, velocity)
    for bar in range(n_bars):
        offset = bar * _beats_per_bar(style.meter) * style.steps_per_beat
        fill = (
            bar == n_bars - 1 if is_fill else bar % 4 == 3 and rng.random() < fill_prob
        )
        events += [
            (offset + t, p, v) for t, p, v in _bar(style, rng, bar % 4 == 0, fill)
        ]
    end = n_bars * _beats_per_bar(style.meter) * style.steps_per_beat
    events += [(end, CRASHES[0], 115), (end, KICK, 110)]  # land the last bar
    step_sec = bar_sec / (_beats_per_bar(style.meter) * style.steps_per_beat)
    notes = _humanize(events, style, step_sec, start_sec, rng)
    number = int(rng.integers(1, 10))
    kind = "fill" if is_fill else "groove"
    return Groove(f"{style.name}/{kind}{number}", bpm,
                  "fill" if is_fill else "beat", style.meter, notes)  # fmt: skip


def _humanize(
    events: Sequence[tuple[float, int, int]],
    style: GrooveStyle,
    step_sec: float,
    start_sec: float,
    rng: np.random.Generator,
) -> tuple[Note, ...]:
    """Grid events -> notes with swing, timing jitter and velocity spread."""
    notes = []
    for step, pitch, vel in events:
        t = step + (style.swing if style.steps_per_beat == 4 and step % 2 == 1 else 0)
        time_sec = start_sec + t * step_sec + rng.normal(0, style.jitter_sec)
        velocity = int(np.clip(round(vel + rng.normal(0, 7)), 1, 127))
        notes.append(Note(max(0.0, float(time_sec)), pitch, velocity))
    return tuple(sorted(notes, key=lambda n: (n.time_sec, n.pitch)))


def _bar(
    style: GrooveStyle, rng: np.random.Generator, phrase_start: bool, fill: bool
) -> list[tuple[int, int, int]]:
    """One bar on the step grid: (step, pitch, velocity)."""
    spb = style.steps_per_beat
    n_steps = _beats_per_bar(style.meter) * spb
    fill_from = n_steps - spb * int(rng.integers(1, 3)) if fill else n_steps
    hits = _timekeeper(style, rng, min(n_steps, fill_from))
    hits += _kick_snare(style, rng, fill_from)
    if phrase_start:
        hits.append(
            (0, CRASHES[int(rng.integers(len(CRASHES)))], int(rng.integers(95, 125)))
        )
    if fill:
        hits += _fill(rng, fill_from, n_steps, spb)
    return hits


def _timekeeper(
    style: GrooveStyle, rng: np.random.Generator, n_steps: int
) -> list[tuple[int, int, int]]:
    """Hi-hat or ride pattern; hat edges and bells now and then, an open hat."""
    spb, hits = style.steps_per_beat, []
    for step in range(0, n_steps, style.tk_every):
        on_beat = step % spb == 0
        if style.timekeeper == RIDE and style.steps_per_beat == 3 and step % 3 == 1:
            continue  # swing ride: 1, 2-and-a, 3, 4-and-a
        pitch = style.timekeeper
        if pitch == HH_CLOSED and rng.random() < 0.15:
            pitch = HH_EDGE
        elif pitch == RIDE and on_beat and rng.random() < 0.1:
            pitch = RIDE_BELL
        hits.append(
            (
                step,
                pitch,
                int(rng.integers(85, 120) if on_beat else rng.integers(45, 85)),
            )
        )
    last_off = n_steps - spb // 2 if spb > 1 else n_steps - 1
    if rng.random() < style.open_prob and last_off > 0:
        hits = [h for h in hits if h[0] != last_off] + [(last_off, HH_OPEN, 95)]
    if style.timekeeper == RIDE:  # foot hi-hat on the backbeats
        hits += [(b * spb, HH_PEDAL, 70) for b in range(1, n_steps // spb, 2)]
    return hits


def _kick_snare(
    style: GrooveStyle, rng: np.random.Generator, n_steps: int
) -> list[tuple[int, int, int]]:
    """Kick on the one (and often the half bar), backbeats, extra kicks, ghosts."""
    spb, beats = style.steps_per_beat, _beats_per_bar(style.meter)
    backbeats = {2: [1], 3: [1, 2], 4: [1, 3]}[beats]
    hits = [(0, KICK, int(rng.integers(95, 125)))]
    if beats == 4 and rng.random() < 0.7:
        hits.append((2 * spb, KICK, int(rng.integers(85, 120))))
    for step in range(1, n_steps):
        on_backbeat = step % spb == 0 and step // spb in backbeats
        if on_backbeat:
            pitch = (
                RIMSHOT if style.snare == SNARE and rng.random() < 0.1 else style.snare
            )
            hits.append((step, pitch, int(rng.integers(95, 127))))
        elif step % 2 == 0 and rng.random() < style.kick_prob:
            hits.append((step, KICK, int(rng.integers(60, 110))))
        elif step % spb and rng.random() < style.ghost_prob:
            hits.append((step, SNARE, int(rng.integers(15, 45))))
    return [h for h in hits if h[0] < n_steps]


def _fill(
    rng: np.random.Generator, start: int, end: int, spb: int
) -> list[tuple[int, int, int]]:
    """A run from snare over the toms, high to low, getting louder."""
    every = 1 if rng.random() < 0.6 else 2
    steps = list(range(start, end, every))
    drums = [SNARE] + [t[int(rng.random() < 0.2)] for t in TOMS]
    hits = []
    for i, step in enumerate(steps):
        drum = drums[min(len(drums) - 1, i * len(drums) // max(1, len(steps)))]
        vel = int(70 + 50 * i / max(1, len(steps) - 1))
        hits.append((step, drum, vel))
        if step % spb == 0 and rng.random() < 0.5:
            hits.append((step, KICK, 90))
    return hits
