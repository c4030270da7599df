"""MIDI reading (tempo maps, channels, malformed files) and writing (round trip)."""

from __future__ import annotations

import os
from collections import Counter
from itertools import pairwise
from pathlib import Path

import mido
import numpy as np
import pytest

from drumtx.drums import get_vocab
from drumtx.errors import DataError
from drumtx.midi import (
    Hit,
    Note,
    hits_to_notes,
    midi_bytes,
    notes_to_hits,
    read_hits,
    read_notes,
    write_midi,
)


def gmd_dir() -> Path:
    env = os.environ.get("DRUMTX_GMD_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared/data/gmd/groove"


def save_track_file(
    path: Path, tracks: list[list[mido.Message]], tpb: int = 480
) -> Path:
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    midi.save(path)
    return path


def test_write_read_round_trip(tmp_path: Path) -> None:
    vocab = get_vocab("roland9")
    hits = [
        Hit(0.0, vocab.index("KD"), 100),
        Hit(0.25, vocab.index("HH"), 64),
        Hit(0.25, vocab.index("SD"), 127),
        Hit(0.26, vocab.index("SD"), 1),  # same pitch 10 ms later: must not be lost
        Hit(1.337, vocab.index("RD"), 80),
        Hit(7.5, vocab.index("LT"), 33),
    ]
    path = tmp_path / "out.mid"
    write_midi(path, hits_to_notes(hits, vocab.gm_notes), bpm=97.0)
    back = read_hits(path, vocab)
    assert len(back) == len(hits)
    tick_sec = 60.0 / 97.0 / 480

    def key(hit: Hit) -> tuple[float, int]:
        return (round(hit.time_sec, 3), hit.cls)

    for want, got in zip(sorted(hits, key=key), sorted(back, key=key)):
        assert abs(want.time_sec - got.time_sec) <= tick_sec
        assert (got.cls, got.velocity) == (want.cls, want.velocity)
        assert got.pitch == vocab.gm_notes[want.cls]
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == 480
    channels = {m.channel for t in midi.tracks for m in t if m.type == "note_on"}
    assert channels == {9}
    tempos = [m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(97.0)]


def test_write_is_atomic_and_matches_midi_bytes(tmp_path: Path) -> None:
    notes = [Note(0.5, 38, 90), Note(1.0, 36, 70)]
    path = tmp_path / "a.mid"
    path.write_bytes(b"old")
    write_midi(path, notes, note_sec=0.1)
    assert path.read_bytes() == midi_bytes(notes, note_sec=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid"]  # no tmp left


def test_note_length_and_velocity_clamp(tmp_path: Path) -> None:
    path = tmp_path / "a.mid"
    write_midi(path, [Note(1.0, 36, 300), Note(2.0, 38, 0)], bpm=120, note_sec=0.05)
    assert [n.velocity for n in read_notes(path)] == [127, 1]
    track = mido.MidiFile(path).tracks[1]
    on_off = [m for m in track if m.type in ("note_on", "note_off")]
    assert on_off[1].type == "note_off" and on_off[1].time == 48  # 50 ms at 960 tps


def test_tempo_change_90_to_140(tmp_path: Path) -> None:
    tpb = 480
    conductor = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90), time=0),
        # after 4 beats at 90 BPM (= 2.6667 s) switch to 140 BPM
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(140), time=4 * tpb),
    ]
    drums = [
        mido.Message("note_on", channel=9, note=36, velocity=100, time=2 * tpb),
        mido.Message("note_on", channel=9, note=36, velocity=0, time=10),
        mido.Message("note_on", channel=9, note=38, velocity=90, time=4 * tpb - 10),
    ]
    path = save_track_file(tmp_path / "t.mid", [conductor, drums], tpb)
    notes = read_notes(path)
    assert [n.pitch for n in notes] == [36, 38]  # velocity-0 note_on is a note-off
    assert notes[0].time_sec == pytest.approx(2 * 60 / 90)
    # beat 6: 4 beats at 90 BPM, then 2 beats at 140 BPM
    assert notes[1].time_sec == pytest.approx(4 * 60 / 90 + 2 * 60 / 140)


def test_tempo_change_on_a_note_track(tmp_path: Path) -> None:
    # A tempo event living on the drum track still rules every track (type 1).
    tpb = 96
    other = [mido.Message("note_on", channel=9, note=42, velocity=50, time=3 * tpb)]
    drums = [
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=tpb),
        mido.Message("note_on", channel=9, note=36, velocity=100, time=tpb),
    ]
    notes = read_notes(save_track_file(tmp_path / "t.mid", [other, drums], tpb))
    # 1 beat at 120 BPM, then beats at 60 BPM
    assert [(n.pitch, round(n.time_sec, 6)) for n in notes] == [(36, 1.5), (42, 2.5)]


def test_notes_on_any_channel(tmp_path: Path) -> None:
    track = [
        mido.Message("note_on", channel=0, note=36, velocity=80, time=0),
        mido.Message("note_on", channel=3, note=38, velocity=81, time=240),
        mido.Message("note_off", channel=3, note=38, velocity=0, time=10),
    ]
    notes = read_notes(save_track_file(tmp_path / "c.mid", [track]))
    assert [(n.pitch, n.velocity) for n in notes] == [(36, 80), (38, 81)]
    assert notes[1].time_sec == pytest.approx(0.25)


def test_roland9_maps_td17_pitches() -> None:
    vocab = get_vocab("roland9")
    notes = [Note(0.0, 22, 10), Note(0.1, 26, 20), Note(0.2, 58, 30), Note(0.3, 99, 9)]
    hits = notes_to_hits(notes, vocab)
    assert [vocab.codes[h.cls] for h in hits] == ["HH", "OH", "LT"]  # 99 dropped
    assert [h.pitch for h in hits] == [22, 26, 58]


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am not a MIDI file\n", b"MThd\x00\x00\x00\x06\x00\x01\x00"],
    ids=["empty", "text", "truncated-header"],
)
def test_malformed_midi_raises_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.mid"):
        read_notes(path)


def test_truncated_track_raises_data_error(tmp_path: Path) -> None:
    data = midi_bytes([Note(t / 10, 36, 100) for t in range(20)])
    path = tmp_path / "cut.mid"
    path.write_bytes(data[: len(data) - 30])
    with pytest.raises(DataError, match="cut.mid"):
        read_notes(path)


def test_missing_midi_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_notes(tmp_path / "nope.mid")


def test_gmd_files_parse_and_map_to_roland9() -> None:
    root = gmd_dir()
    paths = sorted(root.rglob("*.mid")) if root.is_dir() else []
    if not paths:
        pytest.skip(f"GMD not found at {root} (set DRUMTX_GMD_DIR)")
    vocab = get_vocab("roland9")
    pitches: Counter[int] = Counter()
    for path in paths:
        notes = read_notes(path)
        assert all(a.time_sec <= b.time_sec for a, b in pairwise(notes))
        pitches.update(n.pitch for n in notes)
    unmapped = {p: n for p, n in pitches.items() if vocab.class_of_pitch(p) is None}
    assert not unmapped, f"GMD pitches outside roland9: {unmapped}"


def test_tempo_map_is_written_and_notes_keep_their_seconds(tmp_path: Path) -> None:
    from drumtx.tempo import TempoMap, read_tempo_map

    # A 3/16 pickup at 96.3 BPM, 4/4 at 100 BPM, 130 BPM from the bar at beat 32.75.
    tm = TempoMap(
        (0.0, 0.75, 32.75),
        (60 / 96.3, 0.6, 60 / 130),
        ((0.0, 3, 16), (0.75, 4, 4)),
    )
    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(0.0, 40.0, 200))
    notes = [Note(float(t), 38, 90) for t in times]
    path = tmp_path / "map.mid"
    write_midi(path, notes, tempo_map=tm)
    back = read_tempo_map(path)
    assert back.start_beats == tm.start_beats and back.meters == tm.meters
    assert back.sec_per_beat == pytest.approx(tm.sec_per_beat, abs=1e-6)
    tick_sec = max(tm.sec_per_beat) / 480  # the longest tick of the map
    got = np.array([n.time_sec for n in read_notes(path)])
    assert np.abs(got - times).max() <= tick_sec / 2 + 1e-9
    conductor = mido.MidiFile(path).tracks[0]
    kinds = [m.type for m in conductor if m.type in ("set_tempo", "time_signature")]
    assert kinds == ["set_tempo", "time_signature", "set_tempo", "time_signature",
                     "set_tempo"]  # fmt: skip


def test_the_drum_track_lasts_as_long_as_the_audio(tmp_path: Path):
    """A DAW shows a MIDI file as long as its longest track: it ended at the last
    note-off (a transcription of 30 s of silence lasted 0 s)."""
    import io

    from drumtx.tempo import TempoMap

    def length(data: bytes) -> float:  # to the tick (1.3 ms at 97 BPM)
        return round(mido.MidiFile(file=io.BytesIO(data)).length, 2)

    notes = [Note(1.0, 36, 100), Note(2.5, 38, 90)]
    assert length(midi_bytes(notes, bpm=97.0, end_sec=29.2)) == pytest.approx(29.2)
    assert length(midi_bytes([], bpm=120.0, end_sec=30.0)) == pytest.approx(30.0)
    # never cut short: a note-off after end_sec still ends the track
    late = midi_bytes(notes, bpm=120.0, note_sec=0.1, end_sec=2.0)
    assert length(late) == pytest.approx(2.6)
    tempo_map = TempoMap(start_beats=(0.0, 8.0), sec_per_beat=(0.5, 0.6))
    changing = midi_bytes(notes, tempo_map=tempo_map, end_sec=20.0)
    assert length(changing) == pytest.approx(20.0)
    (tmp_path / "a.mid").write_bytes(changing)
    (tmp_path / "b.mid").write_bytes(midi_bytes(notes, tempo_map=tempo_map))
    assert read_notes(tmp_path / "a.mid") == read_notes(tmp_path / "b.mid")
