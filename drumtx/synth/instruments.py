"""Pitched instruments synthesised in numpy, for backing tracks.

Each voice turns one note (MIDI pitch, length, velocity) into a mono float32 signal with
its own envelope; :func:`render_part` places a part's notes and runs the part's effect
chain (an amp and cabinet for distorted guitars, chorus, tremolo). The sounds are meant
to be many and varied rather than beautiful: bass, keys, guitars, pads, leads and a
vowel-singing voice whose attacks and sustains a drum model must learn to ignore.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

RELEASE_SEC = 0.08  # default fade after a note's end


@dataclass(frozen=True)
class PitchedNote:
    """One note of a backing part, in seconds."""

    start_sec: float
    dur_sec: float
    pitch: int  # MIDI note number
    velocity: int  # 1..127


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def _envelope(
    n: int,
    sr: int,
    attack_sec: float,
    hold_n: int,
    release_sec: float,
    decay_sec: float,
) -> np.ndarray:
    """Attack, exponential decay while held, then release: (n,) float32."""
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack_sec, 1e-4))
    if decay_sec > 0:
        env *= np.exp(-t / decay_sec)
    if hold_n < n:
        tail = np.arange(n - hold_n) / sr
        env[hold_n:] *= np.exp(-tail / max(release_sec / 5, 1e-4))
    return env.astype(np.float32)


def _saw(
    freq_hz: np.ndarray | float, n: int, sr: int, rng: np.random.Generator
) -> np.ndarray:
    start = rng.random()
    if np.ndim(freq_hz) == 0:  # a steady pitch: the phase is a ramp, no running sum
        phase = (start + np.arange(1, n + 1) * (float(freq_hz) / sr)) % 1.0
    else:
        phase = (start + np.cumsum(np.broadcast_to(freq_hz, (n,))) / sr) % 1.0
    return (2.0 * phase - 1.0).astype(np.float32)


def _vibrato(
    freq_hz: float, n: int, sr: int, depth: float, rate_hz: float
) -> np.ndarray:
    t = np.arange(n) / sr
    ramp = np.minimum(1.0, t / 0.3)  # vibrato fades in, as players do
    return freq_hz * (1.0 + depth * ramp * np.sin(2 * np.pi * rate_hz * t))


@functools.lru_cache(maxsize=512)
def _butter(order: int, cutoff_hz: float, sr: int, btype: str) -> np.ndarray:
    return signal.butter(
        order, min(cutoff_hz, 0.45 * sr) / (sr / 2), btype, output="sos"
    )


def _lowpass(x: np.ndarray, cutoff_hz: float, sr: int, order: int = 2) -> np.ndarray:
    # Cutoffs rounded to 1/12 octave so that filter designs are cached and reused.
    cutoff_hz = float(2 ** (np.round(12 * np.log2(max(cutoff_hz, 1.0))) / 12))
    return signal.sosfilt(_butter(order, cutoff_hz, sr, "low"), x).astype(np.float32)


# Below this delay lfilter is the faster (lfilter vs a period at a time on 24000
# samples: 0.9 vs 1.0 ms at D = 48, 1.1 vs 0.7 ms at D = 64, 5.2 vs 0.2 ms at D = 300).
KS_BLOCK_MIN_DELAY = 56


def karplus_strong(
    freq_hz: float, n: int, sr: int, rng: np.random.Generator, damping: float
) -> np.ndarray:
    """A plucked string: a noise burst recirculating through an averaging delay line."""
    delay = max(2, int(round(sr / freq_hz)))
    burst = np.zeros(n, dtype=np.float64)
    excitation = rng.uniform(-1, 1, min(delay, n))
    burst[: len(excitation)] = excitation - excitation.mean()
    # y[k] = x[k] + g/2 * (y[k-D] + y[k-D-1]): an IIR comb. lfilter runs it in C but
    # spends D + 2 multiplies per sample on a mostly-zero denominator; a period at a
    # time, each sample needs only the period before, so long delays (low notes) go
    # faster as n / D vector steps.
    if delay < KS_BLOCK_MIN_DELAY:
        den = np.zeros(delay + 2)
        den[0], den[delay], den[delay + 1] = 1.0, -damping / 2, -damping / 2
        return signal.lfilter([1.0], den, burst).astype(np.float32)
    y = np.zeros(n + 1)  # y[0] stands for the silence before the note
    y[1:] = burst
    g = damping / 2
    for start in range(1 + delay, n + 1, delay):
        stop = min(start + delay, n + 1)
        past = y[start - delay : stop - delay]
        before = y[start - delay - 1 : stop - delay - 1]
        y[start:stop] += g * (past + before)
    return y[1:].astype(np.float32)


Voice = Callable[[PitchedNote, int, np.random.Generator, dict], np.ndarray]


def _n_samples(note: PitchedNote, sr: int, release_sec: float) -> tuple[int, int]:
    hold = max(1, int(note.dur_sec * sr))
    return hold + int(release_sec * sr), hold


def bass_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Fingered/synth bass: a low-passed saw or a sine with its octave."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    f = midi_hz(note.pitch)
    if p["wave"] == "sine":
        t = np.arange(n) / sr
        x = np.sin(2 * np.pi * f * t) + p["bright"] * np.sin(4 * np.pi * f * t)
    else:
        x = _lowpass(_saw(f, n, sr, rng), f * p["cutoff_mult"], sr)
    env = _envelope(n, sr, 0.004, hold, p["release_sec"], p["decay_sec"])
    return (x * env).astype(np.float32)


def pluck_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Plucked string (clean guitar, picked bass, harp-like): Karplus-Strong."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    x = karplus_strong(midi_hz(note.pitch), n, sr, rng, p["damping"])
    x = _lowpass(x, p["tone_hz"] * (0.5 + note.velocity / 127), sr, order=1)
    env = _envelope(n, sr, 0.001, hold, p["release_sec"], 0.0)
    return (x * env).astype(np.float32)


def epiano_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Two-operator FM: a bell-like attack that decays into a sine."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    t = np.arange(n) / sr
    f = midi_hz(note.pitch)
    index = p["index"] * (note.velocity / 127) * np.exp(-t / p["index_decay_sec"])
    x = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * p["ratio"] * f * t))
    env = _envelope(n, sr, 0.002, hold, p["release_sec"], p["decay_sec"])
    return (x * env).astype(np.float32)


def organ_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Drawbar organ: sines at harmonic footages, instant attack, no decay."""
    n, hold = _n_samples(note, sr, 0.03)
    t = np.arange(n) / sr
    f = midi_hz(note.pitch)
    x = np.zeros(n)
    for ratio, level in zip((0.5, 1, 2, 3, 4, 6, 8), p["drawbars"]):
        if ratio * f < 0.45 * sr:
            x += level * np.sin(2 * np.pi * ratio * f * t + rng.random() * 6.28)
    env = _envelope(n, sr, 0.005, hold, 0.03, 0.0)
    return (x * env / max(1e-6, sum(p["drawbars"]))).astype(np.float32)


def pad_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Strings/pad: detuned saws, low-passed, with a slow attack and release."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    f = midi_hz(note.pitch)
    x = sum(_saw(f * (1 + d), n, sr, rng) for d in p["detune"])
    x = _lowpass(x / len(p["detune"]), p["cutoff_hz"], sr)
    env = _envelope(n, sr, p["attack_sec"], hold, p["release_sec"], 0.0)
    return (x * env).astype(np.float32)


def lead_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """Mono synth lead: a saw or square with vibrato through a low-pass."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    freq = _vibrato(midi_hz(note.pitch), n, sr, p["vibrato"], p["vibrato_hz"])
    x = _saw(freq, n, sr, rng)
    if p["square"]:
        x = np.sign(x).astype(np.float32)
    x = _lowpass(x, p["cutoff_hz"], sr)
    env = _envelope(n, sr, p["attack_sec"], hold, p["release_sec"], 0.0)
    return (x * env).astype(np.float32)


# Formants (F1, F2, F3 in Hz) of sung vowels, roughly a mid-range voice.
VOWELS = {
    "a": (750, 1200, 2600),
    "e": (450, 1900, 2600),
    "i": (300, 2300, 3000),
    "o": (480, 850, 2600),
    "u": (330, 800, 2400),
}


def voice_voice(
    note: PitchedNote, sr: int, rng: np.random.Generator, p: dict
) -> np.ndarray:
    """A singing voice: a glottal pulse with vibrato through three vowel formants."""
    n, hold = _n_samples(note, sr, p["release_sec"])
    jitter = 1 + 0.003 * _lowpass(rng.standard_normal(n), 8.0, sr, order=1) * 30
    freq = _vibrato(midi_hz(note.pitch), n, sr, p["vibrato"], p["vibrato_hz"]) * jitter
    source = _lowpass(_saw(freq, n, sr, rng), 3000.0, sr, order=1)
    source += p["breath"] * rng.standard_normal(n).astype(np.float32)
    vowel = VOWELS[str(rng.choice(list(VOWELS)))]
    out = np.zeros(n, dtype=np.float32)
    for formant_hz, gain in zip(vowel, (1.0, 0.6, 0.3)):
        if formant_hz < 0.45 * sr:
            b, a = signal.iirpeak(formant_hz, Q=formant_hz / 90.0, fs=sr)
            out += gain * signal.lfilter(b, a, source).astype(np.float32)
    env = _envelope(n, sr, p["attack_sec"], hold, p["release_sec"], 0.0)
    return (out * env).astype(np.float32)


VOICES: dict[str, Voice] = {
    "bass": bass_voice,
    "pluck": pluck_voice,
    "epiano": epiano_voice,
    "organ": organ_voice,
    "pad": pad_voice,
    "lead": lead_voice,
    "voice": voice_voice,
}


def draw_patch(voice: str, rng: np.random.Generator) -> dict:
    """Random settings of a voice: each part of each backing track sounds different."""
    u = rng.uniform
    patches = {
        "bass": lambda: {
            "wave": str(rng.choice(["saw", "sine"])),
            "bright": u(0.0, 0.5),
            "cutoff_mult": u(3, 12),
            "release_sec": u(0.03, 0.15),
            "decay_sec": u(0.4, 3.0),
        },
        "pluck": lambda: {"damping": u(0.985, 0.999), "tone_hz": u(1500, 6000),
                          "release_sec": u(0.05, 0.3)},
        "epiano": lambda: {"index": u(0.5, 4), "index_decay_sec": u(0.05, 0.5),
                           "ratio": float(rng.choice([1.0, 2.0, 3.0, 7.0])),
                           "decay_sec": u(0.8, 4), "release_sec": u(0.05, 0.3)},
        "organ": lambda: {"drawbars": tuple(rng.choice([0, 0.3, 0.6, 1.0], size=7))},
        "pad": lambda: {"detune": tuple(u(-0.012, 0.012, size=int(rng.integers(2, 5)))),
                        "cutoff_hz": u(800, 6000), "attack_sec": u(0.05, 0.8),
                        "release_sec": u(0.2, 1.0)},
        "lead": lambda: {"square": bool(rng.random() < 0.4), "vibrato": u(0, 0.01),
                         "vibrato_hz": u(4, 7), "cutoff_hz": u(1500, 8000),
                         "attack_sec": u(0.005, 0.08), "release_sec": u(0.05, 0.3)},
        "voice": lambda: {"vibrato": u(0.004, 0.02), "vibrato_hz": u(4.5, 6.5),
                          "breath": u(0.0, 0.08), "attack_sec": u(0.03, 0.15),
                          "release_sec": u(0.08, 0.3)},
    }  # fmt: skip
    return patches[voice]()


def render_notes(
    notes: Sequence[PitchedNote],
    voice: str,
    patch: dict,
    n_samples: int,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Every note of one part through one voice, summed into (n_samples,) float32."""
    out = np.zeros(n_samples, dtype=np.float32)
    fn = VOICES[voice]
    for note in notes:
        start = int(round(note.start_sec * sr))
        if start >= n_samples or midi_hz(note.pitch) >= 0.45 * sr:
            continue
        sound = fn(note, sr, rng, patch) * np.float32(note.velocity / 127)
        stop = min(n_samples, start + len(sound))
        out[max(start, 0) : stop] += sound[max(0, -start) : stop - start]
    return out


def amp_and_cabinet(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A distorted guitar amp: pre-emphasis, asymmetric soft clipping at a random drive,
    then a speaker cabinet's band-pass with a presence bump."""
    pre = signal.sosfilt(signal.butter(1, 300 / (sr / 2), "high", output="sos"), x)
    drive = 10 ** rng.uniform(0.7, 1.7)  # 5x .. 50x
    bias = rng.uniform(0.0, 0.3)
    y = np.tanh(drive * pre + bias) - np.tanh(bias)
    cab_hz = min(rng.uniform(2500, 5500), 0.45 * sr)
    y = signal.sosfilt(signal.butter(4, cab_hz / (sr / 2), "low", output="sos"), y)
    y = signal.sosfilt(signal.butter(2, 90 / (sr / 2), "high", output="sos"), y)
    b, a = signal.iirpeak(min(rng.uniform(1500, 3000), 0.4 * sr), Q=1.5, fs=sr)
    y = y + 0.5 * signal.lfilter(b, a, y)
    return (y / (np.abs(y).max() + 1e-9) * 0.5).astype(np.float32)


def chorus(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A slowly modulated short delay mixed with the dry signal."""
    n = len(x)
    t = np.arange(n) / sr
    delay = (
        rng.uniform(0.008, 0.02) + 0.003 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t)
    ) * sr
    idx = np.clip(np.arange(n) - delay, 0, n - 1)
    wet = np.interp(idx, np.arange(n), x)
    return (0.7 * x + 0.5 * wet).astype(np.float32)


def tremolo(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(len(x)) / sr
    depth = rng.uniform(0.1, 0.5)
    lfo = 1 - depth * 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 7) * t))
    return (x * lfo).astype(np.float32)


EFFECTS = {"amp": amp_and_cabinet, "chorus": chorus, "tremolo": tremolo}
