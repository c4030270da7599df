"""``drumtx transcribe``: drum audio files -> ``<stem>.drums.mid`` (and .csv / .json).

Every input is planned before any work: outputs that two inputs would share fail the
whole run at once, and outputs that exist are never replaced unless asked. One failed
input does not stop the others; the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from drumtx.audio import AUDIO_EXTENSIONS
from drumtx.config import Config
from drumtx.errors import ConfigError, DrumtxError, StorageError

FORMATS = ("mid", "csv", "json")
SHIPPED_MODELS_DIR = Path(__file__).parent / "models"


@dataclass
class Job:
    """One input and the output files it will write (base path without extension)."""

    input_path: Path
    out_base: Path | None = None
    status: str = "pending"  # pending | done | skipped | failed
    reason: str = ""
    n_hits: int = 0
    outputs: list[Path] = field(default_factory=list)

    def out_path(self, fmt: str) -> Path:
        assert self.out_base is not None
        return self.out_base.with_name(self.out_base.name + f".drums.{fmt}")


def run_transcribe(cfg: Config, args: argparse.Namespace) -> int:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.list_models:
        return list_models(cfg)
    cfg = apply_cli_options(cfg, args)
    formats = parse_formats(cfg.transcribe.formats)
    velocity_fixed = parse_velocity(cfg.transcribe.velocity)
    overrides, global_threshold = parse_thresholds(args.threshold)
    if not args.inputs:
        raise ConfigError(
            "no input given",
            hint="python -m drumtx transcribe song.wav [more files or dirs]",
        )
    jobs = plan_jobs(args.inputs, args.out_dir, args.recursive)
    refuse_raw_outputs(cfg, jobs)
    check_outputs(
        jobs, formats, overwrite=args.overwrite, skip_existing=args.skip_existing
    )

    import torch

    from drumtx.drums import output_notes
    from drumtx.inference import class_thresholds, load_model, resolve_device

    device = resolve_device(cfg.transcribe.device)
    checkpoint = find_model(cfg, args.checkpoint)
    loaded = load_model(checkpoint, cfg, device)
    notes = output_notes(loaded.vocab, cfg.transcribe.drum_map)
    if global_threshold is not None:
        overrides = {**{c: global_threshold for c in loaded.vocab.codes}, **overrides}
    thresholds = class_thresholds(loaded, overrides)
    dtype = (
        "bf16/fp16 autocast"
        if device.type == "cuda"
        else str(torch.get_default_dtype())
    )
    console.print(
        f"model: {escape(str(checkpoint))} ({loaded.cfg.model.preset}, "
        f"{loaded.vocab.name})  device: {device}  dtype: {dtype}"
    )
    todo = [j for j in jobs if j.status == "pending"]
    show = not args.no_progress and console.is_terminal and not args.json
    with _progress(console, len(todo), show) as advance:
        for job in todo:
            transcribe_job(job, loaded, cfg, thresholds, notes, velocity_fixed, formats)
            for path in job.outputs:
                console.print(f"wrote {escape(str(path))}")
            if job.status == "failed":
                console.print(
                    f"[red]failed[/] {escape(str(job.input_path))}: "
                    f"{escape(job.reason)}"
                )
            advance()
    return report(jobs, console, as_json=args.json)


def apply_cli_options(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold transcribe's flags into the [transcribe] table, validated like the TOML."""
    changes = {
        "device": args.device,
        "segment_sec": args.segment,
        "overlap_sec": args.overlap,
        "batch_size": args.batch_size,
        "drum_map": args.drum_map,
        "velocity": args.velocity,
        "formats": args.formats,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    section = dataclasses.replace(cfg.transcribe, **changes)
    return dataclasses.replace(cfg, transcribe=section)


def parse_formats(text: str) -> tuple[str, ...]:
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    if names == ["all"]:
        return FORMATS
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ConfigError(
            f"unknown output format {', '.join(bad) or repr(text)}",
            hint="use -f mid, -f mid,csv,json or -f all",
        )
    return tuple(dict.fromkeys(names))


def parse_velocity(text: str) -> int | None:
    """None = predicted velocity; an int = every note at that velocity."""
    if text == "predicted":
        return None
    kind, _, number = text.partition(":")
    if kind == "fixed" and number.isdigit() and 1 <= int(number) <= 127:
        return int(number)
    raise ConfigError(
        f"--velocity {text!r} is not understood",
        hint="use predicted or fixed:N, N in 1..127",
    )


def parse_thresholds(items: list[str]) -> tuple[dict[str, float], float | None]:
    """``--threshold 0.4`` (all classes) and ``--threshold KD=0.3`` (one class)."""
    per_class: dict[str, float] = {}
    global_value = None
    for item in items:
        code, sep, value = item.partition("=")
        text = value if sep else code
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            raise ConfigError(
                f"--threshold {item!r}: expected a probability in 0..1",
                hint="e.g. --threshold 0.4 or --threshold KD=0.3",
            )
        if sep:
            per_class[code.strip().upper()] = number
        else:
            global_value = number
    return per_class, global_value


def plan_jobs(inputs: list[Path], out_dir: Path | None, recursive: bool) -> list[Job]:
    """Expand folders; a missing or unsupported input becomes a failed job, not a crash."""
    jobs: list[Job] = []
    for given in inputs:
        if given.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                p
                for p in given.glob(pattern)
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
            )
            for path in found:
                rel = path.relative_to(given).with_suffix("")
                base = (out_dir / rel) if out_dir else path.with_suffix("")
                jobs.append(Job(path, base))
            continue
        job = Job(given)
        if not given.exists():
            job.status, job.reason = "failed", "no such file or directory"
        elif given.suffix.lower() not in AUDIO_EXTENSIONS:
            job.status = "failed"
            job.reason = (
                f"unsupported extension {given.suffix or '(none)'!r}; "
                f"expected one of {', '.join(AUDIO_EXTENSIONS)}"
            )
        else:
            stem = given.with_suffix("").name
            job.out_base = (out_dir / stem) if out_dir else given.with_suffix("")
        jobs.append(job)
    return jobs


def refuse_raw_outputs(cfg: Config, jobs: list[Job]) -> None:
    """Before any work: no output may land inside the raw E-GMD root (it is read-only)."""
    from drumtx.storage import check_not_raw, resolve_roots

    roots = resolve_roots(cfg)
    for job in jobs:
        if job.out_base is None:
            continue
        try:
            check_not_raw(job.out_base, roots)
        except StorageError as exc:
            raise StorageError(
                exc.message, hint="write the outputs elsewhere with -o DIR"
            ) from None


def check_outputs(
    jobs: list[Job], formats: tuple[str, ...], *, overwrite: bool, skip_existing: bool
) -> None:
    """Fail before any work if two inputs share an output; handle existing outputs."""
    owners: dict[Path, Path] = {}
    for job in jobs:
        if job.out_base is None:
            continue
        for fmt in formats:
            target = job.out_path(fmt).resolve()
            if target in owners:
                raise ConfigError(
                    f"{owners[target]} and {job.input_path} would both write {target}",
                    hint="give them different names or folders, or use -o with -r",
                )
            owners[target] = job.input_path
        existing = [job.out_path(f) for f in formats if job.out_path(f).exists()]
        if existing and not overwrite:
            if skip_existing:
                job.status, job.reason = "skipped", "output exists"
            else:
                job.status = "failed"
                job.reason = (
                    f"{existing[0]} exists (use --overwrite or --skip-existing)"
                )


def find_model(cfg: Config, checkpoint: Path | None) -> Path:
    """--checkpoint, else best.pt of the newest run, else the model shipped with drumtx."""
    if checkpoint is not None:
        return checkpoint
    from drumtx.checkpoint import newest_run
    from drumtx.storage import resolve_roots

    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    if checkpoint_dir.is_dir():
        best = newest_run(checkpoint_dir)
        if best is not None:
            return best
    shipped = SHIPPED_MODELS_DIR / "default.pt"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no model found: no --checkpoint, no trained run under {checkpoint_dir}, "
        "and no model shipped with this install",
        hint="train one: python -m drumtx demo (CPU, minutes), or "
        "python -m drumtx preprocess && python -m drumtx train",
    )


def transcribe_job(
    job, loaded, cfg, thresholds, notes, velocity_fixed, formats
) -> None:
    from drumtx.decode import pick_onsets
    from drumtx.inference import predict_activations, stream_file

    t = cfg.transcribe
    try:
        n_samples, chunks = stream_file(job.input_path, loaded.cfg.audio.sample_rate)
        onset, velocity = predict_activations(
            loaded,
            chunks,
            n_samples,
            segment_sec=t.segment_sec,
            overlap_sec=t.overlap_sec,
            batch_size=t.batch_size,
        )
        hits = pick_onsets(
            onset,
            velocity,
            loaded.cfg.frontend.fps,
            thresholds,
            loaded.cfg.decode.min_gap_sec,
        )
        if velocity_fixed is not None:
            hits = [dataclasses.replace(h, velocity=velocity_fixed) for h in hits]
        job.outputs = write_outputs(job, hits, loaded.vocab, notes, t.note_sec, formats)
        job.status, job.n_hits = "done", len(hits)
    except DrumtxError as exc:
        job.status, job.reason = "failed", exc.message
    except OSError as exc:
        job.status, job.reason = (
            "failed",
            f"{exc.strerror or exc} ({exc.filename or ''})",
        )
    except (RuntimeError, MemoryError) as exc:  # e.g. out of memory on one huge file
        job.status, job.reason = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"


def write_outputs(job, hits, vocab, notes, note_sec, formats) -> list[Path]:
    from drumtx.midi import Note, write_midi
    from drumtx.storage import atomic_write_text

    assert job.out_base is not None
    job.out_base.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "time_sec": round(h.time_sec, 6),
            "class": vocab.codes[h.cls],
            "note": notes[h.cls],
            "velocity": h.velocity,
        }
        for h in hits
    ]
    written = []
    for fmt in formats:
        path = job.out_path(fmt)
        if fmt == "mid":
            midi_notes = [Note(r["time_sec"], r["note"], r["velocity"]) for r in rows]
            write_midi(path, midi_notes, note_sec=note_sec)
        elif fmt == "csv":
            lines = ["time_sec,class,note,velocity"]
            lines += [
                f"{r['time_sec']:.6f},{r['class']},{r['note']},{r['velocity']}"
                for r in rows
            ]
            atomic_write_text(path, "\n".join(lines) + "\n")
        else:
            atomic_write_text(path, json.dumps({"hits": rows}, indent=1) + "\n")
        written.append(path)
    return written


def report(jobs: list[Job], console: Console, *, as_json: bool) -> int:
    done = [j for j in jobs if j.status == "done"]
    skipped = [j for j in jobs if j.status == "skipped"]
    failed = [j for j in jobs if j.status == "failed"]
    console.print(
        f"transcribed {len(done)}, skipped {len(skipped)}, failed {len(failed)}"
    )
    for job in skipped + failed:
        console.print(
            f"  {job.status}: {escape(str(job.input_path))}: {escape(job.reason)}"
        )
    if as_json:
        print(
            json.dumps(
                {
                    "transcribed": len(done),
                    "skipped": len(skipped),
                    "failed": len(failed),
                    "inputs": [
                        {
                            "input": str(j.input_path),
                            "status": j.status,
                            "reason": j.reason,
                            "hits": j.n_hits,
                            "outputs": [str(p) for p in j.outputs],
                        }
                        for j in jobs
                    ],
                },
                indent=1,
            )
        )
    return 1 if failed else 0


def list_models(cfg: Config) -> int:
    """Shipped models and trained runs' best.pt files."""
    from drumtx.storage import resolve_roots

    shipped = sorted(SHIPPED_MODELS_DIR.glob("*.pt"))
    print("shipped with drumtx:")
    for path in shipped:
        card = path.with_suffix(".json")
        about = json.loads(card.read_text()).get("summary", "") if card.exists() else ""
        print(f"  {path}  {about}")
    if not shipped:
        print("  (none)")
    checkpoint_dir = resolve_roots(cfg).checkpoint_dir
    runs = sorted(checkpoint_dir.glob("*/best.pt")) if checkpoint_dir.is_dir() else []
    print(f"trained runs under {checkpoint_dir}:")
    for path in runs:
        print(f"  {path}")
    if not runs:
        print("  (none)")
    return 0


class _progress:
    """A rich bar over inputs when on a terminal; a no-op otherwise."""

    def __init__(self, console: Console, total: int, enabled: bool):
        self.console, self.total, self.enabled = console, total, enabled
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress

            self.bar = Progress(console=self.console, transient=True)
            self.task = self.bar.add_task("transcribing", total=self.total)
            self.bar.start()
        return self.advance

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
