"""Tempo, beats and downbeats from the model's own drum activations -> a tempo map.

1. Hits: the hits the MIDI gets (``transcribe`` passes its decoded hits, so
   ``--threshold`` moves notes and bars alike; without them, the peaks of the onset
   activations at or above ``HIT_THRESHOLD``), in nine roles:
   kick, snare and timekeeper (hi-hat, ride), each accented or not (accented:
   velocity at least ``ACCENT_RATIO`` x the class's 90th percentile in the file), open
   hat, crash, toms. The onset strength is the sum of the activations (kick, snare and
   crash weighted up).
2. Candidate beat periods: the strongest peaks of the strength's autocorrelation
   (harmonics summed), with twice and half each.
3. For each candidate, beats by dynamic programming (Ellis 2007) at that period; the
   same beats shifted by half a beat are a second sequence.
   In a file longer than 90 s the candidates are first tracked and scored (4.) on
   its busiest minute; only the best three are then tracked through the whole file
   (on GMD's 60 s performances, 30 s excerpts gave the same scores as whole files).
4. Each sequence with each of its four bar phases is a hypothesis (4/4 picks the
   tempo and the beat level). Where its hits fall
   in its bars (beat 1, beat 3, beats 2 and 4, eighths, sixteenths, triplets, off the
   grid; per role, per bar) and its tempo are the features of a linear score whose
   weights (``SCORE_WEIGHTS``) were fitted on GMD training performances rendered
   through synthesised kits (``tools/fit_beat_scorer.py``). In a mix, where the
   chords change adds to it (``HARMONY_TEMPO_WEIGHT`` x ``harmony.bar_change``: at
   the right tempo they change on one bar phase). The best hypothesis wins.
   Tempo changes: the winner's local period (windowed autocorrelation within 1.4x of
   it, smoothed by Viterbi); where it moves away for long enough, the beats are tracked
   again along it and the phases chosen again (kept if they score higher).
5. The meter (``choose_meter``, unless forced): 4/4, 3/4, 6/8 or 12/8 from the
   winner's beats, by how the beat-by-beat drum pattern repeats (after 2, 3 or 4
   beats) and whether beats split in three. The bar phase is then chosen again
   among that meter's phases (``choose_phase``) by the same linear score plus, where
   the meter has one (4/4), a learned bar template: weights of each role's hits per
   bar on each beat of the bar and each sixteenth or triplet after it, and of where
   the file's first hit and each drum's first hit fall, fitted on GMD training
   performances
   (``tools/fit_bar_template.py``, ``drumtx/models/bar_template.json``). With the
   template the beats may also move by half a beat (the tempo stays): kick on 1 and
   3 and snare on 2 and 4 look alike from beat 3 and from the off-beats to the
   linear score, not to the template. A learned downbeat activation would add its
   evidence here (``phase_scores``).
6. Its beats become a tempo map: constant tempo from bar line to bar line where the
   tempo changes (least squares; a new segment only where it removes enough error),
   and a pickup bar before the first downbeat so the bars fall where the song's do.

A counted beat is a dotted quarter in 6/8 and 12/8; the tempo map counts quarter
notes. Everything is numpy (no scipy): it runs on every ``transcribe``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drumtx.drums import Hit
from drumtx.harmony import Chroma, bar_change
from drumtx.meter import SEARCH_BPM, TEMPO_LIMITS_BPM, counted_beats, parse_meter
from drumtx.tempo import TempoMap, pickup_meter

HIT_THRESHOLD = 0.5  # without decoded hits: onset probability of a hit
ACCENT_RATIO = 0.8  # accented: velocity >= this x the class's 90th percentile
MIN_BPM, MAX_BPM = SEARCH_BPM  # of the counted beat
BEATS_PER_BAR = 4  # of the hypotheses that choose the tempo (4/4)
FOUR_FOUR = (4, 4)
TIGHTNESS = 100.0  # DP penalty on log(interval / period) squared
WINDOW_SEC, HOP_SEC = 4.0, 0.5  # local tempo: autocorrelation windows
CHANGE_COST = 0.05  # Viterbi cost of a local tempo change, per (5 %) squared
TEMPO_MOVE, TEMPO_MOVE_SHARE = 0.08, 0.15  # a real tempo change: 8 % for 15 % of a file
SEGMENT_COST_SEC2 = 16 * 0.025**2  # a tempo segment must remove this much squared error
# meter choice (choose_meter): a pattern repeats "clearly better" at this distance
# ratio; compound: this share of off-beat hits on thirds, below this counted tempo
# (tuned on generated grooves, tools/bench_meter.py --seed 1000)
REPEAT_RATIO = 0.9
COMPOUND_TRIPLETS, COMPOUND_MAX_BPM = 0.6, 90.0
PHRASE_RATIO = 0.75  # 6/8: crashes 8 beats apart at least this x 16 beats apart
EXCERPT_SEC = 60.0  # a long file's candidate tempi compete on its busiest minute
FINALISTS = 3  # and the best three of them through the whole file
# a tempo at about twice or half the winner's whose hypothesis scores at most this
# much lower is reported beside it (BeatGrid.rival_bpm). Chosen on GMD train and
# validation renders through training kits (tools/bench_beats.py reports it): 1.0
# names the right tempo for 13-17 % of the recordings whose tempo is wrong and adds
# a needless one to 6-7 % of those whose tempo is right.
OCTAVE_MARGIN = 1.0
OCTAVE_RATIOS = (1.9, 2.1)  # "about twice": beat periods this many times apart

# role of each class: (unaccented, accented); kick 0/1, snare 2/3, timekeeper 4/5
ROLES = {"KD": (1, 0), "SD": (3, 2), "HH": (5, 4), "RD": (5, 4), "CY": (5, 4),
         "OH": (6, 6), "CR": (7, 7), "LT": (8, 8), "MT": (8, 8), "HT": (8, 8),
         "TT": (8, 8)}  # fmt: skip
N_ROLES = 9
STRENGTH_WEIGHTS = {"KD": 1.0, "SD": 1.0, "CR": 1.0}  # other classes 0.5
# where in a beat a hit may fall, and its position class (0 = on the beat)
IN_BEAT = np.array([0.0, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0])
IN_BEAT_CLASS = np.array([0, 4, 5, 3, 5, 4, 0])
OFF_GRID_SEC = 0.04
N_POSITIONS = 7  # beat 1, beat 3, beats 2/4, eighth, sixteenth, triplet, off grid
# the bar template that chooses the bar phase
# (drumtx/models/, tools/fit_bar_template.py)
BAR_TEMPLATE_FILE = "bar_template.json"
# after the roles' rows, the template weighs where the file's first hit falls and
# where the first hit of each of these drums does (kick, snare, hat or ride, open
# hat, crash, toms): a count-in on the hat or a pickup fill comes before the one,
# the first kick or crash most often on it
FIRST_HIT_GROUPS = ((0, 1), (2, 3), (4, 5), (6,), (7,), (8,))
TEMPLATE_ROWS = N_ROLES + 1 + len(FIRST_HIT_GROUPS)
# weight of the harmony's bar-line evidence (drumtx.harmony.bar_change) in the bar
# phase's score (tools/bench_songs.py --harmony-weight tunes it)
HARMONY_WEIGHT = 4.0
# ... and in the score that chooses the tempo: at the right tempo the chords change
# on one bar phase; at twice or half it, on every other bar or on two phases
# (tools/bench_songs.py --split fit and GMD train renders tune it)
HARMONY_TEMPO_WEIGHT = 2.0

# Fitted by tools/fit_beat_scorer.py (GMD train through synth:9-12, the shipped model,
# l2 1e-3): per role, hits per bar on beat 1, beat 3, beats 2/4, eighths, sixteenths,
# triplets and off the grid; then the tempo terms.
SCORE_WEIGHTS = np.array(
    [
        +4.364, -0.553, +0.003, -0.508, -0.945, -0.541, -0.808,  # kick, accented
        +1.612, -0.841, +0.210, -1.182, -0.418, -0.710, +0.260,  # kick
        -0.975, +0.417, +1.787, -0.078, +0.137, -1.264, +0.171,  # snare, accented
        +0.304, +0.588, -0.675, -0.068, +0.623, +0.694, -0.539,  # snare
        +1.420, -0.152, +0.653, +0.109, -0.672, -0.612, -2.012,  # hat or ride, accented
        +0.713, +0.139, +1.079, +0.663, +0.186, +0.610, -1.287,  # hat or ride
        +0.236, -0.698, -0.151, +0.341, -0.858, +0.145, -0.613,  # open hi-hat
        +2.992, -0.870, -1.283, -1.964, -0.293, +0.205, -0.340,  # crash
        +0.115, -0.752, +0.276, -0.251, +0.082, -0.267, -0.895,  # toms
        -1.317, -2.110,  # log2(bpm / 120), squared
    ]
)  # fmt: skip


TEMPO_STEADY = 0.04  # tempi this close (4 %: 100 against 104 BPM) are one tempo


@dataclass(frozen=True)
class BeatGrid:
    """The tempo map and the beats and downbeats it puts inside the audio."""

    tempo_map: TempoMap
    beats_sec: np.ndarray  # counted beats (dotted quarters in 6/8)
    downbeats_sec: np.ndarray
    found: bool  # False: too few hits; the map is the default 120 BPM, 4/4
    duration_sec: float  # of the audio the grid covers
    # the tempo (quarter notes per minute) at about twice or half ``bpm`` that the
    # tracker nearly chose (within OCTAVE_MARGIN), or None: an octave to try by hand
    rival_bpm: float | None = None

    @property
    def bpm(self) -> float:
        """Median quarter notes per minute over the audio; audio shorter than two
        beats has no median and gets the tempo the map starts with (as written)."""
        median = self.tempo_map.median_bpm(self.duration_sec)
        return median or self.tempo_map.bpm_at(0.0)

    @property
    def bpm_spread(self) -> tuple[float, float] | None:
        """(slowest, fastest) quarter notes per minute of the map's steady stretches
        (the 10th and 90th percentile, quarter by quarter from the first full bar: a
        one-bar dip or a pickup's tempo does not count), or None where they are within
        TEMPO_STEADY of each other."""
        slow, fast = self.tempo_map.bpm_percentiles(
            self.duration_sec, (10.0, 90.0), from_beat=self.tempo_map.pickup_beats
        )
        if slow <= 0.0 or fast / slow <= 1.0 + TEMPO_STEADY:
            return None
        return slow, fast

    @property
    def meter(self) -> str:
        """The meter of the first full bar, e.g. ``"6/8"``."""
        numerator, denominator = self.tempo_map.meter_at(self.tempo_map.pickup_beats)
        return f"{numerator}/{denominator}"


@dataclass(frozen=True)
class Hits:
    """Peaks the tracker listens to: frame (float) and role of each."""

    frames: np.ndarray
    roles: np.ndarray


# --- hits and onset strength ---------------------------------------------------------


def find_hits(onset: np.ndarray, velocity: np.ndarray, codes: Sequence[str]) -> Hits:
    """Peaks of each class's activation at or above HIT_THRESHOLD, with their roles."""
    frames, roles = [], []
    for c, code in enumerate(codes):
        prob = onset[:, c]
        inner = prob[1:-1]
        peaks = np.flatnonzero(
            (inner >= prob[:-2]) & (inner > prob[2:]) & (inner >= HIT_THRESHOLD)
        )
        peaks = peaks + 1
        if peaks.size == 0 or code not in ROLES:
            continue
        vel = velocity[peaks, c]
        accented = vel >= ACCENT_RATIO * np.percentile(vel, 90)
        soft, loud = ROLES[code]
        frames.append(peaks.astype(np.float64))
        roles.append(np.where(accented, loud, soft))
    if not frames:
        return Hits(np.zeros(0), np.zeros(0, dtype=np.int64))
    return Hits(np.concatenate(frames), np.concatenate(roles).astype(np.int64))


def hits_of(decoded: Sequence[Hit], codes: Sequence[str], fps: float) -> Hits:
    """Decoded hits (what the MIDI gets) as the tracker's Hits: frame and role, the
    accents from their velocities as in find_hits."""
    frames, roles = [], []
    times = np.array([h.time_sec for h in decoded], dtype=np.float64)
    classes = np.array([h.cls for h in decoded], dtype=np.int64)
    velocities = np.array([h.velocity for h in decoded], dtype=np.float64)
    for c, code in enumerate(codes):
        mine = classes == c
        if not mine.any() or code not in ROLES:
            continue
        vel = velocities[mine]
        accented = vel >= ACCENT_RATIO * np.percentile(vel, 90)
        soft, loud = ROLES[code]
        frames.append(times[mine] * fps)
        roles.append(np.where(accented, loud, soft))
    if not frames:
        return Hits(np.zeros(0), np.zeros(0, dtype=np.int64))
    order = np.argsort(np.concatenate(frames), kind="stable")
    return Hits(np.concatenate(frames)[order], np.concatenate(roles)[order])


def onset_strength(onset: np.ndarray, codes: Sequence[str]) -> np.ndarray:
    """(T,) weighted sum of the class activations, smoothed over +-3 frames."""
    weights = np.array([STRENGTH_WEIGHTS.get(code, 0.5) for code in codes])
    strength = np.asarray(onset, dtype=np.float64) @ weights  # (T,)
    kernel = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    return np.convolve(strength, kernel / kernel.sum(), mode="same")


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(..., max_lag + 1) unbiased autocorrelation along the last axis of ``x`` minus
    its mean (0 past the end of ``x``)."""
    n = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, 2 * max(n, 1), axis=-1)
    ac = np.fft.irfft(spectrum * np.conj(spectrum), axis=-1)[..., : min(n, max_lag + 1)]
    ac = np.pad(ac, [(0, 0)] * (ac.ndim - 1) + [(0, max_lag + 1 - ac.shape[-1])])
    return ac / np.maximum(n - np.arange(max_lag + 1), 1)


def refine_lag(ac: np.ndarray, lag: int) -> float:
    """Sub-frame lag of an autocorrelation peak (parabola through three lags)."""
    if 0 < lag < len(ac) - 1:
        left, centre, right = ac[lag - 1 : lag + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            return lag + float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return float(lag)


# --- candidate periods and local tempo -----------------------------------------------


def harmonic_salience(ac: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Autocorrelation (along the last axis) at each lag plus half at twice and a
    quarter at four times it."""
    salience = np.zeros(ac.shape[:-1] + (len(lags),))
    for multiple, weight in ((1, 1.0), (2, 0.5), (4, 0.25)):
        idx = lags * multiple
        inside = idx < ac.shape[-1]
        salience[..., inside] += weight * ac[..., idx[inside]]
    return salience


def candidate_periods(
    strength: np.ndarray, fps: float, n_peaks: int = 6
) -> list[float]:
    """Beat periods (frames) worth tracking: the strongest autocorrelation peaks in
    MIN_BPM..MAX_BPM, and twice and half each; none within 3 % of another."""
    lo, hi = int(60 * fps / MAX_BPM), int(60 * fps / MIN_BPM)
    ac = autocorrelation(strength, 4 * hi + 2)
    lags = np.arange(lo, hi + 1)
    salience = harmonic_salience(ac, lags)
    inner = salience[1:-1]
    peaks = np.flatnonzero((inner >= salience[:-2]) & (inner > salience[2:])) + 1
    peaks = peaks[np.argsort(-salience[peaks])][:n_peaks]
    periods: list[float] = []
    for peak in peaks:
        period = refine_lag(ac, int(lags[peak]))
        for multiple in (1.0, 2.0, 0.5):
            p = period * multiple
            if lo <= p <= hi and all(abs(p / q - 1) > 0.03 for q in periods):
                periods.append(p)
    return periods


def local_periods(strength: np.ndarray, period: float, fps: float) -> np.ndarray:
    """(T,) the beat period at each frame, within 1.4x of ``period`` either way:
    the best lag of each window's autocorrelation, smoothed by Viterbi."""
    n = len(strength)
    window, hop = int(WINDOW_SEC * fps), int(HOP_SEC * fps)
    lags = np.arange(max(2, int(period / 1.4)), int(period * 1.4) + 2)
    if n < window + hop or lags[-1] * 2 >= window:
        return np.full(n, period)
    starts = np.arange(0, n - window + 1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(strength, window)[starts]
    ac = autocorrelation(windows, 2 * lags[-1] + 1)  # (windows, lags)
    salience = harmonic_salience(ac, lags)
    salience = salience / np.maximum(salience.max(axis=1, keepdims=True), 1e-9)
    log_lag = np.log(lags)
    change = CHANGE_COST * ((log_lag[:, None] - log_lag[None, :]) / 0.05) ** 2
    path = viterbi(salience, change)
    # a step at the midpoint between window centres: a tempo change stays a step
    edges = starts[1:] + (window - hop) / 2
    return lags[path][np.searchsorted(edges, np.arange(n), side="right")].astype(float)


def viterbi(gain: np.ndarray, change_cost: np.ndarray) -> np.ndarray:
    """State index per step maximising summed gain (steps, states) minus the cost of
    moving between states (states, states)."""
    score = gain[0].copy()
    back = np.zeros(gain.shape, dtype=np.int64)
    for step in range(1, len(gain)):
        options = score[:, None] - change_cost  # (from, to)
        back[step] = np.argmax(options, axis=0)
        score = options[back[step], np.arange(gain.shape[1])] + gain[step]
    path = np.zeros(len(gain), dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for step in range(len(gain) - 1, 0, -1):
        path[step - 1] = back[step, path[step]]
    return path


# --- beats by dynamic programming ----------------------------------------------------


def track_periods(strength: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Beat frames maximising strength at the beats minus TIGHTNESS x log(interval /
    period)^2 (Ellis 2007), the period read per frame. Frames are filled a block at a
    time: a block shorter than half a period depends only on frames before it."""
    n = len(strength)
    onset = strength / (strength.std() + 1e-9)
    total = onset.copy()
    back = np.full(n, -1)
    t = int(np.ceil(periods[0] / 2))
    steady = bool(np.all(periods == periods[0]))
    while t < n:
        if steady and t >= round(2 * periods[0]):
            fill_steady(onset, total, back, t, float(periods[0]))
            break
        size = max(1, int(periods[t : t + int(periods[t]) + 1].min() / 2) - 1)
        ts = np.arange(t, min(t + size, n))
        tau = periods[ts]
        lags = np.arange(max(1, round(tau.min() / 2)), round(2 * tau.max()) + 1)
        prev = ts[:, None] - lags[None, :]  # (block, lags)
        valid = (prev >= 0) & (lags >= np.rint(tau / 2)[:, None])
        valid &= lags <= np.rint(2 * tau)[:, None]
        penalty = TIGHTNESS * np.log(lags[None, :] / tau[:, None]) ** 2
        option = np.where(valid, total[np.maximum(prev, 0)] - penalty, -np.inf)
        best = np.argmax(option, axis=1)
        rows = np.arange(len(ts))
        # A beat may also start the sequence afresh: early frames otherwise inherit a
        # predecessor half a beat back at a huge penalty, and the first beats slip.
        found = option[rows, best] > 0
        total[ts[found]] = onset[ts[found]] + option[rows, best][found]
        back[ts[found]] = prev[rows, best][found]
        t += len(ts)
    last = max(0, n - int(round(periods[-1])))
    beat = last + int(np.argmax(total[last:]))
    beats = []
    while beat >= 0:
        beats.append(beat)
        beat = back[beat]
    return np.asarray(beats[::-1], dtype=np.float64)


def fill_steady(
    onset: np.ndarray, total: np.ndarray, back: np.ndarray, t: int, period: float
) -> None:
    """track_periods' dynamic programme from frame ``t`` on, at one period, in place.

    Once every lag of a frame reaches back inside the file, the predecessors of a
    block are rows of a sliding-window view of ``total`` (which sees the updates), so
    a block costs a subtraction and an argmax; same values as the general loop."""
    n = len(total)
    size = max(1, int(period / 2) - 1)  # < lo: a block depends only on earlier frames
    lo, hi = max(1, round(period / 2)), round(2 * period)
    lags = np.arange(lo, hi + 1)
    penalty = TIGHTNESS * np.log(lags / period) ** 2
    windows = np.lib.stride_tricks.sliding_window_view(total, hi - lo + 1)
    while t < n:
        m = min(size, n - t)
        option = windows[t - hi : t - hi + m, ::-1] - penalty  # lags ascending
        best = np.argmax(option, axis=1)
        value = option[np.arange(m), best]
        found = np.flatnonzero(value > 0)
        total[t + found] = onset[t + found] + value[found]
        back[t + found] = t + found - lags[best[found]]
        t += m


# --- hypotheses and their score ------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """A beat sequence (frames, counted beats), the index of its first downbeat and
    the meter of its bars; ``rival``: the tempo ratio (about 2 or 1/2) of a close
    runner-up at another octave (octave_rival), or None."""

    beats: np.ndarray
    phase: int
    meter: tuple[int, int] = FOUR_FOUR
    rival: float | None = None

    @property
    def per_bar(self) -> int:
        """Counted beats per bar."""
        return counted_beats(*self.meter)[0]

    @property
    def bpm_frames(self) -> float:
        """Tempo in beats per frame (x 60 fps = BPM)."""
        return 1.0 / float(np.median(np.diff(self.beats)))


def beat_sequences(
    strength: np.ndarray,
    fps: float,
    bpm: float | None = None,
    periods: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Beat sequences (frames) worth scoring: one per period (the candidate periods,
    or the given tempo's) at a steady tempo, each also shifted by half a beat."""
    n = len(strength)
    if bpm is not None:
        periods = [60.0 * fps / bpm]
    elif periods is None:
        periods = candidate_periods(strength, fps)
    sequences = []
    for period in periods:
        sequences += both_phases(track_periods(strength, np.full(n, period)))
    return sequences


def both_phases(beats: np.ndarray) -> list[np.ndarray]:
    """A beat sequence and the same shifted by half a beat (none if too short)."""
    if len(beats) < 2 * BEATS_PER_BAR:
        return []
    return [beats, (beats[:-1] + beats[1:]) / 2]


def nearest_in_beat(
    frames: np.ndarray, beats: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beat index, index into IN_BEAT of the nearest place, seconds off it) of each
    frame, measured in the beat it falls in (the first or last one outside)."""
    i = np.clip(np.searchsorted(beats, frames, side="right") - 1, 0, len(beats) - 2)
    interval = beats[i + 1] - beats[i]
    fraction = (frames - beats[i]) / interval  # outside the span: beyond [0, 1]
    distance = np.abs(fraction[:, None] - IN_BEAT[None, :])  # (frames, 7)
    nearest = np.argmin(distance, axis=1)
    return i, nearest, distance[np.arange(len(nearest)), nearest] * interval / fps


def hypothesis_features(hits: Hits, hyp: Hypothesis, fps: float) -> np.ndarray:
    """Hits per bar of each role at each position class, then log2(bpm / 120) and its
    square (the vector SCORE_WEIGHTS weighs)."""
    beats = hyp.beats
    i, nearest, off_sec = nearest_in_beat(hits.frames, beats, fps)
    per_bar = hyp.per_bar
    beat_in_bar = (i + (nearest == len(IN_BEAT) - 1) - hyp.phase) % per_bar
    mid_bar = per_bar // 2 if per_bar % 2 == 0 else -1  # 4/4's beat 3; none in 3/4
    on_beat = np.where(beat_in_bar == 0, 0, np.where(beat_in_bar == mid_bar, 1, 2))
    position = np.where(IN_BEAT_CLASS[nearest] == 0, on_beat, IN_BEAT_CLASS[nearest])
    position = np.where(off_sec > OFF_GRID_SEC, N_POSITIONS - 1, position)
    counts = np.zeros((N_ROLES, N_POSITIONS))
    np.add.at(counts, (hits.roles, position), 1.0)
    n_bars = max(1.0, (len(beats) - 1) / per_bar)
    octave = np.log2(60.0 * fps * hyp.bpm_frames / 120.0)
    return np.concatenate([counts.ravel() / n_bars, [octave, octave**2]])


def best_hypothesis(
    onset: np.ndarray,
    hits: Hits,
    codes: Sequence[str],
    fps: float,
    bpm: float | None = None,
    meter: tuple[int, int] | None = None,
    template: bool = True,
    chroma: Chroma | None = None,
) -> Hypothesis | None:
    """The highest-scoring hypothesis, or None when there is too little to go on.
    ``template=False`` chooses the bar phase by the linear score alone (as
    tools/fit_bar_template.py needs to).

    In a long file the candidate tempi compete on its busiest EXCERPT_SEC first; the
    FINALISTS best are tracked and scored through the whole file. ``bpm`` (quarter
    notes) and ``meter`` force them; with ``bpm`` alone the meter is a simple one."""
    if len(hits.frames) < 2 * BEATS_PER_BAR:
        return None
    strength = onset_strength(onset, codes)
    periods = finalists(strength, hits, fps) if bpm is None else None
    beat_bpm = None if bpm is None else bpm / counted_beats(*(meter or FOUR_FOUR))[1]
    sequences = beat_sequences(strength, fps, beat_bpm, periods)
    best = best_of(sequences, hits, fps, chroma=chroma)
    if best is None:
        return None
    rival = None if bpm is not None else octave_rival(sequences, hits, fps, best)
    if bpm is None:
        best = follow_tempo(strength, hits, best, fps)
    if meter is None:
        meter, beats = choose_meter(hits, best.beats, fps, bpm is not None)
    else:
        beats = best.beats
    if not template:
        chosen = best_of([beats], hits, fps, meter)
    else:
        chosen = choose_phase(hits, beats, fps, meter, chroma)
    return None if chosen is None else dataclasses.replace(chosen, rival=rival)


def octave_rival(
    sequences: Sequence[np.ndarray], hits: Hits, fps: float, best: Hypothesis
) -> float | None:
    """The ratio of the best period to that of the highest-scoring sequence at about
    twice or half the winner's tempo (OCTAVE_RATIOS), where that sequence's best bar
    phase scores within OCTAVE_MARGIN of the winner; else None. The octave is what
    the tracker gets wrong most (a slow groove's sixteenth hats read as eighths)."""
    lo, hi = OCTAVE_RATIOS
    period = float(np.median(np.diff(best.beats)))
    winner = score_of(hits, best, fps)
    rival, rival_score = None, winner - OCTAVE_MARGIN
    for seq in sequences:
        ratio = period / float(np.median(np.diff(seq)))
        if not (lo <= ratio <= hi or lo <= 1.0 / ratio <= hi):
            continue
        score = max(
            score_of(hits, Hypothesis(seq, phase), fps)
            for phase in range(BEATS_PER_BAR)
        )  # fmt: skip
        if score >= rival_score:
            rival, rival_score = ratio, score
    return rival


def finalists(strength: np.ndarray, hits: Hits, fps: float) -> list[float] | None:
    """In a file longer than 1.5 x EXCERPT_SEC, the FINALISTS candidate periods whose
    best hypothesis scores highest on its busiest EXCERPT_SEC; None (every candidate
    competes on the whole file) in a shorter one."""
    lo, hi = busiest_excerpt(hits, len(strength), fps)
    if hi - lo == len(strength):
        return None
    inside = (hits.frames >= lo) & (hits.frames < hi)
    excerpt = Hits(hits.frames[inside] - lo, hits.roles[inside])
    scored = []
    for period in candidate_periods(strength, fps):  # from the whole file
        sequences = beat_sequences(strength[lo:hi], fps, periods=[period])
        best = best_of(sequences, excerpt, fps)
        if best is not None:
            scored.append((score_of(excerpt, best, fps), period))
    return [period for _, period in sorted(scored, reverse=True)[:FINALISTS]] or None


def busiest_excerpt(hits: Hits, n: int, fps: float) -> tuple[int, int]:
    """Frames [lo, hi) of the EXCERPT_SEC stretch holding the most hits, on a
    one-second grid; all of a file up to 1.5 x EXCERPT_SEC long."""
    size = int(EXCERPT_SEC * fps)
    if n <= 1.5 * size:
        return 0, n
    per_frame = np.bincount(hits.frames.astype(np.int64), minlength=n)
    within = np.concatenate([[0], np.cumsum(per_frame)])
    starts = np.arange(0, n - size + 1, max(1, int(fps)))
    lo = int(starts[np.argmax(within[starts + size] - within[starts])])
    return lo, lo + size


def score_of(hits: Hits, hyp: Hypothesis, fps: float) -> float:
    return float(hypothesis_features(hits, hyp, fps) @ SCORE_WEIGHTS)


def best_of(
    sequences: Sequence[np.ndarray],
    hits: Hits,
    fps: float,
    meter: tuple[int, int] = FOUR_FOUR,
    chroma: Chroma | None = None,
) -> Hypothesis | None:
    """The sequence and bar phase of highest score, in bars of ``meter``: the
    linear score plus HARMONY_TEMPO_WEIGHT x where the harmony changes (``chroma``
    of the audio; none: no such evidence)."""
    per_bar = counted_beats(*meter)[0]
    best, top = None, -np.inf
    for b in sequences:
        harmony = np.zeros(per_bar)
        if chroma is not None and HARMONY_TEMPO_WEIGHT:
            harmony = HARMONY_TEMPO_WEIGHT * bar_change(chroma, b / fps, per_bar)
        for phase in range(per_bar):
            hyp = Hypothesis(b, phase, meter)
            score = score_of(hits, hyp, fps) + harmony[phase]
            if score > top:
                best, top = hyp, score
    return best


def choose_phase(
    hits: Hits,
    beats: np.ndarray,
    fps: float,
    meter: tuple[int, int],
    chroma: Chroma | None = None,
) -> Hypothesis:
    """The bar phase of a beat sequence, and (where the meter has a bar template)
    whether the beats are the sequence or the same half a beat later: the highest
    ``phase_scores``."""
    options = phase_sequences(beats) if bar_template(meter) is not None else [beats]
    scores = np.stack([phase_scores(hits, seq, fps, meter, chroma) for seq in options])
    i, phase = np.unravel_index(int(np.argmax(scores)), scores.shape)  # first on a tie
    return Hypothesis(options[int(i)], int(phase), meter)


def phase_sequences(beats: np.ndarray) -> list[np.ndarray]:
    """The beats, and the same shifted by half a beat where there are enough."""
    return both_phases(beats) or [beats]


def phase_scores(
    hits: Hits,
    beats: np.ndarray,
    fps: float,
    meter: tuple[int, int],
    chroma: Chroma | None = None,
) -> np.ndarray:
    """(counted beats per bar,) score of each bar phase: the linear score of the
    hypothesis plus, where the meter has one, the fitted bar template's, plus
    HARMONY_WEIGHT x where the harmony changes (``chroma`` of the audio; none: no
    such evidence)."""
    per_bar = counted_beats(*meter)[0]
    hyps = [Hypothesis(beats, phase, meter) for phase in range(per_bar)]
    scores = np.array([score_of(hits, hyp, fps) for hyp in hyps])
    template = bar_template(meter)
    if template is not None:
        counts = template_counts(hits, beats, fps, per_bar)
        scores += np.array([
            float(np.roll(counts, -phase, axis=1).ravel() @ template)
            for phase in range(per_bar)
        ])  # fmt: skip
    if chroma is not None and HARMONY_WEIGHT:
        scores += HARMONY_WEIGHT * bar_change(chroma, beats / fps, per_bar)
    return scores


def template_counts(
    hits: Hits, beats: np.ndarray, fps: float, per_bar: int
) -> np.ndarray:
    """(TEMPLATE_ROWS, per_bar, len(IN_BEAT) - 1) hits per bar of each role at each
    place in a bar whose first beat is beat 0 of ``beats``: on the beat, or a
    sixteenth, triplet or eighth after it (off-grid hits are left out); then the
    file's first hit at its place, and the first hit of each FIRST_HIT_GROUPS drum
    at its (a count of one each: drums most often come in on a bar line, perhaps
    after a count-in or a pickup; nothing where it is off the grid or over a beat
    before it). Rolling axis 1 by -p gives the bars of phase p."""
    counts = np.zeros((TEMPLATE_ROWS, per_bar, len(IN_BEAT) - 1))
    beat, place, on_grid = grid_places(hits.frames, beats, fps)
    np.add.at(
        counts, (hits.roles[on_grid], beat[on_grid] % per_bar, place[on_grid]), 1.0
    )
    counts /= max(1.0, (len(beats) - 1) / per_bar)
    if not len(hits.frames) or len(beats) < 2:
        return counts
    rows, firsts = [N_ROLES], [float(np.min(hits.frames))]
    for row, roles in enumerate(FIRST_HIT_GROUPS, start=N_ROLES + 1):
        mine = np.isin(hits.roles, roles)
        if mine.any():
            rows.append(row)
            firsts.append(float(np.min(hits.frames[mine])))
    before = beats[0] - (beats[1] - beats[0])  # the grid one beat earlier
    beat, place, on_grid = grid_places(
        np.array(firsts), np.concatenate([[before], beats]), fps
    )
    for k in np.flatnonzero(on_grid):
        counts[rows[k], (beat[k] - 1) % per_bar, place[k]] = 1.0
    return counts


def grid_places(
    frames: np.ndarray, beats: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beat index, place in the beat (an index of IN_BEAT but the last), on the grid)
    of each frame; frames outside [beats[0], beats[-1]) are off the grid."""
    i, nearest, off_sec = nearest_in_beat(frames, beats, fps)
    inside = (frames >= beats[0]) & (frames < beats[-1])
    last = nearest == len(IN_BEAT) - 1  # on the next beat
    return i + last, np.where(last, 0, nearest), inside & (off_sec <= OFF_GRID_SEC)


def bar_template(meter: tuple[int, int]) -> np.ndarray | None:
    """The fitted bar template of a meter (tools/fit_bar_template.py), flattened as
    template_counts, or None where none was fitted."""
    templates = _bar_templates()
    return templates.get(f"{meter[0]}/{meter[1]}")


# The template file the tracker reads: the one beside the model, unless a benchmark
# compares another fit (use_bar_template).
_template_path: Path | None = Path(__file__).parent / "models" / BAR_TEMPLATE_FILE


def use_bar_template(path: Path | None) -> None:
    """Read the bar template from ``path`` from now on (None: no template, the
    linear score alone): tools/bench_beats.py and bench_songs.py --bar-template."""
    global _template_path
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"no bar template at {path}")
    _template_path = None if path is None else Path(path)


def _bar_templates() -> dict[str, np.ndarray]:
    """Each meter's template (read-only arrays) from the file in use."""
    return {} if _template_path is None else _read_bar_templates(_template_path)


@functools.cache
def _read_bar_templates(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    templates = {}
    for meter, weights in data["weights"].items():
        per_bar = counted_beats(*parse_meter(meter))[0]
        want = TEMPLATE_ROWS * per_bar * (len(IN_BEAT) - 1)
        if len(weights) != want:
            raise ValueError(
                f"{path}: the {meter} bar template has {len(weights)} weights, "
                f"drumtx.beats reads {want}; refit it (tools/fit_bar_template.py)"
            )
        array = np.asarray(weights, dtype=np.float64)
        array.flags.writeable = False
        templates[meter] = array
    return templates


def follow_tempo(
    strength: np.ndarray, hits: Hits, hyp: Hypothesis, fps: float
) -> Hypothesis:
    """The hypothesis tracked again along its local tempo when that tempo moves away
    from the steady one (by more than TEMPO_MOVE for TEMPO_MOVE_SHARE of the file) and
    the new beats, their phases chosen again, score higher. Otherwise as it is."""
    period = 1.0 / hyp.bpm_frames
    curve = local_periods(strength, period, fps)
    moved = np.abs(np.log(curve / period)) > np.log(1.0 + TEMPO_MOVE)
    if moved.mean() < TEMPO_MOVE_SHARE:
        return hyp
    other = best_of(both_phases(track_periods(strength, curve)), hits, fps)
    if other is None or score_of(hits, other, fps) <= score_of(hits, hyp, fps):
        return hyp
    return other


# --- the meter ----------------------------------------------------------------------


def beat_patterns(hits: Hits, beats: np.ndarray, fps: float) -> np.ndarray:
    """(beats, 2 x N_ROLES) hits of each role on each beat and inside it (to the next
    beat): the beat-by-beat drum pattern whose repeats give the bar length."""
    i = np.searchsorted(beats, hits.frames, side="right") - 1
    inside = (i >= 0) & (i < len(beats) - 1)
    i, frames, roles = i[inside], hits.frames[inside], hits.roles[inside]
    fraction = (frames - beats[i]) / (beats[i + 1] - beats[i])
    near_next = fraction > 1 - OFF_GRID_SEC * fps / (beats[i + 1] - beats[i])
    on = (fraction * (beats[i + 1] - beats[i]) <= OFF_GRID_SEC * fps) | near_next
    beat = i + near_next
    patterns = np.zeros((len(beats), 2 * N_ROLES))
    np.add.at(patterns, (beat, 2 * roles + (~on)), 1.0)
    return patterns


def meter_features(hits: Hits, beats: np.ndarray, fps: float) -> dict[str, float]:
    """What the meter choice reads: ``lag_L`` the mean L1 distance between the
    pattern of a beat and the one L beats later (L = 2, 3, 4, 6), ``triplets`` the
    share of off-beat hits on thirds of a beat (of those on halves, quarters and
    thirds), ``bpm`` the tempo of the beats, ``phrase_L`` how many pairs of
    phrase starts (a crash on the beat, the beat after toms) are L beats apart."""
    patterns = beat_patterns(hits, beats, fps)
    features = {}
    for lag in (2, 3, 4, 6):
        diff = np.abs(patterns[lag:] - patterns[:-lag]).sum(axis=1)
        features[f"lag_{lag}"] = float(diff.mean()) if len(diff) else 0.0
    hyp = Hypothesis(beats, 0)
    counts = hypothesis_features(hits, hyp, fps)[:-2].reshape(N_ROLES, N_POSITIONS)
    duple, triple = counts[:, 3:5].sum(), counts[:, 5].sum()
    features["triplets"] = float(triple / max(duple + triple, 1e-9))
    features["bpm"] = 60.0 * fps * hyp.bpm_frames
    # phrase starts: a crash on the beat, or the beat after toms (a fill's end)
    toms = patterns[:, 2 * ROLES["LT"][0] : 2 * ROLES["LT"][0] + 2].sum(axis=1)
    start = (patterns[:, 2 * ROLES["CR"][0]] > 0) | (np.roll(toms, 1) > 0)
    start = start.astype(np.float64)
    for lag in (8, 16):
        features[f"phrase_{lag}"] = float(start[lag:] @ start[:-lag])
    return features


def choose_meter(
    hits: Hits, beats: np.ndarray, fps: float, fixed_tempo: bool = False
) -> tuple[tuple[int, int], np.ndarray]:
    """The meter of a beat sequence, 4/4, 3/4 or 6/8, and the counted beats its bars
    hold: the sequence, or (unless ``fixed_tempo``: 4/4 or 3/4 on these beats, each
    a quarter note) it at twice the rate.

    6/8 where beats split in three (COMPOUND_TRIPLETS) at a counted-beat tempo below
    COMPOUND_MAX_BPM and phrases (crashes) start every 8 beats rather than every 16:
    a slow 4/4 shuffle splits its beats in three too. 3/4 where the drum pattern
    repeats after 3 beats clearly better (REPEAT_RATIO) than after 2 or 4, at twice
    the rate first (a fast waltz is often tracked a beat every two quarter notes;
    only where the pattern at this rate repeats after 3 beats better than after 4).
    12/8 is never chosen: its bars are a slow 4/4's; --meter forces it."""
    if len(beats) < 4 * 3:
        return FOUR_FOUR, beats
    f = meter_features(hits, beats, fps)
    compound = f["triplets"] >= COMPOUND_TRIPLETS and f["bpm"] < COMPOUND_MAX_BPM
    if compound and not fixed_tempo and f["phrase_8"] > PHRASE_RATIO * f["phrase_16"]:
        return (6, 8), beats
    doubled = np.sort(np.concatenate([beats, (beats[:-1] + beats[1:]) / 2]))
    # a waltz tracked at half its rate repeats after 3 of these beats (two bars),
    # not after 4: a slow 4/4 groove whose half-beats happen to repeat in three
    # repeats best a bar (4 beats) later
    faster_ok = not fixed_tempo and 2 * f["bpm"] <= MAX_BPM and f["lag_3"] < f["lag_4"]
    if faster_ok and repeats_in_three(hits, doubled, fps):
        return (3, 4), doubled
    if repeats_in_three(hits, beats, fps):
        return (3, 4), beats
    return FOUR_FOUR, beats


def repeats_in_three(hits: Hits, beats: np.ndarray, fps: float) -> bool:
    """The drum pattern repeats after 3 beats clearly better than after 2 or 4."""
    f = meter_features(hits, beats, fps)
    return f["lag_3"] < REPEAT_RATIO * min(f["lag_2"], f["lag_4"])


# --- beats -> tempo map --------------------------------------------------------------


def _line_sse(prefix: np.ndarray, a: np.ndarray, b: int) -> np.ndarray:
    """Squared error of the least-squares line through points a..b (inclusive) for
    each start in ``a``; ``prefix`` holds cumulative sums of 1, x, x^2, y, y^2, xy."""
    n, sx, sxx, sy, syy, sxy = (prefix[b + 1] - prefix[a]).T
    var_x = np.maximum(sxx - sx * sx / n, 1e-12)
    cov = sxy - sx * sy / n
    return np.maximum(syy - sy * sy / n - cov * cov / var_x, 0.0)


def tempo_knots(
    beats_sec: np.ndarray, phase: int, per_bar: int = BEATS_PER_BAR
) -> list[int]:
    """Beat indices (bar lines of ``per_bar`` beats after the first downbeat
    ``phase``) where a new tempo segment starts: the split into straight lines
    minimising squared error plus SEGMENT_COST_SEC2 per segment."""
    n = len(beats_sec)
    x = np.arange(n, dtype=np.float64)
    cols = np.stack([np.ones(n), x, x * x, beats_sec, beats_sec**2, x * beats_sec], 1)
    prefix = np.vstack([np.zeros(6), np.cumsum(cols, axis=0)])
    ends = [0] + list(range(phase + per_bar, n - per_bar, per_bar))
    ends.append(n - 1)
    cost = np.zeros(len(ends))
    back = np.zeros(len(ends), dtype=np.int64)
    for j in range(1, len(ends)):
        starts = np.asarray(ends[:j])
        options = cost[:j] + _line_sse(prefix, starts, ends[j]) + SEGMENT_COST_SEC2
        back[j] = int(np.argmin(options))
        cost[j] = options[back[j]]
    knots, j = [], len(ends) - 1
    while back[j] > 0:
        j = int(back[j])
        knots.append(ends[j])
    return sorted(knots)


def fit_segments(beats_sec: np.ndarray, knots: list[int]) -> tuple[float, np.ndarray]:
    """Time of beat 0 and the seconds per beat of each segment: one continuous
    piecewise-straight line through the beats, bending at ``knots``."""
    x = np.arange(len(beats_sec), dtype=np.float64)
    design = np.stack([np.ones_like(x), x] + [np.maximum(0.0, x - k) for k in knots], 1)
    coef = np.linalg.lstsq(design, beats_sec, rcond=None)[0]
    slopes = np.cumsum(coef[1:])
    if np.any(slopes <= 0):  # a degenerate fit: one straight line instead
        return fit_segments(beats_sec, []) if knots else (beats_sec[0], np.ones(1))
    return float(coef[0]), slopes


PICKUP_TEMPO_SLACK = 0.1  # a pickup bar's own tempo within 10 % of the song's


def pickup_map(
    first_bar_sec: float,
    starts: Sequence[float],
    tempi: Sequence[float],
    exact_tempo: bool = False,
    meter: tuple[int, int] = FOUR_FOUR,
) -> TempoMap:
    """The tempo map: segments starting ``starts`` quarter notes after the first full
    bar line (at ``first_bar_sec``, less than a bar after 0) with ``tempi`` seconds
    per quarter note, bars of ``meter``, and before the first bar line a pickup bar of
    whole 32nd notes. The pickup is played at the tempo that fills it exactly, or
    (``exact_tempo``) at the first segment's tempo, the bar lines then moving by less
    than a 64th note.

    A pickup whose exact tempo would be more than PICKUP_TEMPO_SLACK off the song's
    is played at the song's instead (a 40 ms lead-in at 102 BPM was a 1/32 bar at
    187 BPM, which a DAW's import reads as the song's tempo): the bar lines then move
    by less than half a 32nd note. Less than a 64th note before the first bar line
    holds no pickup: the first bar starts at 0 and is played a little slower so that
    the second one starts on time (``exact_tempo``: not slower; the bar lines move by
    that sliver)."""
    spb = tempi[0]
    bar = meter[0] * 4.0 / meter[1]  # quarter notes
    n_32nds = round(8 * first_bar_sec / spb)
    if first_bar_sec < 1e-3 or (exact_tempo and n_32nds == 0):  # no pickup
        return TempoMap(tuple(starts), tuple(tempi), ((0.0, *meter),))
    if n_32nds == 0:  # a sliver: stretch the first bar rather than a 1/32 bar at 4x
        first_spb = (first_bar_sec + bar * spb) / bar
        return TempoMap(
            (0.0, *(bar + s for s in starts)), (first_spb, *tempi), ((0.0, *meter),)
        )
    pickup = n_32nds / 8  # quarter notes
    fill_spb = first_bar_sec / pickup
    if exact_tempo or max(fill_spb / spb, spb / fill_spb) > 1.0 + PICKUP_TEMPO_SLACK:
        fill_spb = spb
    return TempoMap(
        (0.0, *(pickup + s for s in starts)),
        (fill_spb, *tempi),
        ((0.0, *pickup_meter(pickup)), (pickup, *meter)),
    )


def first_bar_line(tempo_map: TempoMap) -> float:
    """Beat of the first full bar (the end of a pickup bar, or 0)."""
    return tempo_map.pickup_beats


def fitted_map(hyp: Hypothesis, fps: float, bpm: float | None) -> TempoMap:
    """The tempo map of a hypothesis: fitted segments (or the given constant tempo,
    quarter notes per minute), the first downbeat on the first full bar line."""
    beats_sec = hyp.beats / fps
    per_bar, unit = counted_beats(*hyp.meter)  # unit: quarter notes per counted beat
    if bpm is None:
        knots = tempo_knots(beats_sec, hyp.phase, per_bar)
        start_sec, tempi = fit_segments(beats_sec, knots)
    else:
        knots, tempi = [], np.array([unit * 60.0 / bpm])
        start_sec = float(np.mean(beats_sec - np.arange(len(beats_sec)) * tempi[0]))
    spb = float(tempi[0])  # seconds per counted beat
    downbeat_sec = start_sec + hyp.phase * spb
    bar_sec = per_bar * spb
    bars_back = int(np.floor((downbeat_sec + spb / 16) / bar_sec))
    first_bar_sec = downbeat_sec - bars_back * bar_sec
    starts = [0.0] + [unit * (k - hyp.phase + bars_back * per_bar) for k in knots]
    per_quarter = [t / unit for t in tempi]
    return pickup_map(
        first_bar_sec, starts, per_quarter, exact_tempo=bpm is not None, meter=hyp.meter
    )


def grid_of(
    tempo_map: TempoMap, duration_sec: float, found: bool, rival: float | None = None
) -> BeatGrid:
    """Beats and downbeats a tempo map puts in [0, duration_sec]; ``rival``: the
    tempo ratio of a close runner-up at another octave (Hypothesis.rival)."""
    beats_sec, downbeats_sec = tempo_map.beats_and_downbeats(duration_sec)
    rival_bpm = None
    if rival is not None:
        rival_bpm = tempo_map.median_bpm(duration_sec) * rival or None
    return BeatGrid(
        tempo_map, beats_sec, downbeats_sec, found, duration_sec, rival_bpm
    )


def beat_grid(
    onset: np.ndarray,
    velocity: np.ndarray,
    codes: Sequence[str],
    fps: float,
    *,
    bpm: float | None = None,
    meter: str = "auto",
    hits: Sequence[Hit] | None = None,
    chroma: Chroma | None = None,
) -> BeatGrid:
    """Tempo map, beats and downbeats of (T, C) activations (frame t at t / fps).

    ``hits``: the decoded hits the outputs get (default: activation peaks at
    HIT_THRESHOLD). ``bpm`` (quarter notes per minute) forces a constant tempo and
    ``meter`` ("4/4", "3/4", "6/8", "12/8"; "auto": found) the bars; the bars still
    start where the downbeats are found. Too few hits: a constant tempo (``bpm`` or
    120) from time 0, in ``meter`` (auto: 4/4).
    """
    lo, hi = TEMPO_LIMITS_BPM
    if bpm is not None and not lo <= bpm <= hi:
        raise ValueError(f"tempo {bpm!r} BPM is outside {lo:g}..{hi:g}")
    forced = None if meter == "auto" else parse_meter(meter)
    duration_sec = len(onset) / fps
    if hits is None:
        tracked = find_hits(onset, velocity, codes)
    else:
        tracked = hits_of(hits, codes, fps)
    hyp = best_hypothesis(onset, tracked, codes, fps, bpm, forced, chroma=chroma)
    if hyp is None:
        fallback = TempoMap.constant(bpm or 120.0, *(forced or FOUR_FOUR))
        return grid_of(fallback, duration_sec, False)
    return grid_of(fitted_map(hyp, fps, bpm), duration_sec, True, hyp.rival)
