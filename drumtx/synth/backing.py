"""Backing tracks: a band arrangement aligned to a drum performance, rendered to audio.

An arrangement is written in beats on the performance's own tempo map and bars (read
from its MIDI), so its notes land where a band playing with that drummer would put them:
a bass line (often on the kick), chords and comping (keys, organ, clean or distorted
guitar), pads, a lead line and sometimes a singing voice, in a random key and
progression, with the odd bar of silence. Or the non-drum parts of a real song
(``../shared/data/songs``) are replayed on the performance's beats. Parts render through
General MIDI SoundFonts (FluidSynth) or drumtx's own synthesised instruments.

Backing audio never carries labels: it is what a drum model must learn to ignore.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import numpy as np

from drumtx.errors import ConfigError
from drumtx.levels import rms_db
from drumtx.synth import instruments as inst
from drumtx.synth.soundfont import (
    check_not_reserved,
    fluidsynth_available,
    list_soundfonts,
    soundfont_synth,
)
from drumtx.tempo import TempoMap, read_tempo_map

BACKING_VERSION = 1  # bump when the same spec would render different backing audio

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
# Chord progressions as scale degrees (0 = tonic), one chord per bar or half bar.
PROGRESSIONS = (
    (0, 4, 5, 3), (0, 3, 4, 4), (0, 5, 3, 4), (5, 3, 0, 4), (1, 4, 0, 0),
    (0, 6, 5, 6), (0, 0, 3, 3, 0, 0, 4, 3), (0, 3, 0, 4), (0, 2, 3, 4), (0, 5, 1, 4),
)  # fmt: skip
KICK_PITCHES = frozenset({35, 36})
DRUM_CHANNEL = 9
TARGET_RMS_DB = -20.0  # the stored backing track's level; the loader sets the mix
# General MIDI programs per role, for SoundFont rendering.
GM_PROGRAMS = {
    "bass": (32, 33, 34, 35, 36, 37, 38, 39),
    "keys": (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19),
    "guitar": (24, 25, 26, 27, 28),
    "distorted": (29, 30),
    "pad": (48, 49, 50, 51, 52, 53, 54, 61, 88, 89, 90, 91, 92, 94, 95),
    "lead": (22, 40, 56, 65, 66, 71, 73, 80, 81, 84),
    "vocal": (52, 53, 54, 85),
}
# The same roles through drumtx's own voices, with the part effects each may take.
OWN_VOICES = {
    "bass": (("bass", ()), ("pluck", ())),
    "keys": (("epiano", ()), ("epiano", ("chorus",)), ("organ", ()),
             ("organ", ("tremolo",))),
    "guitar": (("pluck", ()), ("pluck", ("chorus",))),
    "distorted": (("pluck", ("amp",)), ("lead", ("amp",))),
    "pad": (("pad", ()), ("pad", ("chorus",))),
    "lead": (("lead", ()), ("lead", ("chorus",))),
    "vocal": (("voice", ()),),
}  # fmt: skip
LEVEL_DB = {  # each role's random level range in the band's mix
    "bass": (-6, 0), "keys": (-10, -1), "guitar": (-10, -1), "distorted": (-8, 0),
    "pad": (-16, -6), "lead": (-12, -3), "vocal": (-8, 0),
}  # fmt: skip


@dataclass(frozen=True)
class BeatNote:
    start_beat: float  # quarter notes from the performance's start
    dur_beats: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Part:
    role: str  # a key of GM_PROGRAMS
    notes: tuple[BeatNote, ...]
    program: int = -1  # the song's own GM program, when it came from a song


@dataclass(frozen=True)
class Chord:
    start_beat: float
    end_beat: float
    root: int  # pitch class
    tones: tuple[int, ...]  # pitch classes, root first


# ---------------------------------------------------------------- harmony


def chord_timeline(
    bars: Sequence[tuple[float, float, int]], rng: np.random.Generator
) -> tuple[list[Chord], tuple[int, ...]]:
    """A progression in a random key over ``bars``; also returns the scale used."""
    key = int(rng.integers(12))
    scale = tuple((key + s) % 12 for s in SCALES[str(rng.choice(list(SCALES)))])
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    per_bar = 2 if rng.random() < 0.25 else 1
    sevenths = rng.random() < 0.3
    chords: list[Chord] = []
    for start, length, _ in bars:
        for half in range(per_bar):
            degree = progression[len(chords) % len(progression)]
            tones = [
                scale[(degree + k) % 7]
                for k in ((0, 2, 4, 6) if sevenths else (0, 2, 4))
            ]
            a = start + half * length / per_bar
            chords.append(Chord(a, a + length / per_bar, tones[0], tuple(tones)))
    return chords, scale


def _pitch_near(pc: int, centre: int) -> int:
    """The pitch of pitch class ``pc`` closest to ``centre``."""
    return centre + ((pc - centre + 6) % 12) - 6


def _voicing(chord: Chord, centre: int) -> list[int]:
    return sorted(_pitch_near(pc, centre + 3 * i) for i, pc in enumerate(chord.tones))


# ---------------------------------------------------------------- parts


def _vel(rng: np.random.Generator, lo: int = 60, hi: int = 110) -> int:
    return int(rng.integers(lo, hi + 1))


def bass_part(
    chords: Sequence[Chord], kicks: np.ndarray, rng: np.random.Generator
) -> Part:
    """A bass line: on the kick, on every beat or eighth, walking, or held roots."""
    style = str(rng.choice(["kick", "kick", "quarters", "eighths", "walking", "whole"]))
    centre = int(rng.integers(33, 45))
    legato = rng.uniform(0.5, 0.95)
    notes: list[BeatNote] = []
    for chord in chords:
        root = _pitch_near(chord.root, centre)
        if style == "kick":
            inside = kicks[(kicks >= chord.start_beat) & (kicks < chord.end_beat)]
            times = (
                np.unique(np.round(inside * 4) / 4)
                if len(inside)
                else [chord.start_beat]
            )
        elif style in ("quarters", "walking", "eighths"):
            step = 0.5 if style == "eighths" else 1.0
            times = np.arange(chord.start_beat, chord.end_beat - 1e-6, step)
        else:
            times = [chord.start_beat]
        edges = list(times) + [chord.end_beat]
        for i, t in enumerate(times):
            pitch = root
            if style == "walking" and i > 0:
                pitch = _pitch_near(chord.tones[i % len(chord.tones)], root + 4)
            elif rng.random() < 0.15:
                pitch = root + int(rng.choice([7, 12, -5]))
            dur = max(0.1, (edges[i + 1] - t) * legato)
            notes.append(BeatNote(float(t), dur, pitch, _vel(rng, 70, 115)))
    return Part("bass", tuple(notes))


COMP_RHYTHMS = {  # onsets within one beat-span, as fractions of a bar of 4 beats
    "whole": (0.0,),
    "halves": (0.0, 2.0),
    "quarters": (0.0, 1.0, 2.0, 3.0),
    "eighths": tuple(np.arange(0, 4, 0.5)),
    "offbeats": (0.5, 1.5, 2.5, 3.5),
    "pop": (0.0, 1.5, 2.5, 3.0),
    "charleston": (0.0, 1.5),
}


def comp_part(chords: Sequence[Chord], role: str, rng: np.random.Generator) -> Part:
    """Chords: block, strummed or arpeggiated, in a rhythm drawn per part."""
    rhythm = COMP_RHYTHMS[str(rng.choice(list(COMP_RHYTHMS)))]
    arpeggio = role != "distorted" and rng.random() < 0.25
    strum_beats = rng.uniform(0.01, 0.05) if role == "guitar" else 0.0
    centre = (
        int(rng.integers(52, 66)) if role != "distorted" else int(rng.integers(40, 50))
    )
    hold = rng.uniform(0.3, 1.0)
    notes: list[BeatNote] = []
    for chord in chords:
        pitches = _voicing(chord, centre)
        if role == "distorted":  # power chord: root, fifth, octave
            root = _pitch_near(chord.root, centre)
            pitches = [root, root + 7, root + 12]
        span = chord.end_beat - chord.start_beat
        onsets = [chord.start_beat + r for r in rhythm if r < span - 1e-6]
        gaps = np.diff(onsets + [chord.end_beat])
        for k, (t, gap) in enumerate(zip(onsets, gaps)):
            vel = _vel(rng, 55, 105)
            if arpeggio:
                for j in range(max(1, int(gap / 0.5))):
                    pitch = pitches[(k + j) % len(pitches)]
                    notes.append(BeatNote(t + 0.5 * j, 0.5 * hold, pitch, vel))
                continue
            for s, pitch in enumerate(pitches):
                notes.append(
                    BeatNote(t + s * strum_beats, max(0.1, gap * hold), pitch, vel)
                )
    return Part(role, tuple(notes))


def pad_part(chords: Sequence[Chord], rng: np.random.Generator) -> Part:
    centre = int(rng.integers(55, 70))
    notes = [
        BeatNote(c.start_beat, c.end_beat - c.start_beat, p, _vel(rng, 50, 90))
        for c in chords
        for p in _voicing(c, centre)
    ]
    return Part("pad", tuple(notes))


def melody_part(
    chords: Sequence[Chord], scale: Sequence[int], role: str, rng: np.random.Generator
) -> Part:
    """A lead or sung line: phrases that walk the scale, with breaths between."""
    lo, hi = (60, 84) if role == "lead" else (55, 74)
    durations = (
        (0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0)
        if role == "lead"
        else (0.5, 1.0, 1.0, 1.5, 2.0, 3.0)
    )
    allowed = [p for p in range(lo, hi + 1) if p % 12 in scale]
    idx = int(rng.integers(len(allowed)))
    end = chords[-1].end_beat if chords else 0.0
    t, notes = float(rng.choice([0.0, 4.0, 8.0])), []
    while t < end:
        phrase_end = t + float(rng.choice([4.0, 8.0]))
        while t < min(phrase_end, end):
            dur = float(rng.choice(durations))
            if rng.random() > 0.2:
                idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(allowed) - 1))
                notes.append(BeatNote(t, dur * 0.95, allowed[idx], _vel(rng, 60, 110)))
            t += dur
        t = phrase_end + float(rng.choice([0.0, 2.0, 4.0]))
    return Part(role, tuple(notes))


def generate_arrangement(
    tempo_map: TempoMap,
    duration_sec: float,
    kicks_sec: np.ndarray,
    rng: np.random.Generator,
) -> list[Part]:
    """A band for one performance: bass, one or two comping parts, maybe pad, lead,
    voice."""
    bars = tempo_map.bars(duration_sec)
    chords, scale = chord_timeline(bars, rng)
    kicks = tempo_map.beats(np.asarray(kicks_sec, dtype=np.float64))
    parts: list[Part] = []
    if rng.random() < 0.9:
        parts.append(bass_part(chords, kicks, rng))
    for _ in range(1 + int(rng.random() < 0.35)):
        if rng.random() < 0.9:
            role = str(rng.choice(["keys", "keys", "guitar", "distorted", "distorted"]))
            parts.append(comp_part(chords, role, rng))
    if rng.random() < 0.45:
        parts.append(pad_part(chords, rng))
    if rng.random() < 0.4:
        parts.append(melody_part(chords, scale, "lead", rng))
    if rng.random() < 0.35:
        parts.append(melody_part(chords, scale, "vocal", rng))
    return parts


# ---------------------------------------------------------------- parts from songs


def _program_role(program: int) -> str:
    """A General MIDI program's role in the band."""
    family = program // 8
    if family == 4:
        return "bass"
    if program in (29, 30):
        return "distorted"
    if family == 3:
        return "guitar"
    if family in (0, 1, 2):
        return "keys"
    if family in (6, 7, 8, 10):
        return "lead"
    return "pad"


def read_song_parts(path: Path) -> tuple[list[Part], float]:
    """A song's pitched parts (every channel but drums) in beats, and its length.

    Parsed once per process and file version: a preprocess worker backs hundreds of
    recordings from the same songs, and mido's parse was a fifth of its time."""
    stat = Path(path).stat()
    parts, n_beats = _parsed_song(str(path), stat.st_mtime_ns, stat.st_size)
    return list(parts), n_beats


@functools.lru_cache(maxsize=256)
def _parsed_song(path: str, mtime_ns: int, size: int) -> tuple[tuple[Part, ...], float]:
    midi = mido.MidiFile(path)
    tpb = midi.ticks_per_beat
    notes: dict[int, list[BeatNote]] = {}
    programs: dict[int, int] = {}
    started: dict[tuple[int, int], tuple[int, int]] = {}
    end_tick = 0
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            end_tick = max(end_tick, tick)
            if not hasattr(msg, "channel") or msg.channel == DRUM_CHANNEL:
                continue
            if msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                started[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif (
                msg.type in ("note_off", "note_on")
                and (msg.channel, msg.note) in started
            ):
                t0, vel = started.pop((msg.channel, msg.note))
                note = BeatNote(t0 / tpb, max(1, tick - t0) / tpb, msg.note, vel)
                notes.setdefault(msg.channel, []).append(note)
    parts = tuple(
        Part(_program_role(programs.get(ch, 0)), tuple(ns), programs.get(ch, 0))
        for ch, ns in sorted(notes.items())
    )
    return parts, end_tick / tpb


def song_arrangement(
    song_path: Path, tempo_map: TempoMap, duration_sec: float, rng: np.random.Generator
) -> list[Part]:
    """A random bar-aligned stretch of a song's parts, on the performance's beats."""
    parts, song_beats = read_song_parts(song_path)
    need = float(tempo_map.beats(duration_sec))
    onsets = [n.start_beat for part in parts for n in part.notes]
    if not onsets:
        return []
    # Start on a bar line (4 beats: songs here are mostly 4/4) at or before some note.
    offset = 4.0 * np.floor(float(rng.choice(onsets)) / 4.0)
    offset = max(0.0, min(offset, 4.0 * np.floor(max(0.0, song_beats - need) / 4.0)))
    shift = int(rng.integers(-3, 4))
    out = []
    for part in parts:
        kept = tuple(
            replace(n, start_beat=n.start_beat - offset, pitch=n.pitch + shift)
            for n in part.notes
            if offset <= n.start_beat < offset + need
        )
        if kept:
            out.append(replace(part, notes=kept))
    return out


# ---------------------------------------------------------------- arrangement edits


def add_silences(
    parts: list[Part], tempo_map: TempoMap, duration_sec: float, rng
) -> list[Part]:
    """Sometimes the band rests for a few bars, or a part comes in late."""
    bars = tempo_map.bars(duration_sec)
    out = []
    rest = None
    if len(bars) > 4 and rng.random() < 0.3:
        first = int(rng.integers(len(bars) - 1))
        last = min(len(bars) - 1, first + int(rng.integers(1, 5)))
        rest = (bars[first][0], bars[last][0])
    for part in parts:
        enter = (
            bars[int(rng.integers(len(bars)))][0]
            if bars and rng.random() < 0.15
            else 0.0
        )
        kept = tuple(
            n for n in part.notes
            if n.start_beat >= enter
            and not (rest and rest[0] <= n.start_beat < rest[1])
        )  # fmt: skip
        out.append(replace(part, notes=kept))
    return out


# ---------------------------------------------------------------- rendering


def notes_in_seconds(part: Part, tempo_map: TempoMap) -> list[inst.PitchedNote]:
    """A part's notes placed on the performance's tempo map."""
    notes = part.notes
    if not notes:
        return []
    starts = np.array([n.start_beat for n in notes])
    ends = starts + np.array([n.dur_beats for n in notes])
    start_sec, end_sec = tempo_map.seconds(starts), tempo_map.seconds(ends)
    return [
        inst.PitchedNote(
            float(a), float(max(b - a, 0.01)), int(np.clip(n.pitch, 0, 127)), n.velocity
        )
        for a, b, n in zip(start_sec, end_sec, notes)
    ]


@dataclass(frozen=True)
class Band:
    """Where and how a backing track is rendered."""

    tempo_map: TempoMap
    n_samples: int
    sample_rate: int
    soundfonts: tuple[Path, ...] = ()  # General MIDI banks for SoundFont parts
    own_prob: float = 0.4  # parts played by drumtx's own voices (always, without fonts)


def render_part(part: Part, band: Band, rng: np.random.Generator) -> np.ndarray:
    """One part through a SoundFont program or one of drumtx's own voices, with its
    effects: (band.n_samples,) float32."""
    notes = notes_in_seconds(part, band.tempo_map)
    if not notes:
        return np.zeros(band.n_samples, np.float32)
    sr = band.sample_rate
    effects: tuple[str, ...]
    if band.soundfonts and rng.random() >= band.own_prob:
        synth = soundfont_synth(Path(rng.choice(band.soundfonts)), sr)
        program = part.program
        if program < 0 or rng.random() < 0.3:  # a song's own program, mostly
            program = int(rng.choice(GM_PROGRAMS[part.role]))
        events = [(n.start_sec, n.dur_sec, n.pitch, n.velocity) for n in notes]
        audio = synth.render(events, band.n_samples, bank=0, program=program)
        effects = ("amp",) if part.role == "distorted" and rng.random() < 0.5 else ()
    else:
        choices = OWN_VOICES[part.role]
        voice, effects = choices[int(rng.integers(len(choices)))]
        patch = inst.draw_patch(voice, rng)
        audio = inst.render_notes(notes, voice, patch, band.n_samples, sr, rng)
    for name in effects:
        audio = inst.EFFECTS[name](audio, sr, rng)
    return audio


def mix_parts(
    parts: Sequence[Part], band: Band, rng: np.random.Generator
) -> np.ndarray:
    """Render and balance the parts; the sum sits at TARGET_RMS_DB (or is silent)."""
    mix = np.zeros(band.n_samples, np.float32)
    for part in parts:
        audio = render_part(part, band, rng)
        level = rms_db(audio)
        if level < -100:
            continue
        lo, hi = LEVEL_DB.get(part.role, (-10, 0))
        mix += audio * np.float32(10 ** ((rng.uniform(lo, hi) - level) / 20))
    level = rms_db(mix)
    if level < -100:
        return mix
    mix *= np.float32(10 ** ((TARGET_RMS_DB - level) / 20))
    peak = float(np.abs(mix).max())
    return mix / peak * 0.99 if peak > 0.99 else mix


@dataclass(frozen=True)
class BackingSpec:
    """What backing tracks are made of; picklable for preprocess's workers."""

    soundfonts: tuple[str, ...]  # General MIDI banks for SoundFont-rendered parts
    songs: tuple[str, ...]  # MIDI songs whose parts may back a performance
    song_prob: float
    seed: int
    own_prob: float = 0.4  # parts played by drumtx's own instruments, not SoundFonts

    @classmethod
    def from_settings(
        cls,
        soundfonts: str,
        songs_dir: str,
        song_prob: float,
        seed: int,
        own_prob: float = 0.4,
    ) -> BackingSpec:
        """The ``[backing]`` table's strings resolved to files, refusing bad ones."""
        fonts, songs = _resolve_soundfonts(soundfonts), _find_songs(songs_dir)
        return cls(fonts, songs, song_prob, seed, own_prob)

    def describe(self) -> dict:
        """What the store's manifest records: a changed spec rebuilds the store."""
        names = [f"{Path(p).name}:{Path(p).stat().st_size}" for p in self.soundfonts]
        songs = hashlib.sha256("\n".join(Path(p).name for p in self.songs).encode())
        return {
            "version": BACKING_VERSION,
            "soundfonts": names,
            "songs": len(self.songs),
            "songs_sha256": songs.hexdigest() if self.songs else "",
            "song_prob": self.song_prob if self.songs else 0.0,
            "own_prob": self.own_prob if self.soundfonts else 1.0,
            "seed": self.seed,
        }


def _resolve_soundfonts(text: str) -> tuple[str, ...]:
    """auto: installed non-reserved banks (none without FluidSynth); none; or paths."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "auto":
        return tuple(map(str, list_soundfonts())) if fluidsynth_available() else ()
    paths = [Path(p.strip()).expanduser() for p in text.split(",") if p.strip()]
    for path in paths:
        if not path.is_file():
            raise ConfigError(
                f"backing.soundfonts: {path} is not a file",
                hint="give .sf2/.sf3 paths separated by commas, or auto or none",
            )
        check_not_reserved(path)
    if not fluidsynth_available():
        raise ConfigError(
            "backing.soundfonts names SoundFonts, but FluidSynth is not installed",
            hint="apt-get install libfluidsynth3 && pip install -e '.[render]', "
            "or --set backing.soundfonts=none",
        )
    return tuple(str(p.resolve()) for p in paths)


def _find_songs(songs_dir: str) -> tuple[str, ...]:
    if not songs_dir:
        return ()
    folder = Path(songs_dir).expanduser()
    songs = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi")
    ) if folder.is_dir() else []  # fmt: skip
    if not songs:
        raise ConfigError(
            f"backing.songs_dir: no .mid files under {folder}",
            hint='point it at a folder of full-band MIDI songs, or set it to ""',
        )
    return tuple(str(p) for p in songs)


def backing_rng(key: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"backing|{seed}|{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def render_backing(
    midi_path: Path,
    kicks_sec: np.ndarray,
    n_samples: int,
    sample_rate: int,
    spec: BackingSpec,
    *,
    key: str,
) -> np.ndarray:
    """A backing track for the performance in ``midi_path``: (n_samples,) float32.

    ``key`` (e.g. the recording's path) and ``spec.seed`` seed every choice, so a
    recording always gets the same backing.
    """
    rng = backing_rng(key, spec.seed)
    tempo_map = read_tempo_map(midi_path)
    duration_sec = n_samples / sample_rate
    if spec.songs and rng.random() < spec.song_prob:
        song = Path(spec.songs[int(rng.integers(len(spec.songs)))])
        parts = song_arrangement(song, tempo_map, duration_sec, rng)
    else:
        parts = generate_arrangement(tempo_map, duration_sec, kicks_sec, rng)
    parts = add_silences(parts, tempo_map, duration_sec, rng)
    fonts = tuple(Path(p) for p in spec.soundfonts)
    band = Band(tempo_map, n_samples, sample_rate, fonts, spec.own_prob)
    return mix_parts(parts, band, rng)
