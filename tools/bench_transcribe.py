"""Transcription speed on CPU per model preset, split by stage, and peak memory.

    python tools/bench_transcribe.py                          # tiny, small, base
    python tools/bench_transcribe.py --presets small --json bench.json
    python tools/bench_transcribe.py --checkpoint run/best.pt --rss-minutes 0
    python tools/bench_transcribe.py --cold --checkpoint drumtx/models/default.pt \
        --seconds 60,600 --threads 2 --rss-minutes 0

Files are synthetic drum performances (drumtx.synth kits playing generated grooves),
written as 44.1 kHz stereo 16-bit WAV, so every run resamples as a user's file would.
Each file goes through ``drumtx.transcribe.transcribe_job``, the exact path of
``drumtx transcribe`` (MIDI written included); the library functions it calls are
wrapped with timers for the run, so the split costs nothing when not benchmarking:

  decode     reading and mixing down the file (audio.read_samples)
  resample   to the model's rate (audio.resample)
  frontend   log-mel (LogMel.forward)
  model      the CRNN (forward only)
  peaks      peak picking (pick_onsets, as inference.decode_hits calls it)
  beats      tempo, beats and downbeats for the MIDI's tempo map (beats.beat_grid)
  other      the rest: segment assembly, sigmoid and copies, writing the MIDI

``--gru split,pool`` adds rows with the GRU on torch's whole thread pool, as transcribe
ran it before it ran the GRU's two directions side by side (drumtx/threads.py says
why); ``--busy N``
runs N busy-looping processes beside the timed runs (the model load and warm-up
included), as another program on a user's machine would.

Times are medians of --repeats runs (one run for files longer than --repeat-max-sec).
Peak RSS comes from ``python -m drumtx transcribe`` on a --rss-minutes file in a child
process (os.wait4's ru_maxrss). ``--cold`` also times whole processes, the way a user
runs one song: ``python -m drumtx transcribe`` on a 1-second, a 1-minute and a 10-minute
file (--cold-seconds), each run alternating with ``python -c "import torch"``, and
reports medians and each file's ratio to that import. Weights are random unless
--checkpoint is given: speed and memory do not depend on them. The numbers are only
comparable within one run, and other processes on the CPU slow every one of them; the
load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

import drumtx.inference
import drumtx.model
import drumtx.transcribe
from drumtx.amp import dtype_name
from drumtx.checkpoint import save_checkpoint
from drumtx.config import Config, load_config
from drumtx.drums import output_notes
from drumtx.inference import LoadedModel, class_thresholds, load_model
from drumtx.model import build_model, count_parameters, cpu_conv_dtype
from drumtx.transcribe import Job, Rendering, transcribe_job

FILE_RATE = 44100  # Hz: the WAVs are written as CD-rate stereo, as most songs are
STAGES = ("decode", "resample", "frontend", "model", "peaks", "beats")
SHIPPED_PRESET = "small"
TARGET_X_REAL_TIME = 25.0  # for the shipped preset on a 2-core CPU
RSS_LIMIT_BYTES = 2 << 30
GRU_WAYS = ("split", "pool")


# --- synthetic audio ---------------------------------------------------------------


def render_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """(N, 2) float32 drum audio at FILE_RATE: generated grooves on two synth kits."""
    from drumtx.make_dataset import generate_performances
    from drumtx.synth import SynthKit

    kits = [SynthKit(1), SynthKit(2)]
    parts, total = [], 0
    for i, perf in enumerate(generate_performances(64, seed=seed)):
        part = kits[i % 2].render(perf.notes, perf.duration_sec, FILE_RATE, seed=i)
        parts.append(part)
        total += len(part)
        if total >= seconds * FILE_RATE:
            break
    mono = np.concatenate(parts)[: round(seconds * FILE_RATE)]  # (N,)
    # Slightly different channels, so the mix-down does real work.
    return np.stack([mono, 0.9 * mono], axis=1).astype(np.float32)  # (N, 2)


def write_tiled(path: Path, clip: np.ndarray, seconds: float) -> Path:
    """A WAV of ``seconds`` made by repeating ``clip``, written block by block."""
    n_total = round(seconds * FILE_RATE)
    with sf.SoundFile(path, "w", FILE_RATE, clip.shape[1], subtype="PCM_16") as out:
        written = 0
        while written < n_total:
            block = clip[: n_total - written]
            out.write(block)
            written += len(block)
    return path


# --- timing --------------------------------------------------------------------------


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(STAGES, 0.0)
    )

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:  # on CPU the call has finished when it returns: no sync needed
                self.seconds[stage] += time.perf_counter() - start

        return timed


@contextlib.contextmanager
def gru_threads(how: str) -> Iterator[None]:
    """``split``: the GRU as transcribe runs it; ``pool``: on torch's whole pool."""
    if how not in GRU_WAYS:
        raise ValueError(f"--gru takes {' or '.join(GRU_WAYS)}, not {how!r}")
    saved = drumtx.model.splits_directions
    if how == "pool":
        drumtx.model.splits_directions = lambda gru, x: False  # type: ignore[assignment]
    try:
        yield
    finally:
        drumtx.model.splits_directions = saved


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` other processes spinning on the CPU for the block's duration."""
    spin = [sys.executable, "-c", "while True: pass"]
    procs = [subprocess.Popen(spin) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def instrumented(loaded: LoadedModel, times: StageTimes) -> Iterator[None]:
    """Route the stages that transcribe_job calls through timers, then restore them."""
    patches = [
        (drumtx.inference, "read_samples", "decode"),
        (drumtx.inference, "resample", "resample"),
        (drumtx.inference, "pick_onsets", "peaks"),
        (drumtx.transcribe, "beat_grid", "beats"),
    ]
    saved = [getattr(module, name) for module, name, _ in patches]
    frontend, model = loaded.frontend, loaded.model
    try:
        for (module, name, stage), fn in zip(patches, saved):
            setattr(module, name, times.wrap(stage, fn))
        loaded.frontend = times.wrap("frontend", frontend)  # type: ignore[assignment]
        loaded.model = times.wrap("model", model)  # type: ignore[assignment]
        yield
    finally:
        for (module, name, _), fn in zip(patches, saved):
            setattr(module, name, fn)
        loaded.frontend, loaded.model = frontend, model


def transcribe_once(loaded: LoadedModel, cfg: Config, wav: Path, out_dir: Path) -> dict:
    """One timed transcription: total and per-stage seconds, and the hit count."""
    job = Job(wav, out_dir / wav.stem)
    rendering = Rendering(
        thresholds=class_thresholds(loaded),
        notes=output_notes(loaded.vocab, cfg.transcribe.drum_map),
        velocity_fixed=None,
        formats=("mid",),
        note_sec=cfg.transcribe.note_sec,
    )
    times = StageTimes()
    with instrumented(loaded, times):
        start = time.perf_counter()
        transcribe_job(job, loaded, cfg, rendering)
        total_sec = time.perf_counter() - start
    if job.status != "done":
        raise RuntimeError(f"transcribing {wav} failed: {job.reason}")
    other_sec = total_sec - sum(times.seconds.values())
    return {"total": total_sec, **times.seconds, "other": other_sec, "hits": job.n_hits}


def bench_file(
    loaded: LoadedModel, cfg: Config, wav: Path, out_dir: Path, repeats: int
) -> dict[str, Any]:
    """Median of each time over ``repeats`` runs."""
    runs = [transcribe_once(loaded, cfg, wav, out_dir) for _ in range(repeats)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    duration_sec = sf.info(str(wav)).duration
    return {
        "audio_sec": duration_sec,
        "repeats": repeats,
        "x_real_time": duration_sec / median["total"],
        "seconds": {k: v for k, v in median.items() if k != "hits"},
        "hits": int(median["hits"]),
    }


# --- models and memory ---------------------------------------------------------------


def random_checkpoint(preset: str, out_dir: Path) -> Path:
    cfg = load_config(None, [f"model.preset='{preset}'"])
    torch.manual_seed(0)
    path = out_dir / f"random-{preset}.pt"
    model = build_model(cfg, 9)
    save_checkpoint(
        path, {"config": cfg.to_dict(), "vocab": "roland9", "model": model.state_dict()}
    )
    return path


def _wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def cold_starts(
    checkpoint: Path, wavs: list[Path], out_dir: Path, threads: int, repeats: int
) -> dict[str, Any]:
    """Medians of whole-process wall times: ``import torch`` and each transcription,
    interleaved run by run so that load on the machine hits them alike. One untimed
    round first: new processes, not a cold disk cache or uncompiled .pyc files, are
    what is timed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    import_torch = [sys.executable, "-c", "import torch"]
    commands = {wav.name: [sys.executable, "-m", "drumtx", "transcribe", str(wav),
                           "--checkpoint", str(checkpoint), "-d", "cpu",
                           "--no-progress", "--overwrite", "-o", str(out_dir)]
                for wav in wavs}  # fmt: skip
    _wall(import_torch, env)
    for command in list(commands.values())[:1]:
        _wall(command, env)
    runs: dict[str, list[float]] = {"import torch": []}
    for _ in range(repeats):
        runs["import torch"].append(_wall(import_torch, env))
        for wav in wavs:
            runs.setdefault(wav.name, []).append(_wall(commands[wav.name], env))
    torch_sec = statistics.median(runs["import torch"])
    rows = [{"file": "import torch", "audio_sec": 0.0, "wall_sec": torch_sec}]
    for wav in wavs:
        wall = statistics.median(runs[wav.name])
        audio_sec = sf.info(str(wav)).duration
        row = {"file": wav.name, "audio_sec": audio_sec, "wall_sec": wall}
        rows.append({**row, "vs_import_torch": wall / torch_sec})
    return {"threads": threads, "repeats": repeats, "rows": rows, "runs": runs}


def peak_rss(checkpoint: Path, wav: Path, out_dir: Path) -> dict[str, Any]:
    """Wall time and peak RSS of ``python -m drumtx transcribe`` in a child process."""
    args = ["transcribe", str(wav), "--checkpoint", str(checkpoint), "-d", "cpu"]
    args += ["--no-progress", "--overwrite", "-o", str(out_dir)]
    command = [sys.executable, "-m", "drumtx", *args]
    # stderr to a file, not a pipe: nobody reads a pipe until the child has exited.
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage only
        wall_sec = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{stderr}")
    audio_sec = sf.info(str(wav)).duration
    return {
        "audio_sec": audio_sec,
        "wall_sec": wall_sec,
        "x_real_time": audio_sec / wall_sec,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
    }


# --- report --------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "n_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        "conv_dtype": dtype_name(
            cpu_conv_dtype(load_config(None).transcribe.cpu_precision)
        ),
    }


def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    env = result["environment"]
    table = Table(
        title=f"drumtx transcribe on CPU ({env['n_cpus']} CPUs, {env['cpu']}, "
        f"{env['conv_dtype']} convolutions): median seconds per stage",
        caption=f"load average {' / '.join(f'{x:.1f}' for x in env['load_average'])} "
        f"(1/5/15 min) at start: other processes share these CPUs"
        + (f"; {env['busy']} busy-looping processes beside it" if env["busy"] else ""),
    )
    for column in (
        "model",
        "params",
        "threads",
        "GRU",
        "audio",
        "runs",
        "x real time",
        "total s",
        *STAGES,
        "other",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in result["rows"]:
        sec = row["seconds"]
        shares = [
            f"{sec[s]:.2f} ({100 * sec[s] / sec['total']:.0f}%)"
            for s in (*STAGES, "other")
        ]
        table.add_row(
            row["model"],
            f"{row['params'] / 1e6:.2f} M",
            str(row["threads"]),
            row["gru"],
            _duration(row["audio_sec"]),
            str(row["repeats"]),
            f"{row['x_real_time']:.1f}x",
            f"{sec['total']:.2f}",
            *shares,
        )
    console.print(table)
    if "cold" in result:
        print_cold(result["cold"], console)
    rss = result.get("rss")
    if rss:
        verdict = "ok" if rss["peak_rss_bytes"] < RSS_LIMIT_BYTES else "OVER 2 GiB"
        console.print(
            f"peak RSS, python -m drumtx transcribe, {rss['model']}, "
            f"{_duration(rss['audio_sec'])} file: "
            f"{rss['peak_rss_bytes'] / 2**20:.0f} MiB "
            f"({verdict}); {rss['wall_sec']:.1f} s wall = {rss['x_real_time']:.1f}x "
            "real time, process start and model load included"
        )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--presets",
        default="tiny,small,base",
        help="comma-separated presets, random weights (default: all three)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="benchmark this checkpoint instead (repeatable)",
    )
    p.add_argument(
        "--seconds",
        default="60,600",
        help="comma-separated file lengths in seconds (default: 60,600)",
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per file (median)")
    p.add_argument(
        "--repeat-max-sec",
        type=float,
        default=120.0,
        help="longer files run once (default: 120)",
    )
    p.add_argument(
        "--rss-minutes",
        type=float,
        default=60.0,
        help="file length for the peak-RSS run; 0 skips it (default: 60)",
    )
    p.add_argument(
        "--rss-preset",
        default=SHIPPED_PRESET,
        help="preset of that run, or the first --checkpoint's if given",
    )
    p.add_argument(
        "--work-dir", type=Path, help="keep the WAVs here (default: a temp dir)"
    )
    p.add_argument(
        "--threads",
        default=str(torch.get_num_threads()),
        help="comma-separated torch thread counts, one row each "
        "(default: torch's default, as transcribe runs)",
    )
    p.add_argument(
        "--gru",
        default="split",
        help="comma-separated: split (the GRU's directions on a thread each, as "
        "transcribe runs it), pool (on all --threads, as before); a row each "
        "(default: split)",
    )
    p.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="run N busy-looping processes beside the in-process timings, as a "
        "loaded machine would (default: 0)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="also time whole `drumtx transcribe` processes against `import torch`",
    )
    p.add_argument(
        "--cold-seconds",
        default="1,60,600",
        help="file lengths for --cold (default: 1,60,600)",
    )
    p.add_argument(
        "--cold-repeats", type=int, default=5, help="runs per file for --cold"
    )
    p.add_argument(
        "--json", type=Path, metavar="PATH", help="also write results as JSON"
    )
    return p


def print_cold(cold: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"whole process, cold: median of {cold['repeats']} runs, "
        f"{cold['threads']} threads (OMP_NUM_THREADS)"
    )
    for column in ("run", "audio", "wall s", "x import torch", "x real time"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in cold["rows"]:
        audio = row["audio_sec"]
        table.add_row(
            row["file"],
            _duration(audio) if audio else "-",
            f"{row['wall_sec']:.2f}",
            f"{row.get('vs_import_torch', 1.0):.2f}",
            f"{audio / row['wall_sec']:.1f}x" if audio else "-",
        )
    console.print(table)


def models_to_bench(args: argparse.Namespace, work_dir: Path) -> list[tuple[str, Path]]:
    if args.checkpoint:
        return [(str(path), path) for path in args.checkpoint]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    return [(f"{p} (random)", random_checkpoint(p, work_dir)) for p in presets]


def _repeats(args: argparse.Namespace, wav: Path) -> int:
    return args.repeats if sf.info(str(wav)).duration <= args.repeat_max_sec else 1


def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "environment": {**environment(), "busy": args.busy}, "rows": []
    }
    lengths_sec = [float(s) for s in args.seconds.split(",") if s.strip()]
    clip = render_clip(min(60.0, max(lengths_sec)))
    wavs = [write_tiled(work_dir / f"drums-{s:g}s.wav", clip, s) for s in lengths_sec]
    warmup = write_tiled(work_dir / "warmup.wav", clip, 5.0)
    cfg = load_config(None, ["transcribe.device='cpu'"])
    out_dir = work_dir / "out"
    models = models_to_bench(args, work_dir)
    threads = [int(n) for n in args.threads.split(",")]
    ways = [w.strip() for w in args.gru.split(",") if w.strip()]
    with busy_processes(args.busy):
        for name, checkpoint in models:
            loaded = load_model(checkpoint, cfg, torch.device("cpu"))
            for n_threads, way in itertools.product(threads, ways):
                torch.set_num_threads(n_threads)
                with gru_threads(way):
                    transcribe_once(loaded, cfg, warmup, out_dir)  # setup, untimed
                    for wav in wavs:
                        row = bench_file(loaded, cfg, wav, out_dir, _repeats(args, wav))
                        row.update(
                            model=name,
                            preset=loaded.cfg.model.preset,
                            threads=n_threads,
                            gru=way,
                            params=count_parameters(loaded.model),
                        )
                        result["rows"].append(row)
                        print(
                            f"{name}, {n_threads} threads, GRU {way}: "
                            f"{row['audio_sec']:g} s at "
                            f"{row['x_real_time']:.1f}x real time",
                            file=sys.stderr,
                        )
    if args.cold:
        result["cold"] = run_cold(args, work_dir, clip, models[0][1])
    if args.rss_minutes > 0:
        name, checkpoint = (
            models[0]
            if args.checkpoint
            else next(
                (m for m in models if m[0].startswith(args.rss_preset + " ")),
                (f"{args.rss_preset} (random)", None),
            )
        )
        checkpoint = checkpoint or random_checkpoint(args.rss_preset, work_dir)
        long_wav = write_tiled(work_dir / "drums-rss.wav", clip, 60 * args.rss_minutes)
        result["rss"] = {"model": name, **peak_rss(checkpoint, long_wav, out_dir)}
        long_wav.unlink()
    return result


def run_cold(
    args: argparse.Namespace, work_dir: Path, clip: np.ndarray, checkpoint: Path
) -> dict[str, Any]:
    lengths = [float(s) for s in args.cold_seconds.split(",") if s.strip()]
    wavs = [write_tiled(work_dir / f"cold-{s:g}s.wav", clip, s) for s in lengths]
    threads = int(args.threads.split(",")[0])
    return cold_starts(checkpoint, wavs, work_dir / "out", threads, args.cold_repeats)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.work_dir:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work_dir = args.work_dir
        else:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        result = run(args, work_dir)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
