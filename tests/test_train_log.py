"""drumtx.train_log.StepMeter: what train/* scalars say about the steps between two
log lines."""

from __future__ import annotations

import time

import pytest
import torch

from drumtx.train_log import StepMeter


def test_loss_and_grad_norm_are_the_windows_means_not_its_last_step() -> None:
    meter = StepMeter(hours_per_step=0.01)
    for loss, norm in ((0.3, 2.0), (0.1, 1.0), (0.2, 3.0)):
        meter.step_done(torch.tensor(loss), torch.tensor(norm))
    scalars = meter.scalars(lr=1e-3)
    assert scalars["train/loss"] == pytest.approx(0.2)
    assert scalars["train/grad_norm"] == pytest.approx(2.0)
    assert scalars["train/lr"] == 1e-3
    # a new window starts: the next one holds only its own steps
    meter.step_done(torch.tensor(0.5), torch.tensor(4.0))
    assert meter.scalars(lr=1e-3)["train/loss"] == pytest.approx(0.5)


def test_a_skipped_non_finite_step_counts_as_a_step_but_not_in_the_means() -> None:
    meter = StepMeter(hours_per_step=0.01)
    meter.step_done(torch.tensor(0.4), torch.tensor(1.0))
    meter.step_done(torch.tensor(float("inf")), torch.tensor(float("nan")))
    scalars = meter.scalars(lr=1e-3)
    assert scalars["train/loss"] == pytest.approx(0.4)
    assert scalars["train/grad_norm"] == pytest.approx(1.0)
    # fp16 gradients that overflowed: the step is skipped, its loss is still a loss
    meter.step_done(torch.tensor(0.3), torch.tensor(float("inf")))
    scalars = meter.scalars(lr=1e-3)
    assert scalars["train/loss"] == pytest.approx(0.3)
    assert scalars["train/grad_norm"] != scalars["train/grad_norm"]  # NaN
    meter.step_done(torch.tensor(float("nan")), torch.tensor(1.0))
    only_bad = meter.scalars(lr=1e-3)
    assert only_bad["train/loss"] != only_bad["train/loss"]  # NaN: nothing to average


def test_validation_time_is_left_out_of_the_rates() -> None:
    """A window holding a validation run would show a false dip in throughput."""
    meter = StepMeter(hours_per_step=1.0)
    time.sleep(0.05)  # a step's work
    meter.step_done(torch.tensor(0.1), torch.tensor(1.0))
    with meter.paused():  # as the loop runs a validation
        time.sleep(0.5)
    rate = meter.scalars(lr=1e-3)["train/audio_hours_per_sec"]
    # one hour of audio in about 0.05 s of training: 20 h/s; with the validation's
    # 0.5 s left in it would be under 2 h/s
    assert 5.0 < rate < 1 / 0.045
