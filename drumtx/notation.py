"""Hits + tempo map -> a MusicXML drum score: one percussion staff, standard notation.

Positions and noteheads follow the common drum key (kick in the bottom space, snare in
the third, toms between, hi-hat above the staff with an x, ride on the top line, crash
on the ledger line above; an open hi-hat adds a small circle). Hands are voice 1, stems
up; the kick is voice 2, stems down. Quiet notes (velocity up to GHOST_VELOCITY) are
ghost notes in parentheses, loud ones (from ACCENT_VELOCITY) get an accent. Hits are
quantized to the grid, counted from each bar line; every quarter-note beat is filled
with notes and rests of its own and beamed on its own (a dotted quarter in 6/8, 9/8 and
12/8), and an empty bar is a whole-bar rest. Bars, meters and tempo marks come from the
tempo map (a pickup bar is an implicit measure 0). Written as MusicXML 3.1 partwise,
which MuseScore, Sibelius and Finale open.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drumtx.drums import Hit
from drumtx.meter import is_compound
from drumtx.tempo import TempoMap

DIVISIONS = 24  # per quarter note: 1/8, 1/16, 1/32 and triplets are whole numbers
GHOST_VELOCITY = 40
ACCENT_VELOCITY = 110
# class code -> (display step, octave, notehead, voice)
DRUM_KEY = {
    "KD": ("F", 4, "normal", 2), "SD": ("C", 5, "normal", 1),
    "HH": ("G", 5, "x", 1), "OH": ("G", 5, "x", 1),
    "LT": ("A", 4, "normal", 1), "MT": ("D", 5, "normal", 1),
    "HT": ("E", 5, "normal", 1), "TT": ("D", 5, "normal", 1),
    "CR": ("A", 5, "x", 1), "RD": ("F", 5, "x", 1), "CY": ("A", 5, "x", 1),
}  # fmt: skip
OPEN_MARK = ("OH",)
# duration in divisions -> (type, dots, triplet)
NOTE_VALUES = {
    96: ("whole", 0, False), 72: ("half", 1, False), 48: ("half", 0, False),
    36: ("quarter", 1, False), 24: ("quarter", 0, False), 18: ("eighth", 1, False),
    16: ("quarter", 0, True), 12: ("eighth", 0, False), 9: ("16th", 1, False),
    8: ("eighth", 0, True), 6: ("16th", 0, False), 4: ("16th", 0, True),
    3: ("32nd", 0, False), 2: ("32nd", 0, True),
}  # fmt: skip


@dataclass(frozen=True)
class Stroke:
    """A quantized hit: where (divisions from the bar line), what and how loud."""

    tick: int
    code: str
    velocity: int


def value_pieces(ticks: int) -> list[int]:
    """``ticks`` as a sum of writable note values, largest first."""
    pieces = []
    while ticks > 0:
        piece = next((v for v in NOTE_VALUES if v <= ticks), None)
        if piece is None:
            raise ValueError(f"{ticks} divisions are shorter than any note value")
        pieces.append(piece)
        ticks -= piece
    return pieces


def bar_strokes(
    hits: Sequence[Hit],
    codes: Sequence[str],
    tempo_map: TempoMap,
    step_beats: float,
    end_sec: float,
) -> tuple[np.ndarray, list[list[Stroke]]]:
    """Bar lines (in beats, the last one closing the score) and each bar's strokes."""
    times = np.array([h.time_sec for h in hits], dtype=np.float64)
    beats = np.asarray(tempo_map.beats(tempo_map.snap(times, step_beats)))
    last_stroke = float(beats.max()) if len(hits) else 0.0
    last = max(float(tempo_map.beats(end_sec)), last_stroke)
    lines = tempo_map.bar_lines(last + 1e-6)  # the last line lies after every stroke
    if len(lines) > 2 and lines[-2] >= last - 1e-6 and last_stroke < lines[-2] - 1e-6:
        lines = lines[:-1]  # the audio ends on a bar line: no empty bar after it
    bars: list[list[Stroke]] = [[] for _ in range(len(lines) - 1)]
    index = np.clip(
        np.searchsorted(lines, beats + 1e-6, side="right") - 1, 0, len(bars) - 1
    )
    seen = set()
    for hit, beat, bar in zip(hits, beats, index):
        tick = int(round((beat - lines[bar]) * DIVISIONS))
        code = codes[hit.cls]
        if (bar, tick, code) not in seen and code in DRUM_KEY:
            seen.add((bar, tick, code))
            bars[bar].append(Stroke(tick, code, hit.velocity))
    return lines, bars


def beat_divisions(meter: tuple[int, int]) -> int:
    """Divisions of the beat notes are grouped and beamed by: a quarter note, a
    dotted quarter in 6/8, 9/8 and 12/8."""
    return DIVISIONS * 3 // 2 if is_compound(*meter) else DIVISIONS


def voice_events(
    strokes: Sequence[Stroke], bar_ticks: int, beat_ticks: int = DIVISIONS
) -> list[tuple[int, int, list[Stroke]]]:
    """(start, length, strokes; none = a rest) filling a bar for one voice: each
    beat (``beat_ticks`` divisions) on its own, each note lasting to the next one
    in its beat."""
    by_tick: dict[int, list[Stroke]] = {}
    for stroke in strokes:
        by_tick.setdefault(stroke.tick, []).append(stroke)
    if not by_tick:
        return [(0, bar_ticks, [])]
    events = []
    for beat_start in range(0, bar_ticks, beat_ticks):
        beat_end = min(beat_start + beat_ticks, bar_ticks)
        onsets = sorted(t for t in by_tick if beat_start <= t < beat_end)
        cuts = [beat_start, *onsets, beat_end]
        for start, end in zip(cuts, cuts[1:]):
            if end > start:
                events.append((start, end - start, by_tick.get(start, [])))
    return events


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def note_elements(
    voice: int, start: int, ticks: int, strokes: Sequence[Stroke], whole_bar: bool
) -> list[ET.Element]:
    """<note> elements of one event: a rest, or a chord of strokes, then rests for
    what a single note value cannot hold."""
    pieces = [ticks] if whole_bar else value_pieces(ticks)
    elements = []
    heads = list(strokes) if strokes else [None]
    for n, piece in enumerate(pieces):
        for k, stroke in enumerate(heads if n == 0 else [None]):
            note = ET.Element("note")
            if k > 0:
                _sub(note, "chord")
            if stroke is None:
                _sub(note, "rest", **({"measure": "yes"} if whole_bar else {}))
            else:
                step, octave, _, _ = DRUM_KEY[stroke.code]
                unpitched = _sub(note, "unpitched")
                _sub(unpitched, "display-step", step)
                _sub(unpitched, "display-octave", octave)
            _sub(note, "duration", piece)
            if stroke is not None:
                _sub(note, "instrument", id=f"P1-{stroke.code}")
            _sub(note, "voice", voice)
            if not whole_bar:
                _value(note, piece)
            if stroke is not None:
                _stroke_marks(note, stroke, voice)
            elements.append(note)
    return elements


def _value(note: ET.Element, ticks: int) -> None:
    kind, dots, triplet = NOTE_VALUES[ticks]
    _sub(note, "type", kind)
    for _ in range(dots):
        _sub(note, "dot")
    if triplet:
        modification = _sub(note, "time-modification")
        _sub(modification, "actual-notes", 3)
        _sub(modification, "normal-notes", 2)


def _stroke_marks(note: ET.Element, stroke: Stroke, voice: int) -> None:
    """Stem, notehead (x, or parentheses for a ghost note), accent, open-hat circle."""
    _, _, head, _ = DRUM_KEY[stroke.code]
    _sub(note, "stem", "up" if voice == 1 else "down")
    ghost = stroke.velocity <= GHOST_VELOCITY and head == "normal"
    if head != "normal" or ghost:
        _sub(note, "notehead", head, **({"parentheses": "yes"} if ghost else {}))
    accent = stroke.velocity >= ACCENT_VELOCITY
    if accent or stroke.code in OPEN_MARK:
        notations = _sub(note, "notations")
        if accent:
            _sub(_sub(notations, "articulations"), "accent")
        if stroke.code in OPEN_MARK:
            _sub(_sub(notations, "technical"), "open-string")


def beam_beat(notes: Sequence[ET.Element]) -> None:
    """Beam the notes (not rests) shorter than a quarter inside one beat: level 1
    across them all, level 2 across runs of 16ths and shorter (a lone one: a hook)."""
    short = [n for n in notes if n.find("rest") is None and n.find("chord") is None
             and n.findtext("type") in ("eighth", "16th", "32nd")]  # fmt: skip
    if len(short) < 2:
        return
    for i, note in enumerate(short):
        state = "begin" if i == 0 else "end" if i == len(short) - 1 else "continue"
        _insert_beam(note, 1, state)
    fine = [n.findtext("type") in ("16th", "32nd") for n in short]
    for i, note in enumerate(short):
        if not fine[i]:
            continue
        before = i > 0 and fine[i - 1]
        after = i + 1 < len(short) and fine[i + 1]
        if before or after:
            state = "continue" if before and after else "end" if before else "begin"
        else:
            state = "backward hook" if i == len(short) - 1 else "forward hook"
        _insert_beam(note, 2, state)


def _insert_beam(note: ET.Element, number: int, state: str) -> None:
    """A <beam> after the note's stem/notehead, before its notations (schema order)."""
    beam = ET.Element("beam", {"number": str(number)})
    beam.text = state
    children = list(note)
    tail = next((i for i, c in enumerate(children) if c.tag == "notations"), None)
    note.insert(len(children) if tail is None else tail, beam)


def _part_list(
    root: ET.Element, codes: Sequence[str], out_notes: Sequence[int]
) -> None:
    """One drum part; an instrument per class, playing its MIDI note on channel 10."""
    part = _sub(_sub(root, "part-list"), "score-part", id="P1")
    _sub(part, "part-name", "Drums")
    for code in codes:
        if code in DRUM_KEY:
            _sub(
                _sub(part, "score-instrument", id=f"P1-{code}"), "instrument-name", code
            )
    for code, note in zip(codes, out_notes):
        if code in DRUM_KEY:
            midi = _sub(part, "midi-instrument", id=f"P1-{code}")
            _sub(midi, "midi-channel", 10)
            _sub(midi, "midi-unpitched", note + 1)  # 1-based in MusicXML


def _attributes(measure: ET.Element, meter: tuple[int, int], first: bool) -> None:
    attributes = _sub(measure, "attributes")
    if first:
        _sub(attributes, "divisions", DIVISIONS)
        _sub(_sub(attributes, "key"), "fifths", 0)
    time = _sub(attributes, "time")
    _sub(time, "beats", meter[0])
    _sub(time, "beat-type", meter[1])
    if first:
        clef = _sub(attributes, "clef")
        _sub(clef, "sign", "percussion")
        _sub(clef, "line", 2)


def _tempo_mark(measure: ET.Element, bpm: float, visible: bool) -> None:
    """A metronome mark (whole BPM) with the exact playback tempo, or (a pickup bar's
    own tempo) the playback tempo alone."""
    if not visible:
        _sub(measure, "sound", tempo=f"{bpm:.2f}")
        return
    direction = _sub(measure, "direction", placement="above")
    metronome = _sub(_sub(direction, "direction-type"), "metronome")
    _sub(metronome, "beat-unit", "quarter")
    _sub(metronome, "per-minute", round(bpm))
    _sub(direction, "sound", tempo=f"{bpm:.2f}")


def shown_meters(
    tempo_map: TempoMap, lines: np.ndarray
) -> list[tuple[int, int] | None]:
    """The time signature each bar shows (None: unchanged). A pickup bar shows the
    meter of the bar after it and is written as a short (implicit) measure."""
    shown, previous = [], None
    for start in lines[:-1]:
        own = tempo_map.meter_at(float(start) + 1e-6)
        shown.append(None if own == previous else own)
        previous = own
    return shown


def _voice_notes(measure, strokes, bar_ticks: int, voice: int, beat: int) -> None:
    """A voice's notes, beamed beat by beat (``beat`` divisions)."""
    mine = [s for s in strokes if DRUM_KEY[s.code][3] == voice]
    events = voice_events(mine, bar_ticks, beat)
    whole_bar = len(events) == 1 and not events[0][2]
    beat_notes: dict[int, list[ET.Element]] = {}
    for start, ticks, chord in events:
        for note in note_elements(voice, start, ticks, chord, whole_bar):
            measure.append(note)
            beat_notes.setdefault(start // beat, []).append(note)
    for notes in beat_notes.values():
        beam_beat(notes)


def _measure(
    part, number: int, span, meter, strokes, tempo_map: TempoMap, beat: int
) -> None:
    """One bar: meter and tempo where they change, then voice 1, back up, voice 2,
    grouped in beats of ``beat`` divisions."""
    start, end = span
    attrs = {"number": str(number)}
    if number == 0:
        attrs["implicit"] = "yes"
    measure = _sub(part, "measure", **attrs)
    if meter is not None:
        _attributes(measure, meter, first=start == 0.0)
    for seg_start, spb in zip(tempo_map.start_beats, tempo_map.sec_per_beat):
        if start - 1e-6 <= seg_start < end - 1e-6:
            _tempo_mark(measure, 60.0 / spb, visible=number != 0)
    bar_ticks = max(1, int(round((end - start) * DIVISIONS)))
    _voice_notes(measure, strokes, bar_ticks, 1, beat)
    _sub(measure, "backup").append(_text("duration", bar_ticks))
    _voice_notes(measure, strokes, bar_ticks, 2, beat)


def _text(tag: str, value: object) -> ET.Element:
    element = ET.Element(tag)
    element.text = str(value)
    return element


def musicxml_bytes(
    hits: Sequence[Hit],
    codes: Sequence[str],
    out_notes: Sequence[int],
    tempo_map: TempoMap,
    *,
    step_beats: float = 0.25,
    end_sec: float = 0.0,
    title: str = "",
) -> bytes:
    """A MusicXML 3.1 partwise score of ``hits`` on ``tempo_map``'s bars, quantized to
    ``step_beats`` (0.25 = 16ths), lasting at least until ``end_sec``."""
    lines, bars = bar_strokes(hits, codes, tempo_map, step_beats, end_sec)
    root = ET.Element("score-partwise", version="3.1")
    _sub(_sub(root, "work"), "work-title", title or "Drums")
    encoding = _sub(_sub(root, "identification"), "encoding")
    _sub(encoding, "software", "drumtx")
    _part_list(root, codes, out_notes)
    part = _sub(root, "part", id="P1")
    first = 0 if tempo_map.pickup_beats else 1
    meters = shown_meters(tempo_map, lines)
    for i, strokes in enumerate(bars):
        span = (lines[i], lines[i + 1])
        beat = beat_divisions(tempo_map.meter_at(float(lines[i]) + 1e-6))
        _measure(part, first + i, span, meters[i], strokes, tempo_map, beat)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    doctype = (
        '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN" '
        '"http://www.musicxml.org/dtds/partwise.dtd">'
    )
    text = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    return (text + doctype + "\n" + body + "\n").encode("utf-8")
