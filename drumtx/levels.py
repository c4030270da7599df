"""Levels in decibels, mixing the store's tracks at a drums-to-music level, and how loud
a recording's loud parts are (what inference brings every input to).

numpy only: inference imports it to score mixes without loading the augmentation chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

VELOCITY_DB_RANGE = 40.0  # dB between MIDI velocity 1 and 127 (v ~ 10 ** (dB / 40))
SILENT_DB = -60.0  # a track quieter than this has no level to set a mix by
ACTIVE_BLOCK_SEC = 0.4  # active level: RMS of blocks this long ...
ACTIVE_PERCENTILE = 90.0  # ... at this percentile (the loud parts, not the pauses)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dB (full scale = 0 dB); about -200 for silence."""
    return 10 * np.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def mix_backing(
    drums: np.ndarray, music: np.ndarray, drums_to_music_db: float
) -> np.ndarray | None:
    """Drums plus music scaled so that RMS(drums) / RMS(music) is the asked level in dB;
    None where either is (nearly) silent, so no level can be set."""
    d_db, m_db = rms_db(drums), rms_db(music)
    if d_db < SILENT_DB or m_db < SILENT_DB:
        return None
    gain = 10 ** ((d_db - drums_to_music_db - m_db) / 20)
    return (drums + np.float32(gain) * music).astype(np.float32)


def scale_velocity(velocity: np.ndarray, gain_db: np.ndarray | float) -> np.ndarray:
    """Velocities in [0, 1] moved by ``gain_db`` on MIDI's 40 dB scale; 0 stays 0."""
    moved = velocity * 10 ** (np.asarray(gain_db) / VELOCITY_DB_RANGE)
    return np.clip(moved, 1 / 127, 1.0).astype(np.float32) * (velocity > 0)


def active_level_db(chunks: Iterable[np.ndarray], sample_rate: int) -> float:
    """How loud a recording's loud parts are: the ACTIVE_PERCENTILE-th percentile of
    its ACTIVE_BLOCK_SEC blocks' RMS, dB re full scale (about -200 for silence).

    Pauses, fade-outs and a quiet intro do not pull it down as a whole-file RMS
    would, and one loud crash does not push it up as the peak would. Each block's
    mean is taken out first: a DC offset, which the model does not hear, is no level
    (one of 0.2 made a take 14 dB too loud). Takes the
    audio as chunks (a file streamed once, or an array's :func:`chunks`); a last
    partial block counts if it is at least half a block long.
    """
    block = max(1, round(ACTIVE_BLOCK_SEC * sample_rate))
    powers: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float64)
    for chunk in chunks:
        x = np.concatenate([carry, np.asarray(chunk, dtype=np.float64)])
        n_full = len(x) // block
        if n_full:
            powers.append(x[: n_full * block].reshape(n_full, block).var(axis=1))
        carry = x[n_full * block :]
    if len(carry) and (len(carry) >= block / 2 or not powers):
        powers.append(carry.var(keepdims=True))
    if not powers:
        return 10 * np.log10(1e-20)
    power = float(np.percentile(np.concatenate(powers), ACTIVE_PERCENTILE))
    return 10 * np.log10(power + 1e-20)


class PeakMeter:
    """The loudest sample of audio streamed through :meth:`wrap`, in dB re full scale
    (``peak_db``; about -200 until a non-zero sample passes)."""

    def __init__(self) -> None:
        self.peak = 0.0

    def wrap(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The same chunks, unchanged; their peak is kept on the way."""
        for chunk in chunks:
            if len(chunk):
                self.peak = max(self.peak, float(np.max(np.abs(chunk))))
            yield chunk

    @property
    def peak_db(self) -> float:
        return 20 * np.log10(self.peak + 1e-10)
