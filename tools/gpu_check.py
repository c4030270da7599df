"""One script for a lent H100/H200: does training work there, and how fast is it?

    PYTHONUNBUFFERED=1 python tools/gpu_check.py            # < 5 min on an H100
    python tools/gpu_check.py --smoke --device cpu           # tiny sizes, for the tests

Three checks, each recorded even when another fails (exit 1 if any failed):

a. fixed batch: the base preset trains --fixed-steps steps on ONE synthetic batch
   (tone bursts with their onset targets) in bf16 and in fp16 with a GradScaler;
   every loss must be finite and the last ones below the first.
b. frontend: LogMel on the device against LogMel on the CPU and the float64 numpy
   reference (drumtx.frontend.log_mel_numpy); relative L2 error and the largest
   log-mel difference over the bands well above the log floor.
c. throughput: audio-hours/s of whole training steps (frontend, forward, loss, backward,
   clip, AdamW) at batch 128 x 10 s, 24 kHz, under train.py's AMP choice: eager and
   torch.compile'd, each with and without channels_last; then the frontend alone.
   Printed beside the references measured earlier on one H100.

Writes $OUT/gpu_check.json when OUT is set (or --json PATH). --budget-sec skips the
throughput variants that would start past it, so a slow compile cannot overrun a lease.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from drumtx.config import Config
from drumtx.data import audio_hours
from drumtx.drums import get_vocab
from drumtx.frontend import LogMel, log_mel_numpy, n_frames
from drumtx.inference import resolve_device
from drumtx.model import build_model, count_parameters
from drumtx.train import amp_dtype, compute_loss, make_optimizer

# audio-hours/s measured on one H100 by earlier runs (DESIGN.md §5 and the model notes).
REFERENCES = {
    "plain CRNN 2.8M, batch 64": {"eager": 0.79, "compiled": 1.45},
    "stem-halved 2.5M, batch 128": {
        "eager": 1.04,
        "compiled": 1.96,
        "compiled+channels_last": 2.42,
    },
}
LOUD_LOG = np.log(1e-3)  # max |diff| only over bins this far above the log floor
FRONTEND_REL_TOL = 1e-3
FRONTEND_ABS_TOL = 0.05  # nats of log power


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny preset and sizes, 2 steps, no compile (CPU tests)",
    )
    parser.add_argument("--preset", help="default: base (tiny if --smoke)")
    parser.add_argument("--fixed-steps", type=int, default=None, help="default 30")
    parser.add_argument("--fixed-batch", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None, help="default 128")
    parser.add_argument("--crop-sec", type=float, default=None, help="default 10")
    parser.add_argument("--timed-steps", type=int, default=None, help="default 10")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--budget-sec",
        type=float,
        default=240.0,
        help="start no throughput variant after this",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default: $OUT/gpu_check.json when OUT is set",
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "preset": "tiny" if smoke else "base",
        "fixed_steps": 2 if smoke else 30,
        "batch_size": 2 if smoke else 128,
        "crop_sec": 1.0 if smoke else 10.0,
        "timed_steps": 2 if smoke else 10,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if smoke:
        args.fixed_batch = min(args.fixed_batch, 2)
        args.no_compile = True  # inductor's C++ build alone takes minutes on 2 cores
    if args.json is None and os.environ.get("OUT"):
        args.json = Path(os.environ["OUT"]) / "gpu_check.json"
    return args


def make_config(args: argparse.Namespace, amp: str = "auto") -> Config:
    cfg = Config()
    return replace(
        cfg,
        model=replace(cfg.model, preset=args.preset, dropout=0.0),
        data=replace(cfg.data, crop_sec=args.crop_sec),
        train=replace(cfg.train, amp=amp, batch_size=args.batch_size),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # wait for the queued kernels before timing


def click_batch(
    cfg: Config, batch: int, n_samples: int, n_classes: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Decaying noise bursts at random frames of random classes, and their targets."""
    gen = torch.Generator().manual_seed(0)
    hop, n_t = cfg.hop_length, n_frames(n_samples, cfg.hop_length)
    audio = 0.01 * torch.randn(batch, n_samples, generator=gen)  # (B, N)
    onset = torch.zeros(batch, n_t, n_classes)  # (B, T, C)
    velocity = torch.zeros_like(onset)
    burst_len = hop * 4
    decay = torch.exp(-torch.arange(burst_len) / (hop / 2))
    for b in range(batch):
        frames = torch.randperm(n_t - 5, generator=gen)[: max(1, n_t // 25)]
        for frame in frames.tolist():
            cls = int(torch.randint(n_classes, (1,), generator=gen))
            vel = float(torch.rand((), generator=gen)) * 0.8 + 0.2
            # Each class gets its own pitch, so the classes can be told apart.
            tone = torch.sin(torch.arange(burst_len) * (0.05 + 0.12 * cls))
            audio[b, frame * hop : frame * hop + burst_len] += vel * 0.5 * tone * decay
            onset[b, frame, cls], velocity[b, frame, cls] = 1.0, vel
    mask = onset.clone()
    return tuple(t.to(device) for t in (audio, onset, velocity, mask))


class Trainer:
    """train.py's step on one device: frontend fp32, model under AMP, scaled loss."""

    def __init__(
        self,
        cfg: Config,
        device: torch.device,
        *,
        compile_model: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.cfg, self.device = cfg, device
        self.n_classes = get_vocab(cfg.data.vocab).n_classes
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, self.n_classes).to(device).train()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.frontend = LogMel.from_config(cfg).to(device)
        self.optimizer = make_optimizer(self.model, cfg, fused=device.type == "cuda")
        self.dtype = amp_dtype(cfg, device)
        if device.type == "cpu" and cfg.train.amp in ("bf16", "fp16"):
            # amp_dtype keeps CPU in fp32; this check wants the mode it names anyway.
            self.dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.dtype == torch.float16
        )
        self.pos_weight = torch.full(
            (self.n_classes,), cfg.train.onset_pos_weight, device=device
        )
        self.net = torch.compile(self.model) if compile_model else self.model

    def step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        audio, onset, velocity, mask = batch
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype
            else contextlib.nullcontext()
        )
        feats = self.frontend(audio)  # (B, T, n_mels), fp32 with autocast off
        with autocast:
            logits, vel_pred = self.net(feats)  # (B, T, C) each
        loss = compute_loss(
            logits, vel_pred, onset, velocity, mask, self.pos_weight, self.cfg
        )
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip true gradients
        params = self.model.parameters()
        torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip or float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def check_fixed_batch(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(a) bf16 and fp16+GradScaler: finite losses that fall on one repeated batch."""
    out: dict[str, Any] = {}
    for amp in ("bf16", "fp16"):
        cfg = make_config(args, amp)
        trainer = Trainer(cfg, device)
        n_samples = int(round(min(args.crop_sec, 4.0) * cfg.audio.sample_rate))
        batch = click_batch(cfg, args.fixed_batch, n_samples, trainer.n_classes, device)
        losses = [float(trainer.step(batch)) for _ in range(args.fixed_steps)]
        finite = all(np.isfinite(losses))
        tail = statistics.mean(losses[-5:])
        # Two smoke steps prove the plumbing, not learning; 10+ must learn.
        falling = tail < losses[0] if args.fixed_steps >= 10 else None
        out[amp] = {
            "losses": losses,
            "finite": finite,
            "falling": falling,
            "first": losses[0],
            "last5_mean": tail,
            "ok": finite and falling is not False,
            "scale": (
                trainer.scaler.get_scale() if trainer.scaler.is_enabled() else None
            ),
        }
    return out


def check_frontend(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """(b) the device's LogMel against the CPU's and float64 numpy's."""
    cfg = make_config(args)
    n_samples = int(round(args.crop_sec * cfg.audio.sample_rate))
    audio = click_batch(cfg, 2, n_samples, 9, torch.device("cpu"))[0]  # (2, N)
    cpu = LogMel.from_config(cfg)(audio).numpy()
    dev = LogMel.from_config(cfg).to(device)(audio.to(device)).cpu().numpy()
    kw = dict(
        sample_rate=cfg.audio.sample_rate,
        n_fft=cfg.frontend.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.frontend.n_mels,
        f_min_hz=cfg.frontend.f_min_hz,
        f_max_hz=cfg.frontend.f_max_hz,
    )
    ref = np.stack([log_mel_numpy(a, **kw) for a in audio.numpy()])  # (2, T, n_mels)
    out = {}
    for name, got, want in (
        ("device_vs_cpu", dev, cpu),
        ("device_vs_numpy", dev, ref),
        ("cpu_vs_numpy", cpu, ref),
    ):
        loud = want > LOUD_LOG
        rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        max_abs = float(np.abs(got - want)[loud].max()) if loud.any() else 0.0
        out[name] = {
            "rel_l2": rel,
            "max_abs_loud": max_abs,
            "ok": rel < FRONTEND_REL_TOL and max_abs < FRONTEND_ABS_TOL,
        }
    return out


def median_rate(
    fn: Callable[[], object], hours: float, n: int, device: torch.device
) -> dict[str, float]:
    """Audio-hours/s of fn: median of n timed calls (each synced)."""
    rates = []
    for _ in range(n):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        rates.append(hours / (time.perf_counter() - start))
    return {
        "audio_hours_per_sec": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "n": n,
    }


def throughput_variant(
    args: argparse.Namespace, device: torch.device, compiled: bool, channels_last: bool
) -> dict[str, Any]:
    cfg = make_config(args)
    trainer = Trainer(cfg, device, compile_model=compiled, channels_last=channels_last)
    n_samples = int(round(args.crop_sec * cfg.audio.sample_rate))
    batch = click_batch(cfg, args.batch_size, n_samples, trainer.n_classes, device)
    start = time.perf_counter()
    for _ in range(3 if compiled else 2):  # compile, autotune and cuDNN choice
        trainer.step(batch)
    sync(device)
    warm_sec = time.perf_counter() - start
    hours = audio_hours(n_samples, cfg.audio.sample_rate) * args.batch_size
    result = median_rate(lambda: trainer.step(batch), hours, args.timed_steps, device)
    amp = str(trainer.dtype).replace("torch.", "") if trainer.dtype else "fp32"
    result.update(params=count_parameters(trainer.model), warmup_sec=warm_sec, amp=amp)
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return result


def check_throughput(
    args: argparse.Namespace, device: torch.device, t_start: float
) -> dict[str, Any]:
    """(c) whole training steps in four variants, then the frontend alone."""
    out: dict[str, Any] = {}
    for compiled in (False, True):
        for channels_last in (False, True):
            name = ("compiled" if compiled else "eager") + (
                "+channels_last" if channels_last else ""
            )
            if compiled and args.no_compile:
                out[name] = {"skipped": "--no-compile"}
            elif time.perf_counter() - t_start > args.budget_sec:
                out[name] = {"skipped": f"past --budget-sec {args.budget_sec:.0f}"}
            else:
                out[name] = guarded(
                    lambda c=compiled, cl=channels_last: throughput_variant(
                        args, device, c, cl
                    )
                )
            print(f"throughput {name}: {out[name]}", file=sys.stderr, flush=True)
    out["frontend_only"] = guarded(lambda: frontend_rate(args, device))
    return out


def frontend_rate(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    cfg = make_config(args)
    n_samples = int(round(args.crop_sec * cfg.audio.sample_rate))
    frontend = LogMel.from_config(cfg).to(device)
    audio = torch.randn(args.batch_size, n_samples, device=device) * 0.1  # (B, N)
    with torch.inference_mode():
        frontend(audio)
        hours = audio_hours(n_samples, cfg.audio.sample_rate) * args.batch_size
        return median_rate(lambda: frontend(audio), hours, args.timed_steps, device)


def guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure is recorded, not fatal to the other checks."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def print_report(report: dict[str, Any], console: Console) -> None:
    fixed = Table(title="a. fixed batch: losses")
    for col in ("amp", "first", "last 5 mean", "finite", "falling", "ok"):
        fixed.add_column(col)
    for amp, r in report["fixed_batch"].items():
        if "error" in r:
            fixed.add_row(amp, "error", r["error"][:60], "", "", "False")
            continue
        fixed.add_row(
            amp,
            f"{r['first']:.4f}",
            f"{r['last5_mean']:.4f}",
            str(r["finite"]),
            str(r["falling"]),
            str(r["ok"]),
        )
    console.print(fixed)
    front = Table(title="b. frontend: relative L2 and max |diff| of loud log-mel bins")
    for col in ("pair", "rel L2", "max abs (loud)", "ok"):
        front.add_column(col)
    for pair, r in report["frontend"].items():
        if "error" in r:
            front.add_row(pair, "error", r["error"][:60], "False")
            continue
        front.add_row(
            pair, f"{r['rel_l2']:.2e}", f"{r['max_abs_loud']:.2e}", str(r["ok"])
        )
    console.print(front)
    console.print(throughput_table(report))


def throughput_table(report: dict[str, Any]) -> Table:
    s = report["settings"]
    table = Table(
        title=f"c. throughput (audio-hours/s), {s['preset']} preset, batch "
        f"{s['batch_size']} x {s['crop_sec']} s, {report['device_name']}"
    )
    for col in (
        "variant",
        "measured",
        "min..max",
        "warm-up s",
        "ref stem-halved b128",
        "ref plain b64",
    ):
        table.add_column(col)
    refs = REFERENCES["stem-halved 2.5M, batch 128"]
    plain = REFERENCES["plain CRNN 2.8M, batch 64"]
    for name, r in report["throughput"].items():
        if "audio_hours_per_sec" in r:
            cells = [
                f"{r['audio_hours_per_sec']:.3f}",
                f"{r['min']:.3f}..{r['max']:.3f}",
                f"{r.get('warmup_sec', 0):.1f}",
            ]
        else:
            cells = [r.get("skipped") or r.get("error", "")[:40], "", ""]
        table.add_row(name, *cells, str(refs.get(name, "")), str(plain.get(name, "")))
    return table


def run_checks(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu"
        ),
        "torch": torch.__version__,
        "host": platform.node(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "references": REFERENCES,
    }
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick kernels
    fixed = guarded(lambda: check_fixed_batch(args, device))
    report["fixed_batch"] = fixed if "error" not in fixed else {"all": fixed}
    front = guarded(lambda: check_frontend(args, device))
    report["frontend"] = front if "error" not in front else {"all": front}
    report["throughput"] = check_throughput(args, device, t_start)
    report["elapsed_sec"] = time.perf_counter() - t_start
    report["failures"] = [
        f"{section}/{name}"
        for section in ("fixed_batch", "frontend")
        for name, r in report[section].items()
        if not r.get("ok", False)
    ] + [f"throughput/{n}" for n, r in report["throughput"].items() if "error" in r]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        torch.set_num_threads(1)  # a shared CPU: one thread is steadier than two
    device = resolve_device(args.device)
    console = Console() if Console().is_terminal else Console(width=140)
    report = run_checks(args, device)
    print_report(report, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    if report["failures"]:
        print(f"FAILED: {', '.join(report['failures'])}")
        return 1
    print(f"all checks passed in {report['elapsed_sec']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
