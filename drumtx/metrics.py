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

Where the errors sit (:func:`confusion_counts`): after that matching, every false
positive of class P is put in the column of the reference it most likely answered, and
every miss of class R in the column of what was predicted over it (see :func:`blame`).
Recall by reference velocity (:func:`velocity_recall_counts`) says whether the misses
are ghost notes or accents; recall by standout (:func:`standout_recall_counts`, with
each reference hit's standout from drumtx.standout) whether they could be heard at all.
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
from drumtx.standout import AUDIBLE_DB, STANDOUT_BINS_DB, standout_bin_names

ONSET_WINDOW_SEC = 0.05
NOTE_SEC = 0.05  # nominal note length for mir_eval's interval format; offsets ignored
VELOCITY_TOLERANCE = 0.1  # mir_eval and Onsets & Frames default
NO_HIT = "none"  # confusion column: no hit of any class within the window
# Recall by reference velocity: 1-31 (ghost notes), 32-63, 64-95, 96-127.
VELOCITY_BINS = (1, 32, 64, 96, 128)


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


def class_onsets(
    hits: Sequence[Hit], n_classes: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sorted onset times in seconds, their velocities in the same order) of each
    class; an out-of-range class raises."""
    rows: list[list[tuple[float, int]]] = [[] for _ in range(n_classes)]
    for hit in hits:
        if not 0 <= hit.cls < n_classes:
            raise ValueError(f"hit class {hit.cls} outside 0..{n_classes - 1}: {hit}")
        rows[hit.cls].append((hit.time_sec, hit.velocity))
    onsets = []
    for row in rows:
        times = np.asarray([t for t, _ in row], dtype=np.float64)
        velocities = np.asarray([v for _, v in row], dtype=np.int64)
        order = np.argsort(times, kind="stable")
        onsets.append((times[order], velocities[order]))
    return onsets


def class_times(hits: Sequence[Hit], n_classes: int) -> list[np.ndarray]:
    """Sorted onset times (seconds) of each class; an out-of-range class raises."""
    return [times for times, _ in class_onsets(hits, n_classes)]


@dataclass
class ClassMatch:
    """One class of one recording after matching: sorted onset times (seconds),
    which of them found a partner and the reference hits' velocities."""

    ref_sec: np.ndarray
    est_sec: np.ndarray
    ref_matched: np.ndarray  # bool, one per ref_sec
    est_matched: np.ndarray  # bool, one per est_sec
    ref_velocity: np.ndarray  # int, one per ref_sec

    def counts(self) -> ClassCounts:
        return ClassCounts(
            int(self.ref_matched.sum()), len(self.ref_sec), len(self.est_sec)
        )


def match_classes(
    ref: Sequence[Hit],
    est: Sequence[Hit],
    n_classes: int,
    window_sec: float = ONSET_WINDOW_SEC,
) -> list[ClassMatch]:
    """Per-class one-to-one matches of one recording within +-window_sec (mir_eval)."""
    matches = []
    ref_onsets, est_times = class_onsets(ref, n_classes), class_times(est, n_classes)
    for (ref_sec, ref_velocity), est_sec in zip(ref_onsets, est_times):
        pairs = mir_eval.util.match_events(ref_sec, est_sec, window_sec)
        ref_matched = np.zeros(len(ref_sec), dtype=bool)
        est_matched = np.zeros(len(est_sec), dtype=bool)
        if pairs:
            ref_idx, est_idx = np.asarray(pairs).T  # (2, n_pairs)
            ref_matched[ref_idx] = est_matched[est_idx] = True
        matches.append(
            ClassMatch(ref_sec, est_sec, ref_matched, est_matched, ref_velocity)
        )
    return matches


def match_onsets(
    ref: Sequence[Hit],
    est: Sequence[Hit],
    n_classes: int,
    window_sec: float = ONSET_WINDOW_SEC,
) -> list[ClassCounts]:
    """Per-class counts for one recording: one-to-one matches within +-window_sec."""
    return [m.counts() for m in match_classes(ref, est, n_classes, window_sec)]


# --- where the errors sit -------------------------------------------------------------


def nearest_gaps(
    query_sec: np.ndarray, candidates: Sequence[np.ndarray], window_sec: float
) -> np.ndarray:
    """(Q, C) distance (seconds) from each query time to the nearest candidate of each
    class within +-window_sec (inclusive, as mir_eval's window), inf where none is."""
    gaps = np.full((len(query_sec), len(candidates)), np.inf)
    for c, times in enumerate(candidates):  # each sorted
        if not len(times):
            continue
        after = np.searchsorted(times, query_sec)  # first candidate >= query
        left = times[np.maximum(after - 1, 0)]
        right = times[np.minimum(after, len(times) - 1)]
        left_ok = (after > 0) & (left >= query_sec - window_sec)
        right_ok = (after < len(times)) & (right <= query_sec + window_sec)
        gaps[:, c] = np.minimum(
            np.where(left_ok, query_sec - left, np.inf),
            np.where(right_ok, right - query_sec, np.inf),
        )
    return gaps


def blame(
    query_sec: np.ndarray,
    query_cls: np.ndarray,
    unmatched: Sequence[np.ndarray],
    every: Sequence[np.ndarray],
    window_sec: float = ONSET_WINDOW_SEC,
) -> np.ndarray:
    """Column of each unmatched hit (time, class): a class index, or C for none.

    The rule, first that applies: the class of the nearest *unmatched* hit of another
    class within the window (a tom predicted as a snare: an SD false positive at an LT
    miss); else the class of the nearest hit of any class, matched or not (its own
    class here means a double hit, or a flam's second stroke); else C (none: a hit
    out of nothing, or a miss in silence). Equal distances go to the class that
    comes first in the vocabulary. ``unmatched`` and ``every`` hold sorted times per
    class, on the other side (references for false positives, estimates for misses).
    """
    n_classes = len(every)
    column = np.full(len(query_sec), n_classes)
    for pool, own_class_too in ((unmatched, False), (every, True)):
        rows = np.flatnonzero(column == n_classes)
        if not len(rows):
            break
        gaps = nearest_gaps(query_sec[rows], pool, window_sec)  # (Q, C)
        if not own_class_too:
            gaps[np.arange(len(rows)), query_cls[rows]] = np.inf
        nearest = np.argmin(gaps, axis=1)  # the first class on equal distances
        found = np.isfinite(gaps[np.arange(len(rows)), nearest])
        column[rows[found]] = nearest[found]
    return column


def velocity_recall_counts(matches: Sequence[ClassMatch]) -> np.ndarray:
    """(C, B, 2) int: per class and VELOCITY_BINS bin, the reference hits of one
    recording that found a partner and all of them (velocities outside 1..127 are
    clipped into it)."""
    n_bins = len(VELOCITY_BINS) - 1
    counts = np.zeros((len(matches), n_bins, 2), dtype=np.int64)
    for cls, match in enumerate(matches):
        velocity = np.clip(match.ref_velocity, 1, 127)
        bins = np.searchsorted(VELOCITY_BINS, velocity, side="right") - 1
        _count_found(counts[cls], bins, match.ref_matched)
    return counts


def _count_found(row: np.ndarray, bins: np.ndarray, matched: np.ndarray) -> None:
    """Add each reference hit to ``row`` (B, 2) at its bin: found, and all."""
    np.add.at(row[:, 0], bins, matched.astype(np.int64))
    np.add.at(row[:, 1], bins, 1)


def velocity_recall_table(
    counts: np.ndarray, codes: Sequence[str]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """{code: {"1-31": {"recall", "n_ref"}, ...}} from summed velocity_recall_counts;
    a bin without reference hits has recall 0."""
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(VELOCITY_BINS, VELOCITY_BINS[1:])]
    return _recall_rows(dict(zip(codes, counts)), names)


def _recall_rows(
    rows: dict[str, np.ndarray], names: Sequence[str]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """{row: {bin name: {"recall", "n_ref"}}} from (B, 2) found / all counts per row;
    a bin without reference hits has recall 0."""
    return {
        code: {
            name: {"recall": float(hit / n) if n else 0.0, "n_ref": int(n)}
            for name, (hit, n) in zip(names, row)
        }
        for code, row in rows.items()
    }


def standout_recall_counts(
    ref: Sequence[Hit], matches: Sequence[ClassMatch], standout: np.ndarray
) -> np.ndarray:
    """(C, B, 2) int: per class and STANDOUT_BINS_DB bin, the reference hits of one
    recording that found a partner and all of them; ``standout`` has one value (dB)
    per hit of ``ref``, in its order."""
    standout = np.asarray(standout, dtype=np.float64)
    if standout.shape != (len(ref),):
        raise ValueError(f"{standout.shape} standouts for {len(ref)} reference hits")
    classes = np.asarray([h.cls for h in ref], dtype=np.int64)
    times = np.asarray([h.time_sec for h in ref], dtype=np.float64)
    inner_edges = np.asarray(STANDOUT_BINS_DB[1:-1])
    counts = np.zeros((len(matches), len(inner_edges) + 1, 2), dtype=np.int64)
    for cls, match in enumerate(matches):
        mine = np.flatnonzero(classes == cls)
        mine = mine[np.argsort(times[mine], kind="stable")]  # class_onsets' order
        bins = np.searchsorted(inner_edges, standout[mine], side="right")
        _count_found(counts[cls], bins, match.ref_matched)
    return counts


def standout_recall_table(
    counts: np.ndarray, codes: Sequence[str]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """{code: {"<-10": {"recall", "n_ref"}, ...}, "all": {...}} from summed
    standout_recall_counts; a bin without reference hits has recall 0."""
    rows = {**dict(zip(codes, counts)), "all": counts.sum(axis=0)}
    return _recall_rows(rows, standout_bin_names())


def audible_counts(
    counts: Sequence[ClassCounts], by_standout: np.ndarray
) -> list[ClassCounts]:
    """``counts`` with the reference hits under AUDIBLE_DB left out: a miss of one is
    no miss, a match of one neither a hit nor a false one."""
    masked = np.asarray(STANDOUT_BINS_DB[1:]) <= AUDIBLE_DB  # bins wholly under it
    found = by_standout[:, masked, 0].sum(axis=1)
    total = by_standout[:, masked, 1].sum(axis=1)
    return [
        ClassCounts(c.tp - int(f), c.n_ref - int(t), c.n_est - int(f))
        for c, f, t in zip(counts, found, total)
    ]


def confusion_counts(
    matches: Sequence[ClassMatch], window_sec: float = ONSET_WINDOW_SEC
) -> tuple[np.ndarray, np.ndarray]:
    """False positives and misses of one recording by where they sit, (C, C + 1) each.

    ``false_positives[p, q]``: predictions of class p matched to no reference, blamed
    on reference class q (column C: none); ``misses[r, q]``: references of class r
    left unmatched, with class q predicted there (column C: none). Row p sums to the
    class's false positives, row r to its misses.
    """
    n_classes = len(matches)
    refs = [m.ref_sec for m in matches]
    ests = [m.est_sec for m in matches]
    free_refs = [m.ref_sec[~m.ref_matched] for m in matches]
    free_ests = [m.est_sec[~m.est_matched] for m in matches]
    tables = []
    for mine, their_free, theirs in ((free_ests, free_refs, refs),
                                     (free_refs, free_ests, ests)):  # fmt: skip
        query_cls = np.repeat(np.arange(n_classes), [len(t) for t in mine])
        query_sec = np.concatenate(mine)
        column = blame(query_sec, query_cls, their_free, theirs, window_sec)
        flat = np.bincount(
            query_cls * (n_classes + 1) + column, minlength=n_classes * (n_classes + 1)
        )
        tables.append(flat.reshape(n_classes, n_classes + 1))  # (C, C + 1)
    false_positives, misses = tables
    return false_positives, misses


def confusion_table(table: np.ndarray, codes: Sequence[str]) -> dict[str, dict]:
    """A (C, C + 1) count table as ``{row code: {column code or "none": count}}``."""
    columns = [*codes, NO_HIT]
    return {
        code: {col: int(n) for col, n in zip(columns, row)}
        for code, row in zip(codes, table)
    }


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
    "micro_f1": float, "macro_f1": float}``; ``macro.classes`` lists the codes averaged:
    those with reference hits, as papers average. A class the reference never plays
    is not measured by the split (its false hits count against micro F1's precision):
    were its F1 of 0 averaged in whenever the model fires on it, macro F1 would move
    with the model's mistakes in classes the split does not have.
    """
    if not counts:  # nothing evaluated yet: every class at zero
        counts = [ClassCounts() for _ in codes]
    if len(counts) != len(codes):
        raise ValueError(f"{len(counts)} class counts for {len(codes)} class codes")
    micro = ClassCounts()
    for item in counts:
        micro = micro + item
    present = [(c, n) for c, n in zip(codes, counts) if n.n_ref]
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

    Per-class onset counts, the same per kit, reduced to adtof5 (roland9 only), where
    the false positives and misses sit (:func:`confusion_counts`), and every
    recording's hits for the velocity-aware F1 (fitted per recording).
    """

    vocab: Vocab
    counts: list[ClassCounts] = field(default_factory=list)
    reduced: list[ClassCounts] = field(default_factory=list)
    per_kit: dict[str, list[ClassCounts]] = field(
        default_factory=lambda: defaultdict(list)
    )
    refs: list[Sequence[Hit]] = field(default_factory=list)
    ests: list[Sequence[Hit]] = field(default_factory=list)
    false_positives: np.ndarray | None = None  # (C, C + 1), see confusion_counts
    misses: np.ndarray | None = None  # (C, C + 1)
    by_velocity: np.ndarray | None = None  # (C, B, 2), see velocity_recall_counts
    by_standout: np.ndarray | None = None  # (C, B, 2), see standout_recall_counts

    def add(
        self,
        ref: Sequence[Hit],
        est: Sequence[Hit],
        kit: str,
        standout: np.ndarray | None = None,
    ) -> None:
        """One recording's hits; ``standout``: each reference hit's (drumtx.standout),
        for the recall by standout and the audible score."""
        matches = match_classes(ref, est, self.vocab.n_classes)
        if standout is not None:
            counted = standout_recall_counts(ref, matches, standout)
            self.by_standout = counted if self.by_standout is None else (
                self.by_standout + counted
            )
        counts = [m.counts() for m in matches]
        self.counts = _summed(self.counts, counts)
        false_positives, misses = confusion_counts(matches)
        if self.false_positives is None or self.misses is None:
            self.false_positives, self.misses = false_positives, misses
        else:
            self.false_positives = self.false_positives + false_positives
            self.misses = self.misses + misses
        by_velocity = velocity_recall_counts(matches)
        if self.by_velocity is None:
            self.by_velocity = by_velocity
        else:
            self.by_velocity = self.by_velocity + by_velocity
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
        """summarize() of the totals, plus ``adtof5``, ``velocity_f1``, ``per_kit``
        (micro F1 of each kit) and ``confusion``: ``false_positives`` (rows predicted
        class, columns reference class or "none") and ``misses`` (rows reference class,
        columns predicted class or "none"), counts summed over recordings,
        ``recall_by_velocity`` (:func:`velocity_recall_table`), and where standouts
        were given, ``recall_by_standout`` (:func:`standout_recall_table`) and
        ``audible``: micro and macro F1 without the hits under AUDIBLE_DB
        (:func:`audible_counts`) and how many those are."""
        codes = self.vocab.codes
        results = summarize(self.counts, codes)
        empty = np.zeros((len(codes), len(codes) + 1), dtype=np.int64)
        tables = {"false_positives": self.false_positives, "misses": self.misses}
        results["confusion"] = {
            name: confusion_table(empty if table is None else table, codes)
            for name, table in tables.items()
        }
        n_bins = len(VELOCITY_BINS) - 1
        by_velocity = self.by_velocity
        if by_velocity is None:
            by_velocity = np.zeros((len(codes), n_bins, 2), dtype=np.int64)
        results["recall_by_velocity"] = velocity_recall_table(by_velocity, codes)
        if self.by_standout is not None:
            by_standout = self.by_standout
            results["recall_by_standout"] = standout_recall_table(by_standout, codes)
            audible = summarize(audible_counts(self.counts, by_standout), codes)
            n_ref = sum(c.n_ref for c in self.counts)
            results["audible"] = {
                "standout_db": AUDIBLE_DB,
                "micro_f1": audible["micro_f1"],
                "macro_f1": audible["macro_f1"],
                "n_masked": n_ref - audible["micro"]["n_ref"],
            }
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
