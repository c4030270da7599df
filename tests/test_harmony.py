"""harmony: chroma of the audio, and chord changes as evidence for the bar lines."""

from __future__ import annotations

import numpy as np
import pytest

from drumtx import beats, harmony
from drumtx.drums import ROLAND9
from drumtx.harmony import ChromaStream, bar_change, chroma_of

RATE = 24000
C, E, G, A = 60, 64, 67, 69


def tone(pitches, seconds: float, rate: int = RATE) -> np.ndarray:
    """Sine tones of MIDI pitches (with their octave below, as a bass), summed."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for p in pitches:
        for q in (p, p - 12):
            out += np.sin(2 * np.pi * 440.0 * 2 ** ((q - 69) / 12) * t)
    return (0.1 * out).astype(np.float32)


def progression(chords, spb: float, beats_per_chord: int, start_beat: int) -> tuple:
    """Audio of chords changing every ``beats_per_chord`` beats from beat
    ``start_beat`` (the chord before it held from 0), and the beat times."""
    n_beats = start_beat + len(chords) * beats_per_chord
    pieces = [tone(chords[-1], start_beat * spb)] if start_beat else []
    pieces += [tone(ch, beats_per_chord * spb) for ch in chords]
    return np.concatenate(pieces), np.arange(n_beats + 1) * spb


def clicks(times_sec, seconds: float, rate: int = RATE) -> np.ndarray:
    """Short noise bursts (drum-like: no held pitch), each its own, at these times."""
    rng = np.random.default_rng(0)
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    n = int(0.03 * rate)
    for t in times_sec:
        i = int(t * rate)
        burst = rng.standard_normal(n) * np.hanning(n)
        out[i : i + n] += burst[: len(out) - i].astype(np.float32)
    return out


def test_chroma_of_a_chord_holds_its_pitch_classes() -> None:
    chroma = chroma_of(tone([C, E, G], 2.0), RATE)
    profile = chroma.values[3:-3].mean(axis=0)
    assert set(np.argsort(profile)[-3:]) == {C % 12, E % 12, G % 12}
    others = np.delete(profile, [C % 12, E % 12, G % 12])
    assert profile[[C % 12, E % 12, G % 12]].min() > 5 * others.max()
    assert chroma.steadiness > 0.9  # a held chord
    assert np.all(np.diff(chroma.times_sec) == pytest.approx(harmony.HOP_SEC, abs=1e-3))


def test_chroma_in_chunks_is_the_chroma_of_the_whole() -> None:
    audio, _ = progression([[C, E, G], [A, C, E]], 0.5, 4, 0)
    stream = ChromaStream(RATE)
    chunks = [audio[i : i + 7777] for i in range(0, len(audio), 7777)]
    passed = list(stream.wrap(chunks))
    assert all(a is b for a, b in zip(passed, chunks))  # the chunks go on unchanged
    whole = chroma_of(audio, RATE)
    got = stream.chroma()
    np.testing.assert_allclose(got.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.times_sec, whole.times_sec)


def test_a_file_shorter_than_a_window_has_no_chroma_and_no_evidence() -> None:
    chroma = chroma_of(np.zeros(100, np.float32), RATE)
    assert chroma.values.shape == (0, 12)
    assert np.array_equal(bar_change(chroma, np.arange(20) * 0.5, 4), np.zeros(4))
    assert np.array_equal(bar_change(None, np.arange(20) * 0.5, 4), np.zeros(4))


@pytest.mark.parametrize("start_beat", [0, 1, 2, 3])
def test_bars_start_where_the_chords_change(start_beat: int) -> None:
    chords = [[C, E, G], [A, C, E], [65, 69, 72], [G, 71, 74]] * 2
    audio, beat_sec = progression(chords, 0.5, 4, start_beat)
    evidence = bar_change(chroma_of(audio, RATE), beat_sec, 4)
    assert int(np.argmax(evidence)) == start_beat
    assert evidence.sum() == pytest.approx(0.0, abs=1e-9)
    top = np.sort(evidence)
    assert top[-1] - top[-2] >= harmony.MIN_MARGIN


def test_drums_alone_give_no_evidence() -> None:
    """Pitch that comes and goes with the hits is not held: no bar-line evidence,
    whatever the pattern."""
    beat_sec = np.arange(33) * 0.5
    eighths = np.arange(66) * 0.25
    hits = np.concatenate([eighths, beat_sec[::4] + 0.1])  # and a pattern per bar
    chroma = chroma_of(clicks(hits, 17.0), RATE)
    assert chroma.steadiness < harmony.MIN_STEADINESS
    assert np.array_equal(bar_change(chroma, beat_sec, 4), np.zeros(4))


def test_harmony_that_changes_on_every_beat_says_nothing() -> None:
    chords = [[C, E, G], [A, C, E], [65, 69, 72], [G, 71, 74]] * 8
    audio, beat_sec = progression(chords, 0.5, 1, 0)
    assert np.array_equal(bar_change(chroma_of(audio, RATE), beat_sec, 4), np.zeros(4))


def four_on_the_floor(n_beats: int, spb: float) -> tuple[np.ndarray, np.ndarray]:
    """(onset, velocity) of a kick and hi-hat on every beat, the same on every beat:
    the drums say nothing about where the bar starts."""
    n = int((n_beats * spb + 1.0) * 100) + 1
    onset, velocity = np.zeros((n, 9)), np.zeros((n, 9))
    for b in range(n_beats):
        frame = int(round((0.5 + b * spb) * 100))
        for code in ("KD", "HH"):
            c = ROLAND9.codes.index(code)
            onset[frame - 1 : frame + 2, c] = [0.3, 0.95, 0.3]
            velocity[frame, c] = 0.8
    return onset, velocity


def test_the_tracker_puts_bar_lines_where_the_band_changes_chord(monkeypatch) -> None:
    """Drums that repeat every beat leave the bar phase to the harmony: the chords
    change on beat 3 of the drums' first bar, and that is where the bars start;
    without the audio's chroma (or with no weight on it) the phase is the drums'."""
    monkeypatch.setattr(beats, "_bar_templates", lambda: {})  # the linear score only
    spb, n_beats, start = 0.5, 40, 2
    onset, velocity = four_on_the_floor(n_beats, spb)
    chords = [[C, E, G], [A, C, E], [65, 69, 72], [G, 71, 74]] * 3
    band, _ = progression(chords, spb, 4, start)
    audio = np.zeros(int(len(onset) / 100 * RATE), np.float32)
    lead_in = int(0.5 * RATE)  # the drums start at 0.5 s: so does the band
    audio[lead_in : lead_in + len(band)] = band[: len(audio) - lead_in]
    chroma = chroma_of(audio, RATE)

    with_band = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0, chroma=chroma)
    first_change = 0.5 + start * spb
    assert np.min(np.abs(with_band.downbeats_sec - first_change)) < 0.03
    bar = 4 * spb
    offsets = (with_band.downbeats_sec - first_change) / bar
    assert np.allclose(offsets, np.round(offsets), atol=0.06)

    monkeypatch.setattr(beats, "HARMONY_WEIGHT", 0.0)
    drums_only = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0, chroma=chroma)
    plain = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0)
    np.testing.assert_allclose(drums_only.downbeats_sec, plain.downbeats_sec)
    assert np.min(np.abs(plain.downbeats_sec - first_change) % bar) > 0.1


def test_chords_that_change_every_four_beats_choose_the_tempo(monkeypatch) -> None:
    """Kick and hat on every beat at 171 BPM read as 86 BPM to the drums alone (twice
    as slow is nearer a usual tempo); a band changing chord every four beats of 171
    changes on every other beat of 86, on two bar phases at once, and on one at 171:
    with the audio's chroma the tracker takes 171, without it (or with no weight on
    it) 86."""
    monkeypatch.setattr(beats, "_bar_templates", lambda: {})  # the linear score only
    spb = 0.35
    onset, velocity = four_on_the_floor(68, spb)
    chords = [[C, E, G], [A, C, E], [65, 69, 72], [G, 71, 74]] * 5
    band, _ = progression(chords, spb, 4, 0)
    audio = np.zeros(int(len(onset) / 100 * RATE), np.float32)
    lead_in = int(0.5 * RATE)  # the drums start at 0.5 s: so does the band
    audio[lead_in : lead_in + len(band)] = band[: len(audio) - lead_in]
    chroma = chroma_of(audio, RATE)
    with_band = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0, chroma=chroma)
    assert with_band.bpm == pytest.approx(60 / spb, rel=0.01)
    plain = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0)
    assert plain.bpm == pytest.approx(30 / spb, rel=0.01)
    monkeypatch.setattr(beats, "HARMONY_TEMPO_WEIGHT", 0.0)
    unweighted = beats.beat_grid(onset, velocity, ROLAND9.codes, 100.0, chroma=chroma)
    assert unweighted.bpm == pytest.approx(30 / spb, rel=0.01)


def _chroma_steps(audio: np.ndarray) -> int:
    return len(chroma_of(audio, RATE).values)


def test_chroma_leaves_no_threads_behind_that_hang_a_forked_worker() -> None:
    """torch's FFT on several threads keeps a thread pool that a forked child (the
    worker pools of preprocess and make-dataset) inherits broken: the child hung.
    The chroma runs it on one thread and gives torch its thread count back."""
    import multiprocessing

    import torch

    audio, _ = progression([[C, E, G], [A, C, E]], 0.5, 4, 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        chroma_of(audio, RATE)
        assert torch.get_num_threads() == 2
        with multiprocessing.get_context("fork").Pool(1) as pool:
            steps = pool.apply_async(_chroma_steps, (audio,)).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    assert steps == len(chroma_of(audio, RATE).values) > 0


@pytest.mark.parametrize("backing_db", [None, 0.0])
def test_chroma_heard_on_the_way_to_the_model_is_the_whole_recordings(
    made_store, random_model, backing_db
) -> None:
    """The tracker's chroma comes from the chunks the model reads: every one of them
    must reach it (the model's segmenting reads the audio to its end)."""
    import torch

    from drumtx.config import load_config
    from drumtx.inference import load_model
    from drumtx.processed import load_store
    from drumtx.scoring import recording_mix, store_runs

    loaded = load_model(random_model, load_config(None, []), torch.device("cpu"))
    store = load_store(made_store / "processed_data" / "validation", loaded.cfg)
    [(index, onset, _, heard)] = store_runs(loaded, store, [0], backing_db, True)
    audio = np.asarray(recording_mix(store, index, backing_db), np.float32)
    if backing_db is None:
        audio = audio / 32768.0  # the drums alone are stored as int16
    whole = chroma_of(audio, loaded.cfg.audio.sample_rate)
    assert len(heard.values) == len(whole.values) > 0
    np.testing.assert_allclose(heard.values, whole.values, rtol=1e-4, atol=1e-6)
    [(_, onset_again, _, none)] = store_runs(loaded, store, [0], backing_db)
    assert none is None
    np.testing.assert_allclose(onset_again, onset, atol=1e-6)
