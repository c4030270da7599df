"""Kits that sound recorded: virtual kits and studio sessions around any kit.

- ``VirtualKit`` takes each instrument family (kick, snare, hi-hat, toms, crashes,
  ride) from a different kit, so a model never learns "this snare goes with that kick".
- ``TunedToms`` tunes a kit's toms as a set, higher or lower than it was sampled, as
  drummers tune theirs.
- ``StudioKit`` puts a kit in a room: each instrument at its own place, tuned and
  balanced like a mix engineer would, heard through close microphones (which also pick
  up the other drums), overheads and room microphones; each hit's sound is convolved
  with the mono mix of what those microphones hear of its instrument.

Both only answer ``strike`` per voice, so they compose with every kit and with each
other, and the shared render (onset anchoring, chokes, mixing) stays the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import signal

from drumtx.synth.dsp import Sound, anchor_sound
from drumtx.synth.kit import FAMILY, Kit, Strike
from drumtx.synth.room import Room, room_ir

DONOR_GROUPS = {  # families that come from one donor kit together
    "kick": ("kick",),
    "snare": ("snare",),
    "hihat": ("hihat",),
    "toms": ("tom_high", "tom_mid", "tom_low"),
    "crash": ("crash",),
    "ride": ("ride",),
}
# Where each family sits, metres from the kit's centre on the floor (x right, y back).
PLACES = {
    "kick": (0.0, 0.0, 0.35), "snare": (-0.35, 0.3, 0.6), "hihat": (-0.6, 0.35, 0.85),
    "tom_high": (-0.15, 0.05, 0.8), "tom_mid": (0.15, 0.05, 0.8),
    "tom_low": (0.5, 0.3, 0.55), "crash": (-0.55, -0.1, 1.3), "ride": (0.6, -0.05, 1.2),
}  # fmt: skip
CLOSE_MIC_PROB = {  # how often a family gets its own close microphone
    "kick": 0.85, "snare": 0.85, "hihat": 0.5, "tom_high": 0.6, "tom_mid": 0.6,
    "tom_low": 0.6, "crash": 0.1, "ride": 0.2,
}  # fmt: skip
TUNING_SEMITONES = {  # how far each family may be retuned, up or down
    "kick": 2.0, "snare": 2.0, "tom_high": 1.0, "tom_mid": 1.0, "tom_low": 1.0,
    "hihat": 1.0, "crash": 1.0, "ride": 1.0,
}  # fmt: skip
# Toms are tuned as a set: one offset for all three (each then moves by its own
# TUNING_SEMITONES, so the high tom stays above the low one), drawn mostly upward.
# Sampled kits' toms sit low (high toms 100-160 Hz); drummers tune them far higher (a
# jazz kit's rack tom can sit where a rock snare does), and a model that never heard a
# high tom hears one as a snare: the shipped model called a recorded kit's high tom a
# snare at every hit, and a training kit's own high tom once it was raised 4 semitones
# (docs/model-history.md, *Toms tuned high*).
TOM_SET_SEMITONES = (-3.0, 9.0)
TOMS = ("tom_high", "tom_mid", "tom_low")
# The studio before 2026-12-07 tuned each tom on its own, up to this far either way, and
# not as a set: what the model card's held-out set was rendered with (``toms_as_set``).
TOM_EACH_SEMITONES = 3.0


def _seeded(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class VirtualKit(Kit):
    """Each instrument family from a kit drawn from ``donors`` by ``seed``."""

    def __init__(self, seed: int, donors: Sequence[Kit]) -> None:
        if not donors:
            raise ValueError("a virtual kit needs at least one donor kit")
        rng = _seeded("virtual", seed, *sorted(k.fingerprint for k in donors))
        self.name = f"virtual:{seed}"
        self._donor_of: dict[str, Kit] = {}
        for families in DONOR_GROUPS.values():
            able = [k for k in donors if any(FAMILY[v] in families for v in k.voices)]
            if able:
                donor = able[int(rng.integers(len(able)))]
                for voice in donor.voices:
                    if FAMILY[voice] in families:
                        self._donor_of[voice] = donor
        self.voices = frozenset(self._donor_of)
        self.fade_sec = max(k.fade_sec for k in donors)
        used = sorted({k.fingerprint for k in self._donor_of.values()})
        self.fingerprint = (
            f"virtual:{seed}:"
            + hashlib.sha256("|".join(used).encode()).hexdigest()[:16]
        )

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        return self._donor_of[voice].strike(voice, velocity, sample_rate, rng)


def _draw_mics(
    room: Room, centre: np.ndarray, rng: np.random.Generator
) -> list[tuple[np.ndarray, float]]:
    """Close microphones, one or two overheads and maybe room microphones."""
    mics = []
    for family, prob in CLOSE_MIC_PROB.items():
        if rng.random() < prob:
            offset = rng.uniform(-1, 1, 3) * 0.05 + np.array([0, 0, 0.08])
            gain = 10 ** (rng.uniform(-8, 0) / 20)
            mics.append((centre + np.array(PLACES[family]) + offset, gain))
    for _ in range(int(rng.integers(1, 3))):
        pos = centre + np.array(
            [rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3), rng.uniform(1.5, 2.2)]
        )
        mics.append((pos, 10 ** (rng.uniform(-6, 6) / 20)))
    if rng.random() < 0.5:
        far = np.array(
            [
                rng.uniform(0.5, room.size_m[0] - 0.5),
                rng.uniform(0.5, room.size_m[1] - 0.5),
                1.5,
            ]
        )
        mics.append((far, 10 ** (rng.uniform(-14, 0) / 20)))
    return mics


def _draw_room(rng: np.random.Generator) -> Room:
    size = (rng.uniform(3.0, 12.0), rng.uniform(3.0, 9.0), rng.uniform(2.4, 5.0))
    return Room(size, absorption=rng.uniform(0.15, 0.8))


def retune(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch by playback speed, as tuning a drum head (or a sampler) does."""
    if abs(semitones) < 0.05:
        return audio
    rate = 2 ** (semitones / 12)
    positions = np.arange(0, len(audio) - 1, rate)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)


def retuned(sound: Sound, semitones: float) -> Sound:
    """``sound`` ``semitones`` higher (played faster) or lower, onset and all."""
    audio = retune(sound.audio, semitones)
    onset = min(round(sound.onset / 2 ** (semitones / 12)), max(audio.size - 1, 0))
    return Sound(audio, onset)


class TunedToms(Kit):
    """``base`` with its toms tuned as a set (``TOM_SET_SEMITONES``), every other
    voice as it was: what ``StudioKit`` does to the toms, without the room."""

    def __init__(self, base: Kit, seed: int) -> None:
        self.base = base
        self.name = base.name
        self.voices = base.voices
        self.fade_sec = base.fade_sec
        lo, hi = TOM_SET_SEMITONES
        self.fingerprint = f"toms:{seed}:{lo:+g}{hi:+g}:{base.fingerprint}"
        rng = _seeded("tuned toms", seed, base.fingerprint)
        offset = rng.uniform(lo, hi)
        spread = rng.uniform(-1, 1, len(TOMS))  # each tom as a studio strays from it
        self.semitones = {f: float(offset + d * TUNING_SEMITONES[f])
                          for f, d in zip(TOMS, spread)}  # fmt: skip
        # id of the base's cached sound -> (that sound, kept alive so the id stays its
        # own; the retuned one)
        self._sounds: dict[tuple[int, str, int], tuple[Sound, Sound]] = {}

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        hit = self.base.strike(voice, velocity, sample_rate, rng)
        family = FAMILY[voice]
        if family not in self.semitones:
            return hit
        key = (id(hit.sound), family, sample_rate)
        if key not in self._sounds:
            self._sounds[key] = (hit.sound, retuned(hit.sound, self.semitones[family]))
        return replace(hit, sound=self._sounds[key][1])


class StudioKit(Kit):
    """``base`` recorded in a random room, with random microphones, tuning, balance."""

    def __init__(self, base: Kit, seed: int, toms_as_set: bool = True) -> None:
        """``toms_as_set=False`` is the studio of before 2026-12-07 (each tom tuned
        alone by up to TOM_EACH_SEMITONES), byte for byte: a held-out set rendered then
        stays the same set whatever training's studio learns."""
        self.base = base
        self.name = base.name
        self.voices = base.voices
        self.fade_sec = base.fade_sec
        lo, hi = TOM_SET_SEMITONES  # in the fingerprint: renders keyed by it re-render
        toms_key = f"toms{lo:+g}{hi:+g}:" if toms_as_set else ""
        self.fingerprint = f"studio:{seed}:{toms_key}{base.fingerprint}"
        rng = _seeded("studio", seed, base.fingerprint)
        self.room = _draw_room(rng)
        lx, ly, _ = self.room.size_m
        self._centre = np.array(
            [rng.uniform(1.0, lx - 1.0), rng.uniform(1.0, ly - 1.0), 0.0]
        )
        self._mics = _draw_mics(self.room, self._centre, rng)
        self._gain = {f: 10 ** (np.clip(rng.normal(0, 3), -8, 8) / 20) for f in PLACES}
        reach = {**TUNING_SEMITONES,
                 **({} if toms_as_set else dict.fromkeys(TOMS, TOM_EACH_SEMITONES))}
        self._tune = {f: rng.uniform(-1, 1) * reach[f] for f in PLACES}
        # A generator of its own: every other draw (room, microphones) stays as it was.
        tom_rng = _seeded("studio toms", seed, base.fingerprint)
        toms = tom_rng.uniform(*TOM_SET_SEMITONES) if toms_as_set else 0.0
        for family in TOMS:
            self._tune[family] += toms
        self._ir_rng = rng
        self._irs: dict[tuple[str, int], np.ndarray] = {}
        self._sounds: dict[tuple[int, str, int], Sound] = {}

    def _ir(self, family: str, sample_rate: int) -> np.ndarray:
        key = (family, sample_rate)
        if key not in self._irs:
            place = self._centre + np.array(PLACES[family])
            ir = room_ir(self.room, place, self._mics, sample_rate, self._ir_rng)
            self._irs[key] = ir / (np.abs(ir).max() + 1e-12)
        return self._irs[key]

    def _recorded(self, sound: Sound, family: str, sample_rate: int) -> Sound:
        key = (id(sound.audio), family, sample_rate)
        if key not in self._sounds:
            dry = retune(sound.audio, self._tune[family])
            wet = signal.fftconvolve(dry, self._ir(family, sample_rate)).astype(
                np.float32
            )
            peak = float(np.abs(sound.audio).max())
            snd = anchor_sound(wet, sample_rate)  # the first arrival becomes the onset
            self._sounds[key] = Sound(snd.audio * peak, snd.onset)
        return self._sounds[key]

    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        hit = self.base.strike(voice, velocity, sample_rate, rng)
        family = FAMILY[voice]
        snd = self._recorded(hit.sound, family, sample_rate)
        return replace(hit, sound=snd, gain=hit.gain * self._gain[family])
