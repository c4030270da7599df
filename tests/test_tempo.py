"""Tempo maps: beats <-> seconds across tempo changes, bars from time signatures."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from drumtx.tempo import TempoMap, read_tempo_map


def write_midi(path, tpb: int, events: list[tuple[int, mido.MetaMessage]]) -> None:
    """A type 0 file with the given (absolute tick, meta message) events."""
    track = mido.MidiTrack()
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=tpb)
    midi.tracks.append(track)
    midi.save(path)


def test_constant_tempo_beats_and_seconds() -> None:
    tm = TempoMap.constant(120.0)
    assert tm.seconds([0, 1, 4.5]) == pytest.approx([0.0, 0.5, 2.25])
    assert tm.beats([0.0, 0.5, 2.25]) == pytest.approx([0, 1, 4.5])
    assert tm.bpm_at(10.0) == pytest.approx(120.0)


def test_tempo_change_from_file(tmp_path) -> None:
    # 100 BPM for 8 beats (4.8 s), then 130 BPM.
    path = tmp_path / "change.mid"
    write_midi(
        path,
        480,
        [
            (0, mido.MetaMessage("set_tempo", tempo=600_000)),
            (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
            (8 * 480, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(130))),
        ],
    )
    tm = read_tempo_map(path)
    assert tm.bpm_at(7.9) == pytest.approx(100.0)
    assert tm.bpm_at(8.0) == pytest.approx(130.0, rel=1e-5)  # microsecond tempo
    assert tm.seconds(8.0) == pytest.approx(4.8)
    assert tm.seconds(12.0) == pytest.approx(4.8 + 4 * 60 / 130)
    beats = np.array([0.0, 3.3, 8.0, 11.7])
    assert tm.beats(tm.seconds(beats)) == pytest.approx(beats)
    # Bars of 4/4 start every 4 beats, including on the tempo change.
    starts = [bar[0] for bar in tm.bars(tm.seconds(16.0) - 1e-6)]
    assert starts == [0.0, 4.0, 8.0, 12.0]


def test_bars_follow_time_signature_changes(tmp_path) -> None:
    # Two bars of 3/4, then 6/8 (3 quarter notes per bar).
    path = tmp_path / "meters.mid"
    write_midi(
        path,
        96,
        [
            (0, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
            (6 * 96, mido.MetaMessage("time_signature", numerator=6, denominator=8)),
        ],
    )
    tm = read_tempo_map(path)  # no set_tempo: 120 BPM
    bars = tm.bars(6.0)  # 12 beats
    assert [b[0] for b in bars] == [0.0, 3.0, 6.0, 9.0]
    assert [b[2] for b in bars] == [3, 3, 6, 6]


def test_meter_change_inside_a_bar_cuts_it_short(tmp_path) -> None:
    """A song's 7/8 turns 7/16 five quarter notes in, halfway through its second bar:
    that bar ends there, and beats and bar lines still only move forward."""
    path = tmp_path / "odd.mid"
    write_midi(
        path,
        96,
        [
            (0, mido.MetaMessage("time_signature", numerator=7, denominator=8)),
            (5 * 96, mido.MetaMessage("time_signature", numerator=7, denominator=16)),
        ],
    )
    tm = read_tempo_map(path)
    bars = tm.bars(tm.seconds(8.5) - 1e-6)
    assert [b[:2] for b in bars[:4]] == [
        (0.0, 3.5),
        (3.5, 1.5),
        (5.0, 1.75),
        (6.75, 1.75),
    ]
    beats, downbeats = tm.beats_and_downbeats(tm.seconds(8.5))
    assert np.all(np.diff(beats) > 0) and np.all(np.diff(downbeats) > 0)
    assert tm.beats(beats)[:11] == pytest.approx(
        [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]
    )


def test_file_without_tempo_or_meter_is_120_in_four(tmp_path) -> None:
    path = tmp_path / "bare.mid"
    write_midi(path, 480, [(0, mido.MetaMessage("track_name", name="x"))])
    tm = read_tempo_map(path)
    assert tm.bpm_at(0.0) == pytest.approx(120.0)
    assert tm.meters == ((0.0, 4, 4),)


def test_median_bpm_is_the_tempo_most_of_the_span_has() -> None:
    steady = TempoMap.constant(97.0)
    assert steady.median_bpm(30.0) == pytest.approx(97.0)
    # 8 quarter notes at 120 (4 s), then 100 from 4 s on
    changing = TempoMap((0.0, 8.0), (0.5, 0.6))
    assert changing.median_bpm(6.0) == pytest.approx(120.0)  # 8 of 11 quarters
    assert changing.median_bpm(20.0) == pytest.approx(100.0)
    assert steady.median_bpm(0.3) == 0.0  # not two beats yet
