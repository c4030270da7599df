"""Pseudo-labels: which teacher peaks become labels, which are ignored, and the views.
"""

from __future__ import annotations

import numpy as np
import pytest

from drumtx.pseudo import LabelRule, ensemble, ignore_mask, label, tilt_views

FPS = 100.0


def _peak(onset: np.ndarray, frame: int, cls: int, height: float) -> None:
    onset[frame, cls] = height
    onset[frame - 1, cls] = onset[frame + 1, cls] = height * 0.5


def test_confident_peaks_are_labels_and_middling_ones_unsure() -> None:
    onset = np.zeros((300, 2), np.float32)
    velocity = np.full_like(onset, 0.5)
    _peak(onset, 50, 0, 0.95)  # well above: a label
    _peak(onset, 100, 0, 0.55)  # above threshold 0.5 but below the confident 0.7
    _peak(onset, 150, 1, 0.25)  # below threshold, above the floor 0.2: unsure too
    _peak(onset, 200, 1, 0.1)  # under the floor: nothing
    got = label(onset, velocity, FPS, [0.5, 0.5], LabelRule(confident=0.4, floor=0.4))
    assert [(round(h.time_sec * FPS), h.cls) for h in got.hits] == [(50, 0)]
    assert [(round(h.time_sec * FPS), h.cls) for h in got.unsure] == [
        (100, 0),
        (150, 1),
    ]


def test_levels_follow_each_class_threshold() -> None:
    high, low = LabelRule(confident=0.5, floor=0.5).levels([0.2, 0.6])
    assert high == pytest.approx([0.6, 0.8])
    assert low == pytest.approx([0.1, 0.3])
    with pytest.raises(ValueError):
        LabelRule(confident=1.0)
    rule = LabelRule(confident=0.5, confident_other=0.75)
    high, _ = rule.levels([0.2, 0.2], ["KD", "LT"])  # a tom must be surer
    assert high == pytest.approx([0.6, 0.8])


def test_ignore_mask_blanks_only_the_unsure_class_near_its_peak() -> None:
    weight = ignore_mask(np.array([10, 0]), np.array([1, 0]), 20, 3, radius=2)
    assert weight.shape == (20, 3)
    assert (weight[8:13, 1] == 0).all() and weight[7, 1] == 1 and weight[13, 1] == 1
    assert (weight[0:3, 0] == 0).all() and weight[3, 0] == 1  # clipped at the start
    assert (weight[:, 2] == 1).all()
    assert weight.sum() == 20 * 3 - 5 - 3


def test_views_tilt_the_spectrum_and_keep_the_low_end() -> None:
    sr = 24_000
    t = np.arange(sr) / sr
    low = np.sin(2 * np.pi * 60 * t).astype(np.float32)
    high = np.sin(2 * np.pi * 8000 * t).astype(np.float32)
    for signal, expect in ((low, (0.0, 0.0)), (high, (4.0, -4.0))):
        plain, bright, dark = tilt_views(signal, sr)
        gains = [20 * np.log10(np.std(v[sr // 2 :]) / np.std(plain[sr // 2 :]))
                 for v in (bright, dark)]  # fmt: skip
        assert gains == pytest.approx(expect, abs=0.35)


def test_ensemble_averages_the_views() -> None:
    a = (np.zeros((4, 2), np.float32), np.ones((4, 2), np.float32))
    b = (np.ones((4, 2), np.float32), np.zeros((4, 2), np.float32))
    onset, velocity = ensemble([a, b])
    assert (onset == 0.5).all() and (velocity == 0.5).all()


def test_drum_spans_keep_only_steady_time_keeping() -> None:
    from drumtx.drums import Hit
    from drumtx.pseudo import drum_spans, pieces

    codes = ("KD", "SD", "HH", "OH", "LT", "MT", "HT", "CR", "RD")
    # 0-10 s: 2 hi-hats a second; 10-15 s: only toms (a fill, not time-keeping);
    # 15-30 s: kick and snare once a second each; 30-33 s: a partial window.
    hits = [Hit(t / 2, 2, 90) for t in range(20)]
    hits += [Hit(10 + t / 4, 4, 90) for t in range(20)]
    hits += [Hit(15 + t, c, 90) for t in range(15) for c in (0, 1)]
    hits += [Hit(30 + t / 4, 0, 90) for t in range(12)]
    spans = drum_spans(hits, codes, 33.0, window_sec=5.0, min_rate_hz=1.0)
    assert spans == [(0.0, 10.0), (15.0, 30.0)]
    assert pieces(spans, max_sec=8.0, min_sec=12.0) == [(15.0, 22.5), (22.5, 30.0)]


def test_ignored_targets_count_for_nothing_in_the_loss() -> None:
    """An IGNORE_TARGET entry adds no loss whatever the network says there, and a
    batch without any is scored as the plain mean BCE was."""
    import torch
    import torch.nn.functional as F

    from drumtx.config import load_config
    from drumtx.pseudo import IGNORE_TARGET
    from drumtx.train_step import compute_loss

    cfg = load_config(None, ["train.velocity_weight=0.0"])
    torch.manual_seed(0)
    logits = torch.randn(2, 10, 3)
    onset = (torch.rand(2, 10, 3) > 0.8).float()
    zeros, pos_weight = torch.zeros_like(onset), torch.ones(3)
    plain = compute_loss(logits, logits, onset, zeros, zeros, pos_weight, cfg)
    assert plain.item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, onset).item(), rel=1e-6
    )
    ignored = onset.clone()
    ignored[0, 4, 1] = IGNORE_TARGET
    wild = logits.clone()
    wild[0, 4, 1] = 50.0  # whatever the network says at an ignored entry
    a = compute_loss(wild, wild, ignored, zeros, zeros, pos_weight, cfg)
    wild[0, 4, 1] = -50.0
    b = compute_loss(wild, wild, ignored, zeros, zeros, pos_weight, cfg)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_unsure_peaks_become_ignored_targets_and_survive_kit_mixing() -> None:
    from drumtx.data import union_targets
    from drumtx.pseudo import IGNORE_TARGET

    a = np.array([[0.0, IGNORE_TARGET], [1.0, 0.0]], np.float32)
    b = np.array([[0.0, 1.0], [IGNORE_TARGET, 0.0]], np.float32)
    out = union_targets(a, b)
    # A hit in either wins over an ignore; an ignore wins over "no hit".
    assert out.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    c = np.array([[IGNORE_TARGET, 0.0], [0.0, 0.5]], np.float32)
    assert union_targets(c, np.zeros_like(c)).tolist() == [
        [IGNORE_TARGET, 0.0],
        [0.0, 0.5],
    ]


def test_crops_of_a_pseudo_labelled_recording_ignore_its_unsure_peaks(tmp_path) -> None:
    from drumtx.config import DataConfig
    from drumtx.data import SPEED_STEPS, BlockSampler, CropSpec
    from drumtx.processed import HITS_DTYPE, Store
    from drumtx.pseudo import IGNORE_TARGET, UNSURE_RADIUS_FRAMES

    hop, n = 240, 24_000  # 100 fps, one 1-s recording
    hits = np.zeros(1, HITS_DTYPE)
    hits[0] = (0, 2400, 0, 100, 36)  # a kick at frame 10
    unsure = np.zeros(1, HITS_DTYPE)
    unsure[0] = (0, 12000, 4, -1, -1)  # an unsure low tom at frame 50
    recordings = [{"offset": 0, "length": n}]
    store = Store(np.zeros(n, np.int16), recordings, hits, {}, None, unsure)
    spec = CropSpec(tmp_path, n, hop, 9, 24_000, seed=0)
    sampler = BlockSampler(store, spec, DataConfig(target_widen_frames=0))
    onset, _, _ = sampler._targets(0, 0, SPEED_STEPS, n)  # as recorded, a crop
    r = UNSURE_RADIUS_FRAMES
    assert (onset[50 - r : 50 + r + 1, 4] == IGNORE_TARGET).all()
    assert (onset == IGNORE_TARGET).sum() == 2 * r + 1
    assert onset[10, 0] == 1.0
