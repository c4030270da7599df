"""Recorded melodic instruments (a DI bass, an electric guitar) playing backing parts.

The same SFZ reader as the sampled drum kits (``drumtx.synth.sfz``), read as a pitched
instrument: each note sounds the regions its key and velocity select (one round robin,
drawn), pitched by the region's key tracking, cut at the note's end with a short
release. Recorded bass and guitar notes carry what synthesised ones lack (pick and
finger noise, fret buzz, string scrapes), the sounds that fire toms and kicks in real
mixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drumtx.errors import ConfigError
from drumtx.synth.instruments import PitchedNote
from drumtx.synth.sfz import read_sfz, render_region, velocity_gain

RELEASE_SEC = 0.12  # fade after a note's end (ampeg_release is not read)
SAMPLED_HINT = "give a melodic .sfz instrument whose samples sit beside it"


class SampledInstrument:
    """A melodic SFZ instrument; ``render`` plays a part's notes through it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.regions = [r for r in read_sfz(self.path) if r.sample.is_file()]
        if not self.regions:
            raise ConfigError(
                f"{self.path}: no playable regions with samples on disk",
                hint=SAMPLED_HINT,
            )
        self.lowest = min(r.lokey for r in self.regions)
        self.highest = max(r.hikey for r in self.regions)
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def in_range(self, pitch: int) -> int:
        """``pitch`` moved by octaves into the instrument's key range."""
        while pitch < self.lowest and pitch + 12 <= self.highest:
            pitch += 12
        while pitch > self.highest and pitch - 12 >= self.lowest:
            pitch -= 12
        return pitch

    def chosen(self, pitch: int, velocity: int, rng: np.random.Generator) -> list[int]:
        """Indices of the regions one note sounds: key, velocity, random range and a
        drawn round robin."""
        hits = [
            i for i, r in enumerate(self.regions)
            if r.lokey <= pitch <= r.hikey and r.lovel <= velocity <= r.hivel
        ]  # fmt: skip
        if not hits:
            return []
        draw = rng.random()
        hits = [
            i for i in hits
            if self.regions[i].lorand <= draw < self.regions[i].hirand
        ]  # fmt: skip
        if not hits:
            return []
        length = max(self.regions[i].seq_length for i in hits)
        position = int(rng.integers(length)) + 1
        same = [i for i in hits if self.regions[i].seq_position == position]
        return same or hits[:1]

    def _sound(self, index: int, pitch: int, sample_rate: int) -> np.ndarray:
        key = (index, pitch, sample_rate)
        if key not in self._cache:
            self._cache[key] = render_region(self.regions[index], pitch, sample_rate)
        return self._cache[key]

    def render(
        self,
        notes: Sequence[PitchedNote],
        n_samples: int,
        sample_rate: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Every note, summed into (n_samples,) float32."""
        out = np.zeros(n_samples, np.float32)
        release = int(RELEASE_SEC * sample_rate)
        fade = np.linspace(1.0, 0.0, release, dtype=np.float32)
        for note in notes:
            start = int(round(note.start_sec * sample_rate))
            if start >= n_samples:
                continue
            pitch = self.in_range(note.pitch)
            velocity = int(np.clip(note.velocity, 1, 127))
            length = int(round(note.dur_sec * sample_rate)) + release
            for i in self.chosen(pitch, velocity, rng):
                region = self.regions[i]
                gain = np.float32(region.gain * velocity_gain(velocity, region))
                sound = self._sound(i, pitch, sample_rate)[:length] * gain
                if len(sound) == length:  # cut at the note's end: fade out
                    sound[-release:] *= fade
                stop = min(n_samples, start + len(sound))
                out[max(start, 0) : stop] += sound[max(0, -start) : stop - start]
        return out
