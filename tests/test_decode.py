from __future__ import annotations

import numpy as np
import pytest

from drumtx.decode import enforce_min_gap, local_peaks, pick_onsets, velocity_to_midi
from drumtx.drums import Hit
from drumtx.frontend import n_frames

FPS = 100.0


def bumps(
    n_frames_: int, n_classes: int, events: list[tuple[float, int, float]]
) -> np.ndarray:
    """(T, C) activations: a Gaussian bump (sigma 1 frame) of ``height`` at each
    (time_sec, class, height), centred at time_sec * FPS, fractional frames allowed."""
    frames = np.arange(n_frames_)[:, None]
    prob = np.zeros((n_frames_, n_classes))
    for time_sec, cls, height in events:
        bump = height * np.exp(-0.5 * (frames[:, 0] - time_sec * FPS) ** 2)
        prob[:, cls] = np.maximum(prob[:, cls], bump)
    return prob


def test_local_peaks_plateaus_and_edges() -> None:
    assert local_peaks(np.array([0.0, 0.8, 0.8, 0.0])).tolist() == [1]
    assert local_peaks(np.array([0.0, 0.8, 0.8, 0.9])).tolist() == [3]
    assert local_peaks(np.array([0.9, 0.1, 0.5])).tolist() == [0, 2]
    assert local_peaks(np.array([0.5, 0.5, 0.5])).tolist() == [0]
    assert local_peaks(np.array([])).tolist() == []


def test_peaks_decode_to_times_classes_and_velocities() -> None:
    duration_sec = 3.0
    count = n_frames(int(duration_sec * 24000), 240)
    events = [(0.5, 0, 0.9), (1.0, 1, 0.7), (1.0, 2, 0.95), (2.37, 0, 0.6)]
    prob = bumps(count, 3, events)
    velocity = np.zeros_like(prob)
    velocity[50, 0], velocity[100, 1], velocity[100, 2] = 1.0, 0.5, 0.0
    velocity[237, 0] = 0.25
    hits = pick_onsets(prob, velocity, FPS, [0.5, 0.5, 0.5], 0.03)
    assert hits == [
        Hit(0.5, 0, 127),
        Hit(1.0, 1, 64),
        Hit(1.0, 2, 1),  # velocity 0 still writes an audible note
        Hit(2.37, 0, 32),
    ]


def test_time_is_frame_over_fps() -> None:
    prob = np.zeros((10, 1))
    prob[7, 0] = 1.0
    hits = pick_onsets(prob, np.full_like(prob, 0.5), 50.0, [0.5], 0.0)
    assert hits[0].time_sec == pytest.approx(7 / 50.0)


def test_threshold_honoured_per_class() -> None:
    prob = bumps(200, 2, [(0.5, 0, 0.45), (1.0, 0, 0.55), (0.5, 1, 0.45)])
    velocity = np.full_like(prob, 0.5)
    hits = pick_onsets(prob, velocity, FPS, [0.5, 0.4], 0.03)
    assert [(h.time_sec, h.cls) for h in hits] == [(0.5, 1), (1.0, 0)]
    at_threshold = pick_onsets(prob, velocity, FPS, [0.55, 1.0], 0.03)
    assert [(h.time_sec, h.cls) for h in at_threshold] == [(1.0, 0)]


def test_min_gap_keeps_the_stronger_peak() -> None:
    prob = np.zeros((100, 1))
    prob[[10, 12, 30, 33, 60, 61], 0] = [0.6, 0.9, 0.9, 0.7, 0.8, 0.8]
    velocity = np.full_like(prob, 0.5)
    hits = pick_onsets(prob, velocity, FPS, [0.5], 0.03)
    # 10 loses to 12 (2 frames < 3); 30 and 33 are exactly 30 ms apart: both stay;
    # 60/61 form a plateau: one hit, at its first frame
    assert [round(h.time_sec * FPS) for h in hits] == [12, 30, 33, 60]
    wider = pick_onsets(prob, velocity, FPS, [0.5], 0.05)
    assert [round(h.time_sec * FPS) for h in wider] == [12, 30, 60]


def test_enforce_min_gap_ties_go_to_the_earlier_frame() -> None:
    kept = enforce_min_gap(np.array([5, 6, 7]), np.array([0.8, 0.8, 0.8]), 3.0)
    assert kept.tolist() == [5]


def test_velocity_mapping() -> None:
    assert [velocity_to_midi(v) for v in (0.0, 0.004, 0.5, 1.0, 1.2)] == [
        1,
        1,
        64,
        127,
        127,
    ]


def test_refine_improves_sub_frame_timing() -> None:
    true_sec = [0.503, 0.9968, 1.5049, 2.0021]
    prob = bumps(300, 1, [(t, 0, 0.9) for t in true_sec])
    velocity = np.full_like(prob, 0.5)
    coarse = pick_onsets(prob, velocity, FPS, [0.5], 0.03, refine=False)
    fine = pick_onsets(prob, velocity, FPS, [0.5], 0.03)  # refined by default
    coarse_err = np.abs([h.time_sec for h in coarse] - np.array(true_sec))
    fine_err = np.abs([h.time_sec for h in fine] - np.array(true_sec))
    # A Gaussian peak's log is a parabola: its vertex is the onset (to 0.1 ms).
    assert fine_err.max() <= 0.00006 and coarse_err.max() > 0.0015
    assert fine == pick_onsets(prob, velocity, FPS, [0.5], 0.03, refine=True)


def test_refine_stays_within_half_a_frame_and_on_single_frame_peaks() -> None:
    prob = np.zeros((10, 1))
    prob[4, 0], prob[5, 0] = 0.9, 0.8999  # a near-flat top: clipped, not thrown off
    hits = pick_onsets(prob, np.full_like(prob, 0.5), FPS, [0.5], 0.0)
    assert 0.04 <= hits[0].time_sec <= 0.045
    prob[:] = 0.0
    prob[0, 0], prob[7, 0] = 0.9, 0.9  # at the first frame, and alone between zeros
    times = [h.time_sec for h in pick_onsets(prob, prob, FPS, [0.5], 0.0)]
    assert times == [0.0, 0.07]


def test_bad_shapes_raise() -> None:
    prob = np.zeros((10, 2))
    with pytest.raises(ValueError, match="thresholds"):
        pick_onsets(prob, prob, FPS, [0.5], 0.03)
    with pytest.raises(ValueError, match="frames, classes"):
        pick_onsets(prob, prob[:, :1], FPS, [0.5, 0.5], 0.03)


def test_empty_activations() -> None:
    prob = np.zeros((0, 3))
    assert pick_onsets(prob, prob, FPS, [0.5] * 3, 0.03) == []


def test_exclusive_pairs_keep_the_surer_of_two_hits_at_once() -> None:
    # classes 0 (open hat), 1 (crash), 2 (ride); thresholds 0.5, 0.25, 0.5
    prob = bumps(300, 3, [(0.5, 0, 0.9), (0.5, 1, 0.5),  # crash surer: 2.0 vs 1.8
                          (1.0, 0, 0.95), (1.01, 1, 0.3),  # open hat surer: 1.9 vs 1.2
                          (1.5, 0, 0.9), (1.6, 1, 0.5),  # 100 ms apart: both stay
                          (2.0, 1, 0.3), (2.0, 2, 0.7)])  # ride 1.4 vs 1.2  # fmt: skip
    velocity = np.full_like(prob, 0.5)
    both = pick_onsets(prob, velocity, FPS, [0.5, 0.25, 0.5], 0.03)
    assert len(both) == 8
    hits = pick_onsets(prob, velocity, FPS, [0.5, 0.25, 0.5], 0.03,
                       exclusive=[(0, 1), (1, 2)])  # fmt: skip
    assert [(round(h.time_sec, 2), h.cls) for h in hits] == [
        (0.5, 1), (1.0, 0), (1.5, 0), (1.6, 1), (2.0, 2)
    ]


def test_exclusive_drops_surest_first_and_a_dropped_hit_drops_nothing() -> None:
    from drumtx.decode import exclusive_drops

    def hits(*events):
        return [Hit(t, c, 100) for t, c, _ in events], [x for _, _, x in events]

    # open hat > crash > ride at once: the crash goes, the ride (no open-hat pair) stays
    h, sure = hits((1.0, 0, 3.0), (1.0, 1, 2.0), (1.0, 2, 1.5))
    assert exclusive_drops(h, sure, [(0, 1), (1, 2)], 0.03) == {1}
    # crash, open hat 20 ms later, crash 20 ms after that: both crashes stay
    h, sure = hits((0.50, 1, 3.0), (0.52, 0, 2.0), (0.54, 1, 1.5))
    assert exclusive_drops(h, sure, [(0, 1)], 0.03) == {1}
    # a pair given both ways drops one hit of a tie, not both; exactly 30 ms apart: none
    h, sure = hits((1.0, 0, 2.0), (1.0, 1, 2.0), (2.0, 0, 2.0), (2.03, 1, 1.0))
    assert exclusive_drops(h, sure, [(0, 1), (1, 0)], 0.03) == {1}


def test_buzz_raises_the_threshold_of_a_snare_struck_with_a_kick() -> None:
    from drumtx.decode import Buzz

    # classes 0 (kick), 1 (snare); frames of 10 ms, bumps one frame wide
    prob = bumps(400, 2, [(0.5, 0, 0.9), (0.5, 1, 0.7),  # buzz under a kick: dropped
                          (1.0, 0, 0.9), (1.01, 1, 0.9),  # a frame apart, sure: stays
                          (1.5, 0, 0.9), (1.53, 1, 0.7),  # 30 ms apart: stays
                          (2.0, 0, 0.4), (2.0, 1, 0.7),  # a soft kick under it: stays
                          (3.0, 1, 0.7)])  # no kick: stays  # fmt: skip
    velocity = np.full_like(prob, 0.5)
    rule = Buzz(cls=1, source=0, when=0.5, threshold=0.85)

    def times(hits, cls):
        return [round(h.time_sec, 2) for h in hits if h.cls == cls]

    plain = pick_onsets(prob, velocity, FPS, [0.5, 0.55], 0.03)
    hits = pick_onsets(prob, velocity, FPS, [0.5, 0.55], 0.03, buzz=[rule])
    assert times(plain, 1) == [0.5, 1.01, 1.53, 2.0, 3.0]
    assert times(hits, 1) == [1.01, 1.53, 2.0, 3.0]
    assert times(hits, 0) == times(plain, 0) == [0.5, 1.0, 1.5]
    # a class threshold above the rule's wins
    high = pick_onsets(prob, velocity, FPS, [0.5, 0.95], 0.03, buzz=[rule])
    assert times(high, 1) == []
    # the rule the other way round: kicks with a snare in reach need 0.95
    back = Buzz(cls=0, source=1, when=0.5, threshold=0.95)
    hits = pick_onsets(prob, velocity, FPS, [0.5, 0.55], 0.03, buzz=[back])
    assert times(hits, 0) == [1.5] and times(hits, 1) == times(plain, 1)


def test_decode_hits_applies_the_configs_buzz_rules_by_class_code() -> None:
    from types import SimpleNamespace

    from drumtx.config import load_config
    from drumtx.drums import ROLAND9
    from drumtx.inference import decode_hits

    kd, sd, lt = (ROLAND9.codes.index(c) for c in ("KD", "SD", "LT"))
    fps = load_config().frontend.fps
    n = int(3 * fps)
    prob = np.zeros((n, ROLAND9.n_classes))
    for t, cls, height in [(0.5, kd, 0.9), (0.5, sd, 0.7), (1.0, lt, 0.8),
                           (1.0, sd, 0.7), (2.0, sd, 0.7)]:  # fmt: skip
        prob[int(t * fps), cls] = height
    velocity = np.full_like(prob, 0.5)
    thresholds = [0.5] * ROLAND9.n_classes

    def snares(overrides):
        loaded = SimpleNamespace(cfg=load_config(overrides=overrides), vocab=ROLAND9)
        hits = decode_hits(loaded, prob, velocity, thresholds)
        return [round(h.time_sec, 2) for h in hits if h.cls == sd]

    assert snares([]) == [2.0]  # the snares on the kick and the tom were buzz
    assert snares(["decode.buzz=SD<KD"]) == [1.0, 2.0]
    assert snares(["decode.buzz="]) == [0.5, 1.0, 2.0]
    assert snares(["decode.buzz_threshold=0.6"]) == [0.5, 1.0, 2.0]


def test_pattern_period_is_where_the_activations_repeat() -> None:
    from drumtx.decode import pattern_period

    # a 2-s bar: kicks on 1 and the "and" of 2, snare on 3; hats every half second
    events = []
    for bar in range(6):
        t = 0.2 + 2.0 * bar
        events += [(t, 0, 0.9), (t + 0.75, 0, 0.9), (t + 1.0, 1, 0.9)]
        events += [(t + 0.5 * i, 2, 0.6) for i in range(4)]
    prob = bumps(1300, 3, events)
    assert pattern_period(prob, FPS) == 200  # the bar: the beats differ
    assert pattern_period(prob[:150], FPS) is None  # too short to repeat a second in
    assert pattern_period(prob, FPS, (0.4, 0.8)) == 50  # the hats' half second
    # summed over classes, a kick and a snare a beat apart repeat at the beat
    beats = bumps(1300, 2, [(0.2 + 1.0 * b, b % 2, 0.9) for b in range(12)])
    assert pattern_period(beats, FPS) == 100


def test_repeat_lets_a_peak_count_where_its_class_was_sure_a_bar_away() -> None:
    from drumtx.decode import Buzz, Repeat, pattern_period

    # classes 0 (kick), 1 (snare); a 2-s bar, the kick on 1 and the snare on 3, sure;
    # a ghost snare after the backbeat sure in bars 0 and 2, soft in bars 1 and 3
    events = [(0.2 + 2.0 * bar, 0, 0.9) for bar in range(6)]
    events += [(1.2 + 2.0 * bar, 1, 0.9) for bar in range(6)]
    events += [(1.7, 1, 0.9), (5.7, 1, 0.9), (3.7, 1, 0.4), (7.7, 1, 0.3)]
    events += [(10.5, 1, 0.45)]  # a soft snare nowhere repeated
    events += [(2.2, 1, 0.9), (4.2, 1, 0.5)]  # snares on a kick, sure, then soft
    prob = bumps(1250, 2, events)
    velocity = np.full_like(prob, 0.5)
    assert pattern_period(prob, FPS) == 200

    def snares(**kw):
        hits = pick_onsets(prob, velocity, FPS, [0.5, 0.55], 0.03, **kw)
        return [round(h.time_sec, 2) for h in hits if h.cls == 1]

    plain = snares()
    assert plain == [1.2, 1.7, 2.2, 3.2, 5.2, 5.7, 7.2, 9.2, 11.2]
    rule = Repeat(floor=0.35, context=0.8)
    # 3.7 (0.4) and 4.2 (0.5) are found: their class was sure a bar away; 7.7 (0.3)
    # is under the floor and 10.5 (0.45) repeats nothing
    assert snares(repeat=rule) == sorted(plain + [3.7, 4.2])
    # a buzz rule still asks more: the soft snare on a sure kick stays out
    buzz = [Buzz(cls=1, source=0, when=0.5, threshold=0.85)]
    assert snares(repeat=rule, buzz=buzz) == sorted(plain + [3.7])
    assert snares(buzz=buzz) == plain  # 2.2 (0.9) passes the buzz rule's 0.85
    # context 0.95: nothing is sure enough to vouch for a soft one
    assert snares(repeat=Repeat(floor=0.35, context=0.95)) == plain
    # one period either way still holds 3.7's and 4.2's neighbours
    once = Repeat(floor=0.35, context=0.8, periods=1)
    assert snares(repeat=once) == snares(repeat=rule)
    # a rule for the kick alone leaves the snares as they were
    kicks_only = Repeat(floor=0.35, context=0.8, classes=frozenset({0}))
    assert snares(repeat=kicks_only) == plain
    assert 3.7 in snares(repeat=Repeat(0.35, 0.8, classes=frozenset({1})))
    # the kicks, all sure, are what they were
    kicks = [h.time_sec for h in pick_onsets(prob, velocity, FPS, [0.5, 0.55], 0.03,
                                             repeat=rule) if h.cls == 0]  # fmt: skip
    assert len(kicks) == 6


def test_decode_hits_applies_the_configs_repeat_rule() -> None:
    from types import SimpleNamespace

    from drumtx.config import load_config
    from drumtx.drums import ROLAND9
    from drumtx.inference import decode_hits

    sd = ROLAND9.codes.index("SD")
    events = [(0.5 + 2.0 * bar, sd, 0.9) for bar in range(5)] + [(4.9, sd, 0.45)]
    events += [(0.9, sd, 0.9), (8.9, sd, 0.9)]
    prob = bumps(1100, ROLAND9.n_classes, events)
    velocity = np.full_like(prob, 0.5)

    def snares(overrides):
        loaded = SimpleNamespace(cfg=load_config(overrides=overrides), vocab=ROLAND9)
        hits = decode_hits(loaded, prob, velocity, [0.55] * ROLAND9.n_classes)
        return [round(h.time_sec, 2) for h in hits if h.cls == sd]

    assert 4.9 in snares([])  # sure two bars before and after it
    assert 4.9 not in snares(["decode.repeat_floor=0"])
    assert 4.9 not in snares(["decode.repeat_floor=0.5"])
    assert 4.9 not in snares(["decode.repeat_context=0.95"])
    assert 4.9 not in snares(["decode.repeat_classes=KD,OH"])
    assert 4.9 not in snares(["decode.repeat_classes="])
    assert 4.9 in snares(["decode.repeat_classes=sd"])
