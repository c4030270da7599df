"""Pseudo-labels for self-training on real music (student-teacher, Wu & Lerch 2017).

A teacher transcribes unlabelled real music with drums. Its activations are averaged
over a few deterministic views of the audio (the file as is and with its spectrum
tilted each way), which steadies the peaks a single pass is unsure of. A peak well
above the class threshold becomes a label; a peak between a floor and that level is
*unsure*: the student's loss ignores that class for a few frames around it, so the
teacher's guesses are neither taught as hits nor as silence. Everything else is a
confident "no hit". The student then learns from these labels under heavy
augmentation (noisy student), beside the rendered data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import sosfilt

from drumtx.decode import pick_onsets
from drumtx.drums import Hit

TILT_DB = 4.0  # the views' spectral tilt, each way, across the band
# An onset target of IGNORE_TARGET leaves that frame and class out of the loss; a
# teacher's unsure peak is ignored this many frames either side (one frame of timing
# doubt plus the target widening).
IGNORE_TARGET = -1.0
UNSURE_RADIUS_FRAMES = 2
# Classes that say a kit is playing: a teacher finding these steadily hears drums.
TIME_KEEPERS = ("KD", "SD", "HH", "RD")
TILT_PIVOT_HZ = 1000.0


@dataclass(frozen=True)
class LabelRule:
    """Where a teacher's peak counts as a hit, as unsure, or as nothing.

    For a class tuned to threshold t: a peak at or above ``t + confident * (1 - t)``
    is a label; one at or above ``floor * t`` but below that is unsure. Classes other
    than the time-keepers (toms, cymbals, open hi-hat: where the teacher errs most on
    real music, e.g. toms on bass notes) need ``confident_other`` instead, so their
    doubtful peaks are ignored rather than taught back to the student.
    """

    confident: float = 0.4
    confident_other: float = 0.7
    floor: float = 0.4
    min_gap_sec: float = 0.03

    def __post_init__(self) -> None:
        levels = (self.confident, self.confident_other)
        if not (all(0.0 <= c < 1.0 for c in levels) and 0.0 < self.floor <= 1.0):
            raise ValueError(f"LabelRule out of range: {self}")

    def levels(
        self, thresholds: Sequence[float], codes: Sequence[str] | None = None
    ) -> tuple[list[float], list[float]]:
        """(confident level, unsure floor) per class (codes: time-keepers or not)."""
        codes = codes or [TIME_KEEPERS[0]] * len(thresholds)
        share = [self.confident if c in TIME_KEEPERS else self.confident_other
                 for c in codes]  # fmt: skip
        high = [t + k * (1.0 - t) for t, k in zip(thresholds, share)]
        low = [self.floor * t for t in thresholds]
        return high, low


@dataclass(frozen=True)
class PseudoLabels:
    hits: list[Hit]  # the teacher's confident hits: labels
    unsure: list[Hit]  # peaks between the floor and the confident level: ignored


def tilt_views(audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """The audio as is, brighter and darker by TILT_DB (first-order shelves)."""
    views = [np.asarray(audio, np.float32)]
    for sign in (1.0, -1.0):
        views.append(_shelf(views[0], sample_rate, sign * TILT_DB))
    return views


def _shelf(x: np.ndarray, sample_rate: int, gain_db: float) -> np.ndarray:
    """A first-order high shelf of ``gain_db`` above TILT_PIVOT_HZ (bilinear)."""
    g = 10.0 ** (gain_db / 20.0)
    k = np.tan(np.pi * TILT_PIVOT_HZ / sample_rate)
    # H(s) = (g s + w) / (s + w): unity at DC, g at high frequencies.
    b = np.array([g + k, k - g]) / (1.0 + k)
    a = np.array([1.0, (k - 1.0) / (1.0 + k)])
    sos = np.concatenate([b, [0.0], a, [0.0]])[None, :]  # (1, 6)
    return sosfilt(sos, x).astype(np.float32)


def ensemble(activations: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple:
    """Mean onset probability and velocity over the views' (T, C) activations."""
    onset = np.mean([a for a, _ in activations], axis=0)
    velocity = np.mean([v for _, v in activations], axis=0)
    return onset.astype(np.float32), velocity.astype(np.float32)


def label(
    onset: np.ndarray,
    velocity: np.ndarray,
    fps: float,
    thresholds: Sequence[float],
    rule: LabelRule = LabelRule(),
    codes: Sequence[str] | None = None,
) -> PseudoLabels:
    """Split the teacher's (T, C) peaks into labels and unsure peaks."""
    high, low = rule.levels(thresholds, codes)
    candidates = pick_onsets(onset, velocity, fps, low, rule.min_gap_sec)
    hits, unsure = [], []
    for hit in candidates:
        frame = min(round(hit.time_sec * fps), onset.shape[0] - 1)
        peak = float(onset[max(frame - 1, 0) : frame + 2, hit.cls].max())
        (hits if peak >= high[hit.cls] else unsure).append(hit)
    return PseudoLabels(hits, unsure)


def ignore_mask(
    unsure_frames: np.ndarray,
    unsure_classes: np.ndarray,
    n_t: int,
    n_classes: int,
    radius: int,
) -> np.ndarray:
    """(n_t, n_classes) loss weights: 0 within ``radius`` frames of an unsure peak of
    that class, 1 elsewhere."""
    weight = np.ones((n_t, n_classes), dtype=np.float32)
    for offset in range(-radius, radius + 1):
        f = unsure_frames + offset
        ok = (f >= 0) & (f < n_t)
        weight[f[ok], unsure_classes[ok]] = 0.0
    return weight


def drum_spans(
    hits: Sequence[Hit],
    codes: Sequence[str],
    duration_sec: float,
    *,
    window_sec: float = 5.0,
    min_rate_hz: float = 2.0,
) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of windows where the teacher's confident
    time-keeping hits (kick, snare, hi-hat, ride) come at ``min_rate_hz`` or more.

    Outside them the music may have no drums, or drums the teacher cannot hear:
    neither is a label worth teaching, so only these spans become training audio.
    """
    keepers = {i for i, code in enumerate(codes) if code in TIME_KEEPERS}
    n_windows = int(duration_sec // window_sec)
    counts = np.zeros(n_windows, dtype=np.int64)
    for hit in hits:
        w = int(hit.time_sec // window_sec)
        if hit.cls in keepers and w < n_windows:
            counts[w] += 1
    busy = counts >= min_rate_hz * window_sec
    spans, start = [], None
    for w, on in enumerate([*busy.tolist(), False]):
        if on and start is None:
            start = w
        elif not on and start is not None:
            spans.append((start * window_sec, w * window_sec))
            start = None
    return spans


def pieces(
    spans: Sequence[tuple[float, float]], max_sec: float, min_sec: float
) -> list[tuple[float, float]]:
    """Spans cut into equal pieces of at most ``max_sec``; shorter than ``min_sec``
    dropped (a piece is one training recording, like one E-GMD performance)."""
    out = []
    for start, end in spans:
        length = end - start
        if length < min_sec:
            continue
        n = int(np.ceil(length / max_sec))
        edges = np.linspace(start, end, n + 1)
        out.extend((float(a), float(b)) for a, b in zip(edges[:-1], edges[1:]))
    return out
