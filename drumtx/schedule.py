"""The learning-rate schedule, and what a resumed run does with it.

A run's schedule (peak lr, floor, warm-up, the step where the cosine reaches its floor)
and AdamW's weight decay are fixed when the run starts and saved in every checkpoint.
``train.max_steps`` is where a run stops; the cosine's horizon is the max_steps the
run started with. A resumed run, by default (``train.resume_schedule = "keep"``):

- keeps its schedule: the learning rate never jumps back up the cosine. A larger
  max_steps trains the extra steps at min_lr, a smaller one stops above it; one line
  says which;
- refuses a changed lr, min_lr, warmup_steps or weight_decay (a ConfigError naming the
  saved values), rather than ignore it or jump.

``train.resume_schedule = "new"`` applies the config's values instead: a new cosine up
to its max_steps, and its weight decay, each change printed in one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from drumtx.config import Config, TrainConfig
from drumtx.errors import ConfigError

SCHEDULE_KEYS = ("lr", "min_lr", "warmup_steps", "weight_decay")
# Settings a resume takes from the current config; a change is printed, not refused.
APPLIED_ON_RESUME = (
    "batch_size",
    "accum_steps",
    "grad_clip",
    "amp",
    "onset_pos_weight",
    "soft_onset_weight",
    "velocity_weight",
)


@dataclass(frozen=True)
class Schedule:
    lr: float  # peak, after warm-up
    min_lr: float  # the cosine's floor
    warmup_steps: int
    horizon_steps: int  # the cosine reaches min_lr here, and stays there
    weight_decay: float  # AdamW's, on weights (not biases or norms)

    @classmethod
    def from_config(cls, cfg: Config) -> Schedule:
        t = cfg.train
        return cls(t.lr, t.min_lr, t.warmup_steps, t.max_steps, t.weight_decay)

    @classmethod
    def from_checkpoint(cls, saved: Mapping[str, Any]) -> Schedule:
        """The saved schedule; a checkpoint from before it was saved gives its config's
        train table and the weight decay its optimizer really used."""
        if "schedule" in saved:
            return cls(**saved["schedule"])
        t = {**asdict(TrainConfig()), **saved.get("config", {}).get("train", {})}
        groups = saved.get("optimizer", {}).get("param_groups", [])
        decay = groups[0]["weight_decay"] if groups else t["weight_decay"]
        return cls(t["lr"], t["min_lr"], t["warmup_steps"], t["max_steps"], decay)

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to min_lr at horizon_steps; pure."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.horizon_steps - self.warmup_steps)
        progress = min((step - self.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr + (self.lr - self.min_lr) * cosine

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resumed_schedule(
    cfg: Config, saved: Mapping[str, Any]
) -> tuple[Schedule, list[str]]:
    """The schedule a resumed run follows, and the lines to print about it.

    Raises ConfigError when the config changed the schedule or weight decay and
    train.resume_schedule is "keep".
    """
    old, new = Schedule.from_checkpoint(saved), Schedule.from_config(cfg)
    step = int(saved["step"])
    changed = [k for k in SCHEDULE_KEYS if getattr(old, k) != getattr(new, k)]
    notes = _applied_changes(cfg, saved)
    if cfg.train.resume_schedule == "new":
        notes += [
            f"resume: train.{k} {getattr(old, k)!r} -> {getattr(new, k)!r} "
            "(train.resume_schedule='new')"
            for k in changed
        ]
        if old.lr_at(step) != new.lr_at(step):
            notes.append(
                f"resume: new schedule up to step {new.horizon_steps}: the learning "
                f"rate at step {step} goes {old.lr_at(step):.3g} -> "
                f"{new.lr_at(step):.3g}"
            )
        return new, notes
    if changed:
        raise _changed_error(old, new, changed)
    if cfg.train.max_steps != old.horizon_steps:
        notes.append(_horizon_note(old, cfg.train.max_steps))
    return old, notes


def _horizon_note(schedule: Schedule, max_steps: int) -> str:
    horizon = schedule.horizon_steps
    if max_steps > horizon:
        where = (
            f"steps {horizon}-{max_steps} run at min_lr {schedule.min_lr:g}; "
            f"train.resume_schedule='new' would restart the cosine up to {max_steps}"
        )
    else:
        where = f"the run stops at lr {schedule.lr_at(max_steps):.3g}, above min_lr"
    return (
        f"resume: train.max_steps is {max_steps}; the learning-rate schedule keeps "
        f"its horizon at step {horizon}: {where}"
    )


def _changed_error(old: Schedule, new: Schedule, changed: list[str]) -> ConfigError:
    diffs = ", ".join(
        f"train.{k} {getattr(old, k)!r} -> {getattr(new, k)!r}" for k in changed
    )
    saved = " ".join(f"--set train.{k}={getattr(old, k)!r}" for k in changed)
    return ConfigError(
        f"--resume: the config changes what the run was trained with ({diffs})",
        hint=f"resume with the run's values ({saved}), or apply the new ones with "
        "--set train.resume_schedule='new' (the learning rate then follows the new "
        "schedule from the resumed step on)",
    )


# Tables whose changes a resume applies (and prints): what the crops, targets,
# augmentation and validation decoding are. Not [backing]: preprocess made the
# tracks, which are in the store.
APPLIED_TABLES = ("data", "decode")
# Keys a resume handles elsewhere or does not read: the schedule (refused or
# restarted), its horizon (max_steps: a line of its own), the network's vocabulary
# (train.network_kept), the initial weights (a resumed run has its own) and what
# only preprocess reads.
NOT_APPLIED = {
    "train": (*SCHEDULE_KEYS, "max_steps", "resume_schedule", "init_from"),
    "data": ("vocab", "max_recordings"),
}


def _applied_changes(cfg: Config, saved: Mapping[str, Any]) -> list[str]:
    """A line for each setting the resumed run takes from the current config that
    differs from what the run was trained with so far: the loss, batch, data,
    augmentation and decoding settings change the curves from the resumed step on,
    so a reader of the logs must be told."""
    before, now = saved.get("config", {}), cfg.to_dict()
    keys = [("train", k) for k in APPLIED_ON_RESUME]
    keys += [("train", k) for k in now["train"] if k not in APPLIED_ON_RESUME]
    keys += [(t, k) for t in APPLIED_TABLES for k in now[t]]
    keys = [(t, k) for t, k in keys if k not in NOT_APPLIED.get(t, ())]
    return [
        f"resume: {t}.{k} {before[t][k]!r} -> {now[t][k]!r} (applied)"
        for t, k in keys
        if k in before.get(t, {}) and before[t][k] != now[t][k]
    ]
