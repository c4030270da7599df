"""Generated drum performances: grooves and fills in 13 styles, played like a person.

A style (``GrooveStyle``) fixes the tempo range (quarter notes per minute, the MIDI
tempo, also in 6/8), meter, step grid, timekeeper (hi-hat or
ride), backbeat and how busy kicks, ghost notes and open hats are. ``generate_groove``
draws a style and a tempo, lays 8-24 bars on the grid (a crash on every phrase, fills
at phrase ends) or a 1-2 bar fill, and humanises it with swing, timing jitter and
velocity spread. Everything comes from the generator passed in: same seed, same groove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drumtx.midi import Note

# TD-17 pitches the generator plays (the same numbers E-GMD's MIDI uses).
KICK, SNARE, X_STICK, RIMSHOT = 36, 38, 37, 40
HH_CLOSED, HH_EDGE, HH_PEDAL, HH_OPEN = 42, 22, 44, 46
RIDE, RIDE_BELL, CRASHES = 51, 53, (49, 55, 57, 52)
TOMS = ((48, 50), (45, 47), (43, 58))  # high, mid, low: (head, rim)


@dataclass(frozen=True)
class GrooveStyle:
    """How one genre is played on a step grid."""

    name: str
    bpm_range: tuple[int, int]  # quarter notes per minute, whatever the meter
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
    ("ballad", 82, 120, "6-8", 3, "hh", 1, 0.1, 0.05, 0.2, "sd", 0, 0.008),
)
_PITCH = {"hh": HH_CLOSED, "ride": RIDE, "sd": SNARE, "xs": X_STICK}
STYLES = tuple(
    GrooveStyle(r[0], (r[1], r[2]), r[3], r[4], _PITCH[r[5]], r[6], r[7], r[8], r[9],
                _PITCH[r[10]], r[11], r[12])
    for r in _STYLE_ROWS
)  # fmt: skip


@dataclass(frozen=True)
class Groove:
    """One generated performance, in seconds from its start."""

    style: str  # "rock/groove3"
    bpm: int
    beat_type: str
    meter: str
    notes: tuple[Note, ...]

    @property
    def count_in_beats(self) -> float:
        """Quarter notes before the first bar line: one counted beat of count-in."""
        return _quarters_per_beat(self.meter)


def _beats_per_bar(meter: str) -> int:
    """Counted beats per bar: 6/8 counts two dotted quarters."""
    return {"4-4": 4, "3-4": 3, "6-8": 2}[meter]


def _quarters_per_beat(meter: str) -> float:
    """Quarter notes in one counted beat (a dotted quarter in 6/8)."""
    return 1.5 if meter == "6-8" else 1.0


def generate_groove(rng: np.random.Generator) -> Groove:
    """One human-like performance: a groove of 8-24 bars, or a short fill (20 %)."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    bpm = int(rng.integers(style.bpm_range[0], style.bpm_range[1] + 1))
    is_fill = rng.random() < 0.2
    n_bars = int(rng.integers(1, 3)) if is_fill else int(rng.integers(8, 25))
    fill_prob = float(rng.uniform(0.2, 0.8))
    beat_sec = _quarters_per_beat(style.meter) * 60.0 / bpm
    bar_sec = _beats_per_bar(style.meter) * beat_sec
    # One silent counted beat of count-in (a pickup bar in the MIDI: make_dataset's
    # groove_tempo_map): the performance sits on the MIDI's own grid from 0 s (as
    # GMD's, played to a click), so beats, bar lines and backing tracks line up.
    start_sec = beat_sec
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
