"""How far a hit stands out of what sounds around it (drumtx.standout)."""

from __future__ import annotations

import numpy as np
import pytest

from drumtx import standout
from drumtx.standout import FLOOR_DB, band_energy, standout_bin_names, standout_db

RATE = 48000


def click(n: int, at_sec: float, gain: float, rng: np.random.Generator) -> np.ndarray:
    """A 20 ms burst of decaying white noise at ``at_sec`` in n samples of silence."""
    out = np.zeros(n, np.float32)
    start, length = round(at_sec * RATE), round(0.02 * RATE)
    decay = np.exp(-np.arange(length) / (0.004 * RATE))
    out[start : start + length] = gain * decay * rng.standard_normal(length)
    return out


def test_a_hit_on_silence_stands_out_and_one_in_a_louder_tail_does_not() -> None:
    quiet_in_wash, quiet_alone = [], []
    for seed in range(12):  # a 30 ms estimate in noise swings: judge the median
        rng = np.random.default_rng(seed)
        n = RATE
        loud = np.zeros(n, np.float32)  # a long, loud ring from 0.2 s (a crash's wash)
        ring = np.arange(n - RATE // 5)
        loud[RATE // 5 :] = 0.5 * np.exp(-ring / RATE) * rng.standard_normal(len(ring))
        quiet = click(n, 0.6, 0.005, rng)
        drums = click(n, 0.1, 0.5, rng) + loud + quiet
        got = standout_db(drums, None, RATE, np.array([0.1, 0.6]))
        assert got[0] == -FLOOR_DB  # nothing else sounding: the top of the scale
        quiet_in_wash.append(got[1])
        quiet_alone.append(standout_db(quiet, None, RATE, np.array([0.6]))[0])
    # 36 dB under the wash it reads under 0 dB; on silence, the top of the scale
    assert np.median(quiet_in_wash) < 0.0
    assert min(quiet_alone) == -FLOOR_DB


def test_music_masks_a_quiet_hit_that_stands_out_alone() -> None:
    rng = np.random.default_rng(1)
    n = RATE
    drums = click(n, 0.5, 0.01, rng)
    music = 0.2 * rng.standard_normal(n).astype(np.float32)
    alone = standout_db(drums, None, RATE, np.array([0.5]))
    mixed = standout_db(drums, music, RATE, np.array([0.5]))
    assert alone[0] > 10.0 and mixed[0] < -5.0
    # louder drums over the same music stand out again (monotone in the hit's level)
    louder = standout_db(drums * 100, music, RATE, np.array([0.5]))
    assert louder[0] > mixed[0] + 30.0


def test_a_band_the_hit_adds_nothing_to_is_not_where_it_stands_out() -> None:
    # a pure low tone starting at the onset: the high bands, silent throughout, give
    # no standout; the tone's own band does
    t = np.arange(RATE) / RATE
    tone = np.where(t >= 0.5, 0.1 * np.sin(2 * np.pi * 200 * t), 0).astype(np.float32)
    hum = 0.1 * np.sin(2 * np.pi * 3000 * t).astype(np.float32)  # loud elsewhere
    got = standout_db(tone, hum, RATE, np.array([0.5, 0.25]))
    assert got[0] > 10.0
    assert got[1] == FLOOR_DB  # at 0.25 s nothing is added in any band


def test_band_energy_frames_and_long_files(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    audio = rng.standard_normal(RATE * 3).astype(np.float32)
    energy = band_energy(audio, RATE)
    hop = RATE // 200
    assert energy.shape[1] == len(audio) // hop + 1
    assert 10 <= energy.shape[0] < 24  # the narrow low bands merged
    assert (energy > 0).all()
    # transformed a few frames at a time (as a long file is), the same numbers
    monkeypatch.setattr(standout, "_BLOCK_FRAMES", 64)
    np.testing.assert_allclose(band_energy(audio, RATE), energy, rtol=1e-5)


def test_no_onsets_and_the_bin_names() -> None:
    assert standout_db(np.zeros(100, np.float32), None, RATE, np.array([])).size == 0
    assert standout_bin_names() == ["<-10", "-10..-5", "-5..0", "0..10", ">=10"]


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_other_sample_rates(rate: int) -> None:
    rng = np.random.default_rng(3)
    drums = np.zeros(rate, np.float32)
    drums[rate // 2 : rate // 2 + 200] = rng.standard_normal(200)
    got = standout_db(drums, None, rate, np.array([0.5]))
    assert got[0] == -FLOOR_DB
