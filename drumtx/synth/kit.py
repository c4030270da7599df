"""What a drum kit is: the voices notes are played on, and the render every kit shares.

A note's pitch (Roland TD-17 numbers, a superset of General MIDI's drums) names a
voice; a ``Kit`` answers each hit with a ``Strike`` (which sound, how loud, what it
chokes) through one method, ``strike``, and the shared ``render`` mixes the strikes.
A kit that takes each voice from another kit only has to answer ``strike`` per voice.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from drumtx.synth.buzz import HIT_SPREAD_DB as BUZZ_HIT_SPREAD_DB
from drumtx.synth.buzz import SnareBuzz
from drumtx.synth.dsp import SILENT, Event, Sound, limit, mix_events

if TYPE_CHECKING:
    from drumtx.midi import Note

SYNTH_VERSION = 1  # bump when a kit's sound changes (invalidates rendered files)

# TD-17 / GM pitch -> voice. Heads and rims of one drum map to variants of one sound.
VOICE_OF_PITCH: dict[int, str] = {
    35: "kick", 36: "kick",
    38: "snare", 37: "cross_stick", 40: "rimshot",
    42: "hh_closed", 22: "hh_closed_edge", 44: "hh_pedal",
    46: "hh_open", 26: "hh_open_edge",
    48: "tom_high", 50: "tom_high_rim",
    45: "tom_mid", 47: "tom_mid_rim",
    43: "tom_low", 58: "tom_low_rim", 41: "tom_low",
    49: "crash1", 55: "crash1_edge", 57: "crash2", 52: "crash2_edge",
    51: "ride", 59: "ride_edge", 53: "ride_bell",
}  # fmt: skip
# Voice -> instrument family: what a mix engineer gives one fader (and a studio one
# place in the room, a virtual kit one donor kit).
FAMILY: dict[str, str] = {
    "kick": "kick",
    "snare": "snare", "cross_stick": "snare", "rimshot": "snare",
    "hh_closed": "hihat", "hh_closed_edge": "hihat", "hh_pedal": "hihat",
    "hh_open": "hihat", "hh_open_edge": "hihat",
    "tom_high": "tom_high", "tom_high_rim": "tom_high",
    "tom_mid": "tom_mid", "tom_mid_rim": "tom_mid",
    "tom_low": "tom_low", "tom_low_rim": "tom_low",
    "crash1": "crash", "crash1_edge": "crash",
    "crash2": "crash", "crash2_edge": "crash",
    "ride": "ride", "ride_edge": "ride", "ride_bell": "ride",
}  # fmt: skip
FAMILIES = tuple(dict.fromkeys(FAMILY.values()))
CHOKER_VOICES = frozenset({"hh_closed", "hh_closed_edge", "hh_pedal"})
OPEN_HAT_VOICES = frozenset({"hh_open", "hh_open_edge"})


@dataclass(frozen=True)
class Strike:
    """How a kit sounds one hit of a voice: the sound, its gain and its choking."""

    sound: Sound
    gain: float  # before the per-hit variation render adds
    instrument: str  # a hit never chokes a hit of the same instrument
    group: str | None  # choke group, None: rings out
    chokes: bool  # silences earlier hits of its group
    silences: tuple[str, ...] = ()  # further groups whose earlier hits it silences


def hat_choke(voice: str) -> tuple[str | None, bool]:
    """(choke group, chokes) of a voice: closed and pedal hats choke open ones."""
    is_hat = voice in CHOKER_VOICES or voice in OPEN_HAT_VOICES
    return ("hh" if is_hat else None), voice in CHOKER_VOICES


def note_rng(notes: Sequence[Note], salt: str, seed: int) -> np.random.Generator:
    """A generator seeded by the notes, the kit and the seed: same input, same hits."""
    h = hashlib.sha256(f"{salt}|{seed}|".encode())
    for n in notes:
        h.update(f"{n.time_sec:.6f},{n.pitch},{n.velocity};".encode())
    return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))


class Kit(ABC):
    """A drum kit that turns notes into audio, one voice at a time (``strike``)."""

    name: str  # the CSV's kit_name
    fingerprint: str  # changes whenever the kit would sound different
    voices: Collection[str]  # the voices (VOICE_OF_PITCH values) this kit can sound
    fade_sec: float  # how fast a choked hit fades out

    @abstractmethod
    def strike(
        self, voice: str, velocity: float, sample_rate: int, rng: np.random.Generator
    ) -> Strike:
        """One hit of ``voice`` at ``velocity`` in (0, 1]; may draw from ``rng``."""

    def playable(self, notes: Sequence[Note]) -> list[Note]:
        """The notes this kit has a sound for (the rest would be silent)."""
        return [n for n in notes if VOICE_OF_PITCH.get(n.pitch) in self.voices]

    def render(
        self,
        notes: Sequence[Note],
        duration_sec: float,
        sample_rate: int,
        *,
        seed: int = 0,
        dynamics: float = 1.0,
        buzz: SnareBuzz | None = None,
        faders: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Mono float32 audio (n,) of ``duration_sec``; hits beyond it are cut.

        ``dynamics`` reshapes the kit's velocity response: each hit's level is scaled
        by velocity ** (dynamics - 1) (velocity in (0, 1]), so above 1 soft hits sound
        softer than the kit plays them (a drummer's quiet ghost notes, a kit sampled
        with a wide dynamic range) and below 1 louder; full-velocity hits keep their
        level, and 1 changes nothing.

        ``buzz`` adds the snare wires' answer to each tom (and maybe kick) hit
        (``synth.buzz``), from a generator of its own: every other sound stays the same.

        ``faders`` moves instrument families' levels: family (``FAMILY``) -> dB added
        to each of its hits (the wires a tom or kick sets buzzing sit on the snare's
        fader); families it does not name stay as the kit plays them.
        """
        if not dynamics > 0:
            raise ValueError(f"dynamics must be positive, got {dynamics}")
        fader = {f: 10 ** (db / 20) for f, db in (faders or {}).items()}
        rng = note_rng(notes, self.fingerprint, seed)
        buzz_rng = note_rng(notes, self.fingerprint + "|buzz", seed) if buzz else None
        events = []
        for note in self.playable(notes):
            velocity = min(max(note.velocity, 1), 127) / 127
            voice = VOICE_OF_PITCH[note.pitch]
            hit = self.strike(voice, velocity, sample_rate, rng)
            gain = hit.gain * 10 ** (rng.normal(0, 0.5) / 20)  # per-hit, ~0.5 dB
            if dynamics != 1.0:
                gain *= velocity ** (dynamics - 1.0)
            level = gain * fader.get(FAMILY[voice], 1.0)
            events.append(Event(note.time_sec, hit.sound, level, hit.instrument,
                                hit.group, hit.chokes))  # fmt: skip
            events += [Event(note.time_sec, SILENT, 0.0, hit.instrument, g, True)
                       for g in hit.silences]  # fmt: skip
            level_db = buzz.level_db(voice) if buzz else None
            if level_db is not None and buzz_rng is not None:
                level_db += buzz_rng.normal(0.0, BUZZ_HIT_SPREAD_DB)
                wires = buzz.sound(hit.sound, level_db, sample_rate, buzz_rng)
                wires_gain = gain * fader.get("snare", 1.0)
                events.append(Event(note.time_sec, wires, wires_gain, "snare wires",
                                    None, False))  # fmt: skip
        n_samples = round(duration_sec * sample_rate)
        return limit(mix_events(events, n_samples, sample_rate, self.fade_sec))
