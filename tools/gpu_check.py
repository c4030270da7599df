"""One command for a lent H100/H200: does training work there, and how fast is it?

    PYTHONUNBUFFERED=1 python tools/gpu_check.py --out $OUT/gpu_check.json   # < 8 min
    python tools/gpu_check.py --smoke --out /tmp/gpu_check.json   # CPU, seconds (tests)

It needs only drumtx's own dependencies (torch, numpy, scipy, soundfile, mido, rich,
tensorboard, mir_eval) and no dataset: it first makes a small store (generated grooves
through two synth kits, preprocessed) in a temp dir, or uses --data-root. Then, each
section recorded even when another fails (exit 1 if any check failed):

a. fixed batch: the base preset trains on ONE batch of tone bursts in bf16 and in fp16
   with the GradScaler; every loss finite, the last ones below the first.
b. frontend: LogMel on the device against the CPU and the float64 numpy reference.
c. train loop: ``run_train`` on the made store in bf16 and fp16 (validation,
   checkpoints), then resumed; the resumed run must carry on (step, AdamW, scaler).
d. loader: real training steps of the base preset fed by ``make_loader``, with 0/4/8
   workers, memmap and ``cache_in_ram``: audio-hours/s and the share spent waiting.
e. transcribe: audio-hours/s of the chunked inference path on the store's audio.
f. throughput: audio-hours/s of whole optimizer steps (drumtx.train_step) per preset,
   eager / eager+channels_last / compiled / compiled+channels_last, bf16 and fp32, with
   peak GPU memory; the compiled variants last, and none started past --budget-sec.

The JSON (--out, default $OUT/gpu_check.json when OUT is set) is rewritten after every
section, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from made_store import build_made_store
from rich.console import Console
from rich.table import Table

from drumtx.amp import amp_dtype, dtype_name
from drumtx.checkpoint import load_checkpoint
from drumtx.config import Config, load_config
from drumtx.console import make_console
from drumtx.data import audio_hours, make_loader
from drumtx.distributed import Dist
from drumtx.drums import get_vocab
from drumtx.frontend import LogMel, log_mel_numpy, n_frames
from drumtx.inference import LoadedModel, resolve_device, transcribe_array
from drumtx.model import build_model, count_parameters
from drumtx.processed import load_store, recording_audio
from drumtx.train import run_train
from drumtx.train_log import StepMeter, hours_per_step
from drumtx.train_step import TrainParts, build_parts, optimizer_step, wrap_model

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
N_CLASSES = get_vocab("roland9").n_classes
# name: (full run, --smoke). Sizes for an H100/H200 first, tiny CPU ones second.
SIZES = {
    "presets": ("tiny,small,base", "tiny"),
    "amps": ("bf16,fp32", "bf16,fp32"),
    "batch_size": (128, 2),
    "crop_sec": (10.0, 1.0),
    "timed_steps": (8, 2),
    "fixed_steps": (30, 3),
    "loop_preset": ("small", "tiny"),
    "loop_steps": (30, 2),
    "loop_workers": (4, 0),
    "workers": ("0,4,8", "0"),
    "loader_batch": (32, 2),
    "loader_steps": (8, 2),
    "transcribe_min": (20.0, 0.2),
    "recordings": (40, 3),
    "max_sec": (30.0, 4.0),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no compile")
    parser.add_argument("--out", "--json", type=Path, help="where the JSON goes")
    parser.add_argument("--data-root", type=Path, help="a root with processed_data/")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--budget-sec",
        type=float,
        default=360.0,
        help="start no throughput variant this long after the start",
    )
    for name, (full, _) in SIZES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(full))
    args = parser.parse_args(argv)
    for name, (full, smoke) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.smoke:
        args.no_compile = True  # inductor's C++ build alone takes a minute on 2 cores
    if args.out is None and os.environ.get("OUT"):
        args.out = Path(os.environ["OUT"]) / "gpu_check.json"
    return args


def make_config(args: argparse.Namespace, data_root: Path, **train: Any) -> Config:
    """Defaults, the made store, the check's sizes; ``train`` replaces [train] keys."""
    cfg = load_config(None, [f"storage.data_root='{data_root}'"])
    defaults = {"device": args.device, "amp": "auto", "batch_size": args.batch_size}
    return replace(
        cfg,
        # The biggest preset listed (base), no dropout: steadier fixed-batch losses.
        model=replace(cfg.model, preset=args.presets.split(",")[-1], dropout=0.0),
        data=replace(cfg.data, crop_sec=args.crop_sec, num_workers=0),
        train=replace(cfg.train, **{**defaults, **train}),
    )


def with_changes(cfg: Config, table: str, **changes: Any) -> Config:
    return replace(cfg, **{table: replace(getattr(cfg, table), **changes)})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # wait for the queued kernels before timing


def click_batch(
    cfg: Config, batch: int, n_samples: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Decaying tone bursts at random frames of random classes, and their targets."""
    gen = torch.Generator().manual_seed(0)
    hop, n_t = cfg.hop_length, n_frames(n_samples, cfg.hop_length)
    audio = 0.01 * torch.randn(batch, n_samples, generator=gen)  # (B, N)
    onset = torch.zeros(batch, n_t, N_CLASSES)  # (B, T, C)
    velocity = torch.zeros_like(onset)
    burst_len = hop * 4
    decay = torch.exp(-torch.arange(burst_len) / (hop / 2))
    for b in range(batch):
        frames = torch.randperm(n_t - 5, generator=gen)[: max(1, n_t // 25)]
        for frame in frames.tolist():
            cls = int(torch.randint(N_CLASSES, (1,), generator=gen))
            vel = float(torch.rand((), generator=gen)) * 0.8 + 0.2
            # Each class gets its own pitch, so the classes can be told apart.
            tone = torch.sin(torch.arange(burst_len) * (0.05 + 0.12 * cls))
            audio[b, frame * hop : frame * hop + burst_len] += vel * 0.5 * tone * decay
            onset[b, frame, cls], velocity[b, frame, cls] = 1.0, vel
    return tuple(t.to(device) for t in (audio, onset, velocity, onset.clone()))


def guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure is recorded, not fatal to the other checks."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak GPU memory since the last call (which resets it); None on the CPU."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return peak


# --- a. fixed batch ------------------------------------------------------------------


def check_fixed_batch(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    """bf16 and fp16+GradScaler: finite losses that fall on one repeated batch."""
    out: dict[str, Any] = {}
    for amp in ("bf16", "fp16"):
        cfg = make_config(args, data_root, amp=amp, batch_size=args.loader_batch)
        parts = build_parts(cfg, device, N_CLASSES)
        n_samples = int(round(min(args.crop_sec, 4.0) * cfg.audio.sample_rate))
        batch = click_batch(cfg, cfg.train.batch_size, n_samples, device)
        results = [
            optimizer_step(parts, lambda b=batch: b, cfg.train.lr)
            for _ in range(args.fixed_steps)
        ]
        losses = [float(r.loss) for r in results]
        tail = statistics.mean(losses[-3:])
        out[amp] = {
            "losses": losses,
            "finite": all(map(math.isfinite, losses)),
            "falling": tail < losses[0],
            "bad_steps": sum(r.bad for r in results),
            "skipped_steps": sum(not r.applied for r in results),
            "scale": parts.scaler.get_scale() if parts.scaler.is_enabled() else None,
        }
        out[amp]["ok"] = out[amp]["finite"] and out[amp]["falling"]
    return out


# --- b. frontend ---------------------------------------------------------------------


def check_frontend(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    """The device's LogMel against the CPU's and float64 numpy's."""
    cfg = make_config(args, data_root)
    n_samples = int(round(args.crop_sec * cfg.audio.sample_rate))
    audio = click_batch(cfg, 2, n_samples, torch.device("cpu"))[0]  # (2, N)
    cpu = LogMel.from_config(cfg)(audio).numpy()
    dev = LogMel.from_config(cfg).to(device)(audio.to(device)).cpu().numpy()
    f = cfg.frontend
    ref = np.stack(  # (2, T, n_mels)
        [
            log_mel_numpy(
                a,
                cfg.audio.sample_rate,
                f.n_fft,
                cfg.hop_length,
                f.n_mels,
                f.f_min_hz,
                f.f_max_hz,
            )
            for a in audio.numpy()
        ]
    )
    out = {}
    for name, got, want in (
        ("device_vs_cpu", dev, cpu),
        ("device_vs_numpy", dev, ref),
        ("cpu_vs_numpy", cpu, ref),
    ):
        loud = want > LOUD_LOG
        rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        max_abs = float(np.abs(got - want)[loud].max()) if loud.any() else 0.0
        ok = rel < FRONTEND_REL_TOL and max_abs < FRONTEND_ABS_TOL
        out[name] = {"rel_l2": rel, "max_abs_loud": max_abs, "ok": ok}
    return out


# --- c. the training loop ------------------------------------------------------------


def loop_config(args, data_root: Path, amp: str, max_steps: int) -> Config:
    cfg = make_config(args, data_root, amp=amp, batch_size=args.loader_batch)
    cfg = with_changes(cfg, "model", preset=args.loop_preset)
    cfg = with_changes(
        cfg, "data", crop_sec=min(args.crop_sec, 4.0), num_workers=args.loop_workers
    )
    return with_changes(
        cfg,
        "train",
        max_steps=max_steps,
        eval_every=args.loop_steps,  # validates (and saves) at the end of each run
        log_every=max(1, args.loop_steps // 5),
        warmup_steps=max(1, args.loop_steps // 5),
        val_max_recordings=2,
    )


def check_train_loop(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    """run_train for loop_steps, then resumed for 2 more, in bf16 and fp16."""
    out: dict[str, Any] = {}
    for amp in ("bf16", "fp16"):
        run = f"gpu-check-{amp}-{int(time.time())}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            first = run_train(
                loop_config(args, data_root, amp, args.loop_steps),
                run_name=run,
                resume=None,
            )
            cfg = loop_config(args, data_root, amp, args.loop_steps + 2)
            second = run_train(cfg, run_name=run, resume="auto")
        last = load_checkpoint(data_root / "checkpoints" / run / "last.pt")
        adam = {float(s["step"]) for s in last["optimizer"]["state"].values()}
        out[amp] = {
            "exit_codes": [first, second],
            "step": last["step"],
            "adam_steps": sorted(adam),
            "scaler": last["scaler"],
            "history": last["history"],
            "seconds": time.perf_counter() - start,
            "peak_mem_gib": peak_memory_gib(device),
        }
        steps_ok = last["step"] == args.loop_steps + 2 and len(adam) == 1
        out[amp]["ok"] = [first, second] == [0, 0] and steps_ok
    return out


# --- d. loader -----------------------------------------------------------------------


def loader_window(
    parts: TrainParts, split_dir: Path, steps: int
) -> dict[str, float | None]:
    """Training steps fed by a fresh loader: audio-hours/s and the data-wait share."""
    cfg = parts.cfg
    loader = make_loader(
        cfg,
        split_dir,
        N_CLASSES,
        seed=1,
        rank=0,
        world_size=1,
        pin_memory=parts.device.type == "cuda",
    )
    batches = iter(loader)
    for _ in range(2):  # worker start-up and cuDNN's choice are not throughput
        optimizer_step(parts, batches.__next__, cfg.train.lr)
    meter = StepMeter(hours_per_step(cfg, 1))
    next_batch = meter.timed(batches)
    for _ in range(steps):
        result = optimizer_step(parts, next_batch, cfg.train.lr)
        meter.step_done(result.loss, result.grad_norm)
    sync(parts.device)
    scalars = meter.scalars(cfg.train.lr)
    del batches, loader  # stops persistent workers before the next window
    return {
        "audio_hours_per_sec": scalars["train/audio_hours_per_sec"],
        "data_wait_fraction": scalars["train/data_wait_fraction"],
    }


def check_loader(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    """The base preset's steps under the AMP train.py picks, per loader setting."""
    out: dict[str, Any] = {}
    split_dir = data_root / "processed_data" / "train"
    for workers in [int(w) for w in args.workers.split(",") if w]:
        for cache in (False, True):
            cfg = make_config(args, data_root, batch_size=args.loader_batch)
            cfg = with_changes(cfg, "data", num_workers=workers, cache_in_ram=cache)
            parts = build_parts(cfg, device, N_CLASSES)
            label = f"workers={workers} " + ("ram" if cache else "memmap")
            out[label] = guarded(
                lambda p=parts: loader_window(p, split_dir, args.loader_steps)
            )
            print(f"loader {label}: {out[label]}", file=sys.stderr, flush=True)
    return out


# --- e. transcribe -------------------------------------------------------------------


def check_transcribe(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    """Chunked inference (transcribe's path) over the store's audio, repeated."""
    cfg = make_config(args, data_root)
    vocab = get_vocab(cfg.data.vocab)
    model = build_model(cfg, vocab.n_classes).to(device).eval()
    frontend = LogMel.from_config(cfg).to(device)
    loaded = LoadedModel(model, frontend, cfg, vocab, {}, "gpu_check", device)
    store = load_store(data_root / "processed_data" / "train")
    one = np.concatenate(
        [recording_audio(store, i) for i in range(len(store.recordings))]
    )
    n_samples = int(args.transcribe_min * 60 * cfg.audio.sample_rate)
    audio = np.resize(one, n_samples)  # the store's audio, repeated to length
    thresholds = [0.5] * vocab.n_classes
    t = cfg.transcribe
    options = dict(segment_sec=t.segment_sec, overlap_sec=t.overlap_sec)
    transcribe_array(loaded, audio[: 30 * cfg.audio.sample_rate], thresholds, **options)
    peak_memory_gib(device)
    start = time.perf_counter()
    hits = transcribe_array(loaded, audio, thresholds, batch_size=16, **options)
    sync(device)
    seconds = time.perf_counter() - start
    hours = audio_hours(n_samples, cfg.audio.sample_rate)
    return {
        "audio_hours_per_sec": hours / seconds,
        "x_real_time": 3600 * hours / seconds,
        "audio_min": args.transcribe_min,
        "segment_batch": 16,
        "amp": dtype_name(amp_dtype(loaded.amp, device)),
        "hits": len(hits),
        "peak_mem_gib": peak_memory_gib(device),
    }


# --- f. throughput -------------------------------------------------------------------


def variants(args) -> list[tuple[str, str, bool, bool]]:
    """(preset, amp, compiled, channels_last), the most telling first: the biggest
    preset's first amp eager and compiled+channels_last, then every eager variant,
    then the compiled ones; the budget cuts from the end."""
    presets = [p for p in args.presets.split(",") if p][::-1]
    amps = [a for a in args.amps.split(",") if a]
    eager = [(p, a, False, cl) for p in presets for a in amps for cl in (False, True)]
    compiled = [(p, a, True, cl) for a in amps for p in presets for cl in (True, False)]
    if args.no_compile:
        compiled = []
    key = [eager[0]] + compiled[:1]
    return key + [v for v in eager + compiled if v not in key]


def throughput_variant(
    args, data_root: Path, device: torch.device, variant: tuple[str, str, bool, bool]
) -> dict[str, Any]:
    preset, amp, compiled, channels_last = variant
    cfg = make_config(
        args,
        data_root,
        amp="off" if amp == "fp32" else amp,
        compile=compiled,
        channels_last=channels_last,
    )
    parts = build_parts(with_changes(cfg, "model", preset=preset), device, N_CLASSES)
    wrap_model(parts, Dist())  # torch.compile when asked
    n_samples = int(round(args.crop_sec * cfg.audio.sample_rate))
    batch = click_batch(cfg, args.batch_size, n_samples, device)
    peak_memory_gib(device)
    start = time.perf_counter()
    for _ in range(3 if compiled else 2):  # compile, autotune and cuDNN's choice
        optimizer_step(parts, lambda: batch, cfg.train.lr)
    sync(device)
    warm_sec = time.perf_counter() - start
    rates = []
    hours = audio_hours(n_samples, cfg.audio.sample_rate) * args.batch_size
    for _ in range(args.timed_steps):
        start = time.perf_counter()
        optimizer_step(parts, lambda: batch, cfg.train.lr)
        sync(device)
        rates.append(hours / (time.perf_counter() - start))
    return {
        "audio_hours_per_sec": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "warmup_sec": warm_sec,
        "params": count_parameters(parts.model),
        "amp": dtype_name(parts.dtype),
        "peak_mem_gib": peak_memory_gib(device),
    }


def check_throughput(
    args,
    data_root: Path,
    device: torch.device,
    todo: Sequence[tuple[str, str, bool, bool]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in todo:
        preset, amp, compiled, channels_last = variant
        name = f"{preset}/{amp}/" + ("compiled" if compiled else "eager")
        name += "+channels_last" if channels_last else ""
        if time.perf_counter() - args.t_start > args.budget_sec:
            out[name] = {"skipped": f"past --budget-sec {args.budget_sec:.0f}"}
        else:
            out[name] = guarded(
                lambda v=variant: throughput_variant(args, data_root, device, v)
            )
        print(f"throughput {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


# --- report --------------------------------------------------------------------------


def sections(args) -> list[tuple[str, Callable[..., dict[str, Any]]]]:
    """In order: correctness first, then the key throughput figures, the loader and
    transcribe, then the rest of the throughput matrix as the budget allows."""
    todo = variants(args)
    n_key = 1 if args.no_compile else 2

    def first(*a: Any) -> dict[str, Any]:
        return check_throughput(*a, todo[:n_key])

    def rest(*a: Any) -> dict[str, Any]:
        return check_throughput(*a, todo[n_key:])

    return [
        ("fixed_batch", check_fixed_batch),
        ("frontend", check_frontend),
        ("train_loop", check_train_loop),
        ("throughput", first),
        ("loader", check_loader),
        ("transcribe", check_transcribe),
        ("throughput_more", rest),
    ]


def failures(report: dict[str, Any]) -> list[str]:
    """Checks that failed and measurements that raised."""
    failed = []
    for section, results in report.items():
        if not isinstance(results, dict) or section in ("settings", "references"):
            continue
        if "error" in results:
            failed.append(section)
            continue
        for name, r in results.items():
            if isinstance(r, dict) and ("error" in r or r.get("ok") is False):
                failed.append(f"{section}/{name}")
    return failed


def run_checks(args, data_root: Path, device: torch.device) -> dict[str, Any]:
    report: dict[str, Any] = header(args, device)
    for name, check in sections(args):
        report[name] = guarded(lambda c=check: c(args, data_root, device))
        elapsed = time.perf_counter() - args.t_start
        print(f"{name}: done at {elapsed:.0f} s", file=sys.stderr, flush=True)
        write_report(report, args.out)
    report["throughput"].update(report.pop("throughput_more"))
    report["elapsed_sec"] = time.perf_counter() - args.t_start
    report["failures"] = failures(report)
    write_report(report, args.out)
    return report


def header(args, device: torch.device) -> dict[str, Any]:
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "host": platform.node(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "references": REFERENCES,
    }


def write_report(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=str) + "\n")


def print_report(report: dict[str, Any]) -> None:
    console = make_console()
    if not console.is_terminal:
        console = Console(width=160, highlight=False)  # a log gets tables unwrapped
    for section in ("fixed_batch", "frontend", "train_loop", "loader", "transcribe"):
        console.print(section_table(section, report.get(section, {})))
    console.print(throughput_table(report))


def section_table(section: str, results: dict[str, Any]) -> Table:
    """One row per entry (or one for a flat section): numbers and flags; lists and
    dicts are left to the JSON."""
    table = Table(title=section)
    table.add_column("name", no_wrap=True)
    table.add_column("result")
    nested = results and all(isinstance(r, dict) for r in results.values())
    for name, r in results.items() if nested else [(section, results)]:
        cells = [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()
            if not isinstance(v, list | dict)
        ]
        table.add_row(name, "  ".join(cells))
    return table


def throughput_table(report: dict[str, Any]) -> Table:
    s = report["settings"]
    table = Table(
        title=f"throughput (audio-hours/s), batch {s['batch_size']} x "
        f"{s['crop_sec']} s, {report['device_name']}"
    )
    for col in ("variant", "measured", "min..max", "warm-up s", "peak GiB", "ref b128"):
        table.add_column(col, no_wrap=True)
    refs = REFERENCES["stem-halved 2.5M, batch 128"]
    for name, r in report.get("throughput", {}).items():
        if "audio_hours_per_sec" in r:
            cells = [
                f"{r['audio_hours_per_sec']:.3f}",
                f"{r['min']:.3f}..{r['max']:.3f}",
                f"{r['warmup_sec']:.1f}",
                f"{r['peak_mem_gib']:.2f}" if r["peak_mem_gib"] is not None else "",
            ]
        else:
            cells = [r.get("skipped") or r.get("error", "")[:40], "", "", ""]
        ref = refs.get(name.split("/")[-1], "") if name.startswith("base/bf16") else ""
        table.add_row(name, *cells, str(ref))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.t_start = time.perf_counter()  # --budget-sec counts from here
    if args.smoke:
        torch.set_num_threads(1)  # a shared CPU: one thread is steadier than two
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick kernels
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or Path(tmp)
        if args.data_root is None:
            start = time.perf_counter()
            build_made_store(
                data_root,
                n_performances=args.recordings,
                max_sec=args.max_sec,
                splits=("train", "validation", "test"),
                workers=min(8, os.cpu_count() or 1),
            )
            print(f"made store in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        report = run_checks(args, data_root, device)
    print_report(report)
    if args.out is not None:
        print(f"wrote {args.out}")
    if report["failures"]:
        print(f"FAILED: {', '.join(report['failures'])}")
        return 1
    print(f"all checks passed in {report['elapsed_sec']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
