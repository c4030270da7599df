"""``python -m drumtx doctor``: every storage, dataset and environment check,
one row each.

Each row is OK, WARN or FAIL with a detail and a hint. The exit code is 3 when any row
FAILs (a blocking problem), else 0. Nothing here writes under the raw E-GMD root; the
only writes are the create-and-remove probes in writable output roots.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from drumtx.checkpoint import choose_model, run_dirs
from drumtx.config import Config
from drumtx.console import Progress, make_console
from drumtx.errors import DataError, DrumtxError, StorageError
from drumtx.processed import (
    AUDIO_FILE,
    HITS_FILE,
    MANIFEST_FILE,
    PREPROCESS_HINT,
    RECORDINGS_FILE,
    manifest_mismatches,
    read_manifest,
    sha256_file,
    spread_indices,
)
from drumtx.storage import (
    GB,
    ROOT_KEYS,
    Roots,
    code_root,
    describe_key,
    device_kind,
    existing_ancestor,
    free_bytes,
    layout_warnings,
    require_roots,
    resolve_roots,
)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
EXIT_FAIL = 3
SPLITS = ("train", "validation", "test")
# The seed's footprint (docs/storage-architecture.md): dataset 90 GB, 444 audio-hours,
# checkpoints 5-10 GB. The processed store is sized from the configured sample rate.
EGMD_BYTES = 90 * GB
EGMD_HOURS = 444
EGMD_FULL_ROWS = 45_537
CHECKPOINT_BYTES = 10 * GB
EGMD_FORMAT = "44100 Hz, 1 ch, PCM_16"  # E-GMD: 44.1 kHz 16-bit mono WAV
SAMPLE_RECORDINGS = 20
OUTPUT_DIRS = {"checkpoint_dir": "checkpoints", "log_dir": "logs"}


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # OK | WARN | FAIL
    detail: str
    hint: str = ""


def run_doctor(
    cfg: Config,
    *,
    config_path: Path | None,
    deep: bool,
    as_json: bool,
    profile: str | None = None,
    overrides: str | None = None,
) -> int:
    """Run every check, print them (table, plain lines or JSON); 3 if any FAILs.
    ``profile`` and ``overrides`` (what a caller such as the demo set over the config)
    are named on the config row."""
    results = collect_checks(
        cfg, config_path=config_path, deep=deep, show_progress=not as_json
    )
    extra = [f"profile {profile}"] if profile else []
    if overrides:
        extra.append(overrides)
    if extra:
        first = results[0]
        results[0] = CheckResult(
            first.check, first.status, "; ".join([first.detail, *extra])
        )
    exit_code = EXIT_FAIL if any(r.status == FAIL for r in results) else 0
    if as_json:
        print_json(results, exit_code)
    else:
        print_report(results, exit_code)
    return exit_code


def collect_checks(
    cfg: Config, *, config_path: Path | None, deep: bool, show_progress: bool
) -> list[CheckResult]:
    roots = resolve_roots(cfg)
    results = [check_config(cfg, config_path), check_code_root(cfg)]
    data_row = guarded("data root", lambda: check_data_root(cfg, roots))
    results.append(data_row)
    # Roots below a missing data root are reported once, by the data root row.
    blocked = {
        name
        for name in ROOT_KEYS
        if data_row.status == FAIL and roots.data_root in roots.get(name).parents
    }
    processed = (
        [_skipped("processed store")]
        if "processed_dir" in blocked
        else check_processed(cfg, roots)
    )
    complete = all(r.status == OK for r in processed)
    if "egmd_dir" in blocked:
        results.append(_skipped("E-GMD"))
    else:
        results += check_egmd(roots, deep, show_progress, processed_complete=complete)
    results += processed
    for name, label in OUTPUT_DIRS.items():
        if name in blocked:
            results.append(_skipped(label))
        else:
            results.append(guarded(label, lambda n=name: check_output_dir(cfg, n)))
    results.append(check_transcribe_model(cfg))
    results += check_environment()
    results.append(guarded("backing tracks", lambda: check_backing(cfg)))
    return results


def guarded(check: str, func: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; a user-fixable error or an I/O error becomes a FAIL row."""
    try:
        return func()
    except DrumtxError as exc:
        return CheckResult(check, FAIL, exc.message, exc.hint or "")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return CheckResult(check, FAIL, f"{exc.strerror or exc}{where}")


def _skipped(check: str) -> CheckResult:
    return CheckResult(check, WARN, "not checked: the data root is missing")


# --- configuration and layout ---------------------------------------------------------


def check_config(cfg: Config, config_path: Path | None) -> CheckResult:
    source = str(config_path) if config_path else "no drumtx.toml found: defaults"
    env_root = os.environ.get("DRUMTX_DATA_ROOT")
    if env_root and Path(env_root).expanduser() == Path(cfg.storage.data_root):
        source += "; data_root from $DRUMTX_DATA_ROOT"
    detail = (
        f"{source}; vocab {cfg.data.vocab}, {cfg.audio.sample_rate} Hz, "
        f"model preset {cfg.model.preset}"
    )
    return CheckResult("config", OK, detail)


def check_code_root(cfg: Config) -> CheckResult:
    path = code_root()
    kind = device_kind(path)
    warnings = [w for w in layout_warnings(cfg) if w.startswith("code root")]
    if warnings:
        hint = "keep the checkout on the SSD and only storage.data_root on the HDD"
        return CheckResult("code root", WARN, warnings[0], hint)
    return CheckResult("code root", OK, f"{path} ({kind})")


def check_data_root(cfg: Config, roots: Roots) -> CheckResult:
    """Exists and readable (else FAIL), writable, device kind, free space."""
    require_roots(cfg, read=["data_root"])
    path = roots.data_root
    kind = device_kind(path)
    free = free_bytes(path)
    need = _bytes_still_needed(cfg, roots)
    detail = f"{path} ({kind}), {free / GB:.1f} GB free"
    if kind == "ssd":
        detail += " (on an SSD: fine, noted)"
    try:
        require_roots(cfg, write=["data_root"])
    except StorageError as exc:
        return CheckResult("data root", WARN, f"{detail}; read-only", exc.hint or "")
    if free < need:
        hint = (
            "fine for a small or demo root; for full E-GMD use a bigger disk "
            "(--data-root DIR or DRUMTX_DATA_ROOT=DIR)"
        )
        short = f"; short of the full-E-GMD footprint (~{need / GB:.0f} GB more)"
        return CheckResult("data root", WARN, detail + short, hint)
    return CheckResult("data root", OK, detail + ", writable")


def _bytes_still_needed(cfg: Config, roots: Roots) -> int:
    """The seed's footprint minus what is already there: dataset, store, checkpoints."""
    from drumtx.egmd import egmd_csv_path

    need = CHECKPOINT_BYTES
    if not egmd_csv_path(roots.egmd_dir).is_file():
        need += EGMD_BYTES
    if not (roots.processed_dir / "train" / MANIFEST_FILE).is_file():
        need += EGMD_HOURS * 3600 * cfg.audio.sample_rate * 2  # int16 mono
    return need


# --- E-GMD ----------------------------------------------------------------------------


def check_egmd(
    roots: Roots, deep: bool, show_progress: bool, *, processed_complete: bool
) -> list[CheckResult]:
    """The index CSV (columns, rows, splits) and a sample (or all) of its files."""
    from drumtx.egmd import egmd_csv_path, read_egmd_csv

    csv_path = egmd_csv_path(roots.egmd_dir)
    if not csv_path.is_file():
        # Without the raw dataset a complete store still trains; else nothing does.
        status = WARN if processed_complete else FAIL
        detail = f"{csv_path} not found (set by {describe_key('egmd_dir')})"
        hint = (
            f"download and extract E-GMD v1.0.0 into {roots.egmd_dir}, point "
            "--set storage.egmd_dir=DIR at it, or build a small one: python -m "
            "drumtx make-dataset DIR"
        )
        return [CheckResult("E-GMD index", status, detail, hint)]
    try:
        records = read_egmd_csv(csv_path)
    except DrumtxError as exc:
        return [CheckResult("E-GMD index", FAIL, exc.message, exc.hint or "")]
    rows = [_index_row(csv_path, records)]
    rows.append(check_egmd_files(roots.egmd_dir, records, deep, show_progress))
    return rows


def _index_row(csv_path: Path, records: Sequence) -> CheckResult:
    counts = Counter(r.split for r in records)
    splits = ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS)
    size = "full E-GMD v1.0.0" if len(records) == EGMD_FULL_ROWS else "a subset"
    detail = f"{csv_path}: {len(records)} rows ({size}): {splits}"
    empty = [s for s in SPLITS if not counts.get(s)]
    if empty:
        hint = "preprocess and train need train and validation recordings"
        return CheckResult("E-GMD index", WARN, f"{detail}; empty: {empty}", hint)
    return CheckResult("E-GMD index", OK, detail)


def check_egmd_files(
    egmd_dir: Path, records: Sequence, deep: bool, show_progress: bool
) -> CheckResult:
    """Referenced wav/midi files exist and decode; report the audio formats found."""
    limit = 0 if deep else SAMPLE_RECORDINGS
    chosen = [records[i] for i in spread_indices(len(records), limit)]
    formats: Counter[str] = Counter()
    problems: list[str] = []
    progress = Progress(
        make_console(stderr=True),
        "checking E-GMD files",
        len(chosen),
        unit="files",
        log_every_sec=None,
        transient=True,
        enabled=deep and show_progress,
    )
    with progress:
        for record in chosen:
            problem = _check_recording(egmd_dir, record, formats)
            if problem:
                problems.append(problem)
            progress.advance()
    scope = "all" if deep else "sample of"
    detail = f"{len(chosen)} ({scope} {len(records)}) recordings: " + ", ".join(
        f"{fmt} x{n}" for fmt, n in formats.most_common()
    )
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        hint = "re-extract E-GMD (or re-run make-dataset); preprocess skips such files"
        return CheckResult(
            "E-GMD files", FAIL, f"{len(problems)} bad of {detail}: {shown}", hint
        )
    if set(formats) - {EGMD_FORMAT}:
        hint = f"E-GMD is {EGMD_FORMAT}; preprocess resamples and downmixes any input"
        return CheckResult("E-GMD files", WARN, detail, hint)
    return CheckResult("E-GMD files", OK, detail + " (midi decodes)")


def _check_recording(egmd_dir: Path, record, formats: Counter[str]) -> str | None:
    """None when the recording's audio and MIDI decode; else what is wrong."""
    from drumtx.audio import audio_info, read_samples
    from drumtx.midi import read_notes

    try:
        info = audio_info(egmd_dir / record.audio_filename)
        read_samples(egmd_dir / record.audio_filename, 0, info.n_samples)
        read_notes(egmd_dir / record.midi_filename)
    except DrumtxError as exc:
        return exc.message
    except OSError as exc:  # e.g. EIO from a failing disk: report it, check the rest
        return f"{exc.filename or record.audio_filename}: {exc.strerror or exc}"
    formats[f"{info.sample_rate} Hz, {info.channels} ch, {info.subtype}"] += 1
    return None


# --- processed store ------------------------------------------------------------------


def check_processed(cfg: Config, roots: Roots) -> list[CheckResult]:
    from drumtx.egmd import egmd_csv_path

    csv_path = egmd_csv_path(roots.egmd_dir)
    csv_sha = sha256_file(csv_path) if csv_path.is_file() else None
    return [
        guarded(
            f"processed {split}",
            lambda split=split: check_split(cfg, roots.processed_dir / split, csv_sha),
        )
        for split in SPLITS
    ]


def check_split(cfg: Config, split_dir: Path, csv_sha: str | None) -> CheckResult:
    """manifest.json present and matching the config; counts of recordings and hits."""
    check = f"processed {split_dir.name}"
    hint = f"{PREPROCESS_HINT} --split {split_dir.name}"
    try:
        manifest = read_manifest(split_dir)
    except DataError as exc:
        return CheckResult(check, FAIL, exc.message, hint)
    if manifest is None:
        state = "incomplete (no manifest.json)" if split_dir.is_dir() else "not built"
        return CheckResult(check, WARN, f"{split_dir}: {state}", hint)
    mismatches = [
        f"{key} {found!r}, config wants {wanted!r}"
        for key, found, wanted in manifest_mismatches(manifest, cfg)
    ]
    if mismatches:
        detail = (
            f"{split_dir / MANIFEST_FILE} does not match the config: "
            f"{'; '.join(mismatches)}"
        )
        return CheckResult(check, FAIL, detail, hint + " (rebuilds it for this config)")
    tracks = list(manifest.get("tracks") or [])
    data_files = (AUDIO_FILE, RECORDINGS_FILE, HITS_FILE, *(f"{t}.i16" for t in tracks))
    missing = [n for n in data_files if not (split_dir / n).is_file()]
    if missing:
        return CheckResult(check, FAIL, f"{split_dir}: missing {missing}", hint)
    n_bytes = 2 * int(manifest.get("n_samples", -1))
    wrong = [
        n for n in data_files
        if n.endswith(".i16")
        and n_bytes >= 0
        and (split_dir / n).stat().st_size != n_bytes
    ]  # fmt: skip
    if wrong:
        return CheckResult(
            check,
            FAIL,
            f"{split_dir}: {wrong} not the manifest's {n_bytes} bytes",
            hint,
        )
    backing = "backing tracks" if "backing" in tracks else "no backing tracks"
    detail = (
        f"{split_dir}: {manifest.get('n_recordings')} recordings, "
        f"{manifest.get('n_hits')} hits, {len(manifest.get('skipped') or [])} skipped, "
        f"{backing}"
    )
    if csv_sha and manifest.get("source_csv_sha256") not in (None, csv_sha):
        return CheckResult(
            check, WARN, detail + "; built from a different E-GMD CSV", hint
        )
    if cfg.backing.enabled and "backing" not in tracks:
        return CheckResult(
            check,
            WARN,
            detail + " (backing.enabled is true: models trained on it "
            "hear drums alone)",
            hint + " (adds them)",
        )
    return CheckResult(check, OK, detail)


# --- checkpoints and logs -------------------------------------------------------------


def check_output_dir(cfg: Config, name: str) -> CheckResult:
    """checkpoint_dir or log_dir: writable (or creatable), and its newest run."""
    check = OUTPUT_DIRS[name]
    path = resolve_roots(cfg).get(name)
    if not path.exists():
        parent = existing_ancestor(path)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return CheckResult(check, OK, f"{path}: not yet made (creatable)")
        return CheckResult(
            check,
            FAIL,
            f"{path} is missing and {parent} is not writable "
            f"(set by {ROOT_KEYS[name]})",
            f"mkdir -p {path}, or --set {ROOT_KEYS[name]}=DIR",
        )
    require_roots(cfg, write=[name])
    return CheckResult(check, OK, f"{path}: writable; {_newest_run(path, name)}")


def _newest_run(path: Path, name: str) -> str:
    runs = run_dirs(path)
    if not runs:
        return "no runs yet"
    newest = runs[-1]
    text = f"{len(runs)} run(s), newest {newest.name!r}"
    if name == "checkpoint_dir":
        have = [n for n in ("best.pt", "last.pt") if (newest / n).is_file()]
        text += f" ({', '.join(have) if have else 'no best.pt/last.pt'})"
    return text


def check_transcribe_model(cfg: Config) -> CheckResult:
    """The model ``transcribe`` uses without --checkpoint, and why; WARN where none.

    A WARN, not a FAIL: training, evaluating and preprocessing do not need it.
    """
    check = "transcribe model"
    try:
        choice = choose_model(cfg, None)
    except DrumtxError as exc:
        return CheckResult(check, WARN, exc.message, exc.hint or "")
    except OSError as exc:
        return CheckResult(check, WARN, f"{exc.strerror or exc} ({exc.filename})")
    detail = f"{choice.path}: {choice.reason}"
    if not choice.path.is_file():
        hint = (
            "set transcribe.checkpoint to a model that exists "
            "(transcribe --list-models)"
        )
        return CheckResult(check, WARN, f"{detail}; no such file", hint)
    return CheckResult(check, OK, detail)


# --- environment ----------------------------------------------------------------------


def check_environment() -> list[CheckResult]:
    return [
        check_python(),
        *check_torch(),
        check_libsndfile(),
        check_import("tensorboard", "training logs"),
        check_import("mir_eval", "evaluation metrics"),
    ]


def check_python() -> CheckResult:
    version = platform.python_version()
    detail = f"{version} ({sys.executable})"
    return CheckResult("python", OK, detail)


def check_torch() -> list[CheckResult]:
    try:
        import torch
    except ImportError as exc:
        return [
            CheckResult("torch", FAIL, f"not importable: {exc}", "pip install torch")
        ]
    rows = [CheckResult("torch", OK, f"{torch.__version__}")]
    if not torch.cuda.is_available():
        hint = "train the tiny preset on CPU (--profile quick); base wants a GPU"
        rows.append(CheckResult("CUDA", WARN, "not available (CPU only)", hint))
        return rows
    name = torch.cuda.get_device_name(0)
    bf16 = "yes" if torch.cuda.is_bf16_supported() else "no (fp16 + GradScaler)"
    detail = (
        f"{name} (CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s)); "
        f"bf16: {bf16}"
    )
    rows.append(CheckResult("CUDA", OK, detail))
    return rows


def check_libsndfile() -> CheckResult:
    from drumtx.audio import libsndfile_info

    info = libsndfile_info()
    detail = (
        f"libsndfile {info['libsndfile_version']} (soundfile "
        f"{info['soundfile_version']}); mp3: {'yes' if info['mp3'] else 'no'}"
    )
    if not info["mp3"]:
        hint = "mp3 input needs libsndfile >= 1.1 (pip install -U soundfile)"
        return CheckResult("libsndfile", WARN, detail, hint)
    return CheckResult("libsndfile", OK, detail)


def check_import(module: str, purpose: str) -> CheckResult:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return CheckResult(
            module, FAIL, f"not importable ({purpose}): {exc}", f"pip install {module}"
        )
    return CheckResult(module, OK, str(getattr(mod, "__version__", "installed")))


def check_backing(cfg: Config) -> CheckResult:
    """What preprocess renders backing tracks with: SoundFonts through FluidSynth, or
    drumtx's own instruments alone; reserved evaluation SoundFonts are left out."""
    from drumtx.synth.backing import BackingSpec
    from drumtx.synth.soundfont import SOUNDFONT_DIRS, fluidsynth_available, is_reserved

    check = "backing tracks"
    b = cfg.backing
    if not b.enabled:
        return CheckResult(check, OK, "off (backing.enabled = false): drums alone")
    try:
        spec = BackingSpec.from_settings(
            b.soundfonts, b.songs_dir, b.song_prob, b.seed, b.own_prob
        )
    except DrumtxError as exc:
        return CheckResult(check, FAIL, exc.message, exc.hint)
    reserved = sorted(
        p.name
        for d in SOUNDFONT_DIRS
        if d.is_dir()
        for p in d.iterdir()
        if is_reserved(p)
    )
    fonts = ", ".join(Path(p).name for p in spec.soundfonts) or "none"
    detail = f"SoundFonts: {fonts}; songs: {len(spec.songs)}; own instruments"
    if reserved:
        detail += f"; reserved for evaluation, never used: {', '.join(reserved)}"
    if not spec.soundfonts and b.soundfonts == "auto":
        why = (
            "FluidSynth is not installed"
            if not fluidsynth_available()
            else ("no General MIDI SoundFont is installed")
        )
        hint = (
            "apt-get install libfluidsynth3 timgm6mb-soundfont opl3-soundfont "
            "&& pip install -e '.[render]'"
        )
        return CheckResult(check, WARN, f"{detail} ({why})", hint)
    return CheckResult(check, OK, detail)


# --- output ---------------------------------------------------------------------------


def overall_status(results: Sequence[CheckResult]) -> str:
    statuses = {r.status for r in results}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


STORAGE_ROWS = ("data root", "E-GMD", "processed store", "checkpoints", "logs")


def transcribe_ready(results: Sequence[CheckResult]) -> bool:
    """Whether ``transcribe`` can run: it needs its model and the environment, none
    of the storage roots that preprocess, train and evaluate need."""
    return all(r.status != FAIL for r in results if r.check not in STORAGE_ROWS)


def print_json(results: Sequence[CheckResult], exit_code: int) -> None:
    payload = {
        "status": overall_status(results),
        "exit_code": exit_code,
        "transcribe_ready": transcribe_ready(results),
        "checks": [asdict(r) for r in results],
    }
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def summary_line(results: Sequence[CheckResult], exit_code: int) -> str:
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in (OK, WARN, FAIL))
    line = f"doctor: {parts} (exit {exit_code})"
    if exit_code and transcribe_ready(results):
        line += (
            "\ntranscribe is ready: only the storage checks fail, and they are for "
            "preprocess, train and evaluate"
        )
    return line


def print_report(results: Sequence[CheckResult], exit_code: int) -> None:
    """A rich table on a terminal; plain aligned lines when piped."""
    console = make_console()
    if not console.is_terminal:
        sys.stdout.write(
            format_plain(results) + summary_line(results, exit_code) + "\n"
        )
        return
    console.print(_rich_table(results))
    console.print(summary_line(results, exit_code))


def format_plain(results: Sequence[CheckResult]) -> str:
    width = max(len(r.check) for r in results)
    indent = " " * (4 + 2 + width + 2)
    lines = []
    for r in results:
        lines.append(f"{r.status:<4}  {r.check:<{width}}  {r.detail}")
        if r.hint and r.status != OK:
            lines.append(f"{indent}hint: {r.hint}")
    return "\n".join(lines) + "\n"


def _rich_table(results: Sequence[CheckResult]):
    from rich.markup import escape
    from rich.table import Table

    colours = {OK: "green", WARN: "yellow", FAIL: "bold red"}
    table = Table(title="drumtx doctor", show_lines=False)
    for column in ("check", "status", "detail", "hint"):
        table.add_column(column, overflow="fold")
    for r in results:
        status = f"[{colours[r.status]}]{r.status}[/]"
        table.add_row(escape(r.check), status, escape(r.detail), escape(r.hint))
    return table
