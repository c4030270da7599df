"""Tempo maps: MIDI ticks <-> beats <-> seconds, where the bars fall, and note grids.

A beat here is a quarter note (MIDI's unit), whatever the time signature says: beat b
sits at tick ``b * ticks_per_beat``. Bars come from the time signatures: a bar of n/d
lasts ``n * 4 / d`` beats. Tempo and time-signature changes may happen anywhere.
A pickup bar is a first bar one bar of its own meter long and shorter than the bars
after it; its start is no downbeat. The counted beats (``drumtx.meter``: dotted
quarters in 6/8) run from each bar line, and back from the first one through a pickup.
A grid (``1/16``, ``1/8``, ``1/16T``, ``1/32``) is counted from each bar line, so a
short pickup bar keeps the next bar's notes on the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from drumtx.errors import DataError
from drumtx.meter import GRIDS, bar_quarters, counted_beats, grid_step

__all__ = ["GRIDS", "TempoMap", "grid_step", "pickup_meter", "read_tempo_map"]

DEFAULT_TEMPO_US = 500_000  # MIDI's implied tempo before any set_tempo: 120 BPM


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant tempo, in beats (quarter notes) from the file's start."""

    start_beats: tuple[
        float, ...
    ]  # where each tempo segment starts, ascending, [0] = 0
    sec_per_beat: tuple[float, ...]  # the tempo of each segment
    meters: tuple[tuple[float, int, int], ...] = ((0.0, 4, 4),)  # (beat, num, den)

    def __post_init__(self) -> None:
        if not self.start_beats or self.start_beats[0] != 0.0:
            raise ValueError("a tempo map starts at beat 0")
        if len(self.start_beats) != len(self.sec_per_beat):
            raise ValueError("one tempo per segment")
        if any(s <= 0 for s in self.sec_per_beat):
            raise ValueError("tempi must be positive")

    @classmethod
    def constant(
        cls,
        bpm: float,
        numerator: int = 4,
        denominator: int = 4,
        pickup_beats: float = 0.0,
    ) -> TempoMap:
        """One tempo and meter; ``pickup_beats`` (quarter notes) of pickup bar first."""
        meters: tuple[tuple[float, int, int], ...] = ((0.0, numerator, denominator),)
        if pickup_beats > 0:
            pickup = (0.0, *pickup_meter(pickup_beats))
            meters = (pickup, (pickup_beats, numerator, denominator))
        return cls((0.0,), (60.0 / bpm,), meters)

    @property
    def pickup_beats(self) -> float:
        """Quarter notes of the pickup bar before the first full bar (0: none)."""
        if len(self.meters) < 2:
            return 0.0
        (_, n0, d0), (start, n1, d1) = self.meters[:2]
        if abs(start - bar_quarters(n0, d0)) < 1e-6 and start < bar_quarters(n1, d1):
            return float(start)
        return 0.0

    def meter_at(self, beat: float) -> tuple[int, int]:
        """(numerator, denominator) of the bar at ``beat``; a pickup bar's is the
        meter of the bar after it."""
        beat = max(beat, self.pickup_beats)
        return next((n, d) for b, n, d in reversed(self.meters) if b <= beat + 1e-9)

    def beats_and_downbeats(self, end_sec: float) -> tuple[np.ndarray, np.ndarray]:
        """Seconds of the counted beats and of the downbeats (bar lines; not a pickup
        bar's start) inside [0, end_sec]."""
        end_beat = float(self.beats(end_sec)) + 1e-9
        pickup = self.pickup_beats
        beats, downbeats = [], []
        for start, length, _ in self.bars(end_sec + 1e-6):
            n, unit = counted_beats(*self.meter_at(start))
            if pickup and start == 0.0:  # counted back from the first bar line
                n_pickup = int(pickup / unit + 1e-9)
                beats += [pickup - k * unit for k in range(n_pickup, 0, -1)]
                continue
            downbeats.append(start)
            beats += [start + k * unit for k in range(n) if k * unit < length - 1e-9]
        beats_q, downbeats_q = np.asarray(beats), np.asarray(downbeats)
        beats_q = beats_q[(beats_q >= -1e-9) & (beats_q <= end_beat)]
        return self.seconds(beats_q), self.seconds(downbeats_q)

    def _segment_starts_sec(self) -> np.ndarray:
        starts = np.asarray(self.start_beats)
        lengths = np.diff(starts) * np.asarray(self.sec_per_beat[:-1])
        return np.concatenate([[0.0], np.cumsum(lengths)])

    def seconds(self, beats: np.ndarray | float) -> np.ndarray:
        """Beat positions -> seconds (beats before 0 extrapolate the first tempo)."""
        beats = np.asarray(beats, dtype=np.float64)
        starts = np.asarray(self.start_beats)
        seg = np.clip(np.searchsorted(starts, beats, side="right") - 1, 0, None)
        spb = np.asarray(self.sec_per_beat)[seg]
        return self._segment_starts_sec()[seg] + (beats - starts[seg]) * spb

    def beats(self, seconds: np.ndarray | float) -> np.ndarray:
        """Seconds -> beat positions; the inverse of :meth:`seconds`."""
        seconds = np.asarray(seconds, dtype=np.float64)
        starts_sec = self._segment_starts_sec()
        seg = np.clip(np.searchsorted(starts_sec, seconds, side="right") - 1, 0, None)
        spb = np.asarray(self.sec_per_beat)[seg]
        return np.asarray(self.start_beats)[seg] + (seconds - starts_sec[seg]) / spb

    def bars(self, end_sec: float) -> list[tuple[float, float, int]]:
        """(start beat, length in beats, beats counted in the bar) of every bar that
        starts before ``end_sec``. A meter change inside a bar (MIDI files have them)
        cuts that bar short there."""
        end_beat = float(self.beats(end_sec))
        bars: list[tuple[float, float, int]] = []
        meters = list(self.meters) + [(float("inf"), 4, 4)]
        for (start, num, den), (next_start, _, _) in zip(meters, meters[1:]):
            length = num * 4.0 / den
            beat = start
            while beat < min(next_start, end_beat) - 1e-9:
                bars.append((beat, min(length, next_start - beat), num))
                beat += length
        return bars

    def bpm_at(self, beat: float) -> float:
        seg = max(0, int(np.searchsorted(self.start_beats, beat, side="right")) - 1)
        return 60.0 / self.sec_per_beat[seg]

    def median_bpm(self, end_sec: float) -> float:
        """Median quarter notes per minute over [0, end_sec] (0 without two beats)."""
        return self.bpm_percentiles(end_sec, (50.0,))[0]

    def bpm_percentiles(
        self, end_sec: float, percents: Sequence[float], from_beat: float = 0.0
    ) -> tuple[float, ...]:
        """Percentiles of the quarter notes per minute, quarter by quarter, from
        ``from_beat`` to ``end_sec`` (0 each without two beats)."""
        last = float(np.floor(self.beats(end_sec) - from_beat))
        quarters = self.seconds(from_beat + np.arange(0.0, last + 1.0))
        if len(quarters) < 2:
            return tuple(0.0 for _ in percents)
        # the p-th percentile of tempo is the (100 - p)-th of the beats' lengths
        lengths = np.percentile(np.diff(quarters), [100.0 - p for p in percents])
        return tuple(60.0 / float(x) for x in lengths)

    def on_ticks(self, ticks_per_beat: int) -> TempoMap:
        """The map as a MIDI file can hold it: tempo changes and meters on whole
        ticks, tempi in whole microseconds per beat (so ticks read back exactly)."""
        tempos: dict[int, int] = {}
        for start, spb in zip(self.start_beats, self.sec_per_beat):
            us = min(max(1, round(spb * 1e6)), 0xFFFFFF)
            tempos[round(start * ticks_per_beat)] = us  # a later change wins a tick
        meters = {round(b * ticks_per_beat): (n, d) for b, n, d in self.meters}
        return _tempo_map(tempos, meters, ticks_per_beat)

    def bar_lines(self, end_beat: float) -> np.ndarray:
        """Beat of every bar line up to and including the first one at or after
        ``end_beat``."""
        bars = self.bars(float(self.seconds(end_beat)))
        if not bars:
            num, den = self.meters[0][1:]
            return np.array([0.0, num * 4.0 / den])
        last, length, _ = bars[-1]  # a bar cut short by a meter change ends there
        return np.asarray([b[0] for b in bars] + [last + length])

    def snap(self, seconds: np.ndarray, step_beats: float) -> np.ndarray:
        """Times moved to the nearest grid point, the grid counted from each bar line
        (a bar line itself is always on the grid)."""
        beats = np.asarray(self.beats(seconds), dtype=np.float64)
        if beats.size == 0:
            return np.asarray(seconds, dtype=np.float64)
        lines = self.bar_lines(float(beats.max()) + 1e-9)
        bar = np.clip(
            np.searchsorted(lines, beats, side="right") - 1, 0, len(lines) - 2
        )
        start, end = lines[bar], lines[bar + 1]
        snapped = start + np.round((beats - start) / step_beats) * step_beats
        snapped = np.where(end - beats < np.abs(snapped - beats), end, snapped)
        return self.seconds(np.minimum(snapped, end))


def pickup_meter(pickup_beats: float) -> tuple[int, int]:
    """The time signature of a pickup bar ``pickup_beats`` quarter notes long, in
    whole 32nd notes at the least: 1 -> 1/4, 1.5 -> 3/8, 1.375 -> 11/32."""
    numerator, denominator = max(1, round(8 * pickup_beats)), 32
    while numerator % 2 == 0 and denominator > 4:
        numerator, denominator = numerator // 2, denominator // 2
    return numerator, denominator


def read_tempo_map(path: Path) -> TempoMap:
    """The tempo map of a type 0 or 1 MIDI file (type 2: its first track's)."""
    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"cannot read the tempo map of {path}: {exc}") from None
    division = midi.ticks_per_beat & 0xFFFF
    if division == 0 or division & 0x8000:
        # SMPTE time has no beats: call it 120 BPM, 4/4.
        return TempoMap.constant(60.0 / (DEFAULT_TEMPO_US / 1e6))
    tracks = midi.tracks[:1] if midi.type == 2 else midi.tracks
    tempos: dict[int, int] = {}
    meters: dict[int, tuple[int, int]] = {}
    for track in tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and msg.tempo > 0:
                tempos[tick] = msg.tempo
            elif msg.type == "time_signature" and msg.numerator > 0:
                meters[tick] = (msg.numerator, msg.denominator)
    return _tempo_map(tempos, meters, division)


def _tempo_map(
    tempos: dict[int, int], meters: dict[int, tuple[int, int]], division: int
) -> TempoMap:
    tempos.setdefault(0, tempos[min(tempos)] if tempos else DEFAULT_TEMPO_US)
    meters.setdefault(0, meters[min(meters)] if meters else (4, 4))
    ticks = sorted(tempos)
    meter_ticks = sorted(meters)
    return TempoMap(
        start_beats=tuple(t / division for t in ticks),
        sec_per_beat=tuple(tempos[t] / 1e6 for t in ticks),
        meters=tuple((t / division, *meters[t]) for t in meter_ticks),
    )
