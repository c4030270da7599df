"""CPU speed of the frontend and of each CRNN preset, as transcription would run them.

    python tools/bench_model.py                      # 60 s of audio, 2 threads
    python tools/bench_model.py --threads 4 --json bench.json

For every preset: parameters, milliseconds per audio-second for the frontend and for
the model separately (best of --repeats, after a warm-up call), and the resulting
multiple of real time for frontend + model. The whole clip goes through in one call
(batch 1), the worst case for the GRU: transcribe batches segments, which only helps.
Run it on an idle machine: on a busy 2-core box two threads stall each other, and
--threads 1 then gives the steadier (lower-bound) figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from drumtx.config import Config
from drumtx.frontend import LogMel
from drumtx.model import CRNN, PRESETS, count_parameters


def best_time_sec(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` calls after a warm-up (the minimum is least noisy)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_preset(
    preset: str, audio: torch.Tensor, frontend: LogMel, n_classes: int, repeats: int
) -> dict[str, Any]:
    cfg = Config()
    duration_sec = audio.shape[1] / cfg.audio.sample_rate
    model = CRNN(cfg.frontend.n_mels, n_classes, preset=preset).eval()
    with torch.inference_mode():
        feats = frontend(audio)  # (1, T, n_mels)
        frontend_sec = best_time_sec(lambda: frontend(audio), repeats)
        model_sec = best_time_sec(lambda: model(feats), repeats)
    total_sec = frontend_sec + model_sec
    return {
        "preset": preset,
        "params": count_parameters(model),
        "frames": int(feats.shape[1]),
        "frontend_ms_per_sec": 1000 * frontend_sec / duration_sec,
        "model_ms_per_sec": 1000 * model_sec / duration_sec,
        "x_real_time": duration_sec / total_sec,
    }


def print_table(rows: list[dict[str, Any]], threads: int, seconds: float) -> None:
    # Other processes on the CPU slow every number; the load average says how much.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before: {load} on {os.cpu_count()} CPUs")
    print(
        f"CPU: {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, "
        f"{threads} threads, {seconds:g} s of audio, batch 1"
    )
    print(
        f"{'preset':<8}{'params':>11}{'frontend ms/s':>15}{'model ms/s':>12}"
        f"{'x real time':>13}"
    )
    for row in rows:
        print(
            f"{row['preset']:<8}{row['params']:>11,}{row['frontend_ms_per_sec']:>15.2f}"
            f"{row['model_ms_per_sec']:>12.2f}{row['x_real_time']:>13.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-classes", type=int, default=9)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frontend = LogMel.from_config(Config()).eval()
    n_samples = int(args.seconds * frontend.sample_rate)
    audio = 0.1 * torch.randn(1, n_samples)  # (1, N); speed does not depend on content
    rows = [
        bench_preset(name, audio, frontend, args.n_classes, args.repeats)
        for name in args.presets.split(",")
    ]
    print_table(rows, args.threads, args.seconds)
    if args.json is not None:
        report = {"threads": args.threads, "seconds": args.seconds, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
