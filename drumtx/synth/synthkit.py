"""``SynthKit``: a kit whose every voice is synthesised from one seed.

One seed is one kit: its timbre is drawn at random (``voices.draw_params``) so a model
sees many kits. Each voice is cached as N_LAYERS velocity layers x N_VARIANTS
round-robin variants, so rendering a minute of drumming takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from drumtx.synth.dsp import Sound, anchor_sound, sos_filter
from drumtx.synth.kit import SYNTH_VERSION, VOICE_OF_PITCH, Kit, Strike, hat_choke
from drumtx.synth.voices import Component, draw_params, jitter_params, voice_table

N_LAYERS = 6  # velocity layers per synthesised voice
N_VARIANTS = 3  # round-robin variants per layer (per-hit variation)


class SynthKit(Kit):
    """A synthesised kit; every timbre parameter is drawn from ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.name = f"synth:{self.seed}"
        self.fingerprint = f"synth-v{SYNTH_VERSION}:{self.seed}"
        self._params = draw_params(np.random.default_rng([SYNTH_VERSION, self.seed]))
        self.voices = voice_table(self._params)  # every VOICE_OF_PITCH value
        self.fade_sec = self._params["mix"]["fade_sec"]
        self._components: dict[tuple, list[Component]] = {}
        self._sounds: dict[tuple, Sound] = {}

    def _parts(self, voice: str, variant: int, sr: int) -> list[Component]:
        key = (voice, variant, sr)
        if key not in self._components:
            fn, params, _ = self.voices[voice]
            names = sorted(set(VOICE_OF_PITCH.values()))
            rng = np.random.default_rng([self.seed, names.index(voice), variant, sr])
            self._components[key] = fn(jitter_params(params, rng), rng, sr)
        return self._components[key]

    def sound(self, voice: str, layer: int, variant: int, sr: int) -> Sound:
        """The cached sample of a voice at a velocity layer (0..N_LAYERS-1)."""
        key = (voice, layer, variant, sr)
        if key not in self._sounds:
            vel = (layer + 0.5) / N_LAYERS
            audio = sum(a * (w * (1 + s * (vel - 0.5))) for a, w, s in self._parts(
                voice, variant, sr))  # fmt: skip
            mix = self._params["mix"]
            cutoff = (
                mix["bright_lo_hz"] * (mix["bright_hi_hz"] / mix["bright_lo_hz"]) ** vel
            )
            audio = sos_filter(np.asarray(audio, np.float32), sr, "lowpass", cutoff)
            self._sounds[key] = anchor_sound(audio, sr)
        return self._sounds[key]

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        """A random round-robin variant of the voice's velocity layer."""
        layer = min(N_LAYERS - 1, int(velocity * N_LAYERS))
        snd = self.sound(voice, layer, int(rng.integers(N_VARIANTS)), sample_rate)
        mix = self._params["mix"]
        level = mix["level"][self.voices[voice][2]]
        gain = 0.5 * level * velocity ** mix["vel_exponent"]
        return Strike(snd, gain, voice, *hat_choke(voice))
