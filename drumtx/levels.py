"""Levels in decibels, and mixing the store's tracks at a drums-to-music level.

numpy only: inference imports it to score mixes without loading the augmentation chain.
"""

from __future__ import annotations

import numpy as np

VELOCITY_DB_RANGE = 40.0  # dB between MIDI velocity 1 and 127 (v ~ 10 ** (dB / 40))
SILENT_DB = -60.0  # a track quieter than this has no level to set a mix by


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
