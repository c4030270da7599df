"""Benchmark ``preprocess`` against its two floors, per worker count, in one run.

    python tools/bench_preprocess.py DATA_ROOT [--limit 100] [--workers 1 2]
                                     [--repeats 3] [--json PATH]

For the same selected recordings (``--limit`` per split, chosen as preprocess chooses):

- raw read: soundfile decode only, the I/O + decode floor;
- resample: ``audio.resample`` on audio already in memory, the compute floor;
- preprocess: ``run_preprocess`` into a fresh temporary store (worker start-up, MIDI,
  resampling, parts, assembly and fsyncs included).

Caches: one untimed raw read runs first, so every timed pass finds the files in the page
cache; the numbers are CPU-bound, not disk-bound (on a cold HDD reads dominate). Each
cell is the median of ``--repeats`` passes. The requirement checked at the end:
preprocess runs at no less than half the speed of resampling alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.console import Console
from rich.table import Table

from drumtx import audio, egmd, preprocess, storage
from drumtx.config import default_config_path, load_config
from drumtx.console import make_console

REQUIRED_RATIO = 0.5  # preprocess speed / resample-alone speed
_AUDIO: list[np.ndarray] = []  # in-memory inputs of the resample pass (fork-shared)
_RATES: list[int] = []
_TARGET_RATE = 24000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    p.add_argument("--limit", type=int, default=100, help="recordings per split")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="median of this many passes")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    p.add_argument("--config", type=Path, help="TOML config (default: drumtx.toml)")
    return p.parse_args(argv)


def selected_files(cfg, limit: int) -> list[tuple[Path, float]]:
    """(audio path, duration s) of the recordings preprocess --limit would take."""
    egmd_dir = storage.resolve_roots(cfg).egmd_dir
    records = egmd.read_egmd_csv(egmd.egmd_csv_path(egmd_dir))
    files = []
    for split in egmd.SPLITS:
        for record in preprocess.select_records(records, split, limit):
            path = egmd_dir / record.audio_filename
            files.append((path, sf.info(str(path)).duration))
    return files


def _read_one(path: Path) -> int:
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return len(data)


def _resample_one(index: int) -> int:
    return len(audio.resample(_AUDIO[index], _RATES[index], _TARGET_RATE))


def _cpu_sec() -> float:
    """CPU seconds of this process and its reaped children (pool workers included)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _pool_map(
    func: Callable[[object], int], items: Sequence[object], n: int
) -> tuple[float, float]:
    """(wall s, CPU s) of mapping func over items in n processes.

    Wall time excludes the pool start-up; CPU time counts every process.
    """
    cpu0 = _cpu_sec()
    if n == 1:
        t0 = time.perf_counter()
        for item in items:
            func(item)
        return time.perf_counter() - t0, _cpu_sec() - cpu0
    with multiprocessing.get_context("fork").Pool(n) as pool:
        pool.map(abs, range(n))  # workers are up before the clock starts
        t0 = time.perf_counter()
        pool.map(func, items, chunksize=1)
        wall = time.perf_counter() - t0
    return wall, _cpu_sec() - cpu0  # the pool's exit reaped the workers


def time_preprocess(
    cfg_args: tuple[Path | None, list[str]], limit: int, n: int
) -> tuple[float, float]:
    """(wall s, CPU s) of run_preprocess into a fresh temporary store, silenced."""
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as out:
        config_path, overrides = cfg_args
        cfg = load_config(config_path, [*overrides, f"storage.processed_dir='{out}'"])
        sink = io.StringIO()
        cpu0, t0 = _cpu_sec(), time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            status = preprocess.run_preprocess(
                cfg, splits=egmd.SPLITS, limit=limit, workers=n, allow_skips=True
            )
        wall, cpu = time.perf_counter() - t0, _cpu_sec() - cpu0
    if status != 0:
        raise SystemExit(f"preprocess failed:\n{sink.getvalue()}")
    return wall, cpu


def _load_in_memory(paths: Sequence[Path]) -> None:
    """Decoded mono audio for the resample pass, like load_audio before resampling."""
    for path in paths:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        _AUDIO.append(np.ascontiguousarray(data.mean(axis=1), dtype=np.float32))
        _RATES.append(int(rate))


def measure(args: argparse.Namespace, console: Console) -> dict:
    global _TARGET_RATE
    config_path = args.config or default_config_path()
    overrides = [f"storage.data_root='{args.data_root.absolute()}'"]
    cfg = load_config(config_path, overrides)
    _TARGET_RATE = cfg.audio.sample_rate
    files = selected_files(cfg, args.limit)
    paths = [path for path, _ in files]
    audio_sec = sum(duration for _, duration in files)
    console.print(f"{len(files)} recordings, {audio_sec / 60:.1f} min of audio")
    console.print("warming the page cache: one untimed raw read of every file")
    _pool_map(_read_one, paths, 1)
    _load_in_memory(paths)
    rows = []
    for n in args.workers:
        runs: dict[str, list[tuple[float, float]]] = {
            "raw": [],
            "resample": [],
            "preprocess": [],
        }
        for _ in range(args.repeats):  # interleaved, so load changes hit all three
            runs["raw"].append(_pool_map(_read_one, paths, n))
            runs["resample"].append(_pool_map(_resample_one, range(len(paths)), n))
            runs["preprocess"].append(
                time_preprocess((config_path, overrides), args.limit, n)
            )
        rows.append(_row(n, runs, len(files), audio_sec))
        console.print(f"workers {n}: done")
    return {"n_recordings": len(files), "audio_sec": audio_sec, "rows": rows}


def _row(
    n: int, runs: dict[str, list[tuple[float, float]]], n_files: int, audio_sec: float
) -> dict:
    row: dict = {"workers": n}
    for mode, samples in runs.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        row[mode] = {
            "wall_sec": wall,
            "cpu_sec": cpu,
            "recordings_per_sec": n_files / wall,
            "x_realtime": audio_sec / wall,
            "runs_wall_cpu_sec": samples,
        }
    pre, res, raw = row["preprocess"], row["resample"], row["raw"]
    row["preprocess_vs_resample"] = res["wall_sec"] / pre["wall_sec"]
    row["preprocess_vs_resample_cpu"] = res["cpu_sec"] / pre["cpu_sec"]
    row["preprocess_vs_raw"] = raw["wall_sec"] / pre["wall_sec"]
    return row


def print_table(console: Console, result: dict) -> bool:
    table = Table(title=f"preprocess benchmark ({result['n_recordings']} recordings)")
    table.add_column("workers", justify="right")
    for mode in ("raw read", "resample", "preprocess"):
        table.add_column(f"{mode}\nrec/s", justify="right")
        table.add_column(f"{mode}\nx RT", justify="right")
    table.add_column("preprocess /\nresample\n(wall)", justify="right")
    table.add_column("preprocess /\nresample\n(CPU)", justify="right")
    table.add_column("preprocess /\nraw read", justify="right")
    ok = True
    for row in result["rows"]:
        cells = [str(row["workers"])]
        for mode in ("raw", "resample", "preprocess"):
            cells.append(f"{row[mode]['recordings_per_sec']:.1f}")
            cells.append(f"{row[mode]['x_realtime']:.0f}")
        cells.append(f"{row['preprocess_vs_resample']:.2f}")
        cells.append(f"{row['preprocess_vs_resample_cpu']:.2f}")
        cells.append(f"{row['preprocess_vs_raw']:.2f}")
        table.add_row(*cells)
        ok = ok and row["preprocess_vs_resample"] >= REQUIRED_RATIO
    console.print(table)
    console.print(
        "ratios are speed ratios (higher is better); CPU = CPU seconds of all "
        "processes, robust to other load on the machine"
    )
    verdict = "met" if ok else "NOT met"
    console.print(
        f"requirement preprocess >= {REQUIRED_RATIO:g} x resample speed (wall): "
        f"{verdict}"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Wide enough for the table when the output is a file or a pipe.
    console = make_console()
    console.print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of "
        f"{args.repeats}; files served from the page cache after a warm-up read"
    )
    result = measure(args, console)
    ok = print_table(console, result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
