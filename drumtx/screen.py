"""Is a drum kit playing? Screening real non-drum audio before it backs training drums.

A drum in the backing of a training crop is a wrong label (the target says silence where
a kit plays), so audio bound for the real-music pool (tools/build_music_pool.py) is
screened per excerpt of ``EXCERPT_SEC`` with two tests that see different things:

- spectral (numpy/scipy): the share of the excerpt's energy that a median-filter
  harmonic/percussive split calls percussive, and how periodic its percussive onsets
  are (a kit keeps time; speech and plucked notes rarely do both);
- the shipped model (optional): confident kick, snare and hi-hat hits per minute, and
  how periodic they are;
- both together, for a lone bass drum (cinematic and orchestral music keep time with one
  big drum and no kit): confident kicks that are most of the model's confident hits,
  where the spectrum has as many short low thumps (energy below ``THUMP_HZ`` jumping
  over its surroundings and falling away within ``THUMP_DECAY_SEC``). The model alone
  would refuse bass lines (it hears kicks and low toms in bass notes), the thumps alone
  palm-muted guitar; a bass drum sets off both.

An excerpt is refused when any test says drums; a file with many refused excerpts is
refused whole, and an excerpt next to a refused one goes too. The errors are not
symmetric: a refused drum-free excerpt only costs data, a kept drum excerpt teaches the
model to stay silent on drums, so every threshold leans toward refusing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage, signal

if TYPE_CHECKING:
    from drumtx.inference import LoadedModel

# What the screen's rules are, for a pool's manifest: 1, the spectral and model kit
# tests; 2 (2026-12-08), and a lone bass drum. A rule change keeps other excerpts.
SCREEN_VERSION = 2
EXCERPT_SEC = 10.0
FPS = 100  # frames per second of both tests' envelopes
N_BANDS = 48  # log-spaced bands, 40 Hz .. 11 kHz
PULSE_LAGS_SEC = (0.25, 1.5)  # beat periods looked for: 240 .. 40 BPM
MODEL_CODES = ("KD", "SD", "HH")  # classes a kit keeping time plays
MODEL_HIT_PROB = 0.6  # a "confident" hit
# Thresholds, set on grooves rendered through drumtx's kits into real music at -12 to
# +6 dB drums-to-music (every such excerpt had >= 84 confident KD/SD/HH hits a minute
# and a pulse >= 0.16) against drum-free guitar stems and speech, which the model also
# hears hits in (speech 40-130 a minute; distorted guitar up to 420, nearly all "SD"):
# a kit plays at least two of kick, snare and hi-hat. See README for the numbers.
MODEL_CLASS_HITS = 3  # confident hits in an excerpt for a class to count as playing
MODEL_KIT_CLASSES = 2  # of KD, SD, HH playing: a kit
MODEL_HITS_PER_MIN = 36.0  # ... with at least this many hits a minute
MODEL_HITS_ALONE_PER_MIN = 72.0  # one class alone counts with this many hits ...
MODEL_PULSE = 0.45  # ... at a pulse this strong (a lone snare or hi-hat keeping time)
SPECTRAL_SHARE = 0.35  # percussive share of the energy above which ...
SPECTRAL_PULSE = 0.45  # ... a periodic percussive envelope counts as drums
# A lone bass drum. Set on the real-music pool as screen 1 kept it on 2026-12-08, where
# ufoai-music's AlexFightmare (a heartbeat of bass-drum hits under orchestral pads,
# 36-84 confident kicks a minute, nearly all its confident hits) had passed the tests
# above and fired hundreds of "false" kicks under the held-out drums; of both splits'
# 791 excerpts of 5 s or more the rule refuses 11 of its 26 and no other (the build
# then refuses the file and nothing else); recorded bass lines have no thumps.
THUMP_HZ = 150.0  # a bass drum's thump sits below this
THUMP_RISE_DB = 12.0  # over the low band's median of the surrounding half second
THUMP_DROP_DB = 10.0  # ... and this far down again ...
THUMP_DECAY_SEC = 0.15  # ... this long after its peak (a bass note rings on)
THUMP_RANGE_DB = 30.0  # only thumps within this of the excerpt's loudest low frame
LONE_KICKS_PER_MIN = 30.0  # confident kicks (and as many thumps) a minute ...
LONE_KICK_SHARE = 0.6  # ... making up this share of the model's confident hits
FILE_REFUSE_SHARE = 0.25  # refuse the whole file past this share of drum excerpts


@dataclass(frozen=True)
class ExcerptScore:
    """What the tests saw in one excerpt (start in seconds from the file's start)."""

    start_sec: float
    perc_share: float  # percussive share of the energy, 0..1
    spectral_pulse: float  # normalised autocorrelation peak of percussive onsets
    model_hits_per_min: float = 0.0  # confident KD/SD/HH hits; 0 without a model
    model_pulse: float = 0.0
    model_kit_classes: int = 0  # of KD, SD, HH, those with MODEL_CLASS_HITS hits
    thumps_per_min: float = 0.0  # short low thumps (spectral)
    model_kicks_per_min: float = 0.0  # confident kicks
    model_kick_share: float = 0.0  # their share of the confident hits of every class

    @property
    def spectral_drums(self) -> bool:
        return (
            self.perc_share >= SPECTRAL_SHARE and self.spectral_pulse >= SPECTRAL_PULSE
        )

    @property
    def model_drums(self) -> bool:
        rate = self.model_hits_per_min
        kit = self.model_kit_classes >= MODEL_KIT_CLASSES and rate >= MODEL_HITS_PER_MIN
        alone = rate >= MODEL_HITS_ALONE_PER_MIN and self.model_pulse >= MODEL_PULSE
        return kit or alone

    @property
    def lone_kick(self) -> bool:
        """A bass drum keeping time alone: the model's kicks and the thumps agree."""
        return (
            self.model_kicks_per_min >= LONE_KICKS_PER_MIN
            and self.model_kick_share >= LONE_KICK_SHARE
            and self.thumps_per_min >= LONE_KICKS_PER_MIN
        )

    @property
    def drums(self) -> bool:
        return self.spectral_drums or self.model_drums or self.lone_kick

    def to_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "drums": self.drums}


def band_edges(sample_rate: int) -> np.ndarray:
    """(N_BANDS + 2,) corners of band_matrix's bands; band k peaks at edges[k + 1]."""
    return np.geomspace(40.0, min(11000.0, 0.45 * sample_rate), N_BANDS + 2)


def band_matrix(n_fft: int, sample_rate: int) -> np.ndarray:
    """(N_BANDS, n_fft // 2 + 1) triangular bands, log-spaced 40 Hz .. 11 kHz."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    edges = band_edges(sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def band_power(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N_BANDS, T) power at FPS frames per second."""
    hop = max(1, round(sample_rate / FPS))
    n_fft = 1 << int(np.ceil(np.log2(0.04 * sample_rate)))  # ~40 ms
    _, _, spec = signal.stft(
        x.astype(np.float32), nperseg=n_fft, noverlap=n_fft - hop, boundary=None,
        padded=True,
    )  # fmt: skip
    return band_matrix(n_fft, sample_rate) @ (np.abs(spec) ** 2)  # (N_BANDS, T)


def pulse(envelope: np.ndarray, fps: float = FPS) -> float:
    """Peak of the normalised autocorrelation of an onset envelope at beat-like lags."""
    e = envelope - envelope.mean()
    energy = float(np.dot(e, e))
    lo, hi = (int(s * fps) for s in PULSE_LAGS_SEC)
    if energy <= 1e-12 or len(e) <= hi:
        return 0.0
    ac = signal.fftconvolve(e, e[::-1], mode="full")[len(e) - 1 :]  # lags 0..
    # Unbiased: a lag sees fewer products than lag 0.
    ac = ac / energy * len(e) / (len(e) - np.arange(len(e)))
    return float(np.clip(ac[lo : hi + 1].max(), 0.0, 1.0))


def low_thumps(power: np.ndarray, sample_rate: int) -> int:
    """Short low thumps in (N_BANDS, T) band power: peaks of the power below THUMP_HZ
    that rise THUMP_RISE_DB over the surrounding half second's median and fall
    THUMP_DROP_DB within THUMP_DECAY_SEC, at most one per 100 ms."""
    low = power[band_edges(sample_rate)[1:-1] < THUMP_HZ].sum(axis=0)
    db = 10.0 * np.log10(low + 1e-10)  # (T,)
    floor = ndimage.median_filter(db, size=int(0.5 * FPS), mode="nearest")
    later = int(THUMP_DECAY_SEC * FPS)
    frames = np.flatnonzero((db[1:-1] >= db[:-2]) & (db[1:-1] > db[2:])) + 1
    frames = frames[frames + later < len(db)]
    strong = (
        (db[frames] - floor[frames] >= THUMP_RISE_DB)
        & (db[frames] - db[frames + later] >= THUMP_DROP_DB)
        & (db[frames] > db.max() - THUMP_RANGE_DB)
    )
    count, last = 0, -FPS
    for t in frames[strong]:
        if t - last > FPS // 10:
            count, last = count + 1, t
    return count


def spectral_features(x: np.ndarray, sample_rate: int) -> tuple[float, float, float]:
    """(percussive share, spectral pulse, low thumps a minute) of one excerpt, by
    median filtering."""
    power = band_power(x, sample_rate)  # (N_BANDS, T)
    if power.shape[1] < 3 or power.sum() <= 1e-12:
        return 0.0, 0.0, 0.0
    harmonic = ndimage.median_filter(power, size=(1, 17), mode="nearest")
    percussive = ndimage.median_filter(power, size=(9, 1), mode="nearest")
    mask = percussive**2 / (harmonic**2 + percussive**2 + 1e-20)
    share = float((mask * power).sum() / power.sum())
    perc = np.log10(mask * power + 1e-10)  # (N_BANDS, T)
    flux = np.maximum(np.diff(perc, axis=1), 0.0).mean(axis=0)  # (T - 1,)
    minutes = len(x) / sample_rate / 60
    return share, pulse(flux), low_thumps(power, sample_rate) / minutes


def confident_peaks(prob: np.ndarray, threshold: float = MODEL_HIT_PROB) -> np.ndarray:
    """(T,) bool: local maxima of one class's onset probability at or over threshold."""
    p = np.concatenate([[0.0], prob, [0.0]])
    return (p[1:-1] >= threshold) & (p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:])


def model_features(
    onset: np.ndarray, codes: tuple[str, ...], fps: float
) -> tuple[float, float, int, float, float]:
    """(confident KD/SD/HH hits per minute, pulse of those hits, classes among them
    with MODEL_CLASS_HITS hits, confident kicks per minute, the kicks' share of the
    confident hits of every class) from (T, C) onset probabilities."""
    every = np.stack([confident_peaks(onset[:, j]) for j in range(len(codes))])
    hits = every[[codes.index(c) for c in MODEL_CODES if c in codes]]  # (n_codes, T)
    minutes = onset.shape[0] / fps / 60
    if minutes <= 0:
        return 0.0, 0.0, 0, 0.0, 0.0
    train = ndimage.uniform_filter1d(hits.sum(axis=0).astype(np.float64), 3)
    n_classes = int((hits.sum(axis=1) >= MODEL_CLASS_HITS).sum())
    kicks = int(every[codes.index("KD")].sum()) if "KD" in codes else 0
    share = kicks / every.sum() if every.sum() else 0.0
    rate = float(hits.sum() / minutes)
    return rate, pulse(train, fps), n_classes, kicks / minutes, float(share)


def excerpt_starts(n_samples: int, sample_rate: int) -> list[int]:
    """Start samples of the excerpts; the last short remainder joins the one before."""
    step = int(EXCERPT_SEC * sample_rate)
    n = max(1, n_samples // step)
    return [k * step for k in range(n)]


def excerpt_bounds(n_samples: int, sample_rate: int) -> list[tuple[int, int]]:
    starts = excerpt_starts(n_samples, sample_rate)
    return list(zip(starts, starts[1:] + [n_samples]))


def screen_audio(
    x: np.ndarray, sample_rate: int, loaded: LoadedModel | None = None
) -> list[ExcerptScore]:
    """Score every excerpt of mono float audio at ``sample_rate``; with ``loaded`` the
    model's hits count too (it hears the audio at its own rate, resampled if need be).
    """
    onset, codes, fps = None, (), float(FPS)
    if loaded is not None:
        onset, codes, fps = model_onsets(loaded, x, sample_rate)
    scores = []
    for lo, hi in excerpt_bounds(len(x), sample_rate):
        share, spec_pulse, thumps = spectral_features(x[lo:hi], sample_rate)
        rate, beat, n_classes, kicks, kick_share = 0.0, 0.0, 0, 0.0, 0.0
        if onset is not None:
            f_lo, f_hi = int(lo / sample_rate * fps), int(hi / sample_rate * fps)
            rate, beat, n_classes, kicks, kick_share = model_features(
                onset[f_lo:f_hi], codes, fps
            )
        scores.append(ExcerptScore(
            lo / sample_rate, share, spec_pulse, rate, beat, n_classes, thumps, kicks,
            kick_share,
        ))  # fmt: skip
    return scores


def model_onsets(
    loaded: LoadedModel, x: np.ndarray, sample_rate: int
) -> tuple[np.ndarray, tuple[str, ...], float]:
    """(T, C) onset probabilities of the whole file, the class codes, the frame rate.

    ``x`` is at ``sample_rate``; the model takes audio at its own rate (a 48 kHz model
    fed 24 kHz samples would hear everything an octave up and in half the time), so it
    gets ``x`` resampled to that rate where the two differ.
    """
    from drumtx.audio import resample
    from drumtx.inference import array_activations

    if sample_rate != loaded.cfg.audio.sample_rate:
        x = resample(x, sample_rate, loaded.cfg.audio.sample_rate)
        sample_rate = loaded.cfg.audio.sample_rate
    segment_sec = float(min(30, max(4, np.ceil(len(x) / sample_rate))))  # no padding
    onset, _ = array_activations(
        loaded, x, segment_sec=segment_sec, overlap_sec=2.0, batch_size=4
    )
    return onset, tuple(loaded.vocab.codes), float(loaded.cfg.frontend.fps)


def keep_mask(scores: list[ExcerptScore]) -> np.ndarray:
    """(n_excerpts,) bool: excerpts kept. A drum excerpt's neighbours go too (a kit
    that plays through a fade or a quiet bar), and past FILE_REFUSE_SHARE the file."""
    drums = np.array([s.drums for s in scores], dtype=bool)
    if not len(drums) or drums.mean() > FILE_REFUSE_SHARE:
        return np.zeros(len(drums), dtype=bool)
    near = drums.copy()
    near[1:] |= drums[:-1]
    near[:-1] |= drums[1:]
    return ~near
