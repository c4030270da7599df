"""Signal pieces every kit shares: onset anchoring, mixing with chokes, limiting, and
the oscillators, noises, envelopes and filters that synthesised voices are built from.

Alignment contract: a sound is anchored so that its energy onset (the first sample
reaching ONSET_FRACTION of its peak) sits at ``Sound.onset``, after a short faded-in
pre-roll that keeps the attack's leading edge; mixing puts that sample on the note's
MIDI time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

ONSET_FRACTION = 0.1  # energy onset = first sample at this fraction of the peak
PREROLL_SEC = 0.001  # kept before the onset, faded in


@dataclass(frozen=True)
class Sound:
    """A cached hit: audio whose energy onset sits at sample ``onset``."""

    audio: np.ndarray  # (n,) float32; synth: peak 1, Hydrogen: the file's level
    onset: int  # samples from the array start to the energy onset


@dataclass(frozen=True)
class Event:
    """A sound placed in time, with what decides whether a later hit chokes it."""

    time_sec: float
    sound: Sound
    gain: float
    instrument: str  # choking never cuts a hit by another hit of the same instrument
    group: str | None  # choke group ("hh" or a Hydrogen mute group)
    chokes: bool  # whether this hit silences earlier hits of its group


SILENT = Sound(np.zeros(1, np.float32), 0)  # a choke without a sound of its own

# ---------------------------------------------------------------- anchoring and mixing


def anchor_sound(audio: np.ndarray, sample_rate: int) -> Sound:
    """Trim leading silence so the audio starts PREROLL_SEC before its energy onset."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return Sound(np.zeros(1, np.float32), 0)
    onset = int(np.argmax(np.abs(audio) >= ONSET_FRACTION * peak))
    start = max(0, onset - round(PREROLL_SEC * sample_rate))
    out = audio[start:] / peak
    n_pre = onset - start
    if n_pre > 0:  # fade the pre-roll in so the cut makes no click
        out = out.copy()
        out[:n_pre] *= np.linspace(0.0, 1.0, n_pre, endpoint=False, dtype=np.float32)
    return Sound(out.astype(np.float32), n_pre)


def choke_times(events: Sequence[Event]) -> list[float | None]:
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
        if ev.sound is not SILENT:  # nothing to cut
            waiting.append(i)
    return stops


def mix_events(
    events: Sequence[Event], n_samples: int, sample_rate: int, fade_sec: float
) -> np.ndarray:
    """Sum the hits into a (n_samples,) float32 buffer, fading choked hits out."""
    events = sorted(events, key=lambda e: e.time_sec)
    stops = choke_times(events)
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


def limit(audio: np.ndarray) -> np.ndarray:
    """Scale down (never up) so the mix does not clip."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak * 0.98 if peak > 0.98 else audio


# ---------------------------------------------------------------- synthesis primitives


def sos_filter(
    x: np.ndarray, sr: int, kind: str, cutoff_hz: float | tuple
) -> np.ndarray:
    """A 2nd-order Butterworth ``kind`` filter; cutoffs clamped to 20 Hz..0.45 sr."""
    nyq = 0.5 * sr
    cut = np.clip(np.atleast_1d(np.asarray(cutoff_hz, float)), 20.0, 0.45 * sr) / nyq
    sos = signal.butter(2, cut if cut.size > 1 else cut[0], btype=kind, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def exp_decay(n: int, sr: int, decay_sec: float) -> np.ndarray:
    """An exponential envelope falling by 1/e every ``decay_sec``."""
    return np.exp(-np.arange(n, dtype=np.float32) / (decay_sec * sr)).astype(np.float32)


def ring_samples(sr: int, decay_sec: float, max_sec: float) -> int:
    """Length of a sound that rings for 7 decay times, at most ``max_sec``."""
    return int(sr * min(max_sec, 7.0 * decay_sec)) + 1


def sweep(
    n: int, sr: int, f_start: float, f_end: float, sweep_sec: float
) -> np.ndarray:
    """A sine whose frequency falls exponentially from f_start to f_end (Hz)."""
    t = np.arange(n) / sr
    freq = f_end + (f_start - f_end) * np.exp(-t / sweep_sec)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr).astype(np.float32)


def metal(
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


def noise(n: int, rng: np.random.Generator, colour: float) -> np.ndarray:
    """Noise between white (colour 0) and strongly low-weighted (colour 1)."""
    white = rng.standard_normal(n).astype(np.float32)
    if colour <= 0.0:
        return white
    smooth = signal.lfilter([1 - 0.95 * colour], [1, -0.95 * colour], white)
    return ((1 - colour) * white + colour * 4 * smooth).astype(np.float32)
