"""What a training run reports: the step meter, the progress line, TensorBoard.

The meter times optimizer steps and the waits for data between two log lines; its
scalars are the only place the loop reads GPU values (``.item()`` at log time). Rank 0
alone prints and writes TensorBoard events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from drumtx.config import Config
from drumtx.console import make_console
from drumtx.data import audio_hours
from drumtx.distributed import Dist, RunClock


def hours_per_step(cfg: Config, world_size: int) -> float:
    """Audio-hours one optimizer step trains on, over all ranks."""
    rate = cfg.audio.sample_rate
    crop = audio_hours(int(cfg.data.crop_sec * rate), rate)
    return crop * cfg.train.batch_size * cfg.train.accum_steps * world_size


class StepMeter:
    """Steps, seconds and seconds spent waiting for batches since the last log line,
    and the steps' losses and gradient norms (device tensors, read only at log time)."""

    def __init__(self, hours_per_step: float) -> None:
        self.hours_per_step = hours_per_step
        self._reset()

    def _reset(self) -> None:
        self.t_start = time.perf_counter()
        self.steps = 0
        self.wait_sec = 0.0
        self.other_sec = 0.0  # validation and checkpoints: not training time
        self.values: list[tuple[Tensor, Tensor]] = []  # each step's loss, grad norm

    def timed(self, batches: Iterator) -> Callable[[], Any]:
        """``next(batches)``, with the wait counted as data wait."""

        def next_batch() -> Any:
            t0 = time.perf_counter()
            batch = next(batches)
            self.wait_sec += time.perf_counter() - t0
            return batch

        return next_batch

    def step_done(self, loss: Tensor, grad_norm: Tensor) -> None:
        """Count a step and keep its loss and gradient norm (no device work here)."""
        self.steps += 1
        self.values.append((loss.detach(), grad_norm.detach()))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The block's time (validation, saving) is left out of the rates."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.other_sec += time.perf_counter() - t0

    def scalars(self, lr: float) -> dict[str, float]:
        """train/* scalars over the steps since the last call, starting a new window:
        the means of the steps' loss and gradient norm, each over the steps where it
        is finite (an fp16 step whose gradients overflowed still has its loss; a
        non-finite loss is BadSteps' to report), NaN where none is."""
        elapsed = max(time.perf_counter() - self.t_start - self.other_sec, 1e-9)
        means = [float("nan")] * 2
        if self.values:  # one CPU-GPU sync, at log time
            table = torch.stack([torch.stack(v).float() for v in self.values]).cpu()
            for column in range(2):
                finite = table[:, column][torch.isfinite(table[:, column])]
                if len(finite):
                    means[column] = float(finite.mean())
        out = {
            "train/loss": means[0],
            "train/lr": lr,
            "train/grad_norm": means[1],
            "train/audio_hours_per_sec": self.hours_per_step * self.steps / elapsed,
            "train/data_wait_fraction": min(1.0, self.wait_sec / elapsed),
        }
        self._reset()
        return out


def budget_text(clock: RunClock) -> str:
    """``0:03:12/1:00:00``: wall time used of train.time_limit_min."""
    used = timedelta(seconds=int(clock.elapsed_sec))
    return f"{used}/{timedelta(seconds=int(clock.limit_sec))}"


def where_text(step: int, max_steps: int, clock: RunClock) -> str:
    """``step 225/100000``; a time-limited run shows its time budget instead."""
    if clock.limit_sec > 0:
        return f"step {step}  time {budget_text(clock)}"
    return f"step {step}/{max_steps}"


def scalars_text(scalars: dict[str, float]) -> str:
    return (
        f"loss {scalars['train/loss']:.4f}  lr {scalars['train/lr']:.2e}  "
        f"{scalars['train/audio_hours_per_sec']:.3f} h/s  "
        f"wait {scalars['train/data_wait_fraction']:.0%}"
    )


class TrainProgress:
    """A rich bar on a terminal (steps or time budget); whole plain lines otherwise."""

    def __init__(self, cfg: Config, dist: Dist, start_step: int, clock: RunClock):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = make_console()
        self.enabled = dist.is_main
        self.max_steps, self.clock = cfg.train.max_steps, clock
        self.bar = None
        if self.enabled and self.console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.fields[where]}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            total = clock.limit_sec if clock.limit_sec > 0 else self.max_steps
            self.task = self.bar.add_task("train", total=total, where="", info="")
            self.bar.start()
            self._move(start_step, "")

    def _move(self, step: int, info: str) -> None:
        done = self.clock.elapsed_sec if self.clock.limit_sec > 0 else step
        where = where_text(step, self.max_steps, self.clock)
        self.bar.update(self.task, completed=done, where=where, info=info)

    def update(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self._move(step, scalars_text(scalars))
            return
        line = (
            f"{where_text(step, self.max_steps, self.clock)}  {scalars_text(scalars)}"
        )
        self.console.print(line, markup=False, highlight=False)

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def log(dist: Dist, message: str) -> None:
    """A plain line from rank 0 alone."""
    if dist.is_main:
        print(message, flush=True)


def open_writer(
    cfg: Config, log_dir: Path, run_dir: Path, dist: Dist, resumed_at: int = 0
):
    """TensorBoard writer and config.json, on rank 0 only (None elsewhere).

    A run resumed at step N (0 for a run whose earlier attempt stopped before its
    first save) drops what an earlier attempt logged after N (a resume from an older
    step-NNNNNN.pt, a crash after the last save), so its curves go on from N instead
    of doubling back.
    """
    if not dist.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    log_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cfg.to_dict(), indent=2)
    keep_earlier_config(log_dir / "config.json", text + "\n", resumed_at)
    (log_dir / "config.json").write_text(text + "\n")
    earlier = resumed_at or any(log_dir.glob("events.out.tfevents.*"))
    purge = {"purge_step": resumed_at + 1} if earlier else {}
    writer = SummaryWriter(log_dir=str(log_dir), **purge)
    writer.add_text("config", "```\n" + text + "\n```")
    writer.add_text("tags", TAG_GUIDE)
    log_hparams(writer, cfg)
    return writer


# The validation scalars TensorBoard's HParams tab sets beside each run's settings.
HPARAM_METRICS = ("val/score", "val/f1", "val/f1_mix_0dB", "val/f1_macro", "val/loss")
# Tables that say where files are or how transcribe runs, not how the model trained.
NOT_HPARAMS = ("storage", "transcribe")


def hparam_values(cfg: Config) -> dict[str, bool | int | float | str]:
    """Every training setting as ``table.key``: its value where TensorBoard takes it
    (a number, a string, a bool), else its JSON text."""
    flat: dict[str, bool | int | float | str] = {}
    for table, values in cfg.to_dict().items():
        if table in NOT_HPARAMS:
            continue
        for key, value in values.items():
            plain = isinstance(value, (bool, int, float, str))
            flat[f"{table}.{key}"] = value if plain else json.dumps(value)
    return flat


def log_hparams(writer, cfg: Config) -> None:
    """The run's settings in TensorBoard's HParams tab, each a column beside the
    validation scores the run logs (HPARAM_METRICS), so runs sort and compare there
    instead of by diffing config.json files."""
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(
        hparam_values(cfg), dict.fromkeys(HPARAM_METRICS, 0.0)
    )
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)


def keep_earlier_config(path: Path, text: str, resumed_at: int) -> Path | None:
    """Before a resume with other settings overwrites ``config.json``, keep it as
    ``config.before-step-N.json`` (N = ``resumed_at``): the settings of the attempt
    that wrote it, which trained the steps up to N unless that attempt itself was
    resumed from an older step (the first such file of a step stays). Returns the
    kept file, if any."""
    if not path.is_file() or path.read_text() == text:
        return None
    kept = path.with_name(f"config.before-step-{resumed_at:06d}.json")
    if not kept.exists():
        path.replace(kept)
    return kept


# What each logged tag means, shown in TensorBoard's Text tab beside the curves.
# tests/test_train.py checks that every scalar a run logs is described here.
TAGS = (
    ("train/loss", "the loss (class-weighted onset BCE + velocity MSE), the mean "
     "over the steps since the last log (train.log_every)"),
    ("train/lr", "learning rate of the logged step (warm-up, then cosine down to "
     "train.min_lr)"),
    ("train/grad_norm", "gradient norm before clipping (train.grad_clip), the mean "
     "over the steps since the last log"),
    ("train/audio_hours_per_sec", "hours of audio trained on per second of "
     "training since the last log (validation and saving left out)"),
    ("train/data_wait_fraction", "share of that training time spent waiting for "
     "data: high means the disk, not the model, limits the run"),
    ("val/loss", "train/loss's loss on the validation recordings, drums alone, "
     "whole and heard as transcribe hears them (no augmentation, no music): rising "
     "while train/loss falls is over-fitting"),
    ("val/f1", "validation **micro** F1 of onsets within +-50 ms, every class "
     "pooled, drums alone"),
    ("val/f1_macro", "validation macro F1 (the mean over the classes with "
     "reference hits), drums alone"),
    ("val/f1/<class>", "one class's onset F1, drums alone; not logged while the "
     "class has no hit in the reference or the output"),
    ("val/f1_mix_0dB", "val/f1 with the drums mixed into their backing at 0 dB "
     "(where the store has backing)"),
    ("val/f1_mix_0dB/<class>", "one class's onset F1 in that mix"),
    ("val/score", "the mean of val/f1 and val/f1_mix_0dB (val/f1 without "
     "backing): it picks best.pt"),
    ("val/onsets", "(image) one validation excerpt: reference hits beside the "
     "predicted ones, and the activations"),
)  # fmt: skip
TAG_GUIDE = "| tag | what it is |\n|---|---|\n" + "".join(
    f"| `{tag}` | {text} |\n" for tag, text in TAGS
)


def log_scalars(writer, scalars: dict[str, float], step: int) -> None:
    if writer is not None:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, step)


def heard(metrics: dict[str, Any], codes: Sequence[str]) -> list[str]:
    """The classes with a hit in the reference or the output: an F1 was measured."""
    rows = metrics["classes"]
    return [c for c in codes if rows[c]["n_ref"] or rows[c]["n_est"]]


def log_validation(writer, metrics: dict[str, Any], step: int, codes: Sequence[str]):
    if writer is None:
        return
    writer.add_scalar("val/f1", metrics["micro_f1"], step)
    writer.add_scalar("val/f1_macro", metrics["macro_f1"], step)
    writer.add_scalar("val/score", metrics.get("score", metrics["micro_f1"]), step)
    if "loss" in metrics:
        writer.add_scalar("val/loss", metrics["loss"], step)
    for code in heard(metrics, codes):
        writer.add_scalar(f"val/f1/{code}", metrics["classes"][code]["f1"], step)
    for name, mixed in metrics.get("mixes", {}).items():
        tag = "val/f1_mix_" + name.replace(" ", "").replace("+", "p").replace("-", "m")
        writer.add_scalar(tag, mixed["micro_f1"], step)
        for code in heard(mixed, codes):
            writer.add_scalar(f"{tag}/{code}", mixed["classes"][code]["f1"], step)
    if metrics.get("image") is not None:
        writer.add_image("val/onsets", metrics["image"], step, dataformats="HWC")
