"""Training-time audio augmentation: from rendered drums toward recorded songs.

One crop goes through what a recording goes through: the drum bus (EQ, compression),
the band (the recording's backing track, or in ``music_prob`` of banded crops an
excerpt of the real-music pool, drumtx.music, at a random drums-to-music level), the
master (room reverb, EQ, saturation or clipping, compression), a lossy codec, some
noise, and a playback level (a random gain, or loudness normalisation to a random
target). Onsets never move: every effect is causal and keeps the direct sound at lag 0.

In ``break_prob`` of the crops with a band the drums stop for a stretch of the crop (a
break, an intro, a fill's rest) while the band plays on, and the onsets there leave the
targets: a model that never heard music without drums fires toms on bass notes and
kicks on guitar chugs wherever a song's drums pause.

Velocity targets follow the audio: where a compressor turns a hit down relative to the
rest of the crop, that hit's target velocity goes down by the same number of decibels
(on MIDI's 40 dB velocity scale); a second kit mixed in quieter gets quieter targets.
A gain applied to the whole crop leaves them alone: velocity is how hard a hit is
played relative to the performance, not how loud a file was mastered.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import signal

from drumtx.levels import SILENT_DB, mix_backing, rms_db, scale_velocity
from drumtx.music import MusicPool, random_excerpt

HIT_BODY_SEC = 0.03  # the part of a hit whose level its velocity target follows
# A break: the drums stop for a share of the crop while the band plays on. The kit
# fades out over BREAK_FADE_SEC (a cymbal choked, a tail dying) and is back at once.
BREAK_SHARE = (0.25, 1.0)
BREAK_FADE_SEC = (0.02, 0.2)
BREAK_RETURN_SEC = 0.005


@dataclass(frozen=True)
class AugmentConfig:
    """The probabilities and ranges of every effect (the [data] table sets them)."""

    gain_db_min: float = -12.0
    gain_db_max: float = 6.0
    eq_prob: float = 0.5
    noise_prob: float = 0.3
    reverb_prob: float = 0.3
    backing_prob: float = 0.67
    backing_db_min: float = -6.0
    backing_db_max: float = 12.0
    music_prob: float = 0.0  # of the crops with a band, those hearing real music
    break_prob: float = 0.0  # of the crops with a band, those where the drums pause
    compress_prob: float = 0.4
    saturate_prob: float = 0.2
    codec_prob: float = 0.1
    lowpass_prob: float = 0.0
    loudness_prob: float = 0.0  # level set by RMS normalisation instead of a gain
    loudness_db_min: float = -26.0  # normalisation targets, dB RMS re full scale
    loudness_db_max: float = -9.0


def compress(
    x: np.ndarray, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A feed-forward RMS compressor; also returns its gain in dB per sample."""
    attack_sec, release_sec = rng.uniform(0.001, 0.03), rng.uniform(0.05, 0.4)
    ratio = rng.uniform(2.0, 10.0)
    power = np.square(x, dtype=np.float64)
    # Fast attack, slow release: take the louder of two smoothed envelopes.
    fast = signal.lfilter(
        [1 - np.exp(-1 / (attack_sec * sr))],
        [1, -np.exp(-1 / (attack_sec * sr))],
        power,
    )
    slow = signal.lfilter(
        [1 - np.exp(-1 / (release_sec * sr))],
        [1, -np.exp(-1 / (release_sec * sr))],
        power,
    )
    level_db = 10 * np.log10(np.maximum(fast, slow) + 1e-12)
    threshold_db = rms_db(x) + rng.uniform(-6.0, 6.0)
    over = np.maximum(level_db - threshold_db, 0.0)
    gain_db = -over * (1 - 1 / ratio)
    makeup_db = -float(np.median(gain_db))
    return (x * 10 ** ((gain_db + makeup_db) / 20)).astype(np.float32), gain_db


def saturate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tape-like soft saturation or a brickwall clip, at a random drive."""
    peak = float(np.abs(x).max()) + 1e-9
    drive = 10 ** (rng.uniform(0.0, 12.0) / 20) / peak
    if rng.random() < 0.5:
        return (np.tanh(x * drive) / drive).astype(np.float32)
    ceiling = 1.0 / drive
    return np.clip(x, -ceiling, ceiling).astype(np.float32)


def random_eq(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Low and high shelves of -9..+9 dB, and sometimes a bell."""
    nyquist = sr / 2
    low = signal.lfilter(*signal.butter(1, rng.uniform(60, 400) / nyquist, "low"), x)
    high_hz = min(rng.uniform(2000, 10000), 0.9 * nyquist)
    high = signal.lfilter(*signal.butter(1, high_hz / nyquist, "high"), x)
    g_lo, g_hi = 10 ** (rng.uniform(-9, 9, size=2) / 20) - 1
    y = x + g_lo * low + g_hi * high
    if rng.random() < 0.5:
        b, a = signal.iirpeak(
            rng.uniform(200, min(6000, 0.8 * nyquist)), Q=rng.uniform(0.7, 4), fs=sr
        )
        y = y + (10 ** (rng.uniform(-8, 8) / 20) - 1) * signal.lfilter(b, a, x)
    return y.astype(np.float32)


def room_reverb(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A decaying noise tail behind a unit direct sound at lag 0 (onsets stay put)."""
    rt60_sec = rng.uniform(0.15, 1.2)
    n_ir = int(rt60_sec * sr)
    t = np.arange(n_ir) / sr
    tail = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60_sec)
    # Darker tails for longer rooms: air and walls absorb highs.
    tail = signal.lfilter(
        *signal.butter(1, min(rng.uniform(2000, 8000), 0.45 * sr) / (sr / 2)), tail
    )
    pre_delay = int(rng.uniform(0.005, 0.03) * sr)
    ir = np.zeros(n_ir + pre_delay)
    ir[pre_delay:] = (
        tail / (np.sqrt(np.sum(tail**2)) + 1e-9) * 10 ** (rng.uniform(-18, -3) / 20)
    )
    ir[0] = 1.0
    wet = signal.fftconvolve(x, ir)[: len(x)]
    return (wet / max(1.0, np.abs(wet).max())).astype(np.float32)


def coloured_noise(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(len(x)))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    spectrum *= np.maximum(freqs, 20.0) ** (rng.uniform(-1.0, 0.5) / 2)  # pink .. hiss
    noise = np.fft.irfft(spectrum, n=len(x))
    noise *= 10 ** ((rms_db(x) - rng.uniform(20, 50)) / 20) / (
        np.sqrt(np.mean(noise**2)) + 1e-12
    )
    return (x + noise).astype(np.float32)


LOWPASS_HZ = (11000.0, 20000.0)  # a 22.05 kHz file ends at 11 kHz; MP3s cut at 16-20


def band_limit(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The mix with nothing above a random cutoff, as a file sampled at a lower rate or
    encoded lossily has: a model hearing high bands must not need them. Where the
    cutoff is above this rate's band the crop comes back unchanged."""
    cutoff = rng.uniform(*LOWPASS_HZ)
    if cutoff >= 0.95 * sr / 2:
        return x
    sos = signal.butter(12, cutoff, btype="lowpass", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def lossy_codec(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """An MP3 or Ogg Vorbis round trip at a random quality (libsndfile; no delay).

    The crop comes back unchanged where the codec cannot take it: LAME aborts the whole
    process on a NaN, and libsndfile once failed mid-run in a training's loader worker
    (a LibsndfileError whose message could not be read), ending the run.
    """
    if not np.isfinite(x).all():
        return x
    fmt, subtype = (
        ("MP3", "MPEG_LAYER_III") if rng.random() < 0.5 else ("OGG", "VORBIS")
    )
    quality = rng.uniform(0.2, 1.0)
    peak = max(1.0, float(np.abs(x).max()))
    try:
        buffer = io.BytesIO()
        sf.write(buffer, x / peak, sr, format=fmt, subtype=subtype,
                 compression_level=quality)  # fmt: skip
        buffer.seek(0)
        y = sf.read(buffer, dtype="float32")[0] * peak
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return x
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def drum_break(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 gain for the drums of a crop with a break: 1, fading to 0 over a
    random stretch (BREAK_SHARE of the crop, anywhere in it), back to 1 after it."""
    length = int(rng.uniform(*BREAK_SHARE) * n)
    start = int(rng.integers(0, n - length + 1))
    stop = start + length
    kept = np.ones(n, np.float32)
    kept[start:stop] = 0.0
    fade = min(int(rng.uniform(*BREAK_FADE_SEC) * sr), length)
    kept[start : start + fade] = np.linspace(1.0, 0.0, fade, endpoint=False)
    back = min(int(BREAK_RETURN_SEC * sr), length - fade)
    if stop < n and back > 0:
        kept[stop - back : stop] = np.linspace(0.0, 1.0, back, endpoint=False)
    return kept


class Augmenter:
    """The whole chain for one crop: drum bus, band, master, codec, level."""

    def __init__(
        self,
        cfg: AugmentConfig,
        sample_rate: int,
        hop_length: int,
        music_pool: MusicPool | None = None,
    ) -> None:
        self.cfg = cfg
        self.sr = sample_rate
        self.hop = hop_length
        self.music_pool = music_pool  # real non-drum audio (drumtx.music), or None

    def __call__(
        self,
        drums: np.ndarray,
        music: np.ndarray | None,
        velocity: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N,) drums, (N,) music or None, (T, C) velocity targets -> audio, targets."""
        audio, velocity, _ = self.run(drums, music, velocity, rng)
        return audio, velocity

    def run(
        self,
        drums: np.ndarray,
        music: np.ndarray | None,
        velocity: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """As ``__call__``, and the frames (T,) bool where a break silenced the drums
        (None without one): their onset targets are 0, whatever the score says."""
        cfg, sr = self.cfg, self.sr
        gain_db = np.zeros(len(drums))  # what compressors did, per sample
        x = drums
        silenced = None
        if rng.random() < cfg.eq_prob / 2:
            x = random_eq(x, sr, rng)
        if rng.random() < cfg.compress_prob / 2:
            x, g = compress(x, sr, rng)
            gain_db += g
        has_band = music is not None or self._pool_plays()
        if has_band and rng.random() < cfg.backing_prob:
            music = self._band(music, len(x), rng)
            level = rng.uniform(cfg.backing_db_min, cfg.backing_db_max)
            mixed = None if music is None else mix_backing(x, music, level)
            breaks = cfg.break_prob > 0 and rng.random() < cfg.break_prob
            if mixed is not None and breaks:
                kept = drum_break(len(x), sr, rng)
                mixed -= x * (1 - kept)  # the level was set with the drums playing
                at = np.minimum(np.arange(len(velocity)) * self.hop, len(x) - 1)
                silenced = kept[at] < 0.5
                velocity = velocity * ~silenced[:, None]
            x = x if mixed is None else mixed
        x, g = self._master(x, rng)
        gain_db += g
        x = x * np.float32(10 ** (self._level_db(x, rng) / 20))
        if not np.isfinite(x).all():  # never seen; a poisoned batch would cost a step
            return np.clip(drums, -1.0, 1.0).astype(np.float32), velocity, silenced
        audio = np.clip(x, -1.0, 1.0).astype(np.float32)
        return audio, self._follow(velocity, gain_db), silenced

    def _band(
        self, rendered: np.ndarray | None, n: int, rng: np.random.Generator
    ) -> np.ndarray | None:
        """The crop's band: in ``music_prob`` of crops (where a pool is loaded) an
        excerpt of real music instead of the rendered backing track, else that track."""
        if self._pool_plays() and rng.random() < self.cfg.music_prob:
            assert self.music_pool is not None
            return random_excerpt(self.music_pool, n, rng)
        return rendered

    def _pool_plays(self) -> bool:
        return self.music_pool is not None and self.cfg.music_prob > 0

    def _level_db(self, x: np.ndarray, rng: np.random.Generator) -> float:
        """The playback gain: random, or (loudness_prob) what brings the crop's RMS
        to a random target, as loudness-normalised releases and mastering do."""
        cfg = self.cfg
        if rng.random() < cfg.loudness_prob and rms_db(x) > SILENT_DB:
            return rng.uniform(cfg.loudness_db_min, cfg.loudness_db_max) - rms_db(x)
        return rng.uniform(cfg.gain_db_min, cfg.gain_db_max)

    def _master(
        self, x: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        cfg, sr = self.cfg, self.sr
        gain_db = np.zeros(len(x))
        if rng.random() < cfg.reverb_prob:
            x = room_reverb(x, sr, rng)
        if rng.random() < cfg.eq_prob / 2:
            x = random_eq(x, sr, rng)
        if rng.random() < cfg.saturate_prob:
            x = saturate(x, rng)
        if rng.random() < cfg.compress_prob / 2:
            x, gain_db = compress(x, sr, rng)
        if rng.random() < cfg.codec_prob:
            x = lossy_codec(x, sr, rng)
        if rng.random() < cfg.noise_prob:
            x = coloured_noise(x, sr, rng)
        if cfg.lowpass_prob > 0 and rng.random() < cfg.lowpass_prob:  # after the noise
            x = band_limit(x, sr, rng)
        return x, gain_db

    def _follow(self, velocity: np.ndarray, gain_db: np.ndarray) -> np.ndarray:
        """Move each onset's velocity by the compressors' gain over the hit's first
        HIT_BODY_SEC (the attack is what a listener hears as how hard it was hit),
        relative to their typical gain over the crop."""
        if not gain_db.any():
            return velocity
        n_body = max(1, int(HIT_BODY_SEC * self.sr))
        cumulative = np.concatenate([[0.0], np.cumsum(gain_db)])
        starts = np.minimum(np.arange(velocity.shape[0]) * self.hop, len(gain_db) - 1)
        stops = np.minimum(starts + n_body, len(gain_db))
        body_db = (cumulative[stops] - cumulative[starts]) / (stops - starts)  # (T,)
        return scale_velocity(velocity, (body_db - np.median(gain_db))[:, None])
