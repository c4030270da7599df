"""MIDI files <-> drum notes and hits, with mido.

Reading honours the whole tempo map: every ``set_tempo`` event on any track of a type 0
or type 1 file applies to all tracks (type 2 tracks each keep their own tempo map).
Drum notes are taken from every channel, because recorded kits (E-GMD, GMD) and DAW
exports do not always use channel 10. Writing produces a type 1 file, 480 ticks per
beat: a conductor track with the tempo map (a ``set_tempo`` where the tempo changes, a
``time_signature`` where the meter does; one 120 BPM 4/4 tempo without a map) and the
notes on channel index 9 with a fixed short length. A note's time in seconds moves by at
most half a tick.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
from mido.midifiles.meta import KeySignatureError

from drumtx.drums import Hit, Vocab
from drumtx.errors import DataError
from drumtx.meter import counted_beats
from drumtx.storage import atomic_write_bytes
from drumtx.tempo import TempoMap

DRUM_CHANNEL = 9  # General MIDI channel 10, zero-based as mido counts
DEFAULT_TEMPO_US = 500_000  # MIDI's implied tempo before any set_tempo: 120 BPM

# Everything mido (and the byte-level reader under it) raises for a malformed file.
_MIDO_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    KeySignatureError,
)


@dataclass(frozen=True)
class Note:
    """A raw MIDI drum note."""

    time_sec: float
    pitch: int  # MIDI note number as in the file (E-GMD: Roland TD-17 numbers)
    velocity: int  # 1..127


def _open_midi(path: Path) -> mido.MidiFile:
    path = Path(path)
    if not path.exists():
        raise DataError(f"MIDI file {path} does not exist")
    if path.is_dir():
        raise DataError(f"MIDI file {path} is a directory, not a file")
    try:
        if path.stat().st_size == 0:
            raise DataError(f"MIDI file {path} is empty (0 bytes)")
        return mido.MidiFile(path)
    except PermissionError:
        raise DataError(f"cannot read MIDI file {path}: permission denied") from None
    except _MIDO_ERRORS as exc:
        raise DataError(
            f"MIDI file {path} is malformed: {type(exc).__name__}: {exc}",
            hint="check that it is a Standard MIDI File (.mid/.midi); re-export it",
        ) from None


def _absolute_events(
    tracks: Sequence[mido.MidiTrack],
) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) for every message of ``tracks``, sorted by tick."""
    events: list[tuple[int, mido.Message]] = []
    for track in tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "set_tempo"):
                events.append((tick, msg))
    # Stable sort: at equal ticks a track's own order is kept.
    events.sort(key=lambda event: event[0])
    return events


def _smpte_seconds_per_tick(division: int) -> float:
    # The high byte is -frames per second (two's complement), the low byte ticks/frame.
    fps = 256 - (division >> 8)
    ticks_per_frame = division & 0xFF
    if fps == 29:  # 29.97 drop-frame
        return 1.0 / (29.97 * ticks_per_frame)
    return 1.0 / (fps * ticks_per_frame)


def _notes_from_events(
    events: list[tuple[int, mido.Message]], division: int
) -> list[Note]:
    """Convert sorted (tick, message) events to notes with a piecewise tempo map."""
    smpte = bool(division & 0x8000)
    if smpte:  # timecode division: ticks are fixed fractions of a second
        sec_per_tick = _smpte_seconds_per_tick(division)
    else:
        sec_per_tick = DEFAULT_TEMPO_US / 1e6 / division
    anchor_tick, anchor_sec = 0, 0.0  # start of the current tempo segment
    notes: list[Note] = []
    for tick, msg in events:
        now_sec = anchor_sec + (tick - anchor_tick) * sec_per_tick
        if msg.type == "set_tempo":
            if not smpte:
                anchor_tick, anchor_sec = tick, now_sec
                sec_per_tick = msg.tempo / 1e6 / division
        elif msg.velocity > 0:  # note_on with velocity 0 is a note-off
            notes.append(Note(now_sec, msg.note, msg.velocity))
    return notes


def read_notes(path: Path) -> list[Note]:
    """Every note-on (velocity > 0) on any channel, in seconds, sorted by time."""
    path = Path(path)
    midi = _open_midi(path)
    # mido reads the header's division as a signed short: SMPTE ones come out negative.
    division = midi.ticks_per_beat & 0xFFFF
    if division == 0:
        raise DataError(f"MIDI file {path} is malformed: 0 ticks per beat")
    if division & 0x8000 and not division & 0xFF:
        raise DataError(f"MIDI file {path} is malformed: 0 ticks per SMPTE frame")
    if not midi.tracks:
        raise DataError(f"MIDI file {path} has no tracks")
    # Type 2 tracks are independent songs; type 0/1 share one tempo map.
    groups = [[t] for t in midi.tracks] if midi.type == 2 else [midi.tracks]
    notes: list[Note] = []
    for group in groups:
        notes.extend(_notes_from_events(_absolute_events(group), division))
    notes.sort(key=lambda note: (note.time_sec, note.pitch))
    return notes


def notes_to_hits(notes: Sequence[Note], vocab: Vocab) -> list[Hit]:
    """Map notes into ``vocab``; notes of pitches the vocabulary ignores are dropped."""
    hits: list[Hit] = []
    for note in notes:
        cls = vocab.class_of_pitch(note.pitch)
        if cls is not None:
            hits.append(Hit(note.time_sec, cls, note.velocity, note.pitch))
    return hits


def read_hits(path: Path, vocab: Vocab) -> list[Hit]:
    """The hits of a MIDI file in ``vocab``, sorted by time."""
    return notes_to_hits(read_notes(path), vocab)


def hits_to_notes(hits: Sequence[Hit], out_notes: Sequence[int]) -> list[Note]:
    """Notes to write for ``hits``: class i plays ``out_notes[i]``."""
    notes: list[Note] = []
    for hit in hits:
        if not 0 <= hit.cls < len(out_notes):
            raise ValueError(
                f"hit class {hit.cls} outside the {len(out_notes)} output notes"
            )
        notes.append(Note(hit.time_sec, out_notes[hit.cls], hit.velocity))
    return notes


def _check_write_args(bpm: float, note_sec: float, ticks_per_beat: int) -> None:
    if not (math.isfinite(bpm) and bpm > 0):
        raise ValueError(f"bpm must be a positive number, got {bpm!r}")
    if not (math.isfinite(note_sec) and note_sec > 0):
        raise ValueError(f"note_sec must be a positive number, got {note_sec!r}")
    if not 1 <= ticks_per_beat <= 0x7FFF:
        raise ValueError(f"ticks_per_beat must be 1..32767, got {ticks_per_beat!r}")


def _note_events(
    notes: Sequence[Note], tempo_map: TempoMap, ticks_per_beat: int, note_sec: float
) -> list[tuple[int, int, int, int]]:
    """(tick, order, pitch, velocity) events; order 0 = note-off, sorted first."""
    times = np.asarray([max(0.0, n.time_sec) for n in notes], dtype=np.float64)
    on_ticks = np.rint(tempo_map.beats(times) * ticks_per_beat).astype(np.int64)
    off_ticks = np.rint(tempo_map.beats(times + note_sec) * ticks_per_beat)
    ons = sorted(
        (int(on), int(off), n.pitch, min(127, max(1, n.velocity)))
        for on, off, n in zip(on_ticks, off_ticks.astype(np.int64), notes)
    )
    next_on: dict[int, int] = {}  # pitch -> tick of the following note of that pitch
    events: list[tuple[int, int, int, int]] = []
    for tick, end, pitch, velocity in reversed(ons):
        if not 0 <= pitch <= 127:
            raise ValueError(f"MIDI pitch must be 0..127, got {pitch}")
        # End a note before the next strike of the same pitch so they do not overlap.
        off = min(end, next_on.get(pitch, end))
        events.append((max(off, tick + 1), 0, pitch, 0))
        events.append((tick, 1, pitch, velocity))
        next_on[pitch] = tick
    events.sort()
    return events


def metronome_clocks(numerator: int, denominator: int) -> int:
    """MIDI clocks (24 a quarter note) per metronome click: one counted beat, so a
    6/8 bar clicks twice (dotted quarters) and a 3/4 bar three times."""
    return round(24 * counted_beats(numerator, denominator)[1])


def _conductor(tempo_map: TempoMap, ticks_per_beat: int) -> mido.MidiTrack:
    """Track 0: the name, every tempo and time signature of ``tempo_map``, in ticks."""
    events = [(0, 0, mido.MetaMessage("track_name", name="drumtx"))]
    previous = None
    for start, spb in zip(tempo_map.start_beats, tempo_map.sec_per_beat):
        tempo_us = round(spb * 1e6)  # on_ticks made it a whole number
        if tempo_us == previous:  # a pickup bar at the song's tempo: no change
            continue
        previous = tempo_us
        tick = round(start * ticks_per_beat)
        events.append((tick, 1, mido.MetaMessage("set_tempo", tempo=tempo_us)))
    for start, numerator, denominator in tempo_map.meters:
        tick = round(start * ticks_per_beat)
        meta = mido.MetaMessage(
            "time_signature",
            numerator=numerator,
            denominator=denominator,
            clocks_per_click=metronome_clocks(numerator, denominator),
        )
        events.append((tick, 2, meta))
    events.sort(key=lambda e: e[:2])
    track, last = mido.MidiTrack(), 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _build_midi(
    notes: Sequence[Note],
    tempo_map: TempoMap,
    note_sec: float,
    ticks_per_beat: int,
    end_sec: float = 0.0,
) -> mido.MidiFile:
    _check_write_args(tempo_map.bpm_at(0.0), note_sec, ticks_per_beat)
    # The map as written (whole ticks, microseconds): notes read back where they were.
    tempo_map = tempo_map.on_ticks(ticks_per_beat)
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = _conductor(tempo_map, ticks_per_beat)
    drums = mido.MidiTrack([mido.MetaMessage("track_name", name="drums", time=0)])
    last_tick = 0
    events = _note_events(notes, tempo_map, ticks_per_beat, note_sec)
    for tick, order, pitch, velocity in events:
        kind = "note_off" if order == 0 else "note_on"
        drums.append(
            mido.Message(
                kind,
                channel=DRUM_CHANNEL,
                note=pitch,
                velocity=velocity,
                time=tick - last_tick,
            )
        )
        last_tick = tick
    # A DAW shows the file as long as its longest track: as long as the audio.
    end_tick = int(np.rint(tempo_map.beats(np.array([end_sec]))[0] * ticks_per_beat))
    drums.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - last_tick)))
    midi.tracks.extend([conductor, drums])
    return midi


def midi_bytes(
    notes: Sequence[Note],
    *,
    bpm: float = 120.0,
    tempo_map: TempoMap | None = None,
    note_sec: float = 0.05,
    ticks_per_beat: int = 480,
    end_sec: float = 0.0,
) -> bytes:
    """A type 1 Standard MIDI File holding ``notes`` on the drum channel, with
    ``tempo_map`` (default: a constant ``bpm`` in 4/4); its drum track ends at
    ``end_sec`` (the audio's length) or its last note-off, whichever is later."""
    _check_write_args(bpm, note_sec, ticks_per_beat)
    tempo_map = tempo_map or TempoMap.constant(bpm)
    buffer = io.BytesIO()
    midi = _build_midi(notes, tempo_map, note_sec, ticks_per_beat, end_sec)
    midi.save(file=buffer)
    return buffer.getvalue()


def write_midi(
    path: Path,
    notes: Sequence[Note],
    *,
    bpm: float = 120.0,
    tempo_map: TempoMap | None = None,
    note_sec: float = 0.05,
    ticks_per_beat: int = 480,
) -> None:
    """Write ``notes`` to ``path`` as a type 1 MIDI file, atomically."""
    path = Path(path)
    data = midi_bytes(
        notes,
        bpm=bpm,
        tempo_map=tempo_map,
        note_sec=note_sec,
        ticks_per_beat=ticks_per_beat,
    )
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise DataError(
            f"cannot write MIDI file {path}: {exc.strerror or exc}",
            hint="check that the folder exists and is writable",
        ) from None
