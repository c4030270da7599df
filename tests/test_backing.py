"""Backing tracks: arrangements on the performance's own beats, tempo changes included;
songs replayed on those beats; rendering; stores with and without them."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pytest

from drumtx.synth import backing
from drumtx.synth.backing import BackingSpec, BeatNote, Part
from drumtx.tempo import TempoMap, read_tempo_map

SR = 24000
TPB = 480


def tempo_change_midi(path: Path, n_beats: int = 32) -> Path:
    """4/4 drums: 100 BPM for 8 beats, then 130 BPM; a kick on every beat."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100)))
    for beat in range(n_beats):
        if beat == 8:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(130)))
        track.append(mido.Message("note_on", channel=9, note=36, velocity=100))
        track.append(mido.Message("note_off", channel=9, note=36, time=TPB))
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    midi.tracks.append(track)
    midi.save(path)
    return path


def test_generated_parts_sit_on_the_beats_of_a_changing_tempo(tmp_path: Path) -> None:
    tm = read_tempo_map(tempo_change_midi(tmp_path / "p.mid"))
    kicks_sec = tm.seconds(np.arange(32.0))
    duration = float(tm.seconds(32.0))
    for seed in range(10):
        parts = backing.generate_arrangement(
            tm, duration, kicks_sec, np.random.default_rng(seed)
        )
        assert parts, "a band plays"
        for part in parts:
            beats = np.array([n.start_beat for n in part.notes])
            # On the sixteenth grid, or a guitar strum's few hundredths of a beat late.
            off_grid = np.abs(beats - np.round(beats * 4) / 4)
            assert off_grid.max() < 0.06 * 3, (seed, part.role)
            seconds = [n.start_sec for n in backing.notes_in_seconds(part, tm)]
            np.testing.assert_allclose(seconds, tm.seconds(beats), atol=1e-9)


def onsets_sec(audio: np.ndarray) -> np.ndarray:
    """Times where the 5 ms energy jumps by 12 dB over the previous 20 ms."""
    hop = SR // 200  # 5 ms
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)
    rise = db[4:] - np.max(np.lib.stride_tricks.sliding_window_view(db[:-1], 4), axis=1)
    hits = np.flatnonzero(rise > 12) + 4
    keep = hits[np.insert(np.diff(hits) > 10, 0, True)]  # one per note
    return keep * hop / SR


def test_rendered_bass_notes_land_on_the_beats_across_a_tempo_change(
    tmp_path: Path,
) -> None:
    tm = read_tempo_map(tempo_change_midi(tmp_path / "p.mid", n_beats=20))
    notes = tuple(BeatNote(float(b), 0.5, 40, 110) for b in range(1, 20))
    part = Part("bass", notes)
    n = int(float(tm.seconds(20.0)) * SR)
    rng = np.random.default_rng(0)
    audio = backing.render_part(part, backing.Band(tm, n, SR), rng)
    found = onsets_sec(audio)
    beats = tm.seconds(np.arange(1.0, 20.0))
    assert len(found) == 19
    np.testing.assert_allclose(found, beats, atol=0.01)  # within 10 ms of each beat
    gaps = np.diff(found)
    assert np.median(gaps[:6]) == pytest.approx(0.6, abs=0.01)  # 100 BPM
    assert np.median(gaps[8:]) == pytest.approx(60 / 130, abs=0.01)  # then 130 BPM


def song_midi(path: Path) -> Path:
    """A tiny song at 96 ticks per beat: bass (program 33) on every beat, drums too."""
    midi = mido.MidiFile(type=1, ticks_per_beat=96)
    bass, drums = mido.MidiTrack(), mido.MidiTrack()
    bass.append(mido.Message("program_change", channel=1, program=33))
    for beat in range(16):
        bass.append(mido.Message("note_on", channel=1, note=40 + beat % 5, velocity=90))
        bass.append(mido.Message("note_off", channel=1, note=40 + beat % 5, time=96))
        drums.append(mido.Message("note_on", channel=9, note=36, velocity=90))
        drums.append(mido.Message("note_off", channel=9, note=36, time=96))
    midi.tracks += [bass, drums]
    midi.save(path)
    return path


def test_song_parts_are_parsed_once_per_file_version(tmp_path: Path) -> None:
    """Backing hundreds of recordings from the same songs parses each song once; the
    caller gets its own list, and a rewritten file is read again."""
    path = song_midi(tmp_path / "song.mid")
    first, _ = backing.read_song_parts(path)
    first.clear()  # the caller's list, not the cache's
    again, n_beats = backing.read_song_parts(path)
    assert len(again) == 1 and n_beats == 16
    midi = mido.MidiFile(path)
    midi.tracks[0].append(mido.Message("program_change", channel=2, program=0))
    midi.tracks[0].append(mido.Message("note_on", channel=2, note=60, velocity=90))
    midi.tracks[0].append(mido.Message("note_off", channel=2, note=60, time=960))
    midi.save(path)
    parts, n_beats = backing.read_song_parts(path)
    assert [p.role for p in parts] == ["bass", "keys"] and n_beats == 26


def test_song_parts_replay_on_the_performance_beats(tmp_path: Path) -> None:
    parts, n_beats = backing.read_song_parts(song_midi(tmp_path / "song.mid"))
    assert [p.role for p in parts] == ["bass"] and parts[0].program == 33
    assert n_beats == 16
    tm = TempoMap.constant(90.0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = backing.song_arrangement(tmp_path / "song.mid", tm, 4.0, rng)
        beats = [n.start_beat for n in out[0].notes]
        assert beats == [float(b) for b in range(len(beats))]  # a bar line -> beat 0
        assert len(beats) == 6  # 4 s at 90 BPM
        # The song's drums never become backing: only the bass was taken.
        assert all(35 <= n.pitch <= 50 for n in out[0].notes)


def test_render_backing_is_seeded_by_key(tmp_path: Path) -> None:
    midi_path = tempo_change_midi(tmp_path / "p.mid", n_beats=12)
    spec = BackingSpec(soundfonts=(), songs=(), song_prob=0.0, seed=3)
    kicks = np.arange(12) * 0.6
    a = backing.render_backing(midi_path, kicks, SR * 6, SR, spec, key="a.wav")
    again = backing.render_backing(midi_path, kicks, SR * 6, SR, spec, key="a.wav")
    other = backing.render_backing(midi_path, kicks, SR * 6, SR, spec, key="b.wav")
    np.testing.assert_array_equal(a, again)
    assert a.shape == (SR * 6,) and a.dtype == np.float32
    assert not np.array_equal(a, other)
    for audio in (a, other):
        level = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)
        assert level == pytest.approx(backing.TARGET_RMS_DB, abs=0.1) or level < -100


def test_a_store_without_backing_still_trains(tmp_path: Path) -> None:
    from drumtx.cli import main
    from drumtx.make_dataset import make_dataset

    make_dataset(tmp_path, midi_dir=None, kits=["synth:1"], limit=6, seed=0, max_sec=6)
    common = ["--data-root", str(tmp_path), "--set", "backing.enabled=false"]
    assert main(["preprocess", *common, "--workers", "1"]) == 0
    manifest = json.loads((tmp_path / "processed_data/train/manifest.json").read_text())
    assert manifest["tracks"] == []
    assert not (tmp_path / "processed_data/train/backing.i16").exists()
    sets = ["model.preset='tiny'", "data.crop_sec=2.0", "data.num_workers=0",
            "train.device='cpu'", "train.cpu_threads=1", "train.batch_size=4",
            "train.max_steps=3", "train.warmup_steps=1", "train.eval_every=3",
            "train.val_max_recordings=1", "data.backing_prob=1.0"]  # fmt: skip
    args = ["train", *common, "--run", "nob"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert (tmp_path / "checkpoints/nob/last.pt").is_file()
