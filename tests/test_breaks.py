"""Drum breaks in training crops (data.break_prob): the drums stop for a while, the band
plays on, and no onset is asked for where nothing can be heard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_augment import backing_store
from test_music import OFF  # every effect off but the band

from drumtx.augment import BREAK_SHARE, AugmentConfig, Augmenter, drum_break
from drumtx.config import DataConfig, load_config
from drumtx.data import CropDataset, CropSpec, augment_config
from drumtx.errors import ConfigError
from drumtx.levels import rms_db

SR = 24000
HOP = 240


def clicks_and_tone(n: int = 2 * SR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drums: a click every 0.1 s; music: a 220 Hz tone; velocity targets at clicks."""
    drums = np.zeros(n, np.float32)
    starts = np.arange(0, n - 100, SR // 10)
    for s in starts:
        drums[s : s + 100] = np.hanning(100).astype(np.float32)
    music = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / SR)).astype(np.float32)
    velocity = np.zeros((n // HOP + 1, 9), np.float32)
    velocity[starts // HOP, 0] = 0.8
    return drums, music, velocity


def test_a_break_is_silence_somewhere_in_the_crop_and_one_elsewhere() -> None:
    n = 4 * SR
    for seed in range(20):
        kept = drum_break(n, SR, np.random.default_rng(seed))
        assert kept.shape == (n,) and kept.dtype == np.float32
        assert kept.min() == 0.0 and kept.max() <= 1.0
        below = np.flatnonzero(kept < 0.5)
        # one stretch, at least a share of the crop less the fade, then back to 1
        assert np.all(np.diff(below) == 1)
        assert len(below) >= BREAK_SHARE[0] * n - 0.2 * SR
        fade = int(0.2 * SR)  # the longest fade-out
        assert np.all(kept[: max(0, below[0] - fade)] == 1.0)
        assert np.all(kept[below[-1] + int(0.01 * SR) :] == 1.0)


def test_the_band_plays_on_where_the_drums_stop_and_their_targets_go() -> None:
    drums, music, velocity = clicks_and_tone()
    level = 0.0
    cfg = AugmentConfig(**OFF, backing_prob=1.0, break_prob=1.0,
                        backing_db_min=level, backing_db_max=level)  # fmt: skip
    augment = Augmenter(cfg, SR, HOP)
    gain = np.float32(10 ** ((rms_db(drums) - level - rms_db(music)) / 20))
    for seed in range(8):
        rng = np.random.default_rng(seed)
        audio, vel, silenced = augment.run(drums, music, velocity, rng)
        assert silenced is not None and silenced.shape == (len(velocity),)
        assert 0 < silenced.sum() < len(silenced) or silenced.all()
        heard = audio - gain * music  # what is left of the drums
        at = np.arange(len(velocity)) * HOP
        at = at[at < len(drums)]
        loud = np.abs(drums[at]) > 0.1
        off = silenced[: len(at)]
        # where a frame is silenced its drums are at most half there, elsewhere at least
        here, there = np.abs(heard[at]), np.abs(drums[at])
        assert np.all(here[off & loud] <= 0.5 * there[off & loud] + 1e-4)
        assert np.all(here[~off & loud] >= 0.5 * there[~off & loud] - 1e-4)
        assert np.all(vel[silenced] == 0.0)
        assert np.array_equal(vel[~silenced], velocity[~silenced])


def test_no_break_without_a_band_or_at_prob_zero() -> None:
    drums, music, velocity = clicks_and_tone()
    no_band = Augmenter(AugmentConfig(**OFF, backing_prob=0.0, break_prob=1.0), SR, HOP)
    _, vel, silenced = no_band.run(drums, music, velocity, np.random.default_rng(0))
    assert silenced is None and np.array_equal(vel, velocity)
    # break_prob 0 draws nothing: the chain is the one it was, crop for crop
    plain = Augmenter(AugmentConfig(**OFF, backing_prob=0.5), SR, HOP)
    zero = Augmenter(AugmentConfig(**OFF, backing_prob=0.5, break_prob=0.0), SR, HOP)
    for seed in range(6):
        a, _ = plain(drums, music, velocity, np.random.default_rng(seed))
        b, _, silenced = zero.run(drums, music, velocity, np.random.default_rng(seed))
        assert np.array_equal(a, b) and silenced is None


def test_config_key_is_validated_and_reaches_the_augmenter() -> None:
    with pytest.raises(ConfigError, match="data.break_prob"):
        DataConfig(break_prob=1.5)
    cfg = load_config(None, ["data.break_prob=0.3"])
    assert augment_config(cfg.data).break_prob == 0.3
    assert load_config(None, []).data.break_prob == 0.0  # off unless asked for


def test_loader_drops_the_onsets_a_break_silenced(tmp_path: Path) -> None:
    split_dir = backing_store(tmp_path / "store")  # clicks at 1000 + 6000 k samples
    cfg = DataConfig(**OFF, backing_prob=1.0, break_prob=1.0, crops_per_block=4,
                     block_mb=0.5, shuffle_blocks=2)  # fmt: skip
    stream = iter(CropDataset(CropSpec(split_dir, SR, HOP, 9, SR, seed=3), cfg))
    frames = [round(s / HOP) for s in range(1000, SR - 200, 6000)]
    fewer = 0
    for _ in range(12):
        audio, onset, velocity, mask = next(stream)
        found = np.flatnonzero(onset[:, 0]).tolist()
        assert set(found) <= set(frames)
        assert np.array_equal(mask[:, 0] > 0, onset[:, 0] > 0)
        assert np.all(velocity[onset == 0] == 0)
        band = np.percentile(np.abs(audio), 90)  # clicks fill 3 % of the crop
        for f in found:  # every onset still asked for is still heard
            assert np.abs(audio[f * HOP : f * HOP + 200]).max() > 3 * band
        fewer += len(found) < len(frames)
    assert fewer >= 6  # recording 3's band is silent: no break there, the rest break
