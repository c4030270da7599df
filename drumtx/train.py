"""The hand-written training loop: AMP, accumulation, resume, TensorBoard, torchrun.

``train()`` reads top to bottom like nanoGPT's: build, maybe resume, then one loop
that evaluates and saves on eval steps, runs the micro-steps of one optimizer step, and
logs. It loops ``max_steps + 1`` times so the final step is evaluated and saved.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from drumtx import __version__
from drumtx.checkpoint import (
    load_checkpoint,
    prune_step_checkpoints,
    save_checkpoint,
    step_path,
)
from drumtx.config import MODEL_TABLES, Config, config_from_dict
from drumtx.data import audio_hours, make_loader, open_store
from drumtx.drums import get_vocab
from drumtx.errors import CheckpointError, ConfigError, DrumtxError
from drumtx.frontend import LogMel
from drumtx.inference import LoadedModel, resolve_device, score_store, spread_indices
from drumtx.model import build_model
from drumtx.storage import Roots, require_roots

CHECKPOINT_BYTES_GUESS = 64 * 2**20  # a base model with AdamW state, rounded up


@dataclass
class Dist:
    """Where this process sits in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


@dataclass
class TrainState:
    step: int = 0
    best_f1: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)


def run_train(cfg: Config, *, run_name: str | None, resume: str | None) -> int:
    """CLI entry: validate storage, pick the run directory, train. Returns an exit code."""
    dist = init_distributed()
    roots = require_roots(
        cfg,
        read=("processed_dir",),
        write=("checkpoint_dir", "log_dir"),
        create=("checkpoint_dir", "log_dir"),
        need_bytes={
            "checkpoint_dir": (cfg.train.keep_checkpoints + 3) * CHECKPOINT_BYTES_GUESS
        },
    )
    run_name = agree_on_run_name(run_name, dist)
    run_dir, log_dir = roots.checkpoint_dir / run_name, roots.log_dir / run_name
    resume_path = resolve_resume(resume, run_dir)
    # Schedulers and torchrun stop workers with SIGTERM: save like Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return train(cfg, roots, run_dir, log_dir, resume_path, dist)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def init_distributed() -> Dist:
    """Join the torchrun job if launched by torchrun (NCCL on GPUs, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    dist = Dist(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if dist.enabled:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(dist.local_rank)
        # Other ranks wait at a barrier while rank 0 validates and saves: allow for it.
        torch.distributed.init_process_group(
            backend=backend, timeout=timedelta(hours=2)
        )
    return dist


def agree_on_run_name(run_name: str | None, dist: Dist) -> str:
    """The run name, the same on every rank (rank 0's timestamp wins)."""
    name = run_name or datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if dist.enabled:
        box = [name]
        torch.distributed.broadcast_object_list(box, src=0)
        name = box[0]
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(
            f"--run {name!r} is not a usable run name", hint="e.g. --run base-1"
        )
    return name


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """``auto`` -> the run's last.pt if any; a path -> that file; None -> a fresh run."""
    last = run_dir / "last.pt"
    if resume is None:
        if last.exists():
            raise ConfigError(
                f"run {run_dir.name} already has checkpoints in {run_dir}",
                hint=f"continue it with --resume auto --run {run_dir.name}, "
                "or start another with --run NEW_NAME",
            )
        return None
    if resume == "auto":
        return last if last.exists() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(
            f"--resume {resume}: no such checkpoint",
            hint="use --resume auto, or the path of a last.pt / step-NNNNNN.pt",
        )
    if "optimizer" not in load_checkpoint(path):
        raise CheckpointError(
            f"--resume {resume}: this checkpoint holds weights only (best.pt keeps no "
            "optimizer state), so training cannot continue from it exactly",
            hint="resume from last.pt or a step-NNNNNN.pt of the same run",
        )
    return path


def lr_at(step: int, cfg: Config) -> float:
    """Linear warm-up, then cosine decay to min_lr at max_steps: a pure function of step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (
        1 + math.cos(math.pi * min(progress, 1.0))
    )


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """bf16 where supported, else fp16 (with a GradScaler); None = full precision."""
    mode = cfg.train.amp
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def train(
    cfg: Config,
    roots: Roots,
    run_dir: Path,
    log_dir: Path,
    resume_path: Path | None,
    dist: Dist,
) -> int:
    # 1. Build. On resume the model-shaping config comes from the checkpoint.
    saved = load_checkpoint(resume_path) if resume_path else None
    if saved is not None:
        cfg = with_model_tables(cfg, saved["config"])
    device = train_device(cfg, dist)
    if device.type == "cpu" and cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    dtype = amp_dtype(cfg, device)
    vocab = get_vocab(cfg.data.vocab)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, vocab.n_classes).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    frontend = LogMel.from_config(cfg).to(device)
    optimizer = make_optimizer(model, cfg, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    state = TrainState()

    # 2. Resume: model, optimizer, scaler, step, best metric and RNG state.
    if saved is not None:
        restore(saved, model, optimizer, scaler, state)
        log(dist, f"resumed from {resume_path} at step {state.step}")

    raw_model = model
    if cfg.train.compile:
        model = torch.compile(model)
    if dist.enabled:
        ids = [dist.local_rank] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # Crops are seeded by (seed, step, rank, worker): a resumed run draws fresh ones.
    loader = make_loader(
        cfg,
        roots.processed_dir / "train",
        vocab.n_classes,
        seed=cfg.train.seed + 7919 * state.step,
        rank=dist.rank,
        world_size=dist.world_size,
        pin_memory=device.type == "cuda",
    )
    val_store = open_store(cfg, roots.processed_dir / "validation")
    val_indices = spread_indices(
        len(val_store.recordings), cfg.train.val_max_recordings
    )
    writer = open_writer(cfg, log_dir, run_dir, dist)
    progress = Progress(cfg, dist, start_step=state.step)
    hours_per_step = (
        audio_hours(
            int(cfg.data.crop_sec * cfg.audio.sample_rate), cfg.audio.sample_rate
        )
        * cfg.train.batch_size
        * cfg.train.accum_steps
        * dist.world_size
    )
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    )
    pos_weight = torch.full(
        (vocab.n_classes,), cfg.train.onset_pos_weight, device=device
    )

    # 3. The loop.
    batches = iter(loader)
    t_start = time.monotonic()
    start_step = state.step
    steps_since_log = 0
    bad_steps = 0
    t_last = time.perf_counter()
    wait_sec = 0.0
    step_loss = torch.zeros((), device=device)
    try:
        while True:
            step = state.step
            lr = lr_at(step, cfg)
            last_step = step == cfg.train.max_steps or out_of_time(cfg, t_start, dist)
            is_eval = (step % cfg.train.eval_every == 0 or last_step) and step > 0
            if is_eval and dist.is_main:
                loaded = LoadedModel(
                    raw_model, frontend, cfg, vocab, {}, "training", device
                )
                raw_model.eval()
                metrics = score_store(loaded, val_store, val_indices)
                raw_model.train()
                log_validation(writer, metrics, step, vocab.codes)
                improved = metrics["micro_f1"] > state.best_f1
                state.best_f1 = max(state.best_f1, metrics["micro_f1"])
                state.history.append({"step": step, "micro_f1": metrics["micro_f1"]})
                save_all(
                    cfg, run_dir, raw_model, optimizer, scaler, state, improved, dist
                )
                progress.note(
                    f"step {step}: val micro-F1 {metrics['micro_f1']:.3f}"
                    f" (best {state.best_f1:.3f})"
                )
            if is_eval and dist.enabled:
                torch.distributed.barrier()  # other ranks wait while rank 0 validates
            if last_step:
                break

            for group in optimizer.param_groups:
                group["lr"] = lr
            for micro in range(cfg.train.accum_steps):
                t0 = time.perf_counter()
                audio, onset, velocity, mask = next(batches)
                wait_sec += time.perf_counter() - t0
                if dist.enabled and state.step == start_step and micro == 0:
                    print(
                        f"rank {dist.rank}: first batch checksum "
                        f"{float(audio.double().abs().sum()):.6f}",
                        flush=True,
                    )
                audio = audio.to(device, non_blocking=True)  # (B, N)
                onset, velocity, mask = (
                    t.to(device, non_blocking=True) for t in (onset, velocity, mask)
                )
                # DDP syncs gradients only on the last micro-step of an optimizer step.
                sync = micro == cfg.train.accum_steps - 1
                no_sync = (
                    model.no_sync()
                    if dist.enabled and not sync
                    else contextlib.nullcontext()
                )
                with no_sync:
                    feats = frontend(audio)  # (B, T, n_mels), fp32 with autocast off
                    with autocast:
                        logits, vel_pred = model(feats)  # (B, T, C) each
                    loss = compute_loss(
                        logits, vel_pred, onset, velocity, mask, pos_weight, cfg
                    )
                    scaler.scale(loss / cfg.train.accum_steps).backward()
                step_loss += loss.detach() / cfg.train.accum_steps

            scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
            grad_norm = torch.nn.utils.clip_grad_norm_(
                raw_model.parameters(), cfg.train.grad_clip or float("inf")
            )
            # One deliberate CPU-GPU sync per optimizer step: a non-finite loss or
            # gradient skips the step instead of poisoning the weights.
            finite_flag = (
                torch.isfinite(step_loss) & torch.isfinite(grad_norm)
            ).float()
            if dist.enabled:  # every rank must make the same skip-or-step decision
                torch.distributed.all_reduce(
                    finite_flag, op=torch.distributed.ReduceOp.MIN
                )
            finite = bool(finite_flag)
            if finite or scaler.is_enabled():
                scaler.step(optimizer)  # the scaler itself skips inf steps in fp16
                scaler.update()
            optimizer.zero_grad(set_to_none=True)
            bad_steps = 0 if finite else bad_steps + 1
            if bad_steps >= cfg.train.max_bad_steps:
                raise DrumtxError(
                    f"loss or gradient was not finite for {bad_steps} steps in a row "
                    f"(last at step {step})",
                    hint="lower train.lr, set train.amp='off' or 'bf16', check the data",
                )
            state.step += 1

            steps_since_log += 1
            if state.step % cfg.train.log_every == 0 or state.step == start_step + 1:
                now = time.perf_counter()
                elapsed, t_last = now - t_last, now
                n, steps_since_log = steps_since_log, 0
                scalars = {
                    "train/loss": step_loss.item() if finite else float("nan"),
                    "train/lr": lr,
                    "train/grad_norm": float(grad_norm),
                    "train/audio_hours_per_sec": hours_per_step
                    * n
                    / max(elapsed, 1e-9),
                    "train/data_wait_fraction": min(1.0, wait_sec / max(elapsed, 1e-9)),
                }
                wait_sec = 0.0
                if writer is not None:
                    for tag, value in scalars.items():
                        writer.add_scalar(tag, value, state.step)
                progress.update(state.step, scalars)
            step_loss.zero_()
    except KeyboardInterrupt:
        save_all(cfg, run_dir, raw_model, optimizer, scaler, state, False, dist)
        progress.note(f"interrupted at step {state.step}; saved {run_dir / 'last.pt'}")
        progress.close()
        return 130
    finally:
        if writer is not None:
            writer.close()
    progress.close()
    if dist.is_main:
        print(f"checkpoints: {run_dir}")
        print(f"logs:        {log_dir}")
        print(f"best validation micro-F1: {state.best_f1:.3f}")
    return 0


def out_of_time(cfg: Config, t_start: float, dist: Dist) -> bool:
    """train.time_limit_min reached; every rank agrees (rank 0's clock decides)."""
    if cfg.train.time_limit_min <= 0:
        return False
    flag = torch.tensor(
        float(time.monotonic() - t_start > 60 * cfg.train.time_limit_min),
        device=dist_device(dist) if dist.enabled else "cpu",
    )
    if dist.enabled:
        torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def dist_device(dist: Dist) -> torch.device:
    return (
        torch.device("cuda", dist.local_rank)
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def with_model_tables(cfg: Config, saved: dict[str, Any]) -> Config:
    tables = cfg.to_dict()
    for name in MODEL_TABLES:
        tables[name] = saved.get(name, tables[name])
    tables["data"] = {
        **tables["data"],
        "vocab": saved.get("data", {}).get("vocab", "roland9"),
    }
    return config_from_dict(tables)


def train_device(cfg: Config, dist: Dist) -> torch.device:
    device = resolve_device(cfg.train.device)
    if device.type == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank)
    return device


def make_optimizer(
    model: torch.nn.Module, cfg: Config, fused: bool
) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norm parameters (1-d tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.train.lr, fused=fused)


def compute_loss(
    logits: torch.Tensor,
    vel_pred: torch.Tensor,
    onset: torch.Tensor,
    velocity: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: torch.Tensor,
    cfg: Config,
) -> torch.Tensor:
    """Class-weighted onset BCE plus velocity MSE on onset frames only."""
    onset_loss = F.binary_cross_entropy_with_logits(
        logits.float(), onset, pos_weight=pos_weight
    )
    vel_err = (vel_pred.float() - velocity) ** 2 * mask
    vel_loss = vel_err.sum() / mask.sum().clamp(min=1.0)
    return onset_loss + cfg.train.velocity_weight * vel_loss


def rng_state() -> dict[str, Any]:
    """Global torch/CUDA/Python RNG states. Crops draw from their own seeded generators
    (seed, step, rank, worker), so numpy's global state plays no part."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(
    saved: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: TrainState,
) -> None:
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    state.best_f1 = float(saved["best_f1"])
    state.history = list(saved.get("history", []))
    rng = saved.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "python" in rng:
        random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        # One state per GPU saved; a resume may see fewer GPUs than the run that saved.
        for index, cuda_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def save_all(
    cfg: Config,
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: TrainState,
    improved: bool,
    dist: Dist,
) -> None:
    """step-NNNNNN.pt, last.pt, and best.pt on improvement; rank 0 alone writes."""
    if not dist.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": cfg.to_dict(),
        "vocab": cfg.data.vocab,
        "drumtx_version": __version__,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": state.step,
        "best_f1": state.best_f1,
        "history": state.history,
        "rng": rng_state(),
    }
    # last.pt first: whatever else a kill interrupts, resume finds the newest state.
    save_checkpoint(run_dir / "last.pt", payload)
    keep = make_room(run_dir, cfg.train.keep_checkpoints)
    if keep > 0:
        save_checkpoint(step_path(run_dir, state.step), payload)
        prune_step_checkpoints(run_dir, keep)
    if improved:
        # best.pt carries no optimizer state: it is the model users transcribe with.
        best = {k: v for k, v in payload.items() if k not in ("optimizer", "scaler")}
        save_checkpoint(run_dir / "best.pt", best)


def make_room(run_dir: Path, keep: int) -> int:
    """How many step checkpoints to keep; fewer, and old ones pruned, when the disk fills."""
    last = run_dir / "last.pt"
    size = last.stat().st_size if last.exists() else CHECKPOINT_BYTES_GUESS
    free = shutil.disk_usage(run_dir).free
    if free > (keep + 3) * size:
        return keep
    reduced = max(0, min(keep, int(free // size) - 3))
    prune_step_checkpoints(run_dir, reduced)
    print(
        f"warning: {free / 2**30:.1f} GiB free under {run_dir}; keeping {reduced} "
        f"step checkpoints instead of {keep}",
        file=sys.stderr,
    )
    return reduced


def open_writer(cfg: Config, log_dir: Path, run_dir: Path, dist: Dist):
    """TensorBoard writer and config.json, on rank 0 only."""
    if not dist.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    log_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    writer = SummaryWriter(log_dir=str(log_dir))
    writer.add_text("config", "```\n" + json.dumps(cfg.to_dict(), indent=2) + "\n```")
    return writer


def log_validation(writer, metrics: dict[str, Any], step: int, codes) -> None:
    if writer is None:
        return
    writer.add_scalar("val/f1", metrics["micro_f1"], step)
    writer.add_scalar("val/f1_macro", metrics["macro_f1"], step)
    for code in codes:
        writer.add_scalar(f"val/f1/{code}", metrics["classes"][code]["f1"], step)
    if metrics.get("image") is not None:
        writer.add_image("val/onsets", metrics["image"], step, dataformats="HWC")


def log(dist: Dist, message: str) -> None:
    if dist.is_main:
        print(message, flush=True)


class Progress:
    """A rich progress bar on a terminal; plain log lines otherwise (rank 0 only)."""

    def __init__(self, cfg: Config, dist: Dist, start_step: int):
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.enabled = dist.is_main
        self.console = Console()
        self.max_steps = cfg.train.max_steps
        self.bar = None
        if self.enabled and self.console.is_terminal:
            self.bar = RichProgress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("train", total=self.max_steps, info="")
            self.bar.update(self.task, completed=start_step)
            self.bar.start()

    def update(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        info = (
            f"loss {scalars['train/loss']:.4f}  lr {scalars['train/lr']:.2e}  "
            f"{scalars['train/audio_hours_per_sec']:.3f} h/s  "
            f"wait {scalars['train/data_wait_fraction']:.0%}"
        )
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        else:
            print(f"step {step}/{self.max_steps}  {info}", flush=True)

    def note(self, message: str) -> None:
        if self.enabled:
            (self.bar.console.print if self.bar else print)(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
