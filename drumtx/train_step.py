"""One optimizer step, as training, ``tools/bench_train.py`` and ``tools/gpu_check.py``
all run it: micro-steps with gradient accumulation, autocast, the fp16 GradScaler,
clipping, and the decision whether the step was bad.

Order within a step (nanoGPT's): ``loss / accum_steps`` before backward; DDP syncs
gradients only on the last micro-step; ``scaler.unscale_`` then clip, so the clip sees
true gradients; ``scaler.step`` and ``scaler.update``; ``zero_grad(set_to_none=True)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drumtx.amp import amp_dtype, autocast, make_scaler
from drumtx.config import Config
from drumtx.data import hit_frames, make_targets
from drumtx.distributed import Dist
from drumtx.errors import DrumtxError
from drumtx.frontend import LogMel
from drumtx.model import build_model
from drumtx.pseudo import IGNORE_TARGET

# audio (B, N); onset, velocity and velocity mask (B, T, C)
Batch = tuple[Tensor, Tensor, Tensor, Tensor]
# Below this loss scale an fp16 overflow is no longer the scale's fault: a skipped step
# with gradients still non-finite at scale < 1 counts as bad.
MIN_HEALTHY_SCALE = 1.0


@dataclass
class TrainParts:
    """Everything an optimizer step touches."""

    cfg: Config
    device: torch.device
    model: nn.Module  # the plain network: state_dicts, clipping, validation
    frontend: LogMel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None  # autocast dtype; None = fp32
    pos_weight: Tensor  # (C,)
    net: nn.Module  # what forward runs: model, maybe compiled and DDP-wrapped
    dist: Dist = field(default_factory=Dist)
    updating: bool = False  # inside apply_gradients: weights may be half-updated


@dataclass
class StepResult:
    loss: Tensor  # mean over the micro-steps, detached; read it only at log time
    grad_norm: Tensor  # before clipping
    bad: bool  # a non-finite loss, or gradients no loss scale explains
    applied: bool  # whether the weights moved


def build_parts(cfg: Config, device: torch.device, n_classes: int) -> TrainParts:
    """A freshly initialised (seeded) model, its frontend, AdamW and GradScaler."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, n_classes).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = amp_dtype(cfg.train.amp, device)
    return TrainParts(
        cfg=cfg,
        device=device,
        model=model,
        frontend=LogMel.from_config(cfg).to(device),
        optimizer=make_optimizer(model, cfg, fused=device.type == "cuda"),
        scaler=make_scaler(device, dtype),
        dtype=dtype,
        pos_weight=torch.full((n_classes,), cfg.train.onset_pos_weight, device=device),
        net=model,
    )


def wrap_model(parts: TrainParts, dist: Dist) -> None:
    """torch.compile and DDP around the model, once its weights are in place."""
    net = parts.model.compiled() if parts.cfg.train.compile else parts.model
    if dist.enabled:
        ids = [dist.local_rank] if parts.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    parts.net, parts.dist = net, dist


def make_optimizer(model: nn.Module, cfg: Config, fused: bool) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norm parameters (1-d tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [  # DECAY_GROUP first
        {"params": decay, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.train.lr, fused=fused)


DECAY_GROUP = 0  # make_optimizer's parameter group that has weight decay


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """The decay group's weight decay (a restored optimizer keeps the saved one)."""
    optimizer.param_groups[DECAY_GROUP]["weight_decay"] = weight_decay


def compute_loss(
    logits: Tensor,
    vel_pred: Tensor,
    onset: Tensor,
    velocity: Tensor,
    mask: Tensor,
    pos_weight: Tensor,
    cfg: Config,
) -> Tensor:
    """Class-weighted onset BCE plus velocity MSE on onset frames only. Onset targets
    of IGNORE_TARGET (a teacher's unsure peak, drumtx.pseudo) count for nothing; the
    BCE is the mean over the frames that count. With ``train.soft_onset_weight`` w, an
    onset frame's BCE is weighted by 1 + w (1 - velocity): soft hits count for more."""
    counts = (onset != IGNORE_TARGET).float()  # (B, T, C)
    soft = cfg.train.soft_onset_weight
    weights = counts if soft == 0 else counts * (1.0 + soft * (1.0 - velocity) * mask)
    onset_bce = F.binary_cross_entropy_with_logits(
        logits.float(), onset.clamp(min=0.0), pos_weight=pos_weight, reduction="none"
    )
    onset_loss = (onset_bce * weights).sum() / counts.sum().clamp(min=1.0)
    vel_err = (vel_pred.float() - velocity) ** 2 * mask
    vel_loss = vel_err.sum() / mask.sum().clamp(min=1.0)
    return onset_loss + cfg.train.velocity_weight * vel_loss


PROB_EPS = 1e-6  # probabilities back to logits: within float32's reach of 0 and 1


def recording_loss(
    parts: TrainParts, hits: np.ndarray, onset: np.ndarray, velocity: np.ndarray
) -> tuple[float, int]:
    """compute_loss of one whole recording, as validation hears it: its activations
    as inference returns them (onset probabilities and velocities, (T, C) each)
    against the targets a training crop makes of its ``hits`` (``recording_hits``).
    Returns (loss, frames), for a frame-weighted mean over recordings."""
    cfg = parts.cfg
    n_t, n_classes = onset.shape
    targets = make_targets(
        hit_frames(hits["sample"], cfg.hop_length, n_t),
        hits["class"].astype(np.int64),
        hits["velocity"].astype(np.float32) / 127.0,
        n_t,
        n_classes,
        cfg.data.target_widen_frames,
    )
    logits = torch.logit(torch.from_numpy(onset).double(), eps=PROB_EPS)
    onset_t, velocity_t, mask = (torch.from_numpy(t)[None] for t in targets)
    loss = compute_loss(
        logits[None],
        torch.from_numpy(velocity)[None],
        onset_t,
        velocity_t,
        mask,
        parts.pos_weight.cpu(),
        cfg,
    )
    return float(loss), n_t


def accumulate_gradients(
    parts: TrainParts, next_batch: Callable[[], Batch], accum_steps: int
) -> Tensor:
    """Forward and backward ``accum_steps`` micro-batches; returns their mean loss."""
    total = torch.zeros((), device=parts.device)
    for micro in range(accum_steps):
        audio, onset, velocity, mask = (
            t.to(parts.device, non_blocking=True) for t in next_batch()
        )
        with _sync_on_last(parts, micro == accum_steps - 1):
            feats = parts.frontend(audio)  # (B, T, n_mels), fp32 with autocast off
            with autocast(parts.device, parts.dtype):
                logits, vel_pred = parts.net(feats)  # (B, T, C) each
            loss = compute_loss(
                logits, vel_pred, onset, velocity, mask, parts.pos_weight, parts.cfg
            )
            parts.scaler.scale(loss / accum_steps).backward()
        total += loss.detach() / accum_steps
    return total


def _sync_on_last(parts: TrainParts, last: bool) -> contextlib.AbstractContextManager:
    """DDP all-reduces gradients only on the last micro-step of an optimizer step."""
    if parts.dist.enabled and not last:
        return parts.net.no_sync()
    return contextlib.nullcontext()


def apply_gradients(parts: TrainParts, loss: Tensor) -> StepResult:
    """Unscale, clip, step (if loss and gradients are finite), update the scaler."""
    parts.updating = True
    parts.scaler.unscale_(parts.optimizer)  # clip true gradients, not scaled ones
    clip = parts.cfg.train.grad_clip or float("inf")
    grad_norm = nn.utils.clip_grad_norm_(parts.model.parameters(), clip)
    loss_ok, grads_ok = _agree_finite(parts.dist, loss, grad_norm)
    # fp16: gradients that overflow are the GradScaler's business: the step is skipped
    # and the scale lowered, by design. Only at a tiny scale is the gradient itself bad.
    overflow = (
        parts.scaler.is_enabled()
        and not grads_ok
        and parts.scaler.get_scale() >= MIN_HEALTHY_SCALE
    )
    applied = loss_ok and grads_ok
    if applied:
        parts.scaler.step(parts.optimizer)
    parts.scaler.update()  # lowers the scale after an overflow; no-op unless fp16
    parts.optimizer.zero_grad(set_to_none=True)
    parts.updating = False
    bad = not loss_ok or (not grads_ok and not overflow)
    return StepResult(loss, grad_norm, bad, applied)


def _agree_finite(dist: Dist, loss: Tensor, grad_norm: Tensor) -> tuple[bool, bool]:
    """(loss finite, gradients finite) on every rank: all make the same decision.

    One deliberate CPU-GPU sync per optimizer step.
    """
    flags = torch.stack([torch.isfinite(loss), torch.isfinite(grad_norm)]).float()
    if dist.enabled:
        flags = flags.to(dist.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
    loss_ok, grads_ok = (value > 0 for value in flags.tolist())
    return loss_ok, grads_ok


def optimizer_step(
    parts: TrainParts, next_batch: Callable[[], Batch], lr: float
) -> StepResult:
    """One whole optimizer step at learning rate ``lr``."""
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    loss = accumulate_gradients(parts, next_batch, parts.cfg.train.accum_steps)
    return apply_gradients(parts, loss)


class BadSteps:
    """Counts bad steps in a row; too many stop the run with a hint."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def check(self, result: StepResult, step: int) -> None:
        self.in_a_row = self.in_a_row + 1 if result.bad else 0
        if self.in_a_row >= self.limit:
            raise DrumtxError(
                f"loss or gradient was not finite for {self.in_a_row} steps in a row "
                f"(last at step {step})",
                hint="lower train.lr, set train.amp='off' or 'bf16', check the data",
            )
