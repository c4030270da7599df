"""The percussion screen refuses a drum kit mixed into music, keeps the music alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drumtx.levels import mix_backing
from drumtx.screen import (
    EXCERPT_SEC,
    ExcerptScore,
    excerpt_bounds,
    keep_mask,
    pulse,
    screen_audio,
    spectral_features,
)
from drumtx.synth import SynthKit
from drumtx.synth.grooves import generate_groove

SR = 24000
MODEL_PATH = Path(__file__).resolve().parents[1] / "drumtx" / "models" / "default.pt"


def tonal_music(seconds: float, seed: int = 0) -> np.ndarray:
    """Slow chords of sawtooth-ish partials with soft attacks: music without a kit."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.zeros(n)
    chord_samples = int(2.0 * SR)
    for start in range(0, n, chord_samples):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        stop = min(n, start + chord_samples)
        env = np.minimum(1.0, (t[start:stop] - t[start]) / 0.3)  # 300 ms swell
        for ratio in (1.0, 1.25, 1.5):
            for k in range(1, 6):
                phase = 2 * np.pi * root * ratio * k * t[start:stop]
                out[start:stop] += env * np.sin(phase) / k
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


def groove(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    while (g := generate_groove(rng)).beat_type != "beat":
        pass
    audio = SynthKit(seed).render(g.notes, seconds + 1.0, SR)
    return audio[SR : SR + int(seconds * SR)]


def low_notes(decay_sec: float, period_sec: float = 1.2, seconds: float = 10.0):
    """A 55 Hz note every ``period_sec`` dying away over ``decay_sec``: a bass drum's
    thump where short (a kick every 1.2 s: 48 a minute in 10 s), a bass line's note
    where long."""
    t = np.arange(int(0.6 * SR)) / SR
    attack = np.minimum(1.0, t / 0.002)
    note = np.sin(2 * np.pi * 55.0 * t) * np.exp(-t / decay_sec) * attack
    out = np.zeros(int(seconds * SR))
    for start in np.arange(0.3, seconds - 0.4, period_sec):
        i = int(start * SR)
        n = min(len(note), len(out) - i)
        out[i : i + n] += note[:n]
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def loaded():
    import torch

    from drumtx.config import load_config
    from drumtx.inference import load_model

    return load_model(MODEL_PATH, load_config(None), torch.device("cpu"))


def test_pulse_sees_a_beat_and_not_noise() -> None:
    beat = np.zeros(1000)
    beat[::50] = 1.0  # 120 BPM at 100 frames a second
    assert pulse(beat) > 0.9
    assert pulse(np.random.default_rng(0).random(1000)) < 0.2
    assert pulse(np.zeros(1000)) == 0.0


def test_excerpts_cover_the_file_and_a_short_tail_joins_the_last() -> None:
    bounds = excerpt_bounds(int(25.5 * SR), SR)
    assert bounds == [(0, 10 * SR), (10 * SR, int(25.5 * SR))]
    assert excerpt_bounds(SR, SR) == [(0, SR)]  # a file shorter than one excerpt


def test_keep_mask_drops_drum_excerpts_their_neighbours_and_drummy_files() -> None:
    def score(drums: bool) -> ExcerptScore:
        return ExcerptScore(0.0, 1.0 if drums else 0.0, 1.0 if drums else 0.0)

    ten = [score(i == 5) for i in range(10)]
    assert keep_mask(ten).tolist() == [True] * 4 + [False] * 3 + [True] * 3
    assert not keep_mask([score(i % 2 == 0) for i in range(10)]).any()


@pytest.mark.parametrize("level_db", [-6.0, 0.0, 6.0])
def test_model_screen_refuses_a_groove_in_music_and_keeps_the_music(
    loaded, level_db: float
) -> None:
    n = int(EXCERPT_SEC * SR)
    music = tonal_music(EXCERPT_SEC)
    [alone] = screen_audio(music, SR, loaded)
    assert not alone.drums, alone
    mixed = mix_backing(groove(EXCERPT_SEC, seed=int(level_db) + 7), music, level_db)
    [scored] = screen_audio(mixed[:n] / np.abs(mixed).max(), SR, loaded)
    assert scored.drums and scored.model_drums, scored


def test_thumps_count_a_bass_drum_not_a_bass_line() -> None:
    music = tonal_music(EXCERPT_SEC, seed=5)
    for level_db in (0.0, -12.0):
        drum = mix_backing(low_notes(0.04), music, level_db)
        bass = mix_backing(low_notes(0.5), music, level_db)
        assert 36 <= spectral_features(drum, SR)[2] <= 48, level_db
        assert spectral_features(bass, SR)[2] == 0, level_db
    assert spectral_features(music, SR)[2] == 0


def test_a_lone_kick_needs_the_model_and_the_thumps_to_agree() -> None:
    def score(kicks: float, share: float, thumps: float) -> ExcerptScore:
        return ExcerptScore(0.0, 0.0, 0.0, kicks, 0.0, 1, thumps, kicks, share)

    assert score(48, 1.0, 48).lone_kick and score(48, 1.0, 48).drums
    assert not score(48, 1.0, 0).drums  # kicks on a bass line: no thumps
    assert not score(48, 0.3, 48).drums  # palm-muted guitar: "kicks" among snares
    assert not score(12, 1.0, 48).drums  # a few loud thumps


def test_model_screen_refuses_a_lone_bass_drum_under_music_and_keeps_a_bass_line(
    loaded,
) -> None:
    """Cinematic music's heartbeat of bass-drum hits under a pad is no kit (one class,
    slow) yet a drum; a bass line just as sparse stays."""
    music = tonal_music(EXCERPT_SEC, seed=5)
    for level_db in (-8.0, -12.0):
        drum = mix_backing(low_notes(0.04), music, level_db)
        [scored] = screen_audio(drum / np.abs(drum).max() / 2, SR, loaded)
        assert scored.lone_kick and not scored.model_drums, scored
        assert not scored.spectral_drums, scored  # only the new test sees it
        bass = mix_backing(low_notes(0.5), music, level_db)
        [scored] = screen_audio(bass / np.abs(bass).max() / 2, SR, loaded)
        assert not scored.drums, scored


def test_spectral_screen_alone_keeps_tonal_music_and_sees_a_loud_groove() -> None:
    music = tonal_music(2 * EXCERPT_SEC, seed=3)
    assert not any(s.drums for s in screen_audio(music, SR))
    mixed = mix_backing(groove(2 * EXCERPT_SEC, seed=4), music, 12.0)
    scores = screen_audio(mixed / np.abs(mixed).max(), SR)
    assert all(s.perc_share > max(x.perc_share for x in screen_audio(music, SR))
               for s in scores)  # fmt: skip


def test_a_model_at_another_rate_hears_the_audio_resampled_to_its_own(
    random_model_48k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_music_pool screens 24 kHz audio; a 48 kHz model (tools/widen_model.py
    --sample-rate 48000) must hear it resampled to 48 kHz, not its samples as 48 kHz
    audio (an octave up, in half the time), and its frames must cover the whole file
    (each excerpt's model features read the frames of its own seconds)."""
    import torch

    import drumtx.inference
    from drumtx.audio import resample
    from drumtx.config import load_config
    from drumtx.inference import load_model
    from drumtx.screen import model_onsets

    loaded = load_model(random_model_48k, load_config(None), torch.device("cpu"))
    assert loaded.cfg.audio.sample_rate == 48000
    heard: list[np.ndarray] = []
    real = drumtx.inference.array_activations

    def recording(loaded, audio, *args, **kwargs):
        heard.append(np.asarray(audio))
        return real(loaded, audio, *args, **kwargs)

    monkeypatch.setattr(drumtx.inference, "array_activations", recording)
    music = tonal_music(2 * EXCERPT_SEC)  # at SR, 24 kHz
    scores = screen_audio(music, SR, loaded)
    assert [s.start_sec for s in scores] == [0.0, EXCERPT_SEC]
    [audio] = heard
    np.testing.assert_array_equal(audio, resample(music, SR, 48000))
    onset, _, fps = model_onsets(loaded, music, SR)
    assert abs(onset.shape[0] - 2 * EXCERPT_SEC * fps) <= 1
