from __future__ import annotations

import warnings

import mir_eval
import numpy as np
import pytest

from drumtx.drums import ADTOF5, ROLAND9, Hit, get_vocab
from drumtx.errors import ConfigError
from drumtx.metrics import (
    NO_HIT,
    ClassCounts,
    Tally,
    confusion_counts,
    match_classes,
    match_onsets,
    reduce_hits,
    standout_recall_counts,
    summarize,
    velocity_f1,
    velocity_recall_counts,
)


def random_hits(rng: np.random.Generator, n: int, n_classes: int) -> list[Hit]:
    times = np.sort(rng.uniform(0.0, 10.0, n))
    classes = rng.integers(0, n_classes, n)
    velocities = rng.integers(1, 128, n)
    return [
        Hit(float(t), int(c), int(v)) for t, c, v in zip(times, classes, velocities)
    ]


def jittered(rng: np.random.Generator, hits: list[Hit], keep: float) -> list[Hit]:
    """A noisy estimate: drops some hits, shifts the rest by up to +-80 ms."""
    out = [
        Hit(h.time_sec + float(rng.uniform(-0.08, 0.08)), h.cls, h.velocity)
        for h in hits
        if rng.uniform() < keep
    ]
    return sorted(out, key=lambda h: h.time_sec)


def mir_eval_f1(ref: list[Hit], est: list[Hit], cls: int) -> tuple[float, float, float]:
    ref_times = np.sort([h.time_sec for h in ref if h.cls == cls])
    est_times = np.sort([h.time_sec for h in est if h.cls == cls])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty event lists
        return mir_eval.onset.f_measure(ref_times, est_times, window=0.05)


@pytest.mark.parametrize("seed", range(5))
def test_per_class_scores_equal_mir_eval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = random_hits(rng, 80, 4)
    est = jittered(rng, ref, keep=0.8) + random_hits(rng, 10, 4)
    counts = match_onsets(ref, est, n_classes=4)
    for cls, item in enumerate(counts):
        f1, precision, recall = mir_eval_f1(ref, est, cls)
        assert item.f1 == pytest.approx(f1)
        assert item.precision == pytest.approx(precision)
        assert item.recall == pytest.approx(recall)


def test_window_is_inclusive_like_mir_eval() -> None:
    ref = [Hit(1.0, 0, 100)]
    assert match_onsets(ref, [Hit(1.05, 0, 100)], 1)[0].tp == 1
    assert match_onsets(ref, [Hit(1.0501, 0, 100)], 1)[0].tp == 0
    assert match_onsets(ref, [Hit(1.0, 1, 100)], 2)[0].tp == 0  # class must match


def test_summarize_micro_and_macro() -> None:
    counts = [
        ClassCounts(tp=8, n_ref=10, n_est=8),  # P 1.0, R 0.8
        ClassCounts(tp=1, n_ref=2, n_est=4),  # P 0.25, R 0.5
        ClassCounts(tp=0, n_ref=0, n_est=0),  # absent: left out of the macro mean
        ClassCounts(tp=0, n_ref=0, n_est=3),  # only false positives: not measured
    ]
    summary = summarize(counts, ("KD", "SD", "HH", "OH"))
    assert summary["classes"]["KD"]["f1"] == pytest.approx(2 * 0.8 / 1.8)
    assert summary["classes"]["SD"]["n_est"] == 4
    assert summary["micro"]["precision"] == pytest.approx(9 / 15)
    assert summary["micro"]["recall"] == pytest.approx(9 / 12)
    assert summary["micro_f1"] == pytest.approx(2 * 9 / (15 + 12))
    f1_sd = 2 * 0.25 * 0.5 / 0.75
    assert summary["macro_f1"] == pytest.approx((2 * 0.8 / 1.8 + f1_sd) / 2)
    assert summary["macro"]["classes"] == ["KD", "SD"]
    # a model firing on a class the split never plays does not move macro F1 (the
    # false hits count against micro precision instead)
    quiet = summarize([*counts[:3], ClassCounts()], ("KD", "SD", "HH", "OH"))
    assert quiet["macro_f1"] == summary["macro_f1"]
    assert quiet["micro_f1"] > summary["micro_f1"]


def test_counts_sum_over_recordings() -> None:
    total = [ClassCounts()]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        ref = random_hits(rng, 20, 1)
        total = [a + b for a, b in zip(total, match_onsets(ref, ref[:15], 1))]
    assert total[0] == ClassCounts(tp=45, n_ref=60, n_est=45)


def test_summarize_empty_and_mismatch() -> None:
    summary = summarize([], ("KD", "SD"))
    assert summary["micro_f1"] == 0.0 and summary["macro"]["classes"] == []
    with pytest.raises(ValueError):
        summarize([ClassCounts()], ("KD", "SD"))


def test_class_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="class 3"):
        match_onsets([Hit(1.0, 3, 100)], [], n_classes=3)


def test_velocity_f1_equals_mir_eval() -> None:
    rng = np.random.default_rng(7)
    ref = random_hits(rng, 60, 3)
    est = [
        Hit(
            h.time_sec + 0.01,
            h.cls,
            int(np.clip(h.velocity + rng.integers(-20, 20), 1, 127)),
        )
        for h in ref[:50]
    ]
    got = velocity_f1(ref, est, 3)
    pitches = {c: 100.0 * 2**c for c in range(3)}  # any distinct pitches will do

    def arrays(hits: list[Hit]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        onsets = np.array([h.time_sec for h in hits])
        intervals = np.stack([onsets, onsets + 0.1], axis=1)
        return (
            intervals,
            np.array([pitches[h.cls] for h in hits]),
            np.array([h.velocity for h in hits], dtype=float),
        )

    want = mir_eval.transcription_velocity.precision_recall_f1_overlap(
        *arrays(ref), *arrays(est), offset_ratio=None
    )
    assert got["precision"] == pytest.approx(want[0])
    assert got["recall"] == pytest.approx(want[1])
    assert got["f1"] == pytest.approx(want[2])
    assert 0.0 < got["f1"] < 1.0  # velocity errors cost something


def test_velocity_f1_over_recordings_and_empty() -> None:
    ref = [Hit(1.0, 0, 100), Hit(2.0, 0, 50)]
    perfect = velocity_f1([ref, ref], [ref, ref], 1)
    assert perfect["f1"] == perfect["f1_mean"] == 1.0
    assert velocity_f1(ref, [], 1)["f1"] == 0.0
    assert velocity_f1([ref, ref], [ref, []], 1)["recall"] == pytest.approx(0.5)


def test_reduce_hits_to_adtof5() -> None:
    codes = ("KD", "OH", "LT", "HT", "CR", "RD")
    hits = [
        Hit(0.1 * i, ROLAND9.index(c), 90, pitch=40 + i) for i, c in enumerate(codes)
    ]
    reduced = reduce_hits(hits, ROLAND9)
    assert [ADTOF5.codes[h.cls] for h in reduced] == [
        "KD",
        "HH",
        "TT",
        "TT",
        "CY",
        "CY",
    ]
    assert [(h.time_sec, h.velocity, h.pitch) for h in reduced] == [
        (h.time_sec, h.velocity, h.pitch) for h in hits
    ]
    assert reduce_hits(hits[:1], ADTOF5) == hits[:1]
    with pytest.raises(ConfigError):
        reduce_hits(hits, get_vocab("basic3"))


# --- where the errors sit -------------------------------------------------------------


def hits(*pairs: tuple[float, str]) -> list[Hit]:
    """Hits from (time, roland9 code) pairs."""
    return [Hit(t, ROLAND9.index(code), 100) for t, code in pairs]


def confusion(ref: list[Hit], est: list[Hit]) -> dict[str, dict[str, dict]]:
    """Only the non-zero cells: {"fp": {(row, col): n}, "miss": {...}}."""
    tally = Tally(ROLAND9)
    tally.add(ref, est, "kit")
    tables = tally.summary()["confusion"]
    return {
        short: {
            (row, col): n
            for row, cells in tables[name].items()
            for col, n in cells.items()
            if n
        }
        for short, name in (("fp", "false_positives"), ("miss", "misses"))
    }


def test_a_tom_predicted_as_a_snare() -> None:
    got = confusion(hits((1.0, "LT"), (2.0, "KD")), hits((1.01, "SD"), (2.0, "KD")))
    assert got == {"fp": {("SD", "LT"): 1}, "miss": {("LT", "SD"): 1}}


def test_a_hit_from_nothing_and_a_miss_in_silence() -> None:
    got = confusion(hits((3.0, "KD")), hits((1.0, "HH")))
    assert got == {"fp": {("HH", NO_HIT): 1}, "miss": {("KD", NO_HIT): 1}}
    assert confusion([], []) == {"fp": {}, "miss": {}}


def test_an_unmatched_partner_beats_a_nearer_matched_hit() -> None:
    # the HH at 1.0 is found; the SD at 1.005 answers the LT nobody found at 1.04
    got = confusion(
        hits((1.0, "HH"), (1.04, "LT")), hits((1.0, "HH"), (1.005, "SD"))
    )
    assert got == {"fp": {("SD", "LT"): 1}, "miss": {("LT", "SD"): 1}}


def test_matched_hits_are_the_fallback() -> None:
    bleed = confusion(hits((1.0, "HH")), hits((1.0, "HH"), (1.01, "SD")))
    assert bleed == {"fp": {("SD", "HH"): 1}, "miss": {}}
    double = confusion(hits((1.0, "SD")), hits((1.0, "SD"), (1.03, "SD")))
    assert double == {"fp": {("SD", "SD"): 1}, "miss": {}}
    flam = confusion(hits((1.0, "SD"), (1.03, "SD")), hits((1.01, "SD")))
    assert flam == {"fp": {}, "miss": {("SD", "SD"): 1}}


def test_the_nearest_wins_and_equal_distances_go_to_vocabulary_order() -> None:
    est = hits((1.0, "SD"))
    # times exact in binary, so the two distances really are equal
    tie = confusion(hits((0.96875, "LT"), (1.03125, "HH")), est)
    assert tie["fp"] == {("SD", "HH"): 1}
    tie_reversed = confusion(hits((0.96875, "HH"), (1.03125, "LT")), est)
    assert tie_reversed["fp"] == {("SD", "HH"): 1}
    nearer = confusion(hits((0.984375, "LT"), (1.03125, "HH")), est)
    assert nearer["fp"] == {("SD", "LT"): 1}


def test_the_window_edge_is_inclusive_like_the_matching() -> None:
    at_edge = confusion(hits((1.05, "LT")), hits((1.0, "SD")))
    assert at_edge == {"fp": {("SD", "LT"): 1}, "miss": {("LT", "SD"): 1}}
    beyond = confusion(hits((1.0501, "LT")), hits((1.0, "SD")))
    assert beyond == {"fp": {("SD", NO_HIT): 1}, "miss": {("LT", NO_HIT): 1}}


def oracle_column(
    time_sec: float,
    cls: int,
    free: list[tuple[float, int]],
    every: list[tuple[float, int]],
    n_classes: int,
) -> int:
    """blame()'s rule, one hit at a time with plain Python."""
    for pool, own_too in ((free, False), (every, True)):
        near = [
            (abs(t - time_sec), c)
            for t, c in pool
            if (own_too or c != cls) and time_sec - 0.05 <= t <= time_sec + 0.05
        ]
        if near:
            return min(near)[1]
    return n_classes


def oracle_tables(ref: list[Hit], est: list[Hit], n: int) -> tuple[np.ndarray, ...]:
    matches = match_classes(ref, est, n)
    sides = {}
    for side, times, matched in (("ref", "ref_sec", "ref_matched"),
                                 ("est", "est_sec", "est_matched")):  # fmt: skip
        every = [(float(t), c) for c, m in enumerate(matches)
                 for t in getattr(m, times)]  # fmt: skip
        flags = [f for m in matches for f in getattr(m, matched)]
        sides[side] = (every, [h for h, f in zip(every, flags) if not f])
    fp, miss = np.zeros((n, n + 1), int), np.zeros((n, n + 1), int)
    for table, mine, theirs in ((fp, "est", "ref"), (miss, "ref", "est")):
        for t, c in sides[mine][1]:
            table[c, oracle_column(t, c, sides[theirs][1], sides[theirs][0], n)] += 1
    return fp, miss


@pytest.mark.parametrize("seed", range(6))
def test_confusion_agrees_with_a_plain_oracle_and_the_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = random_hits(rng, 120, 5)
    est = jittered(rng, ref, keep=0.8)
    est = [Hit(h.time_sec, int(rng.integers(0, 5)) if rng.uniform() < 0.2 else h.cls,
               h.velocity) for h in est] + random_hits(rng, 15, 5)  # fmt: skip
    matches = match_classes(ref, est, 5)
    fp, miss = confusion_counts(matches)
    want_fp, want_miss = oracle_tables(ref, est, 5)
    np.testing.assert_array_equal(fp, want_fp)
    np.testing.assert_array_equal(miss, want_miss)
    counts = match_onsets(ref, est, 5)
    assert fp.sum(axis=1).tolist() == [c.n_est - c.tp for c in counts]
    assert miss.sum(axis=1).tolist() == [c.n_ref - c.tp for c in counts]
    assert fp[:, :5].sum() > 0 and miss[:, 5].sum() > 0  # both kinds occur


def test_tally_sums_confusion_over_recordings() -> None:
    tally = Tally(ROLAND9)
    rng = np.random.default_rng(3)
    for _ in range(3):
        ref = random_hits(rng, 40, ROLAND9.n_classes)
        tally.add(ref, jittered(rng, ref, keep=0.7), "kit")
    summary = tally.summary()
    for name, key in (("false_positives", "n_est"), ("misses", "n_ref")):
        table = summary["confusion"][name]
        assert list(table) == list(ROLAND9.codes)
        for code, row in table.items():
            assert list(row) == [*ROLAND9.codes, NO_HIT]
            errors = summary["classes"][code][key] - summary["classes"][code]["tp"]
            assert sum(row.values()) == errors
    empty = Tally(ROLAND9).summary()["confusion"]["misses"]
    assert all(n == 0 for row in empty.values() for n in row.values())


# --- recall by reference velocity ----------------------------------------------------


def test_recall_by_velocity_puts_each_reference_hit_in_its_bin() -> None:
    sd, hh = ROLAND9.index("SD"), ROLAND9.index("HH")
    ref = [
        Hit(1.0, sd, 20), Hit(2.0, sd, 31), Hit(3.0, sd, 32), Hit(0.5, sd, 127),
        Hit(1.0, hh, 90), Hit(4.0, hh, 0),  # 0 counts as 1
    ]  # fmt: skip
    est = [Hit(1.01, sd, 50), Hit(0.5, sd, 100), Hit(4.02, hh, 30)]
    tally = Tally(ROLAND9)
    tally.add(ref, est, "kit")
    tally.add([Hit(1.0, sd, 10)], [], "kit")  # summed over recordings
    table = tally.summary()["recall_by_velocity"]
    assert table["SD"] == {
        "1-31": {"recall": pytest.approx(1 / 3), "n_ref": 3},
        "32-63": {"recall": 0.0, "n_ref": 1},
        "64-95": {"recall": 0.0, "n_ref": 0},
        "96-127": {"recall": 1.0, "n_ref": 1},
    }
    assert table["HH"]["1-31"] == {"recall": 1.0, "n_ref": 1}
    assert table["HH"]["64-95"] == {"recall": 0.0, "n_ref": 1}
    assert all(b["n_ref"] == 0 for b in table["KD"].values())


@pytest.mark.parametrize("seed", range(3))
def test_recall_by_velocity_sums_to_each_class_recall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = random_hits(rng, 120, 9)
    est = jittered(rng, ref, keep=0.7)
    counts = velocity_recall_counts(match_classes(ref, est, 9))
    for cls, item in enumerate(match_onsets(ref, est, 9)):
        assert counts[cls, :, 0].sum() == item.tp
        assert counts[cls, :, 1].sum() == item.n_ref


# --- recall by standout, and the audible score ---------------------------------------


def test_recall_by_standout_follows_each_hit_and_audible_drops_masked_ones() -> None:
    sd, kd = ROLAND9.index("SD"), ROLAND9.index("KD")
    # out of time order within a class: each standout must stay with its own hit
    ref = [Hit(2.0, sd, 90), Hit(1.0, sd, 20), Hit(3.0, kd, 100), Hit(4.0, kd, 100)]
    standout = np.array([20.0, -12.0, 5.0, -7.0])
    est = [Hit(1.01, sd, 20), Hit(4.0, kd, 90), Hit(5.0, kd, 90)]  # KD at 5 s: false
    tally = Tally(ROLAND9)
    tally.add(ref, est, "kit", standout)
    summary = tally.summary()
    table = summary["recall_by_standout"]
    assert table["SD"]["<-10"] == {"recall": 1.0, "n_ref": 1}  # the hit at 1 s, found
    assert table["SD"][">=10"] == {"recall": 0.0, "n_ref": 1}
    assert table["KD"]["0..10"] == {"recall": 0.0, "n_ref": 1}
    assert table["KD"]["-10..-5"] == {"recall": 1.0, "n_ref": 1}
    assert table["all"]["<-10"]["n_ref"] == 1 and table["all"][">=10"]["n_ref"] == 1
    # plain: 2 of 4 found, 3 predicted; audible: the SD at 1 s and the KD at 4 s are
    # masked, so 0 of 2 found and 1 predicted (the false KD)
    assert summary["micro_f1"] == pytest.approx(2 * 2 / (4 + 3))
    assert summary["audible"]["n_masked"] == 2
    assert summary["audible"]["micro_f1"] == 0.0
    assert summary["audible"]["standout_db"] == -5.0


def test_recall_by_standout_needs_one_value_per_reference_hit() -> None:
    ref = [Hit(1.0, 0, 100)]
    with pytest.raises(ValueError, match="standouts"):
        standout_recall_counts(ref, match_classes(ref, ref, 9), np.zeros(2))


def test_no_standouts_no_audible_score() -> None:
    tally = Tally(ROLAND9)
    tally.add([Hit(1.0, 0, 100)], [Hit(1.0, 0, 100)], "kit")
    summary = tally.summary()
    assert "recall_by_standout" not in summary and "audible" not in summary
