"""Augmentation toward recorded songs: onsets stay put, levels are what was asked,
velocity targets follow what the effects did to each hit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drumtx.augment import AugmentConfig, Augmenter, compress
from drumtx.config import DataConfig
from drumtx.data import CropDataset, CropSpec
from drumtx.levels import mix_backing, rms_db, scale_velocity
from drumtx.processed import load_store

SR = 24000
HOP = 240
OFF = dict(
    eq_prob=0.0, noise_prob=0.0, reverb_prob=0.0, gain_db_min=0.0, gain_db_max=0.0,
    backing_prob=0.0, compress_prob=0.0, saturate_prob=0.0, codec_prob=0.0,
)  # fmt: skip
EFFECTS = ("eq_prob", "reverb_prob", "noise_prob", "compress_prob", "saturate_prob",
           "codec_prob", "lowpass_prob")  # fmt: skip


def click_crop(onset_sample: int = 7200, n: int = 24000) -> np.ndarray:
    audio = np.zeros(n, dtype=np.float32)
    burst = np.random.default_rng(0).uniform(-0.8, 0.8, 48).astype(np.float32)
    audio[onset_sample : onset_sample + 48] = burst * np.exp(-np.arange(48) / 12)
    return audio


def energy_onset(audio: np.ndarray) -> int:
    """First sample whose 0.25 ms energy reaches a quarter of the peak energy."""
    energy = np.convolve(audio.astype(np.float64) ** 2, np.ones(6), mode="same")
    return int(np.argmax(energy >= 0.25 * energy.max()))


def no_targets(n_samples: int = 24000) -> np.ndarray:
    return np.zeros((n_samples // HOP + 1, 9), np.float32)


@pytest.mark.parametrize("effect", [*EFFECTS, "all"])
def test_augmentation_keeps_onsets_in_place(effect: str) -> None:
    probs = {k: float(effect in (k, "all")) for k in EFFECTS}
    augment = Augmenter(AugmentConfig(**{**OFF, **probs}), SR, HOP)
    click = click_crop()
    for seed in range(12):
        out, _ = augment(click, None, no_targets(), np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == click.shape
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
        assert abs(energy_onset(out) - energy_onset(click)) <= SR // 1000


def test_augmentation_output_bounded_on_loud_and_silent_input() -> None:
    all_on = {k: 1.0 for k in (*EFFECTS, "backing_prob")}
    augment = Augmenter(AugmentConfig(**{**OFF, **all_on, "gain_db_min": 6.0,
                                         "gain_db_max": 6.0}), SR, HOP)  # fmt: skip
    rng = np.random.default_rng(0)
    loud = np.clip(rng.standard_normal(12000) * 2, -1, 1).astype(np.float32)
    silent = np.zeros(12000, dtype=np.float32)
    for audio in (loud, silent):
        for music in (None, loud[::-1].copy(), silent):
            out, vel = augment(audio, music, no_targets(12000), rng)
            assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
            assert np.all(np.isfinite(vel))


@pytest.mark.parametrize("level_db", [-6.0, 0.0, 6.0, 12.0])
def test_mix_backing_sets_the_drums_to_music_level(level_db: float) -> None:
    rng = np.random.default_rng(1)
    drums = (rng.standard_normal(SR) * 0.1).astype(np.float32)
    music = (rng.standard_normal(SR) * 0.3).astype(np.float32)
    mixed = mix_backing(drums, music, level_db)
    assert rms_db(drums) - rms_db(mixed - drums) == pytest.approx(level_db, abs=0.01)
    assert mix_backing(drums, np.zeros_like(music), level_db) is None  # no level


N_RECS = 8


def backing_store(split_dir: Path, n: int = 24000) -> Path:
    """N_RECS recordings of exactly one crop: the same clicks over a different chord
    each (recording 3's backing is silent), so a crop tells its recording."""
    from drumtx.processed import FORMAT_VERSION, HITS_DTYPE

    split_dir.mkdir(parents=True)
    drums = np.zeros(n, np.float32)
    for start in range(1000, n - 200, 6000):
        drums[start : start + 200] = click_crop(0, 200)
    t = np.arange(n) / SR
    musics = [0.1 * np.sin(2 * np.pi * (110.0 + 20 * r) * t) for r in range(N_RECS)]
    musics[3][:] = 0.0
    (np.tile(drums, N_RECS) * 32767).astype(np.int16).tofile(split_dir / "audio.i16")
    (np.concatenate(musics) * 32767).astype(np.int16).tofile(split_dir / "backing.i16")
    recs = [{"audio_path": f"{r}.wav", "midi_path": f"{r}.midi", "offset": r * n,
             "length": n, "split": "train", "kit": "k", "style": "s",
             "duration_sec": n / SR} for r in range(N_RECS)]  # fmt: skip
    (split_dir / "recordings.json").write_text(json.dumps(recs))
    hits = np.array([(r, s, 0, 100, 36) for r in range(N_RECS)
                     for s in range(1000, n - 200, 6000)], HITS_DTYPE)  # fmt: skip
    np.save(split_dir / "hits.npy", hits)
    manifest = {"format_version": FORMAT_VERSION, "sample_rate": SR, "vocab": "roland9",
                "n_recordings": N_RECS, "n_hits": len(hits), "n_samples": N_RECS * n,
                "skipped": [], "tracks": ["backing"]}  # fmt: skip
    (split_dir / "manifest.json").write_text(json.dumps(manifest))
    return split_dir


@pytest.mark.parametrize("level_db", [-6.0, 3.0, 12.0])
def test_loader_mixes_at_the_asked_level_within_half_a_db(
    tmp_path: Path, level_db: float
) -> None:
    split_dir = backing_store(tmp_path / "train")
    cfg = DataConfig(**{**OFF, "backing_prob": 1.0, "backing_db_min": level_db,
                        "backing_db_max": level_db, "crops_per_block": 4,
                        "block_mb": 0.5, "shuffle_blocks": 2})  # fmt: skip
    spec = CropSpec(split_dir, 24000, HOP, 9, SR, seed=3)
    store = load_store(split_dir)
    drums = np.asarray(store.audio[:24000], np.float32) / 32768
    stream = iter(CropDataset(spec, cfg))  # one block holds the whole store
    levels, unmixed = [], 0
    for _ in range(24):
        audio = next(stream)[0]
        added = audio - drums  # every crop is one whole recording's clicks
        if not added.any():
            unmixed += 1  # recording 3: silent backing, nothing to set a level by
            continue
        levels.append(rms_db(drums) - rms_db(added))
    assert len(levels) >= 12 and unmixed >= 1
    assert np.allclose(levels, level_db, atol=0.5), levels


def test_velocity_follows_compression_but_not_global_gain() -> None:
    rng = np.random.default_rng(2)
    drums = np.zeros(SR, np.float32)
    quiet, loud = 4800, 14400
    drums[quiet : quiet + 240] = 0.05 * rng.standard_normal(240)
    drums[loud : loud + 2400] = 0.9 * rng.standard_normal(2400)
    velocity = no_targets()
    velocity[quiet // HOP, 0], velocity[loud // HOP, 1] = 0.4, 0.9
    gain_only = Augmenter(AugmentConfig(**{**OFF, "gain_db_min": -12.0,
                                           "gain_db_max": -12.0}), SR, HOP)  # fmt: skip
    _, same = gain_only(drums, None, velocity, rng)
    np.testing.assert_array_equal(same, velocity)
    squashed, gain_db = compress(drums, SR, np.random.default_rng(5))
    assert gain_db[loud + 200] < gain_db[quiet] - 1.0  # the loud hit was turned down
    comp = Augmenter(AugmentConfig(**{**OFF, "compress_prob": 2.0 / 2}), SR, HOP)
    moved = [comp(drums, None, velocity, np.random.default_rng(s))[1] for s in range(8)]
    changed = [v for v in moved if not np.array_equal(v, velocity)]
    assert changed, "compression happened in some of 8 draws"
    for v in changed:
        ratio_before = velocity[loud // HOP, 1] / velocity[quiet // HOP, 0]
        ratio_after = v[loud // HOP, 1] / v[quiet // HOP, 0]
        assert ratio_after < ratio_before  # less dynamic range, as in the audio
        assert np.count_nonzero(v) == 2  # no targets appear or vanish


def test_scale_velocity_uses_the_40_db_scale() -> None:
    v = np.array([[0.0, 0.5, 1.0]], np.float32)
    out = scale_velocity(v, -20.0)
    assert out[0, 0] == 0.0  # no hit stays no hit
    assert out[0, 1] == pytest.approx(0.5 * 10**-0.5)
    assert scale_velocity(v, 40.0)[0, 1] == 1.0  # clipped at MIDI's 127


def test_codec_leaves_what_it_cannot_encode_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import soundfile

    from drumtx import augment

    bad = np.full(2400, np.nan, np.float32)  # LAME would abort the whole process
    np.testing.assert_array_equal(
        augment.lossy_codec(bad, SR, np.random.default_rng(0)), bad
    )

    def broken_write(*args, **kwargs):
        raise soundfile.LibsndfileError(1, "")

    monkeypatch.setattr(augment.sf, "write", broken_write)
    click = click_crop(100, 2400)
    out = augment.lossy_codec(click, SR, np.random.default_rng(0))
    np.testing.assert_array_equal(out, click)


def test_loudness_normalisation_sets_the_crop_level() -> None:
    cfg = AugmentConfig(**{**OFF, "loudness_prob": 1.0, "loudness_db_min": -20.0,
                           "loudness_db_max": -20.0})  # fmt: skip
    augment = Augmenter(cfg, SR, HOP)
    rng = np.random.default_rng(4)
    for scale in (0.003, 0.05, 0.3):
        quiet = (scale * rng.standard_normal(SR)).astype(np.float32)
        out, velocity = augment(quiet, None, no_targets(), rng)
        assert rms_db(out) == pytest.approx(-20.0, abs=0.05)
    silent = np.zeros(SR, np.float32)
    assert not augment(silent, None, no_targets(), rng)[0].any()  # nothing to raise


def test_band_limit_cuts_above_its_cutoff_and_leaves_a_narrow_band_alone() -> None:
    """lowpass_prob: at 48 kHz the mix keeps nothing above 20 kHz and most of what is
    below 11 kHz (as a 22.05 kHz file or an MP3 would hear it); at a rate whose band
    ends under the cutoff the crop is unchanged."""
    from drumtx.augment import LOWPASS_HZ, band_limit

    noise = np.random.default_rng(5).standard_normal(48000).astype(np.float32) * 0.1
    freqs = np.fft.rfftfreq(len(noise), 1 / 48000)
    for seed in range(6):
        out = band_limit(noise, 48000, np.random.default_rng(seed))
        power = np.abs(np.fft.rfft(out)) ** 2
        ref = np.abs(np.fft.rfft(noise)) ** 2
        high = freqs > LOWPASS_HZ[1] + 500
        above = power[high].sum() / ref[high].sum()
        below = power[freqs < 10000].sum() / ref[freqs < 10000].sum()
        assert above < 1e-3 and below > 0.95
    narrow = noise[:24000]
    cutoffs = [np.random.default_rng(s).uniform(*LOWPASS_HZ) for s in range(20)]
    for seed, cutoff in enumerate(cutoffs):
        out = band_limit(narrow, 16000, np.random.default_rng(seed))
        assert cutoff >= 0.95 * 8000 and np.array_equal(out, narrow)
