"""Onset precision / recall / F1 per drum class, with mir_eval's matching.

Every number means what it means in the drum transcription literature:

- onsets of one class match one-to-one within +-50 ms with
  ``mir_eval.util.match_events``, the matcher behind ``mir_eval.onset.f_measure``;
  counts are summed over recordings before any ratio is taken;
- micro F1 pools the counts of all classes; macro F1 is the mean of the per-class F1
  over the classes that have reference hits or estimates in the evaluated set (a class
  absent from both would score an undefined 0/0 and is left out, so a 9-class model is
  not punished for a class the test set never plays);
- velocity-aware F1 follows Onsets & Frames (``mir_eval.transcription_velocity`` with
  onset-only matching) with all classes pooled into one note list, one pitch per class,
  as the E-GMD paper (Callender et al., 2020) reports it; the velocity fit is per
  recording, matches are summed over recordings (``f1_mean`` averages per recording).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mir_eval
import numpy as np

from drumtx.drums import ROLAND9_TO_ADTOF5, Hit, Vocab, get_vocab
from drumtx.errors import ConfigError

ONSET_WINDOW_SEC = 0.05
NOTE_SEC = 0.05  # nominal note length for mir_eval's interval format; offsets ignored
VELOCITY_TOLERANCE = 0.1  # mir_eval and Onsets & Frames default


@dataclass
class ClassCounts:
    """Matched (tp), reference and estimated onset counts of one class."""

    tp: int = 0
    n_ref: int = 0
    n_est: int = 0

    def __add__(self, other: ClassCounts) -> ClassCounts:
        return ClassCounts(
            self.tp + other.tp, self.n_ref + other.n_ref, self.n_est + other.n_est
        )

    @property
    def precision(self) -> float:
        return self.tp / self.n_est if self.n_est else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_ref if self.n_ref else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of P and R; 0 when either is 0 (mir_eval's convention)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "n_ref": self.n_ref,
            "n_est": self.n_est,
        }


def class_times(hits: Sequence[Hit], n_classes: int) -> list[np.ndarray]:
    """Sorted onset times (seconds) of each class; an out-of-range class raises."""
    times: list[list[float]] = [[] for _ in range(n_classes)]
    for hit in hits:
        if not 0 <= hit.cls < n_classes:
            raise ValueError(f"hit class {hit.cls} outside 0..{n_classes - 1}: {hit}")
        times[hit.cls].append(hit.time_sec)
    return [np.sort(np.asarray(t, dtype=np.float64)) for t in times]


def match_onsets(
    ref: Sequence[Hit],
    est: Sequence[Hit],
    n_classes: int,
    window_sec: float = ONSET_WINDOW_SEC,
) -> list[ClassCounts]:
    """Per-class counts for one recording: one-to-one matches within +-window_sec."""
    counts = []
    for ref_times, est_times in zip(
        class_times(ref, n_classes), class_times(est, n_classes)
    ):
        matched = mir_eval.util.match_events(ref_times, est_times, window_sec)
        counts.append(ClassCounts(len(matched), len(ref_times), len(est_times)))
    return counts


def add_counts(
    total: Sequence[ClassCounts], counts: Sequence[ClassCounts]
) -> list[ClassCounts]:
    """Per-class sums of two count lists (accumulating over recordings)."""
    if len(total) != len(counts):
        raise ValueError(f"{len(total)} classes against {len(counts)}")
    return [a + b for a, b in zip(total, counts)]


def summarize(counts: Sequence[ClassCounts], codes: Sequence[str]) -> dict[str, Any]:
    """Scores from summed counts.

    Returns ``{"classes": {code: {precision, recall, f1, tp, n_ref, n_est}},
    "micro": {...same keys...}, "macro": {"precision", "recall", "f1", "classes"},
    "micro_f1": float, "macro_f1": float}``; ``macro.classes`` lists the codes averaged.
    """
    if not counts:  # nothing evaluated yet: every class at zero
        counts = [ClassCounts() for _ in codes]
    if len(counts) != len(codes):
        raise ValueError(f"{len(counts)} class counts for {len(codes)} class codes")
    micro = ClassCounts()
    for item in counts:
        micro = micro + item
    present = [(c, n) for c, n in zip(codes, counts) if n.n_ref or n.n_est]
    macro = {
        key: float(np.mean([getattr(n, key) for _, n in present])) if present else 0.0
        for key in ("precision", "recall", "f1")
    }
    macro["classes"] = [code for code, _ in present]
    return {
        "classes": {code: n.as_dict() for code, n in zip(codes, counts)},
        "micro": micro.as_dict(),
        "macro": macro,
        "micro_f1": micro.f1,
        "macro_f1": macro["f1"],
    }


def _note_arrays(hits: Sequence[Hit]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mir_eval note format: (n, 2) intervals, pitches in Hz (one semitone per class),
    MIDI velocities."""
    onsets = np.asarray([h.time_sec for h in hits], dtype=np.float64).reshape(-1)
    intervals = np.stack([onsets, onsets + NOTE_SEC], axis=1)  # (n, 2)
    midi_pitch = np.asarray([36 + h.cls for h in hits], dtype=np.float64)
    pitches_hz = 440.0 * 2.0 ** ((midi_pitch - 69.0) / 12.0)
    velocities = np.asarray([h.velocity for h in hits], dtype=np.float64)
    return intervals, pitches_hz, velocities


def velocity_matches(
    ref: Sequence[Hit], est: Sequence[Hit], n_classes: int
) -> ClassCounts:
    """Onset + velocity matches of one recording, all classes pooled (Onsets & Frames).

    An estimate matches a reference of the same class within +-50 ms whose velocity,
    normalised to [0, 1] over the recording, lies within 0.1 of the estimate's velocity
    after mir_eval's least-squares rescaling of the recording's matched estimates.
    """
    class_times(ref, n_classes)  # validates the classes
    class_times(est, n_classes)
    if not ref or not est:
        return ClassCounts(0, len(ref), len(est))
    ref_iv, ref_hz, ref_vel = _note_arrays(ref)
    est_iv, est_hz, est_vel = _note_arrays(est)
    matched = mir_eval.transcription_velocity.match_notes(
        ref_iv,
        ref_hz,
        ref_vel,
        est_iv,
        est_hz,
        est_vel,
        onset_tolerance=ONSET_WINDOW_SEC,
        offset_ratio=None,
        velocity_tolerance=VELOCITY_TOLERANCE,
    )
    return ClassCounts(len(matched), len(ref), len(est))


def velocity_f1(
    ref: Sequence[Hit] | Sequence[Sequence[Hit]],
    est: Sequence[Hit] | Sequence[Sequence[Hit]],
    n_classes: int,
) -> dict[str, float]:
    """Velocity-aware onset P/R/F1 of one recording, or of many (lists of hit lists).

    Over many recordings the velocity fit is still per recording (as mir_eval defines
    it) and the matches are summed before the ratios, like every other count here;
    ``f1_mean`` is the mean of the per-recording F1s, as Onsets & Frames reports it.
    """
    ref_sets, est_sets = _as_recordings(ref), _as_recordings(est)
    if len(ref_sets) != len(est_sets):
        raise ValueError(
            f"{len(ref_sets)} reference recordings, {len(est_sets)} estimated"
        )
    per_recording = [
        velocity_matches(r, e, n_classes) for r, e in zip(ref_sets, est_sets)
    ]
    total = ClassCounts()
    for counts in per_recording:
        total = total + counts
    f1_mean = float(np.mean([c.f1 for c in per_recording])) if per_recording else 0.0
    return {
        "precision": total.precision,
        "recall": total.recall,
        "f1": total.f1,
        "f1_mean": f1_mean,
    }


def _as_recordings(
    hits: Sequence[Hit] | Sequence[Sequence[Hit]],
) -> list[Sequence[Hit]]:
    """One recording's hits -> [hits]; a list of per-recording hit lists unchanged."""
    if len(hits) and not isinstance(hits[0], Hit):
        return list(hits)  # type: ignore[arg-type]
    return [hits]  # type: ignore[list-item]


def reduce_hits(
    hits: Sequence[Hit], from_vocab: Vocab, to_vocab_name: str = "adtof5"
) -> list[Hit]:
    """Hits of a roland9 result relabelled into adtof5 classes (DESIGN.md §3).

    Two hits that fall into one coarse class at the same time (say LT and MT together)
    both stay: reference and estimate are reduced the same way, so matching stays fair.
    """
    if from_vocab.name == to_vocab_name:
        return list(hits)
    if (from_vocab.name, to_vocab_name) != ("roland9", "adtof5"):
        raise ConfigError(
            f"cannot reduce {from_vocab.name} results to {to_vocab_name}",
            hint="only roland9 -> adtof5 is defined",
        )
    target = get_vocab(to_vocab_name)
    new_class = [target.index(ROLAND9_TO_ADTOF5[code]) for code in from_vocab.codes]
    return [Hit(h.time_sec, new_class[h.cls], h.velocity, h.pitch) for h in hits]


@dataclass
class Tally:
    """Scores of many recordings, added one at a time, summed before any ratio.

    Per-class onset counts, the same per kit, reduced to adtof5 (roland9 only), and
    every recording's hits for the velocity-aware F1 (fitted per recording).
    """

    vocab: Vocab
    counts: list[ClassCounts] = field(default_factory=list)
    reduced: list[ClassCounts] = field(default_factory=list)
    per_kit: dict[str, list[ClassCounts]] = field(
        default_factory=lambda: defaultdict(list)
    )
    refs: list[Sequence[Hit]] = field(default_factory=list)
    ests: list[Sequence[Hit]] = field(default_factory=list)

    def add(self, ref: Sequence[Hit], est: Sequence[Hit], kit: str) -> None:
        counts = match_onsets(ref, est, self.vocab.n_classes)
        self.counts = _summed(self.counts, counts)
        self.per_kit[kit] = _summed(self.per_kit[kit], counts)
        if self.vocab.name == "roland9":
            reduced = match_onsets(
                reduce_hits(ref, self.vocab),
                reduce_hits(est, self.vocab),
                get_vocab("adtof5").n_classes,
            )
            self.reduced = _summed(self.reduced, reduced)
        self.refs.append(ref)
        self.ests.append(est)

    def summary(self) -> dict[str, Any]:
        """summarize() of the totals, plus ``adtof5``, ``velocity_f1`` and ``per_kit``
        (micro F1 of each kit)."""
        codes = self.vocab.codes
        results = summarize(self.counts, codes)
        if self.reduced:
            results["adtof5"] = summarize(self.reduced, get_vocab("adtof5").codes)
        results["velocity_f1"] = velocity_f1(self.refs, self.ests, self.vocab.n_classes)
        results["per_kit"] = {
            kit: summarize(c, codes)["micro_f1"]
            for kit, c in sorted(self.per_kit.items())
        }
        return results


def _summed(total: list[ClassCounts], counts: list[ClassCounts]) -> list[ClassCounts]:
    """``counts`` added to ``total``; an empty total (nothing added yet) takes them."""
    return add_counts(total, counts) if total else list(counts)
