"""preprocess: layout, round trip, determinism, resume after SIGKILL, skips, raw root.

The fixture writes a tiny E-GMD-shaped root: 44.1 kHz 16-bit mono WAVs of clicks at
known times, type 0 MIDI files with TD-17 pitches (22, 26 and 58 included) on the tick
grid, and the index CSV.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from drumtx import preprocess
from drumtx.cli import main
from drumtx.config import load_config
from drumtx.drums import ROLAND9
from drumtx.egmd import EgmdRecord, egmd_csv_path, write_egmd_csv
from drumtx.errors import DataError, StorageError
from drumtx.preprocess import run_preprocess, select_records
from drumtx.processed import (
    HITS_DTYPE,
    STORE_FILES,
    load_store,
    recording_audio,
    recording_hits,
)

FILE_RATE = 44100
TICKS_PER_SEC = 960  # 480 ticks per beat at 120 BPM
# TD-17 pitches, edge and rim notes included; 39 is outside roland9 and must be dropped.
PITCHES = (36, 38, 42, 22, 46, 26, 43, 58, 47, 50, 49, 51, 37, 44, 39)
DURATION_SEC = 2.5
SPLIT_SIZES = {"train": 6, "validation": 2, "test": 2}


# --- fixture: a tiny E-GMD root -------------------------------------------------------


def _hit_plan(index: int) -> list[tuple[int, int, int]]:
    """(tick, pitch, velocity) of recording ``index``: 13 notes, two on one tick."""
    notes = []
    for k in range(12):
        tick = 200 + k * 170 + 7 * (index % 20)
        notes.append(
            (tick, PITCHES[(k + index) % len(PITCHES)], 20 + (9 * k + index) % 100)
        )
    notes.append((notes[3][0], 36, 99))  # a chord: kick under another note
    return sorted(notes)


def _write_midi(path: Path, notes: list[tuple[int, int, int]]) -> None:
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    events = []
    for tick, pitch, velocity in notes:
        events.append((tick, 1, pitch, velocity))
        events.append((tick + 30, 0, pitch, 0))
    last = 0
    for tick, on, pitch, velocity in sorted(events):
        kind = "note_on" if on else "note_off"
        track.append(
            mido.Message(
                kind, channel=9, note=pitch, velocity=velocity, time=tick - last
            )
        )
        last = tick
    midi_file = mido.MidiFile(type=0, ticks_per_beat=480)
    midi_file.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi_file.save(path)


def _write_clicks(path: Path, ticks: list[int], duration_sec: float) -> None:
    """A decaying click at each tick: the peak sits on the onset sample."""
    samples = np.zeros(int(duration_sec * FILE_RATE), dtype=np.float32)
    decay = 0.8 * np.exp(-np.arange(200) / 20.0).astype(np.float32)
    for tick in ticks:
        start = round(tick / TICKS_PER_SEC * FILE_RATE)
        end = min(len(samples), start + len(decay))
        samples[start:end] += decay[: end - start]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, FILE_RATE, subtype="PCM_16")


def _record(index: int, split: str) -> EgmdRecord:
    drummer, session = f"drummer{index % 3 + 1}", f"session{index % 2 + 1}"
    stem = f"{drummer}/{session}/{index + 1}_rock_120_beat_4-4_{index % 4 + 1}"
    return EgmdRecord(
        drummer=drummer,
        session=f"{drummer}/{session}",
        id=f"{drummer}/{session}/{index + 1}",
        style="rock",
        bpm=120,
        beat_type="beat",
        time_signature="4-4",
        duration=DURATION_SEC,
        split=split,
        midi_filename=stem + ".midi",
        audio_filename=stem + ".wav",
        kit_name=f"Kit {index % 4 + 1}",
    )


def make_egmd(data_root: Path, sizes: dict[str, int] = SPLIT_SIZES) -> Path:
    egmd_dir = data_root / "e-gmd-v1.0.0"
    records, index = [], 0
    for split, n in sizes.items():
        for _ in range(n):
            record = _record(index, split)
            notes = _hit_plan(index)
            _write_midi(egmd_dir / record.midi_filename, notes)
            _write_clicks(
                egmd_dir / record.audio_filename, [t for t, _, _ in notes], DURATION_SEC
            )
            records.append(record)
            index += 1
    write_egmd_csv(egmd_csv_path(egmd_dir), records)
    return egmd_dir


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_egmd(root)
    return root


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"  # built-in defaults, whatever drumtx.toml says
    path.write_text("")
    return path


def _cfg(tmp_path: Path, data_root: Path, out: Path | None = None, *extra: str):
    overrides = [f"storage.data_root='{data_root}'", *extra]
    if out is not None:
        overrides.append(f"storage.processed_dir='{out}'")
    return load_config(_config_file(tmp_path), overrides)


def _main_args(tmp_path: Path, data_root: Path, *extra: str) -> list[str]:
    """``drumtx preprocess`` arguments: default config, one worker."""
    config = str(_config_file(tmp_path))
    common = ["--config", config, "--data-root", str(data_root), "--workers", "1"]
    return ["preprocess", *common, *extra]


def _run(cfg, **kwargs) -> int:
    kwargs.setdefault("splits", ("train", "validation", "test"))
    kwargs.setdefault("limit", None)
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("allow_skips", False)
    return run_preprocess(cfg, **kwargs)


def _checksums(processed: Path) -> dict[str, str]:
    return {
        str(p.relative_to(processed)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(processed.rglob("*"))
        if p.is_file()
    }


# --- layout and round trip ------------------------------------------------------------


def test_store_layout_and_dtypes(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg) == 0
    processed = data_root / "processed_data"
    for split, n in SPLIT_SIZES.items():
        split_dir = processed / split
        files = sorted(p.name for p in split_dir.iterdir())
        assert files == sorted([*STORE_FILES, "backing.i16"])  # [backing] is on
        manifest = json.loads((split_dir / "manifest.json").read_text())
        assert manifest["format_version"] == 2 and manifest["tracks"] == ["backing"]
        n_bytes = (split_dir / "audio.i16").stat().st_size
        assert (split_dir / "backing.i16").stat().st_size == n_bytes
        assert manifest["sample_rate"] == 24000 and manifest["vocab"] == "roland9"
        assert manifest["n_recordings"] == n and manifest["skipped"] == []
        assert (
            manifest["source_csv_sha256"]
            == hashlib.sha256(
                egmd_csv_path(data_root / "e-gmd-v1.0.0").read_bytes()
            ).hexdigest()
        )
        hits = np.load(split_dir / "hits.npy")
        assert hits.dtype == HITS_DTYPE and len(hits) == manifest["n_hits"]
        order = np.lexsort((hits["sample"], hits["recording"]))
        assert (order == np.arange(len(hits))).all()  # sorted by recording, then sample
        recordings = json.loads((split_dir / "recordings.json").read_text())
        assert [r["split"] for r in recordings] == [split] * n
        ends = [r["offset"] + r["length"] for r in recordings]
        assert [r["offset"] for r in recordings] == [0, *ends[:-1]]
        assert (split_dir / "audio.i16").stat().st_size == 2 * ends[-1]
        assert recordings[0]["length"] == round(DURATION_SEC * 24000)
        assert set(recordings[0]) >= {
            "audio_path",
            "midi_path",
            "offset",
            "length",
            "split",
            "kit",
            "style",
            "duration_sec",
            "drummer",
            "id",
        }


def test_round_trip_hits_and_clicks(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg, splits=["train"]) == 0
    store = load_store(data_root / "processed_data" / "train", cfg)
    assert isinstance(store.audio, np.memmap)
    for i, rec in enumerate(store.recordings):
        index = int(rec["id"].rsplit("/", 1)[1]) - 1
        expected = [(t, p, v) for t, p, v in _hit_plan(index) if p != 39]
        got = recording_hits(store, i)
        assert len(got) == len(expected)
        got_sorted = sorted(
            zip(got["sample"], got["pitch"], got["velocity"], got["class"])
        )
        for (tick, pitch, velocity), (sample, g_pitch, g_vel, g_cls) in zip(
            sorted(expected, key=lambda e: (round(e[0] / TICKS_PER_SEC * 24000), e[1])),
            got_sorted,
        ):
            assert abs(sample / 24000 - tick / TICKS_PER_SEC) <= 0.001
            assert (g_pitch, g_vel) == (pitch, velocity)
            assert g_cls == ROLAND9.class_of_pitch(pitch)
        samples = recording_audio(store, i).astype(np.float32)
        for sample in np.unique(got["sample"]):  # the click peaks on its onset (1 ms)
            window = np.abs(samples[sample - 240 : sample + 240])
            assert abs(int(np.argmax(window)) - 240) <= 24
    codes = {ROLAND9.codes[c] for c in store.hits["class"]}
    assert {"HH", "OH", "LT"} <= codes  # from TD-17 pitches 22, 26 and 58


def test_deterministic_across_runs_and_worker_counts(
    tmp_path: Path, data_root: Path
) -> None:
    first, second = tmp_path / "out1", tmp_path / "out2"
    assert _run(_cfg(tmp_path, data_root, first), workers=1) == 0
    assert _run(_cfg(tmp_path, data_root, second), workers=2) == 0
    assert _checksums(first) == _checksums(second)
    assert len(_checksums(first)) == 15  # 5 files (backing.i16 too) x 3 splits


def test_limit_takes_an_even_spread() -> None:
    records = [_record(i, "train") for i in range(10)]
    picked = select_records(records, "train", 4)
    assert [r.id.rsplit("/", 1)[1] for r in picked] == ["1", "3", "6", "8"]
    assert select_records(records, "train", 0) == records
    assert select_records(records, "test", 3) == []


def test_limit_is_recorded_and_changes_the_store(
    tmp_path: Path, data_root: Path
) -> None:
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg, splits=["train"], limit=3) == 0
    manifest = load_store(data_root / "processed_data" / "train").manifest
    assert (manifest["limit"], manifest["n_recordings"]) == (3, 3)
    assert _run(cfg, splits=["train"], limit=None) == 0  # other selection: rebuilt
    assert (
        load_store(data_root / "processed_data" / "train").manifest["n_recordings"] == 6
    )


def test_a_split_without_rows_gives_an_empty_store(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    make_egmd(data_root, {"train": 2})
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg, splits=["validation"]) == 0
    store = load_store(data_root / "processed_data" / "validation", cfg)
    assert (len(store.audio), len(store.hits), store.recordings) == (0, 0, [])


# --- up to date, stale, incomplete ----------------------------------------------------


def test_up_to_date_then_rebuilt_on_config_change(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg, splits=["test"]) == 0
    split_dir = data_root / "processed_data" / "test"
    before = (split_dir / "manifest.json").stat().st_mtime_ns
    capsys.readouterr()
    assert _run(cfg, splits=["test"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (split_dir / "manifest.json").stat().st_mtime_ns == before

    cfg5 = _cfg(tmp_path, data_root, None, "data.vocab='adtof5'")
    assert _run(cfg5, splits=["test"]) == 0
    assert "stale" in capsys.readouterr().out
    assert load_store(split_dir, cfg5).manifest["vocab"] == "adtof5"
    with pytest.raises(DataError, match="vocab") as info:
        load_store(split_dir, cfg)
    assert "preprocess" in (info.value.hint or "")
    cfg16 = _cfg(
        tmp_path, data_root, None, "audio.sample_rate=16000", "frontend.f_max_hz=8000.0"
    )
    with pytest.raises(DataError, match="sample_rate"):
        load_store(split_dir, cfg16)


def test_load_store_refuses_incomplete_store(tmp_path: Path, data_root: Path) -> None:
    cfg = _cfg(tmp_path, data_root)
    assert _run(cfg, splits=["validation"]) == 0
    split_dir = data_root / "processed_data" / "validation"
    (split_dir / "manifest.json").unlink()
    with pytest.raises(DataError, match="incomplete store") as info:
        load_store(split_dir, cfg)
    assert "python -m drumtx preprocess" in (info.value.hint or "")


def test_resume_reuses_finished_parts(
    tmp_path: Path,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = tmp_path / "reference"
    assert _run(_cfg(tmp_path, data_root, reference), splits=["train"]) == 0
    out = tmp_path / "out"
    cfg = _cfg(tmp_path, data_root, out)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash before the store files are written")

    monkeypatch.setattr(preprocess, "finish_store", crash)
    with pytest.raises(RuntimeError):
        _run(cfg, splits=["train"])
    monkeypatch.undo()
    parts = out / "train" / ".parts"
    assert len(list(parts.glob("*.json"))) == 6
    assert not (out / "train" / "audio.i16.tmp").exists()
    (parts / "000002.i16").write_bytes(b"\0\0")  # a damaged part is redone
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    time.sleep(0.01)
    capsys.readouterr()

    def keep_parts(*args: object, **kwargs: object) -> None:
        pass  # keep .parts so their mtimes can be checked

    monkeypatch.setattr(preprocess.shutil, "rmtree", keep_parts)
    assert _run(cfg, splits=["train"]) == 0
    assert "resuming, 5 of 6" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    assert [name for name in before if after[name] != before[name]] == ["000002.json"]
    monkeypatch.undo()
    shutil.rmtree(parts)
    assert _checksums(out) == _checksums(reference)


def test_part_damaged_after_an_os_crash_is_caught(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, other bytes: what lost page-cache data looks like after a reboot."""
    reference = tmp_path / "reference"
    assert _run(_cfg(tmp_path, data_root, reference), splits=["test"]) == 0
    out = tmp_path / "out"
    cfg = _cfg(tmp_path, data_root, out)
    monkeypatch.setattr(preprocess, "finish_store", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _run(cfg, splits=["test"])
    monkeypatch.undo()
    part = out / "test" / ".parts" / "000001.i16"
    part.write_bytes(bytes(part.stat().st_size))
    with pytest.raises(DataError, match="damaged") as info:
        _run(cfg, splits=["test"])
    assert "again" in (info.value.hint or "")
    assert _run(cfg, splits=["test"]) == 0
    assert _checksums(out) == _checksums(reference)


# --- skips ----------------------------------------------------------------------------


def _break_some(egmd_dir: Path) -> None:
    """Corrupt a wav, empty a MIDI of drum notes, truncate audio, garble a MIDI."""
    records = [_record(i, "train") for i in range(4)]
    write_egmd_csv(egmd_csv_path(egmd_dir), records)
    for i, record in enumerate(records):
        notes = _hit_plan(i)
        _write_midi(egmd_dir / record.midi_filename, notes)
        _write_clicks(
            egmd_dir / record.audio_filename, [t for t, _, _ in notes], DURATION_SEC
        )
    (egmd_dir / records[0].audio_filename).write_bytes(b"RIFF\x10\0\0\0WAVEjunkjunk")
    _write_midi(egmd_dir / records[1].midi_filename, [(100, 60, 90), (400, 61, 90)])
    _write_clicks(egmd_dir / records[2].audio_filename, [100], 0.5)
    (egmd_dir / records[3].midi_filename).write_bytes(b"MThd\0\0\0\6garbage")


def test_skips_are_listed_and_set_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_root = tmp_path / "data"
    egmd_dir = data_root / "e-gmd-v1.0.0"
    egmd_dir.mkdir(parents=True)
    _break_some(egmd_dir)
    args = _main_args(tmp_path, data_root, "--split", "train")
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "--allow-skips" in captured.err and "skipped train" in captured.out
    store = load_store(data_root / "processed_data" / "train")
    reasons = {s["path"]: s["reason"] for s in store.manifest["skipped"]}
    records = [_record(i, "train") for i in range(4)]
    assert "cannot decode" in reasons[records[0].audio_filename]
    assert "no drum hits" in reasons[records[1].midi_filename]
    assert "past the end of the audio" in reasons[records[2].audio_filename]
    assert "malformed" in reasons[records[3].midi_filename]
    assert str(data_root) not in json.dumps(store.manifest)  # root-relative paths
    assert store.manifest["n_recordings"] == 0 and len(store.audio) == 0
    assert main([*args, "--allow-skips"]) == 0  # up to date, skips accepted
    assert main(args) == 1  # the store still holds skips


# --- the raw root ---------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            stat.S_IMODE(p.stat().st_mode),
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
        )
        for p in sorted(root.rglob("*"))
    }


def test_raw_root_is_only_read(tmp_path: Path, data_root: Path) -> None:
    egmd_dir = data_root / "e-gmd-v1.0.0"
    paths = [egmd_dir, *egmd_dir.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        before = _snapshot(egmd_dir)
        assert _run(_cfg(tmp_path, data_root), workers=2) == 0
        assert _snapshot(egmd_dir) == before
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)


def test_output_inside_raw_root_is_refused(tmp_path: Path, data_root: Path) -> None:
    inside = data_root / "e-gmd-v1.0.0" / "processed"
    with pytest.raises(StorageError, match="raw E-GMD root"):
        _run(_cfg(tmp_path, data_root, inside), splits=["test"])
    assert not (inside / "test").exists()


def test_missing_raw_root_fails_before_any_io(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    with pytest.raises(StorageError, match="E-GMD root"):
        _run(_cfg(tmp_path, data_root))
    assert list(data_root.iterdir()) == []  # processed_dir not even created


# --- SIGKILL during preprocess, then resume -------------------------------------------


def _cli(data_root: Path, out: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "drumtx",
        "preprocess",
        "--config",
        str(config),
        "--data-root",
        str(data_root),
        "--set",
        f"storage.processed_dir='{out}'",
        "--workers",
        "2",
    ]


def _wait_group_gone(pgid: int, timeout_sec: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    os.killpg(pgid, signal.SIGKILL)
    return False


def _start(data_root: Path, out: Path, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _cli(data_root, out, config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_first_part(proc: subprocess.Popen[bytes], out: Path) -> float:
    """Seconds until the first part is committed (or the process ends)."""
    t0 = time.monotonic()
    while proc.poll() is None and not any(out.glob("train/.parts/*.json")):
        time.sleep(0.005)
    return time.monotonic() - t0


def _kill_delay(
    trial: int, rng: random.Random, first_sec: float, full_sec: float
) -> float:
    """Seconds after the first part: phase 0 start-up (negative), 1 parts, 2 the end."""
    work_sec = max(full_sec - first_sec, 0.05)
    phase = trial % 3
    if phase == 0:
        return -rng.uniform(0.05, 0.95) * first_sec
    if phase == 1:
        return rng.uniform(0.0, 0.7) * work_sec
    return rng.uniform(0.7, 1.0) * work_sec


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_same_store(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    # Enough recordings that the workers run about as long as the start-up takes.
    make_egmd(data_root, {"train": 100, "validation": 3, "test": 3})
    config = _config_file(tmp_path)
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    proc = _start(data_root, reference, config)
    first_sec = _wait_first_part(proc, reference)
    assert proc.wait() == 0
    full_sec = time.monotonic() - t0
    expected = _checksums(reference)
    n_trials = int(os.environ.get("DRUMTX_KILL_TRIALS", "3"))
    seed = int(os.environ.get("DRUMTX_KILL_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    for trial in range(n_trials):
        out = tmp_path / f"killed{trial}"
        delay = _kill_delay(trial, rng, first_sec, full_sec)
        proc = _start(data_root, out, config)
        if delay < 0:
            time.sleep(first_sec + delay)
        else:
            _wait_first_part(proc, out)
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)  # the parent only: workers must follow it
        proc.wait()
        assert _wait_group_gone(proc.pid), f"orphaned workers (seed {seed})"
        n_parts = len(list(out.glob("*/.parts/*.json")))
        stores = sorted(p.parent.name for p in out.glob("*/manifest.json"))
        where = f"seed {seed}, delay {delay:+.2f} s, {n_parts} parts, stores {stores}"
        cfg = _cfg(tmp_path, data_root, out)
        assert _run(cfg, workers=2) == 0, where
        assert _checksums(out) == expected, where
        print(where)


def test_hits_dtype_matches_design() -> None:
    assert HITS_DTYPE.names == ("recording", "sample", "class", "velocity", "pitch")
    assert [HITS_DTYPE[n].str for n in HITS_DTYPE.names] == [
        "<i4",
        "<i8",
        "<i2",
        "<i2",
        "<i2",
    ]


def test_piped_output_keeps_each_line_whole(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Off a terminal rich used to break lines at 80 columns: "(78056" then "bytes)"."""
    out = tmp_path / ("a-rather-long-folder-name-" * 3) / "processed"
    args = _main_args(
        tmp_path,
        data_root,
        "--split",
        "test",
        "--set",
        f"storage.processed_dir='{out}'",
    )
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in STORE_FILES:
        path = out / "test" / name
        size = r"\(\d+ bytes\)|\(\d+\.\d MB\)"
        pattern = re.compile(rf"wrote {re.escape(str(path))} ({size})")
        assert [line for line in lines if pattern.fullmatch(line)], (name, lines)


# --- the store's order ----------------------------------------------------------------

N_SESSIONS, PER_SESSION = 16, 4  # 64 one-second recordings, the CSV grouped by session


def _grouped_egmd(data_root: Path) -> list[EgmdRecord]:
    """Training rows in E-GMD's CSV order: drummer by drummer, session by session."""
    egmd_dir = data_root / "e-gmd-v1.0.0"
    notes = [(200, 36, 90), (500, 38, 90), (800, 42, 90)]
    records = []
    for n in range(N_SESSIONS * PER_SESSION):
        drummer, session = f"drummer{n // 8 + 1}", f"session{n // PER_SESSION + 1}"
        stem = f"{drummer}/{session}/{n + 1}_rock_120_beat_4-4"
        record = EgmdRecord(
            drummer, f"{drummer}/{session}", f"{drummer}/{session}/{n + 1}", "rock",
            120, "beat", "4-4", 1.0, "train", stem + ".midi", stem + ".wav", "Kit 1",
        )  # fmt: skip
        _write_midi(egmd_dir / record.midi_filename, notes)
        _write_clicks(egmd_dir / record.audio_filename, [t for t, _, _ in notes], 1.0)
        records.append(record)
    records.append(_record(999, "validation"))
    _write_midi(egmd_dir / records[-1].midi_filename, notes)
    _write_clicks(egmd_dir / records[-1].audio_filename, [200], DURATION_SEC)
    write_egmd_csv(egmd_csv_path(egmd_dir), records)
    return records


def _sessions_per_batch(cfg, split_dir: Path, n_batches: int) -> list[int]:
    """Distinct sessions among each batch's crops, through the real loader."""
    from drumtx.data import BlockSampler, make_loader

    store = load_store(split_dir)
    seen: list[int] = []
    real_crop = BlockSampler._crop

    def spy(self, rec, *args):
        seen.append(rec)
        return real_crop(self, rec, *args)

    BlockSampler._crop = spy
    try:
        loader = make_loader(
            cfg, split_dir, 9, seed=0, rank=0, world_size=1, pin_memory=False
        )
        batches = iter(loader)
        counts = []
        for _ in range(n_batches):
            del seen[:]
            next(batches)
            ids = [store.recordings[rec]["id"] for rec in seen]
            counts.append(len({i.rsplit("/", 1)[0] for i in ids}))
    finally:
        BlockSampler._crop = real_crop
    return counts


def test_a_training_batch_mixes_drummers_and_sessions(tmp_path: Path) -> None:
    """One batch is cut from one block of ~10 s here (shuffle_blocks=1): in the CSV's
    order such a block spans at most 4 sessions of 4 s; shuffled, many more."""
    data_root = tmp_path / "data"
    records = _grouped_egmd(data_root)
    cfg = _cfg(
        tmp_path, data_root, None, "backing.enabled=false", "data.crop_sec=0.5",
        "data.block_mb=0.5", "data.crops_per_block=16", "data.shuffle_blocks=1",
        "train.batch_size=16", "data.num_workers=0", "data.eq_prob=0.0",
        "data.reverb_prob=0.0", "data.noise_prob=0.0", "data.compress_prob=0.0",
        "data.saturate_prob=0.0", "data.codec_prob=0.0",
    )  # fmt: skip
    assert _run(cfg, splits=["train", "validation"], workers=2) == 0
    processed = data_root / "processed_data"
    train = json.loads((processed / "train" / "recordings.json").read_text())
    ids = [r.id for r in records if r.split == "train"]
    assert sorted(r["id"] for r in train) == sorted(ids) and len(train) == len(ids)
    assert [r["id"] for r in train] != ids  # shuffled, and by a fixed rule:
    assert [r["id"] for r in train][:3] == [
        r.id for r in preprocess.store_order(records[:-1], "train")[0][:3]
    ]
    manifests = {s: json.loads((processed / s / "manifest.json").read_text())
                 for s in ("train", "validation")}  # fmt: skip
    assert manifests["train"]["order"] == "shuffled"
    assert manifests["validation"]["order"] == "csv"
    counts = _sessions_per_batch(cfg, processed / "train", n_batches=6)
    assert min(counts) >= 5 and sum(counts) / len(counts) >= 6, counts


def test_a_store_from_before_the_order_key_keeps_or_rebuilds(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validation and test stores are still in CSV order: up to date. A train store
    made in CSV order is rebuilt shuffled."""
    cfg = _cfg(tmp_path, data_root, None, "backing.enabled=false")
    assert _run(cfg) == 0
    processed = data_root / "processed_data"
    for split in SPLIT_SIZES:
        path = processed / split / "manifest.json"
        manifest = json.loads(path.read_text())
        del manifest["order"]
        path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert _run(cfg) == 0
    out = capsys.readouterr().out
    assert "train: store at" in out and "stale, rebuilding" in out
    assert "validation: " in out and out.count("is up to date") == 2


def test_a_pseudo_labelled_song_keeps_its_unsure_peaks_apart(tmp_path: Path) -> None:
    """tools/pseudo_label.py's recordings: the MIDI holds the teacher's confident hits,
    ``.unsure.json`` its unsure peaks. The store keeps the latter out of ``hits`` (so
    evaluation and targets never see them) in ``unsure``, and a song (kit pseudo:...)
    gets a silent backing track: its band is in the recording already."""
    from dataclasses import replace

    from drumtx.egmd import read_egmd_csv
    from drumtx.processed import recording_backing, recording_unsure

    data_root = tmp_path / "data"
    egmd_dir = make_egmd(data_root, {"train": 2})
    csv_path = egmd_csv_path(egmd_dir)
    rows = read_egmd_csv(csv_path)
    song = replace(rows[0], kit_name="pseudo:somegame")
    midi_path = egmd_dir / song.midi_filename
    unsure = {"unsure": [[0.25, "LT"], [0.75, "CR"]]}
    midi_path.with_suffix(".unsure.json").write_text(json.dumps(unsure))
    write_egmd_csv(csv_path, [song, rows[1]])
    cfg = _cfg(tmp_path, data_root, None, "backing.enabled=true")
    assert _run(cfg, splits=["train"]) == 0
    store = load_store(data_root / "processed_data" / "train", cfg)
    index = next(i for i, r in enumerate(store.recordings) if r["kit"] == song.kit_name)
    other = 1 - index
    got = recording_unsure(store, index)
    assert [ROLAND9.codes[c] for c in got["class"]] == ["LT", "CR"]
    assert np.allclose(got["sample"] / 24000, [0.25, 0.75], atol=1e-4)
    assert (store.hits["velocity"] > 0).all()
    assert len(recording_unsure(store, other)) == 0
    assert len(recording_hits(store, index)) == len(recording_hits(store, other))
    assert not recording_backing(store, index).any()
    assert recording_backing(store, other).any()
    midi_path.with_suffix(".unsure.json").write_text('{"unsure": [[0.1, "XX"]]}')
    cfg2 = _cfg(tmp_path, data_root, tmp_path / "p2", "backing.enabled=true")
    assert _run(cfg2, splits=["train"]) == 1  # a bad class: that recording is a skip
