"""Which limits a training run here: the model's steps or the loader's crops?

    python tools/bench_train.py                # CPU-sized default: ~2-3 min when idle
    python tools/bench_train.py --data-root /mnt/hdd/drum-tranxn --batch-size 32 \\
        --crop-sec 10 --steps 10 --workers 0,2,4 --json bench_train.json

Both sides are measured in audio-hours per second, in one run and round-robin (every
round times each preset and each loader setting once), so a background job slows all of
them alike; each figure is the median over the rounds.

- model: one optimizer step as train.py runs it (drumtx.train_step: frontend, CRNN
  forward, loss, backward, clip, AdamW) on a synthetic batch, under the AMP train.py
  would pick on this device; warm-up steps first.
- loader: batches from drumtx.data.make_loader over a processed store (--data-root,
  else a small made dataset in a temp dir), per num_workers, with and without
  data.cache_in_ram. Each round starts a fresh loader, discards the first batch (worker
  start-up) and times the next --loader-batches; batches the workers made while the
  first was awaited flatter it slightly.

'limit' per preset is the slower side, against the fastest loader setting.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from made_store import build_made_store
from rich.console import Console
from rich.table import Table

from drumtx.amp import dtype_name
from drumtx.config import Config, load_config
from drumtx.data import audio_hours, make_loader
from drumtx.drums import get_vocab
from drumtx.inference import resolve_device
from drumtx.model import count_parameters
from drumtx.storage import resolve_roots
from drumtx.train_step import build_parts, optimizer_step

_WINDOW_SEEDS = itertools.count(1)  # each loader window draws other crops


@dataclass
class Series:
    """One benchmarked thing: its label, settings and per-round audio-hours/s."""

    kind: str  # "model" | "loader"
    label: str
    info: dict[str, Any]
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="drumtx.toml (default: defaults)")
    parser.add_argument("--data-root", type=Path, help="root holding processed_data/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--presets", default="tiny,small,base")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop-sec", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps each")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per preset")
    parser.add_argument("--rounds", type=int, default=3, help="loader windows timed")
    parser.add_argument("--workers", default="0,1,2", help="num_workers to try")
    parser.add_argument("--loader-batches", type=int, default=4, help="per window")
    parser.add_argument(
        "--no-cache-compare",
        action="store_true",
        help="skip the data.cache_in_ram=true loaders",
    )
    parser.add_argument(
        "--made-recordings",
        type=int,
        default=8,
        help="performances of the temp store (x 2 kits)",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    return parser.parse_args(argv)


def bench_config(
    args: argparse.Namespace,
    data_root: Path,
    workers: int = 0,
    cache: bool = False,
    preset: str = "tiny",
) -> Config:
    cfg = load_config(args.config, [f"storage.data_root='{data_root}'"])
    return replace(
        cfg,
        model=replace(cfg.model, preset=preset),
        data=replace(
            cfg.data, crop_sec=args.crop_sec, num_workers=workers, cache_in_ram=cache
        ),
        train=replace(cfg.train, batch_size=args.batch_size, device=args.device),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # time the GPU's work, not the launch


class ModelStep:
    """One optimizer step of a preset as train.py runs it, on a fixed random batch."""

    def __init__(self, cfg: Config, device: torch.device) -> None:
        n_classes = get_vocab(cfg.data.vocab).n_classes
        gen = torch.Generator().manual_seed(0)
        n_samples = int(round(cfg.data.crop_sec * cfg.audio.sample_rate))
        batch = cfg.train.batch_size
        self.device = device
        self.parts = build_parts(cfg, device, n_classes)
        audio = (0.1 * torch.randn(batch, n_samples, generator=gen)).to(device)
        n_t = n_samples // cfg.hop_length + 1
        onset = (torch.rand(batch, n_t, n_classes, generator=gen) < 0.02).float()
        onset = onset.to(device)
        self.batch = (audio, onset, onset * 0.7, onset)  # (B, N); (B, T, C) x 3
        self.hours = audio_hours(n_samples, cfg.audio.sample_rate) * batch

    def __call__(self) -> float:
        """One step; returns its audio-hours per second."""
        sync(self.device)
        start = time.perf_counter()
        optimizer_step(self.parts, lambda: self.batch, self.parts.cfg.train.lr)
        sync(self.device)
        return self.hours / (time.perf_counter() - start)


def loader_window(cfg: Config, split_dir: Path, n_batches: int) -> float:
    """A fresh loader; audio-hours/s over n_batches after its first batch."""
    vocab = get_vocab(cfg.data.vocab)
    loader = make_loader(
        cfg,
        split_dir,
        vocab.n_classes,
        seed=next(_WINDOW_SEEDS),
        rank=0,
        world_size=1,
        pin_memory=False,
    )
    batches = iter(loader)
    next(batches)  # worker start-up and the first block reads are not throughput
    start = time.perf_counter()
    n_crops = 0
    for _ in range(n_batches):
        n_crops += len(next(batches)[0])
    elapsed = time.perf_counter() - start
    del batches, loader  # stops persistent workers before the next window
    n_samples = int(round(cfg.data.crop_sec * cfg.audio.sample_rate))
    return audio_hours(n_samples, cfg.audio.sample_rate) * n_crops / elapsed


def run_rounds(
    model_steps: dict[str, Callable[[], float]],
    loaders: dict[str, Callable[[], float]],
    series: dict[str, Series],
    args: argparse.Namespace,
) -> None:
    """Round-robin, so load from elsewhere on the machine falls on all series alike."""
    for step in model_steps.values():
        for _ in range(args.warmup):
            step()
    n_rounds = max(args.steps, args.rounds)
    for round_index in range(n_rounds):
        for label, step in model_steps.items():
            if round_index < args.steps:
                series[label].rates.append(step())
        for label, window in loaders.items():
            if round_index < args.rounds:
                series[label].rates.append(window())
        print(f"round {round_index + 1}/{n_rounds} done", file=sys.stderr, flush=True)


def limits(series: dict[str, Series]) -> dict[str, dict[str, Any]]:
    loader = [s for s in series.values() if s.kind == "loader"]
    best = max(loader, key=lambda s: s.median) if loader else None
    out = {}
    for s in series.values():
        if s.kind != "model":
            continue
        slower = "loader" if best is not None and best.median < s.median else "model"
        out[s.label] = {
            "limit": slower,
            "best_loader": best.label if best else None,
            "model_over_loader": s.median / best.median if best else None,
        }
    return out


def print_table(
    series: dict[str, Series], limit: dict[str, dict[str, Any]], header: str
) -> None:
    table = Table(title=header)
    for name in (
        "kind",
        "setting",
        "audio-h/s median",
        "x real time",
        "min",
        "max",
        "n",
        "note",
    ):
        table.add_column(
            name, justify="left" if name in ("kind", "setting", "note") else "right"
        )
    for s in series.values():
        note = (
            f"{s.info['params'] / 1e6:.2f} M params, {s.info['amp']}"
            if s.kind == "model"
            else ""
        )
        table.add_row(
            s.kind,
            s.label,
            f"{s.median:.3g}",
            f"{3600 * s.median:.3g}",
            f"{min(s.rates):.3g}",
            f"{max(s.rates):.3g}",
            str(len(s.rates)),
            note,
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log file gets the table unwrapped
    console.print(table)
    for label, entry in limit.items():
        ratio = entry["model_over_loader"]
        console.print(
            f"{label}: limit: {entry['limit']}"
            + (
                f"  (model/loader = {ratio:.3g} vs {entry['best_loader']})"
                if ratio is not None
                else ""
            )
        )


def setup(
    args: argparse.Namespace, data_root: Path, device: torch.device
) -> tuple[
    dict[str, Series], dict[str, Callable[[], float]], dict[str, Callable[[], float]]
]:
    series: dict[str, Series] = {}
    model_steps: dict[str, Callable[[], float]] = {}
    for preset in [p for p in args.presets.split(",") if p]:
        cfg = bench_config(args, data_root, preset=preset)
        step = ModelStep(cfg, device)
        amp = dtype_name(step.parts.dtype)
        params = count_parameters(step.parts.model)
        label = preset
        series[label] = Series(
            "model", label, {"preset": preset, "params": params, "amp": amp}
        )
        model_steps[label] = step
    split_dir = resolve_roots(bench_config(args, data_root)).processed_dir / args.split
    loaders: dict[str, Callable[[], float]] = {}
    caches = (False,) if args.no_cache_compare else (False, True)
    for workers in [int(w) for w in args.workers.split(",") if w]:
        for cache in caches:
            cfg = bench_config(args, data_root, workers=workers, cache=cache)
            label = f"workers={workers} " + ("ram" if cache else "memmap")
            series[label] = Series(
                "loader", label, {"num_workers": workers, "cache_in_ram": cache}
            )
            loaders[label] = lambda c=cfg: loader_window(
                c, split_dir, args.loader_batches
            )
    return series, model_steps, loaders


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with contextlib.ExitStack() as stack:
        data_root = args.data_root
        if data_root is None:
            data_root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            print(f"building a temp store in {data_root}", file=sys.stderr)
            build_made_store(data_root, n_performances=args.made_recordings)
        series, model_steps, loaders = setup(args, data_root, device)
        run_rounds(model_steps, loaders, series, args)
    limit = limits(series)
    header = (
        f"bench_train on {device} ({platform.node()}, {torch.get_num_threads()}"
        f" threads): batch {args.batch_size} x {args.crop_sec} s"
    )
    print_table(series, limit, header)
    if args.json:
        payload = {
            "device": str(device),
            "host": platform.node(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "series": [
                {
                    "kind": s.kind,
                    "label": s.label,
                    **s.info,
                    "audio_hours_per_sec": s.median,
                    "rates": s.rates,
                }
                for s in series.values()
            ],
            "limits": limit,
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
