"""Snare buzz: the snare's wires rattling in sympathy with the other drums.

On a real kit the snare's wires answer every tom (and, more softly, the kick): the
tom's sound shakes the bottom head and the wires buzz for as long as it rings, so a
recorded tom carries a snare-like hiss above 2 kHz. Most training kits lack it (close
microphones, one-shot samples, synthesised toms) and a model trained on them hears
that hiss as the snare: isolated toms of a recorded kit nobody trains on score a
snare probability of 0.45-0.79 until their highs after the first 15 ms are cut (then
0.01-0.02). ``SnareBuzz`` adds the hiss to a render's tom (and maybe kick) hits:
band-passed noise that follows the hit's own envelope, a level drawn per render.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from drumtx.synth.dsp import Sound

TOM_DB = (-30.0, -12.0)  # buzz level against the tom's, dB (RMS over LEVEL_SEC)
KICK_PROB = 0.5  # renders whose kick buzzes the wires too
KICK_DB_BELOW_TOM = (0.0, 8.0)  # ... that much softer than after a tom
LOW_HZ = (1500.0, 3500.0)  # band of the wires' hiss
HIGH_HZ = (6000.0, 11000.0)
DECAY_POWER = (1.0, 2.0)  # buzz envelope = the hit's envelope ** this (>1: dies sooner)
DELAY_SEC = (0.0005, 0.003)  # the wires answer a little after the drum is struck
HIT_SPREAD_DB = 1.5  # per-hit variation of the buzz level, dB (SD)
LEVEL_SEC = 0.1  # the window after the onset that levels are matched over
ENVELOPE_SEC = 0.005  # RMS window of the hit's envelope


def buzzes(voice: str) -> bool:
    """Whether a hit of this voice can set the snare's wires buzzing."""
    return voice.startswith("tom_") or voice == "kick"


@dataclass(frozen=True)
class SnareBuzz:
    """How a render's snare wires answer its toms and kick."""

    tom_db: float  # buzz level against a tom hit's, dB
    kick_db: float | None  # against a kick hit's; None: the kick leaves them still
    low_hz: float  # band-pass edges of the hiss
    high_hz: float
    decay_power: float  # buzz envelope = the hit's envelope ** decay_power

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SnareBuzz:
        """A random buzz; values rounded so that its ``key`` reproduces it."""
        tom_db = round(float(rng.uniform(*TOM_DB)), 2)
        kick = rng.random() < KICK_PROB
        below = float(rng.uniform(*KICK_DB_BELOW_TOM))
        return cls(
            tom_db=tom_db,
            kick_db=round(tom_db - below, 2) if kick else None,
            low_hz=round(float(rng.uniform(*LOW_HZ))),
            high_hz=round(float(rng.uniform(*HIGH_HZ))),
            decay_power=round(float(rng.uniform(*DECAY_POWER)), 3),
        )

    def key(self) -> str:
        """Everything the buzz sounds like, for a render's digest."""
        kick = "-" if self.kick_db is None else f"{self.kick_db:.2f}"
        return (
            f"buzz {self.tom_db:.2f},{kick},{self.low_hz:.0f},{self.high_hz:.0f},"
            f"{self.decay_power:.3f}"
        )

    def level_db(self, voice: str) -> float | None:
        """The buzz level after a hit of ``voice``; None: no buzz."""
        if voice.startswith("tom_"):
            return self.tom_db
        if voice == "kick":
            return self.kick_db
        return None

    def sound(
        self, hit: Sound, level_db: float, sample_rate: int, rng: np.random.Generator
    ) -> Sound:
        """The wires' answer to ``hit``: anchored like it, ``level_db`` under it over
        the LEVEL_SEC after its onset, at the same gain."""
        audio = hit.audio.astype(np.float64)
        n = audio.size
        width = max(1, round(ENVELOPE_SEC * sample_rate))
        power = uniform_filter1d(audio**2, width, mode="constant")
        env = np.sqrt(np.maximum(power, 0.0))  # the running sum can dip below 0
        env = (env / (env.max() + 1e-12)) ** self.decay_power
        delay = round(rng.uniform(*DELAY_SEC) * sample_rate)
        env = np.concatenate([np.zeros(delay), env])[:n]
        high = min(self.high_hz, 0.45 * sample_rate)
        sos = signal.butter(
            2, [self.low_hz, high], "bandpass", fs=sample_rate, output="sos"
        )
        hiss = signal.sosfilt(sos, rng.standard_normal(n)) * env
        window = slice(hit.onset, hit.onset + round(LEVEL_SEC * sample_rate))
        target = _rms(audio[window]) * 10 ** (level_db / 20)
        scale = target / (_rms(hiss[window]) + 1e-12)
        return Sound((hiss * scale).astype(np.float32), hit.onset)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
