"""The learning-rate schedule and the resume policy (drumtx/schedule.py), without
training: a checkpoint is a dict here."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline import tiny_config

from drumtx.errors import ConfigError
from drumtx.schedule import Schedule, resumed_schedule

ROOT = Path("/nonexistent")


def _saved(*overrides: str, step: int = 100) -> dict:
    """What a checkpoint of a run started with ``overrides`` holds at ``step``."""
    cfg = tiny_config(ROOT, *overrides)
    return {
        "config": cfg.to_dict(),
        "step": step,
        "schedule": Schedule.from_config(cfg).to_dict(),
    }


BASE = ("train.max_steps=100", "train.warmup_steps=10", "train.lr=1e-3")


def test_the_cosine_ends_at_its_horizon_and_stays_at_min_lr() -> None:
    schedule = Schedule.from_config(tiny_config(ROOT, *BASE))
    assert schedule.lr_at(9) == pytest.approx(1e-3)
    assert schedule.lr_at(100) == pytest.approx(schedule.min_lr)
    assert schedule.lr_at(250) == pytest.approx(schedule.min_lr)


def test_a_longer_resume_keeps_the_horizon_and_says_so() -> None:
    saved = _saved(*BASE, step=100)
    longer = tiny_config(ROOT, *BASE, "train.max_steps=200")
    schedule, notes = resumed_schedule(longer, saved)
    assert schedule.horizon_steps == 100
    assert schedule.lr_at(150) == pytest.approx(schedule.min_lr)  # no jump back up
    assert len(notes) == 1 and "keeps its horizon at step 100" in notes[0]
    assert "steps 100-200 run at min_lr" in notes[0]
    shorter = tiny_config(ROOT, *BASE, "train.max_steps=60")
    _, notes = resumed_schedule(shorter, _saved(*BASE, step=50))
    assert "stops at lr" in notes[0]
    same = tiny_config(ROOT, *BASE)
    assert resumed_schedule(same, saved) == (Schedule.from_config(same), [])


def test_a_changed_schedule_is_refused_with_the_saved_values() -> None:
    changed = tiny_config(ROOT, *BASE, "train.lr=5e-4", "train.weight_decay=0.05")
    with pytest.raises(ConfigError, match=r"train.lr 0.001 -> 0.0005") as info:
        resumed_schedule(changed, _saved(*BASE))
    assert "train.weight_decay 0.01 -> 0.05" in info.value.message
    hint = info.value.hint or ""
    assert "--set train.lr=0.001" in hint and "--set train.weight_decay=0.01" in hint
    assert "train.resume_schedule='new'" in hint


def test_resume_schedule_new_applies_the_config_and_prints_each_change() -> None:
    new = tiny_config(
        ROOT, *BASE, "train.max_steps=200", "train.lr=5e-4",
        "train.resume_schedule='new'",
    )  # fmt: skip
    schedule, notes = resumed_schedule(new, _saved(*BASE, step=100))
    assert schedule == Schedule.from_config(new)
    assert any("train.lr 0.001 -> 0.0005" in n for n in notes)
    jump = [n for n in notes if "learning rate at step 100 goes" in n]
    before = Schedule(**_saved(*BASE)["schedule"]).lr_at(100)
    assert jump and schedule.lr_at(100) > 10 * before


def test_other_changed_train_settings_are_applied_and_printed() -> None:
    bigger = tiny_config(ROOT, *BASE, "train.batch_size=16")
    _, notes = resumed_schedule(bigger, _saved(*BASE))
    assert notes == ["resume: train.batch_size 8 -> 16 (applied)"]


def test_changed_data_and_backing_settings_are_printed_as_applied() -> None:
    """The targets, crops and backing a resumed run trains on come from the current
    config: each change moves the curves from that step on, so each is said."""
    changed = tiny_config(
        ROOT, *BASE, "data.target_widen_frames=2", "decode.min_gap_sec=0.05",
        "train.log_every=7", "data.vocab='basic3'", "backing.seed=9",
        "data.max_recordings=5", "train.init_from='/x/other.pt'",
    )  # fmt: skip
    _, notes = resumed_schedule(changed, _saved(*BASE))
    widen = _saved(*BASE)["config"]["data"]["target_widen_frames"]
    assert f"resume: data.target_widen_frames {widen!r} -> 2 (applied)" in notes
    assert any(n.startswith("resume: decode.min_gap_sec ") for n in notes)
    assert any(n.startswith("resume: train.log_every ") for n in notes)
    # not read by a resumed run: the network's vocabulary (train.network_kept says
    # so), the backing tracks and recordings preprocess made, the initial weights
    for key in ("data.vocab", "backing.seed", "data.max_recordings", "init_from"):
        assert not any(key in n for n in notes), key
    assert len(notes) == 3


def test_a_checkpoint_from_before_the_schedule_was_saved() -> None:
    """Its config's train table gives the schedule; the weight decay is the one its
    optimizer really used (an older resume ignored a changed config)."""
    saved = _saved(*BASE)
    del saved["schedule"]
    saved["optimizer"] = {
        "param_groups": [{"weight_decay": 0.02}, {"weight_decay": 0.0}]
    }
    old = Schedule.from_checkpoint(saved)
    assert (old.lr, old.warmup_steps, old.horizon_steps) == (1e-3, 10, 100)
    assert old.weight_decay == 0.02
