"""Render drum notes (Roland TD-17 pitch numbers) into mono audio through a drum kit.

Two kinds of kit share one interface (``Kit``): ``SynthKit`` synthesises every voice
from a seed (one seed = one kit, timbres drawn at random so a model sees many kits),
and ``HydrogenKit`` plays the samples of a Hydrogen ``drumkit.xml``. Both cache one
sample per (voice, velocity layer, variant) and mix hits in with numpy, so rendering
a minute of drumming takes a fraction of a second.

Alignment contract: every hit is placed so that its energy onset (the first sample
reaching 10 % of the hit's peak) lands on the note's MIDI time; a short faded-in
pre-roll before that point keeps the attack's leading edge.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy import signal

from drumtx.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from drumtx.midi import Note

HYDROGEN_ROOT = Path("/usr/share/hydrogen/data/drumkits")
SYNTH_VERSION = 1  # bump when SynthKit's sound changes (invalidates rendered files)

ONSET_FRACTION = 0.1  # energy onset = first sample at this fraction of the peak
PREROLL_SEC = 0.001  # kept before the onset, faded in
N_LAYERS = 6  # velocity layers per synthesised voice
N_VARIANTS = 3  # round-robin variants per layer (per-hit variation)

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
CHOKER_VOICES = frozenset({"hh_closed", "hh_closed_edge", "hh_pedal"})
OPEN_HAT_VOICES = frozenset({"hh_open", "hh_open_edge"})


class Kit(Protocol):
    """A drum kit that turns notes into audio."""

    name: str  # the CSV's kit_name
    fingerprint: str  # changes whenever the kit would sound different

    def playable(self, notes: Sequence[Note]) -> list[Note]:
        """The notes this kit has a sound for (the rest would be silent)."""
        ...

    def render(
        self,
        notes: Sequence[Note],
        duration_sec: float,
        sample_rate: int,
        *,
        seed: int = 0,
    ) -> np.ndarray:
        """Mono float32 audio (n,) of ``duration_sec``; hits beyond it are cut."""
        ...


# ---------------------------------------------------------------- shared mixing core


@dataclass(frozen=True)
class _Sound:
    """A cached hit: audio whose energy onset sits at sample ``onset``."""

    audio: np.ndarray  # (n,) float32; synth: peak 1, Hydrogen: the file's level
    onset: int  # samples from the array start to the energy onset


@dataclass(frozen=True)
class _Event:
    time_sec: float
    sound: _Sound
    gain: float
    instrument: str  # choking never cuts a hit by another hit of the same instrument
    group: str | None  # choke group ("hh" or a Hydrogen mute group)
    chokes: bool  # whether this hit silences earlier hits of its group


def anchor_sound(audio: np.ndarray, sample_rate: int) -> _Sound:
    """Trim leading silence so the audio starts PREROLL_SEC before its energy onset."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return _Sound(np.zeros(1, np.float32), 0)
    onset = int(np.argmax(np.abs(audio) >= ONSET_FRACTION * peak))
    start = max(0, onset - round(PREROLL_SEC * sample_rate))
    out = audio[start:] / peak
    n_pre = onset - start
    if n_pre > 0:  # fade the pre-roll in so the cut makes no click
        out = out.copy()
        out[:n_pre] *= np.linspace(0.0, 1.0, n_pre, endpoint=False, dtype=np.float32)
    return _Sound(out.astype(np.float32), n_pre)


def _choke_times(events: Sequence[_Event]) -> list[float | None]:
    """For each event, the time a later hit of its choke group silences it (or None)."""
    stops: list[float | None] = [None] * len(events)
    pending: dict[str, list[int]] = {}
    for i, ev in enumerate(events):  # events are sorted by time
        if ev.group is None:
            continue
        waiting = pending.setdefault(ev.group, [])
        if ev.chokes:
            keep = []
            for j in waiting:
                if events[j].instrument != ev.instrument:
                    stops[j] = ev.time_sec
                else:
                    keep.append(j)
            waiting[:] = keep
        waiting.append(i)
    return stops


def mix_events(
    events: Sequence[_Event], n_samples: int, sample_rate: int, fade_sec: float
) -> np.ndarray:
    """Sum the hits into a (n_samples,) float32 buffer, fading choked hits out."""
    events = sorted(events, key=lambda e: e.time_sec)
    stops = _choke_times(events)
    out = np.zeros(n_samples, np.float32)
    n_fade = max(1, round(fade_sec * sample_rate))
    for ev, stop_sec in zip(events, stops):
        start = round(ev.time_sec * sample_rate) - ev.sound.onset
        seg = ev.sound.audio
        if stop_sec is not None:  # choke: fade from the choking hit on
            n_keep = max(0, round(stop_sec * sample_rate) - start)
            seg = seg[: n_keep + n_fade].copy()
            tail = seg[n_keep:]
            tail *= np.linspace(1.0, 0.0, tail.size, dtype=np.float32)
        lo, hi = max(0, start), min(n_samples, start + seg.size)
        if hi > lo:
            out[lo:hi] += ev.gain * seg[lo - start : hi - start]
    return out


def _limit(audio: np.ndarray) -> np.ndarray:
    """Scale down (never up) so the mix does not clip."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak * 0.98 if peak > 0.98 else audio


def _note_rng(notes: Sequence[Note], salt: str, seed: int) -> np.random.Generator:
    """A generator seeded by the notes, the kit and the seed: same input, same hits."""
    h = hashlib.sha256(f"{salt}|{seed}|".encode())
    for n in notes:
        h.update(f"{n.time_sec:.6f},{n.pitch},{n.velocity};".encode())
    return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))


# ---------------------------------------------------------------- DSP helpers


def _sos_filter(
    x: np.ndarray, sr: int, kind: str, cutoff_hz: float | tuple
) -> np.ndarray:
    nyq = 0.5 * sr
    cut = np.clip(np.atleast_1d(np.asarray(cutoff_hz, float)), 20.0, 0.45 * sr) / nyq
    sos = signal.butter(2, cut if cut.size > 1 else cut[0], btype=kind, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def _decay(n: int, sr: int, decay_sec: float) -> np.ndarray:
    return np.exp(-np.arange(n, dtype=np.float32) / (decay_sec * sr)).astype(np.float32)


def _sweep(
    n: int, sr: int, f_start: float, f_end: float, sweep_sec: float
) -> np.ndarray:
    """A sine whose frequency falls exponentially from f_start to f_end (Hz)."""
    t = np.arange(n) / sr
    freq = f_end + (f_start - f_end) * np.exp(-t / sweep_sec)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr).astype(np.float32)


def _metal(
    n: int, sr: int, freqs_hz: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Sum of square waves at inharmonic frequencies: the 808-style cymbal core.

    Built as one inverse FFT of the squares' odd harmonics (amplitude 1/k, random
    phase, none above Nyquist): band-limited and as cheap for 20 partials as for one.
    """
    n_fft = sp_fft.next_fast_len(n, real=True)
    spec = np.zeros(n_fft // 2 + 1, np.complex128)
    for f in freqs_hz:
        k = np.arange(1, int(0.5 * sr / f) + 1, 2)  # odd harmonics
        bins = np.minimum(np.round(f * k * n_fft / sr).astype(int), spec.size - 1)
        np.add.at(spec, bins, np.exp(2j * np.pi * rng.uniform(size=k.size)) / k)
    out = sp_fft.irfft(spec, n_fft)[:n] * (n_fft / 2 / max(1, len(freqs_hz)))
    return out.astype(np.float32)


def _noise(n: int, rng: np.random.Generator, colour: float) -> np.ndarray:
    """Noise between white (colour 0) and strongly low-weighted (colour 1)."""
    white = rng.standard_normal(n).astype(np.float32)
    if colour <= 0.0:
        return white
    smooth = signal.lfilter([1 - 0.95 * colour], [1, -0.95 * colour], white)
    return ((1 - colour) * white + colour * 4 * smooth).astype(np.float32)


def _seconds(sr: int, decay_sec: float, max_sec: float) -> int:
    return int(sr * min(max_sec, 7.0 * decay_sec)) + 1


# ---------------------------------------------------------------- synthesised voices
# A voice is a list of components (audio, weight, velocity slope): the layer for
# velocity v in [0, 1] mixes weight * (1 + slope * (v - 0.5)) of each, so noise and
# clicks (positive slope) grow with velocity, then a velocity-dependent lowpass.
Component = tuple[np.ndarray, float, float]


def _kick(p: dict, rng: np.random.Generator, sr: int) -> list[Component]:
    n = _seconds(sr, p["decay"], 0.9)
    body = _sweep(n, sr, p["f_start"], p["f_end"], p["sweep"]) * _decay(
        n, sr, p["decay"]
    )
    body = np.tanh(p["drive"] * body) / np.tanh(p["drive"])
    n_click = int(sr * p["click_sec"])
    click = np.zeros(n, np.float32)
    click[:n_click] = _noise(n_click, rng, 0.0) * _decay(
        n_click, sr, p["click_sec"] / 3
    )
    click = _sos_filter(click, sr, "highpass", p["click_hz"])
    return [(body, 1.0, 0.3), (click, p["click"], 1.6)]


def _snare(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    n = _seconds(sr, max(p["noise_decay"], p["tone_decay"]), 0.7)
    tone_env = _decay(n, sr, p["tone_decay"])
    tone = _sweep(n, sr, p["f0"] * 1.25, p["f0"], 0.01) + 0.6 * _sweep(
        n, sr, p["f0"] * p["ratio"] * 1.2, p["f0"] * p["ratio"], 0.01
    )
    noise = _sos_filter(_noise(n, rng, p["colour"]), sr, "bandpass", p["band"])
    noise *= _decay(n, sr, p["noise_decay"])
    if kind == "cross_stick":  # a short woody click instead of head + wires
        m = _seconds(sr, 0.02, 0.2)
        knock = _sweep(m, sr, p["stick_hz"] * 1.3, p["stick_hz"], 0.004)
        knock *= _decay(m, sr, p["stick_decay"])
        return [(knock, 1.0, 0.3), (noise[:m] * _decay(m, sr, 0.006), 0.4, 1.0)]
    parts = [(tone * tone_env, 1.0 - p["noise_mix"], 0.2), (noise, p["noise_mix"], 1.2)]
    if kind == "rimshot":  # the stick hits rim and head: a loud ringing crack
        ring = np.sin(2 * np.pi * p["rim_hz"] * np.arange(n) / sr).astype(np.float32)
        parts.append((ring * _decay(n, sr, 0.03), 0.5, 0.8))
    return parts


def _hat(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    decay = {
        "closed": p["closed_decay"],
        "pedal": p["pedal_decay"],
        "open": p["open_decay"],
    }
    d = decay[kind.removesuffix("_edge")]
    n = _seconds(sr, d, 1.6)
    freqs = [p["base_hz"] * r for r in p["ratios"]]
    hp = p["hp_hz"] * (0.7 if kind.endswith("_edge") else 1.0)
    metal = _sos_filter(_metal(n, sr, freqs, rng), sr, "highpass", hp)
    noise = _sos_filter(_noise(n, rng, p["colour"]), sr, "highpass", hp * 1.1)
    env = _decay(n, sr, d)
    if kind == "pedal":  # the "chick": softer top, a little low thump
        return [(metal * env, 0.6, 0.3), (noise * env, 0.3, 0.6)]
    return [
        (metal * env, 1.0 - p["noise_mix"], 0.4),
        (noise * env, p["noise_mix"], 1.2),
    ]


def _tom(p: dict, rng: np.random.Generator, sr: int, rim: bool) -> list[Component]:
    n = _seconds(sr, p["decay"], 1.2)
    body = _sweep(n, sr, p["f0"] * p["bend"], p["f0"], p["sweep"]) * _decay(
        n, sr, p["decay"]
    )
    over = _sweep(n, sr, p["f0"] * 1.6 * p["bend"], p["f0"] * 1.6, p["sweep"])
    over *= _decay(n, sr, p["decay"] * 0.4)
    hit = _sos_filter(_noise(n, rng, 0.3), sr, "bandpass", (p["f0"] * 4, p["f0"] * 20))
    hit *= _decay(n, sr, 0.008)
    parts = [(body, 1.0, 0.2), (over, 0.35, 0.6), (hit, p["attack"], 1.5)]
    if rim:
        ring = np.sin(2 * np.pi * p["rim_hz"] * np.arange(n) / sr).astype(np.float32)
        parts.append((ring * _decay(n, sr, 0.025), 0.5, 0.8))
    return parts


def _cymbal(p: dict, rng: np.random.Generator, sr: int, kind: str) -> list[Component]:
    d = p["decay"] * (0.8 if kind == "edge" else 1.0)
    n = _seconds(sr, d, 3.0)
    freqs = p["base_hz"] * np.exp(rng.uniform(0, np.log(p["spread"]), p["n_partials"]))
    wash = _sos_filter(_metal(n, sr, freqs, rng), sr, "highpass", p["hp_hz"])
    noise = _sos_filter(_noise(n, rng, p["colour"]), sr, "highpass", p["hp_hz"])
    env = _decay(n, sr, d) * (1 - np.exp(-np.arange(n) / (0.002 * sr)))
    parts = [(wash * env, 1 - p["noise_mix"], 0.5), (noise * env, p["noise_mix"], 1.2)]
    if kind == "edge":
        parts.append((noise * _decay(n, sr, d * 0.3), 0.5, 1.0))
    if kind == "bell":  # a few strong low partials ring over the wash
        t = np.arange(n) / sr
        bell = sum(np.sin(2 * np.pi * p["bell_hz"] * r * t) for r in (1.0, 2.32, 3.71))
        parts = [(bell * _decay(n, sr, d * 0.7), 1.0, 0.3)] + parts[:1]
    return [(np.asarray(a, np.float32), w, s) for a, w, s in parts]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _tom_params(rng: np.random.Generator, f0: float) -> dict:
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    return {"f0": f0, "bend": u(1.05, 1.6), "sweep": lu(0.02, 0.15),
            "decay": lu(0.15, 0.55), "attack": u(0.1, 0.5),
            "rim_hz": lu(500, 1500)}  # fmt: skip


def _cymbal_params(rng: np.random.Generator) -> dict:
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    return {"base_hz": lu(250, 600), "spread": u(8, 25),
            "n_partials": int(rng.integers(8, 24)), "hp_hz": lu(1500, 5000),
            "colour": u(0, 0.5), "noise_mix": u(0.2, 0.7), "decay": lu(0.5, 1.4),
            "bell_hz": lu(500, 1100)}  # fmt: skip


def _draw_params(rng: np.random.Generator) -> dict[str, dict]:
    """One kit's timbre: tunings, decays, filters, noise colours and mixes."""
    u, lu = rng.uniform, lambda lo, hi: _log_uniform(rng, lo, hi)
    toms_hz = sorted((lu(65, 105), lu(105, 150), lu(150, 240)))  # low < mid < high
    return {
        "kick": {"f_start": lu(90, 250), "f_end": lu(38, 65), "sweep": lu(0.015, 0.08),
                 "decay": lu(0.12, 0.45), "drive": u(1.0, 3.0), "click": u(0.1, 0.8),
                 "click_sec": u(0.002, 0.008), "click_hz": lu(1000, 5000)},
        "snare": {"f0": lu(150, 280), "ratio": u(1.4, 1.9),
                  "tone_decay": lu(0.04, 0.15),
                  "noise_decay": lu(0.08, 0.3), "noise_mix": u(0.4, 0.85),
                  "colour": u(0, 0.6), "band": (lu(700, 2500), lu(5000, 12000)),
                  "stick_hz": lu(350, 900), "stick_decay": lu(0.01, 0.04),
                  "rim_hz": lu(700, 1800)},
        "hat": {"base_hz": lu(250, 600), "ratios": (1.0, 1.48, 1.65, 2.03, 2.62, 3.19),
                "hp_hz": lu(4000, 9000), "colour": u(0, 0.4), "noise_mix": u(0.2, 0.7),
                "closed_decay": lu(0.015, 0.06), "pedal_decay": lu(0.01, 0.035),
                "open_decay": lu(0.2, 0.7)},
        "tom_low": _tom_params(rng, toms_hz[0]),
        "tom_mid": _tom_params(rng, toms_hz[1]),
        "tom_high": _tom_params(rng, toms_hz[2]),
        "crash1": _cymbal_params(rng), "crash2": _cymbal_params(rng),
        "ride": {**_cymbal_params(rng), "decay": lu(1.0, 2.5),
                 "noise_mix": u(0.05, 0.3), "hp_hz": lu(2000, 6000)},
        "mix": {"bright_lo_hz": lu(1200, 4000), "bright_hi_hz": lu(9000, 18000),
                "vel_exponent": u(1.3, 2.2), "fade_sec": u(0.005, 0.02),
                "level": {k: u(0.5, 1.0)
                          for k in ("kick", "snare", "hat", "tom", "cym")}},
    }  # fmt: skip


VoiceFn = Callable[[dict, np.random.Generator, int], list[Component]]


def _voice_table(params: dict[str, dict]) -> dict[str, tuple[VoiceFn, dict, str]]:
    """voice -> (synthesis function, its parameters, level group)."""
    table: dict[str, tuple[VoiceFn, dict, str]] = {
        "kick": (_kick, params["kick"], "kick")
    }
    for kind in ("snare", "cross_stick", "rimshot"):
        table[kind] = (
            lambda p, r, s, k=kind: _snare(p, r, s, k),
            params["snare"],
            "snare",
        )
    for voice, kind in (("hh_closed", "closed"), ("hh_closed_edge", "closed_edge"),
                        ("hh_pedal", "pedal"), ("hh_open", "open"),
                        ("hh_open_edge", "open_edge")):  # fmt: skip
        table[voice] = (lambda p, r, s, k=kind: _hat(p, r, s, k), params["hat"], "hat")
    for tom in ("tom_low", "tom_mid", "tom_high"):
        table[tom] = (lambda p, r, s: _tom(p, r, s, False), params[tom], "tom")
        table[tom + "_rim"] = (lambda p, r, s: _tom(p, r, s, True), params[tom], "tom")
    for cym in ("crash1", "crash2", "ride"):
        edge = "ride_edge" if cym == "ride" else cym + "_edge"
        table[cym] = (lambda p, r, s: _cymbal(p, r, s, "bow"), params[cym], "cym")
        table[edge] = (lambda p, r, s: _cymbal(p, r, s, "edge"), params[cym], "cym")
    table["ride_bell"] = (
        lambda p, r, s: _cymbal(p, r, s, "bell"),
        params["ride"],
        "cym",
    )
    return table


def _jitter(p: dict, rng: np.random.Generator) -> dict:
    """Round-robin variation: tunings move ~1 %, decays ~5 %."""
    out = {}
    for key, val in p.items():
        if isinstance(val, float) and key.endswith(("_hz", "f0", "f_start", "f_end")):
            val = val * (1 + rng.normal(0, 0.01))
        elif isinstance(val, float) and "decay" in key:
            val = val * (1 + rng.normal(0, 0.05))
        out[key] = val
    return out


class SynthKit:
    """A synthesised kit; every timbre parameter is drawn from ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.name = f"synth:{self.seed}"
        self.fingerprint = f"synth-v{SYNTH_VERSION}:{self.seed}"
        self._params = _draw_params(np.random.default_rng([SYNTH_VERSION, self.seed]))
        self._voices = _voice_table(self._params)
        self._components: dict[tuple, list[Component]] = {}
        self._sounds: dict[tuple, _Sound] = {}

    def playable(self, notes: Sequence[Note]) -> list[Note]:
        return [n for n in notes if n.pitch in VOICE_OF_PITCH]

    def _parts(self, voice: str, variant: int, sr: int) -> list[Component]:
        key = (voice, variant, sr)
        if key not in self._components:
            fn, params, _ = self._voices[voice]
            names = sorted(set(VOICE_OF_PITCH.values()))
            rng = np.random.default_rng([self.seed, names.index(voice), variant, sr])
            self._components[key] = fn(_jitter(params, rng), rng, sr)
        return self._components[key]

    def sound(self, voice: str, layer: int, variant: int, sr: int) -> _Sound:
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
            audio = _sos_filter(np.asarray(audio, np.float32), sr, "lowpass", cutoff)
            self._sounds[key] = anchor_sound(audio, sr)
        return self._sounds[key]

    def render(
        self,
        notes: Sequence[Note],
        duration_sec: float,
        sample_rate: int,
        *,
        seed: int = 0,
    ) -> np.ndarray:
        rng = _note_rng(notes, self.fingerprint, seed)
        mix = self._params["mix"]
        events = []
        for note in self.playable(notes):
            voice = VOICE_OF_PITCH[note.pitch]
            vel = min(max(note.velocity, 1), 127) / 127
            layer = min(N_LAYERS - 1, int(vel * N_LAYERS))
            snd = self.sound(voice, layer, int(rng.integers(N_VARIANTS)), sample_rate)
            level = mix["level"][self._voices[voice][2]]
            gain = (
                0.5
                * level
                * vel ** mix["vel_exponent"]
                * 10 ** (rng.normal(0, 0.5) / 20)
            )
            events.append(_hat_event(note.time_sec, snd, gain, voice))
        n = round(duration_sec * sample_rate)
        return _limit(mix_events(events, n, sample_rate, mix["fade_sec"]))


def _hat_event(time_sec: float, snd: _Sound, gain: float, voice: str) -> _Event:
    """An event whose hi-hat voices choke each other as a real hi-hat does."""
    is_hat = voice in CHOKER_VOICES or voice in OPEN_HAT_VOICES
    return _Event(
        time_sec, snd, gain, voice, "hh" if is_hat else None, voice in CHOKER_VOICES
    )


# ---------------------------------------------------------------- Hydrogen kits

# Instrument names containing these words are percussion we do not model, or playing
# techniques (rolls, chokes, swishes) whose sound would mislabel a plain hit.
_SKIP_WORDS = frozenset(
    {
        "clap", "cowbell", "tamb", "tambourine", "agogo", "conga", "bongo", "whistle",
        "shaker", "maraca", "zap", "fx", "djembe", "cajon", "clave", "woodblock",
        "wood",
        "snap", "snaps", "waterglass", "roll", "choke", "swish", "flink", "free",
        "sangban", "dununba", "kenkeni", "perc",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _Layer:
    path: Path
    min_vel: float  # 0..1
    max_vel: float
    gain: float


@dataclass(frozen=True)
class _Instrument:
    name: str
    gain: float  # instrument volume * gain
    mute_group: int  # -1: none
    layers: tuple[_Layer, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop the XML namespace


def _child_text(elem: ET.Element, name: str, default: str = "") -> str:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return default


def _float(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def _parse_instrument(elem: ET.Element, folder: Path) -> _Instrument | None:
    """One <instrument>: its layers (direct or under <instrumentComponent>) or, in old
    kits, one filename; None when muted or without a sample file."""
    layers = []
    for layer in elem.iter():
        if _local(layer.tag) != "layer" or not _child_text(layer, "filename"):
            continue
        layers.append(_Layer(
            folder / _child_text(layer, "filename"),
            _float(_child_text(layer, "min", "0"), 0.0),
            _float(_child_text(layer, "max", "1"), 1.0),
            _float(_child_text(layer, "gain", "1"), 1.0),
        ))  # fmt: skip
    if not layers and _child_text(elem, "filename"):  # pre-0.9.4 kits: one sample
        layers.append(_Layer(folder / _child_text(elem, "filename"), 0.0, 1.0, 1.0))
    layers = [la for la in layers if la.path.is_file()]
    if not layers or _child_text(elem, "isMuted") == "true":
        return None
    gain = _float(_child_text(elem, "volume", "1"), 1.0)
    gain *= _float(_child_text(elem, "gain", "1"), 1.0)
    mute = int(_float(_child_text(elem, "muteGroup", "-1"), -1))
    return _Instrument(_child_text(elem, "name"), gain, mute, tuple(layers))


def parse_drumkit(folder: Path) -> tuple[str, list[_Instrument]]:
    """The kit name and the playable instruments of a Hydrogen drumkit folder."""
    xml_path = folder / "drumkit.xml"
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(
            f"cannot read Hydrogen drumkit {xml_path}: {exc}",
            hint="a drumkit folder holds drumkit.xml and its samples",
        ) from None
    instruments = [
        inst
        for elem in root.iter()
        if _local(elem.tag) == "instrument"
        and (inst := _parse_instrument(elem, folder)) is not None
    ]
    return _child_text(root, "name") or folder.name, instruments


def _words(name: str) -> list[str]:
    """Lower-case words and numbers of a name: 'Hi-Hat Closed (Paiste 14")' ->
    ['hi', 'hat', 'closed'], 'BassDrum' -> ['bass', 'drum'], 'Snare1' -> ['snare',
    '1']."""
    name = re.sub(r"\([^)]*\)", " ", name)  # sizes and makers, e.g. 'edge 14"'
    name = re.sub(
        r"^\s*[a-gA-G]#?\d+\s*-\s*", "", name
    )  # 'c#3 - stick' (GM note names)
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()
    return re.findall(r"[a-z]+|\d+", name)


def _hat_role(w: set[str]) -> str:
    if w & {"pedal", "pd", "foot"}:
        return "hh_pedal"
    if w & {"semi", "half"}:
        return "hh_semi"
    if w & {"open", "opened", "op", "ohh"}:
        return "hh_open"
    if w & {"closed", "close", "cl", "chh"}:
        return "hh_closed"
    return "hh_other"


def _tom_role(w: set[str], joined: str) -> str:
    if w & {"floor", "low", "lo"} or joined.startswith("tomlo"):
        return "tom_low"
    if w & {"mid", "middle", "med"}:
        return "tom_mid"
    if w & {"hi", "high"} or joined.startswith("tomhi"):
        return "tom_high"
    return "tom"


def classify_instrument(name: str) -> str | None:
    """The drum role an instrument name suggests, or None for percussion we skip."""
    words = _words(name)
    w, joined = set(words), "".join(words)
    if not words or w & _SKIP_WORDS:
        return None
    if w & {"kick", "bd"} or "bassdrum" in joined:
        return "kick"
    if w & {"hh", "hat", "hihat", "ohh", "chh"}:
        return _hat_role(w)
    if "tom" in w or joined.startswith("tom"):
        return _tom_role(w, joined)
    if w & {"bell", "cup"}:  # 'Ride Bell', 'ride-cup', 'Paiste Bell' (cowbells skipped)
        return "ride_bell"
    if "ride" in w:
        return "crash_ride" if "crash" in w else "ride"
    if w & {"crash", "china", "splash", "cymbal"}:
        return "crash"
    if w & {"stick", "sidestick"} or {"rim", "click"} <= w:
        return "cross_stick"
    if w & {"snare", "sd", "sn"}:
        return "rimshot" if w & {"rim", "rimshot"} else "snare"
    return None


# voice -> instrument roles to try, best first (rims and edges fall back to the drum)
_ROLE_FALLBACKS: dict[str, tuple[str, ...]] = {
    "kick": ("kick",),
    "snare": ("snare",),
    "cross_stick": ("cross_stick", "snare"),
    "rimshot": ("rimshot", "snare"),
    "hh_closed": ("hh_closed", "hh_other", "hh_pedal"),
    "hh_closed_edge": ("hh_closed", "hh_other", "hh_pedal"),
    "hh_pedal": ("hh_pedal", "hh_closed", "hh_other"),
    "hh_open": ("hh_open", "hh_semi"),
    "hh_open_edge": ("hh_open", "hh_semi"),
    "ride": ("ride", "crash_ride", "ride_bell"),
    "ride_edge": ("ride", "crash_ride", "ride_bell"),
    "ride_bell": ("ride_bell", "ride", "crash_ride"),
}
_CRASH_RANK = {"crash": 0, "cymbal": 1, "splash": 2, "china": 3}


def _rank_crashes(by_role: dict[str, list[_Instrument]]) -> list[_Instrument]:
    """Crash cymbals, plain crashes before splashes and chinas."""

    def rank(inst: _Instrument) -> int:
        return min(
            (r for k, r in _CRASH_RANK.items() if k in _words(inst.name)), default=9
        )

    ranked = sorted(by_role.get("crash", []), key=rank)
    return ranked or by_role.get("crash_ride", [])


def _rank_toms(by_role: dict[str, list[_Instrument]]) -> dict[str, _Instrument]:
    """High, mid and low tom; unnamed toms ('Tom 1', 'Tom 2') fill free slots, high
    first."""
    slots = {
        r: by_role[r][0] for r in ("tom_high", "tom_mid", "tom_low") if by_role.get(r)
    }
    numbered = sorted(
        by_role.get("tom", []),
        key=lambda i: int(next((t for t in _words(i.name) if t.isdigit()), "0")),
    )
    for inst in numbered:
        free = [r for r in ("tom_high", "tom_mid", "tom_low") if r not in slots]
        if free:
            slots[free[0]] = inst
    return slots


def map_instruments(instruments: Sequence[_Instrument]) -> dict[str, _Instrument]:
    """Voice (a VOICE_OF_PITCH value) -> the instrument playing it; absent = silent."""
    by_role: dict[str, list[_Instrument]] = {}
    for inst in instruments:
        role = classify_instrument(inst.name)
        if role is not None:
            by_role.setdefault(role, []).append(inst)
    voices: dict[str, _Instrument] = {}
    for voice, roles in _ROLE_FALLBACKS.items():
        found = next((by_role[r][0] for r in roles if by_role.get(r)), None)
        if found is not None:
            voices[voice] = found
    for role, inst in _rank_toms(by_role).items():
        voices[role] = voices[role + "_rim"] = inst
    crashes = _rank_crashes(by_role)
    if crashes:
        voices["crash1"] = voices["crash1_edge"] = crashes[0]
        voices["crash2"] = voices["crash2_edge"] = crashes[min(1, len(crashes) - 1)]
    return voices


def _load_sample(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of a kit sample file at ``sample_rate``."""
    try:
        audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot decode drum sample {path}: {exc}") from None
    mono = np.nan_to_num(audio.mean(axis=1))  # (n,)
    if file_rate != sample_rate:
        g = gcd(int(file_rate), int(sample_rate))
        mono = signal.resample_poly(mono, sample_rate // g, int(file_rate) // g)
    return mono.astype(np.float32)


class HydrogenKit:
    """A sampled kit read from a Hydrogen drumkit folder (drumkit.xml + samples)."""

    master_gain = 0.5  # headroom: kits' samples are often normalised to full scale

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name
        xml_name, instruments = parse_drumkit(self.folder)
        self.voices = map_instruments(instruments)
        missing = [v for v in ("kick", "snare") if v not in self.voices]
        if missing:
            raise ConfigError(
                f"Hydrogen kit {xml_name!r} ({self.folder}) has no "
                f"{' or '.join(missing)}; "
                f"its instruments: {', '.join(i.name for i in instruments) or 'none'}",
                hint="use a drum kit with a kick and a snare, or synth:SEED",
            )
        digest = hashlib.sha256((self.folder / "drumkit.xml").read_bytes()).hexdigest()
        self.fingerprint = f"hydrogen-v{SYNTH_VERSION}:{self.name}:{digest[:16]}"
        self._sounds: dict[tuple[Path, int], _Sound] = {}

    def playable(self, notes: Sequence[Note]) -> list[Note]:
        return [n for n in notes if VOICE_OF_PITCH.get(n.pitch) in self.voices]

    def _sound(self, path: Path, sample_rate: int) -> _Sound:
        key = (path, sample_rate)
        if key not in self._sounds:
            audio = _load_sample(path, sample_rate)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            snd = anchor_sound(audio, sample_rate)  # normalised: keep the level apart
            self._sounds[key] = _Sound(snd.audio * peak, snd.onset)
        return self._sounds[key]

    def _pick_layer(self, inst: _Instrument, vel: float, rng: np.random.Generator):
        """A layer whose velocity range holds ``vel`` (random among several), else the
        nearest one."""
        inside = [la for la in inst.layers if la.min_vel <= vel <= la.max_vel]
        if inside:
            return inside[int(rng.integers(len(inside)))]
        dist = [max(la.min_vel - vel, vel - la.max_vel) for la in inst.layers]
        return inst.layers[int(np.argmin(dist))]

    def render(
        self,
        notes: Sequence[Note],
        duration_sec: float,
        sample_rate: int,
        *,
        seed: int = 0,
    ) -> np.ndarray:
        rng = _note_rng(notes, self.fingerprint, seed)
        events = []
        for note in self.playable(notes):
            voice = VOICE_OF_PITCH[note.pitch]
            inst = self.voices[voice]
            vel = min(max(note.velocity, 1), 127) / 127
            layer = self._pick_layer(inst, vel, rng)
            gain = self.master_gain * inst.gain * layer.gain * vel
            gain *= 10 ** (rng.normal(0, 0.5) / 20)  # per-hit variation, ~0.5 dB
            events.append(_instrument_event(note.time_sec, self._sound(
                layer.path, sample_rate), gain, voice, inst))  # fmt: skip
        n = round(duration_sec * sample_rate)
        return _limit(mix_events(events, n, sample_rate, fade_sec=0.01))


def _instrument_event(
    time_sec: float, snd: _Sound, gain: float, voice: str, inst: _Instrument
) -> _Event:
    """Hi-hats choke as hi-hats; other instruments honour the kit's mute groups."""
    ev = _hat_event(time_sec, snd, gain, voice)
    if ev.group is None and inst.mute_group >= 0:
        return _Event(time_sec, snd, gain, inst.name, f"mute{inst.mute_group}", True)
    return _Event(ev.time_sec, snd, gain, inst.name, ev.group, ev.chokes)


def list_hydrogen_kits(root: Path = HYDROGEN_ROOT) -> list[Path]:
    """Drumkit folders (holding drumkit.xml) under ``root``, sorted; [] when absent."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "drumkit.xml").is_file())


def load_kit(spec: str) -> Kit:
    """``synth:SEED``, a Hydrogen kit name (case-insensitive) or a drumkit folder."""
    if spec.lower().startswith("synth:"):
        try:
            return SynthKit(int(spec.split(":", 1)[1]))
        except ValueError:
            raise ConfigError(
                f"bad synth kit {spec!r}: the seed must be an integer",
                hint="e.g. --kits synth:1 synth:2",
            ) from None
    path = Path(spec).expanduser()
    if (path / "drumkit.xml").is_file():
        return HydrogenKit(path)
    for folder in list_hydrogen_kits():
        if folder.name.lower() == spec.lower():
            return HydrogenKit(folder)
    names = [p.name for p in list_hydrogen_kits()]
    raise ConfigError(
        f"unknown drum kit {spec!r}: not synth:SEED, a Hydrogen kit name, "
        "or a folder holding drumkit.xml",
        hint="available: synth:SEED (any integer)"
        + (
            f", {', '.join(names)}"
            if names
            else f" (no Hydrogen kits in {HYDROGEN_ROOT})"
        ),
    )
