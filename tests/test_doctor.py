"""doctor.py through ``drumtx.cli.main(["doctor", ...])``: rows, exit codes, output."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from drumtx import doctor
from drumtx.cli import main
from drumtx.errors import StorageError
from drumtx.processed import FORMAT_VERSION


def run_json(capsys, data_root: Path, *extra: str) -> tuple[int, dict]:
    code = main(["doctor", "--data-root", str(data_root), "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)  # stdout holds the JSON document and nothing else


def rows(report: dict) -> dict[str, dict]:
    return {row["check"]: row for row in report["checks"]}


def write_split(data_root: Path, split: str, **manifest_changes) -> Path:
    """A minimal processed split: the data files and a manifest.json."""
    split_dir = data_root / "processed_data" / split
    split_dir.mkdir(parents=True)
    np.zeros(24000, dtype=np.int16).tofile(split_dir / "audio.i16")
    (split_dir / "recordings.json").write_text("[]")
    np.save(split_dir / "hits.npy", np.zeros(0, dtype=np.int32))
    manifest = {
        "format_version": FORMAT_VERSION,
        "sample_rate": 24000,
        "vocab": "roland9",
        "source_csv_sha256": None,
        "n_recordings": 1,
        "n_hits": 4,
        "skipped": [],
        **manifest_changes,
    }
    (split_dir / "manifest.json").write_text(json.dumps(manifest))
    return split_dir


# --- a missing data root --------------------------------------------------------------


def test_missing_data_root_fails_with_root_key_and_fix(tmp_path, capsys):
    missing = tmp_path / "hdd" / "drum-tranxn"
    code, report = run_json(capsys, missing)
    assert code == 3
    assert report["status"] == "FAIL" and report["exit_code"] == 3
    assert report["transcribe_ready"]  # the shipped model needs no storage root
    row = rows(report)["data root"]
    assert row["status"] == "FAIL"
    assert str(missing) in row["detail"] and "storage.data_root" in row["detail"]
    assert f"mkdir -p {missing}" in row["hint"] and "--data-root" in row["hint"]
    assert not missing.exists()  # doctor never creates the data root


def test_missing_data_root_plain_output(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["doctor", "--data-root", str(missing)]) == 3
    out = capsys.readouterr().out
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fail_lines) == 1 and "data root" in fail_lines[0]
    assert str(missing) in fail_lines[0] and "storage.data_root" in fail_lines[0]
    assert f"hint: mount the HDD, or create the root: mkdir -p {missing}" in out
    summary, ready = out.rstrip().splitlines()[-2:]
    assert summary.endswith("(exit 3)")
    # a newcomer who only transcribes learns the failure is not theirs
    assert ready.startswith("transcribe is ready: only the storage checks fail")


# --- a complete small layout ----------------------------------------------------------


def test_complete_small_layout_exits_0(egmd_data_root, capsys):
    code, report = run_json(capsys, egmd_data_root)
    assert code == 0, report
    by_check = rows(report)
    assert report["status"] in ("OK", "WARN")
    assert not [r for r in report["checks"] if r["status"] == "FAIL"]
    index = by_check["E-GMD index"]
    assert index["status"] == "OK"
    assert "3 rows" in index["detail"]
    assert "train 1, validation 1, test 1" in index["detail"]
    files = by_check["E-GMD files"]
    assert files["status"] == "OK" and "44100 Hz, 1 ch, PCM_16 x3" in files["detail"]
    assert by_check["checkpoints"]["status"] == "OK"
    assert by_check["logs"]["status"] == "OK"
    for split in ("train", "validation", "test"):
        row = by_check[f"processed {split}"]
        assert row["status"] == "WARN" and "python -m drumtx preprocess" in row["hint"]
    for name in ("config", "python", "torch", "libsndfile", "mir_eval"):
        assert by_check[name]["status"] == "OK"


def test_plain_output_is_aligned_lines(egmd_data_root, capsys):
    assert main(["doctor", "--data-root", str(egmd_data_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    status_lines = [ln for ln in lines if ln[:4].strip() in ("OK", "WARN", "FAIL")]
    assert len({ln.index(ln.split()[1]) for ln in status_lines}) == 1
    assert lines[-1].startswith("doctor: ") and lines[-1].endswith("(exit 0)")


def test_deep_checks_every_file(egmd_data_root, capsys):
    code, report = run_json(capsys, egmd_data_root, "--deep")
    assert code == 0
    assert "3 (all 3) recordings" in rows(report)["E-GMD files"]["detail"]


def test_newest_checkpoint_run_is_reported(egmd_data_root, capsys):
    run_dir = egmd_data_root / "checkpoints" / "run1"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"")
    _, report = run_json(capsys, egmd_data_root)
    detail = rows(report)["checkpoints"]["detail"]
    assert "newest 'run1'" in detail and "last.pt" in detail


def test_the_model_transcribe_uses_is_named_with_the_reason(egmd_data_root, capsys):
    best = egmd_data_root / "checkpoints" / "quick" / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["transcribe model"]
    assert row["status"] == "OK" and "default.pt: the shipped model" in row["detail"]
    assert "used when named: --checkpoint quick" in row["detail"]
    wrong = ("--set", "transcribe.checkpoint='quik'")
    code_wrong, report = run_json(capsys, egmd_data_root, *wrong)
    row = rows(report)["transcribe model"]
    assert row["status"] == "WARN" and "no run 'quik'" in row["detail"]
    assert code_wrong == code  # a WARN: training does not need it


def test_missing_output_dirs_are_creatable_not_created(egmd_data_root, capsys):
    for name in ("checkpoints", "logs"):
        (egmd_data_root / name).rmdir()
    code, report = run_json(capsys, egmd_data_root)
    assert code == 0
    assert "creatable" in rows(report)["logs"]["detail"]
    assert not (egmd_data_root / "logs").exists()


def test_free_space_short_of_full_egmd_warns(egmd_data_root, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "free_bytes", lambda path: 5 * 10**9)
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["data root"]
    assert code == 0 and row["status"] == "WARN"
    assert "5.0 GB free" in row["detail"] and "short" in row["detail"]
    monkeypatch.setattr(doctor, "free_bytes", lambda path: 10**13)
    _, report = run_json(capsys, egmd_data_root)
    assert rows(report)["data root"]["status"] == "OK"


# --- E-GMD problems -------------------------------------------------------------------


def test_missing_egmd_fails(tmp_path, capsys):
    data_root = tmp_path / "data"
    data_root.mkdir()
    code, report = run_json(capsys, data_root)
    row = rows(report)["E-GMD index"]
    assert code == 3 and row["status"] == "FAIL"
    assert "e-gmd-v1.0.0.csv" in row["detail"] and "storage.egmd_dir" in row["detail"]
    assert "make-dataset" in row["hint"]


def test_wrong_csv_header_fails(egmd_data_root, capsys):
    csv_path = egmd_data_root / "e-gmd-v1.0.0" / "e-gmd-v1.0.0.csv"
    text = csv_path.read_text().replace("kit_name", "kit")
    csv_path.write_text(text)
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["E-GMD index"]
    assert code == 3 and row["status"] == "FAIL" and "kit_name" in row["detail"]


def test_corrupt_audio_fails_naming_the_file(egmd_data_root, capsys):
    wav = next((egmd_data_root / "e-gmd-v1.0.0").rglob("*.wav"))
    wav.write_bytes(b"RIFF not really a wav file")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["E-GMD files"]
    assert code == 3 and row["status"] == "FAIL"
    assert "1 bad" in row["detail"] and wav.name in row["detail"]


def test_unexpected_audio_format_warns_with_the_format_found(
    egmd_data_root, capsys, click_wav
):
    wav = next((egmd_data_root / "e-gmd-v1.0.0").rglob("*.wav"))
    click_wav(wav, [0.1], sample_rate=48000, channels=2, subtype="PCM_24")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["E-GMD files"]
    assert code == 0 and row["status"] == "WARN"
    assert "48000 Hz, 2 ch, PCM_24 x1" in row["detail"]


# --- processed store ------------------------------------------------------------------


def test_matching_manifest_is_ok(egmd_data_root, capsys):
    split_dir = write_split(
        egmd_data_root, "train", n_samples=24000, tracks=["backing"]
    )
    np.zeros(24000, dtype=np.int16).tofile(split_dir / "backing.i16")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["processed train"]
    assert code == 0 and row["status"] == "OK"
    assert "1 recordings, 4 hits, 0 skipped, backing tracks" in row["detail"]


def test_store_without_backing_warns_when_backing_is_on(egmd_data_root, capsys):
    write_split(egmd_data_root, "train", n_samples=24000, tracks=[])
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["processed train"]
    assert code == 0 and row["status"] == "WARN"
    assert "no backing tracks" in row["detail"] and "drums alone" in row["detail"]
    code, report = run_json(capsys, egmd_data_root, "--set", "backing.enabled=false")
    assert rows(report)["processed train"]["status"] == "OK"


def test_backing_track_of_the_wrong_size_fails(egmd_data_root, capsys):
    split_dir = write_split(
        egmd_data_root, "train", n_samples=24000, tracks=["backing"]
    )
    np.zeros(100, dtype=np.int16).tofile(split_dir / "backing.i16")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["processed train"]
    assert code == 3 and row["status"] == "FAIL" and "backing.i16" in row["detail"]


def test_manifest_mismatch_fails_with_preprocess_hint(egmd_data_root, capsys):
    write_split(egmd_data_root, "validation", sample_rate=16000, vocab="basic3")
    code, report = run_json(capsys, egmd_data_root)
    row = rows(report)["processed validation"]
    assert code == 3 and row["status"] == "FAIL"
    assert "sample_rate 16000" in row["detail"] and "vocab 'basic3'" in row["detail"]
    assert row["hint"].startswith("python -m drumtx preprocess")


def test_split_without_manifest_is_incomplete(egmd_data_root, capsys):
    (egmd_data_root / "processed_data" / "test").mkdir(parents=True)
    _, report = run_json(capsys, egmd_data_root)
    row = rows(report)["processed test"]
    assert row["status"] == "WARN" and "incomplete" in row["detail"]


def test_store_from_another_csv_warns(egmd_data_root, capsys):
    write_split(egmd_data_root, "train", source_csv_sha256="0" * 64)
    _, report = run_json(capsys, egmd_data_root)
    assert "different E-GMD CSV" in rows(report)["processed train"]["detail"]


# --- the raw dataset root stays untouched ---------------------------------------------


def snapshot(root: Path) -> list[tuple[str, int, int, str]]:
    """(relative path, size, mtime_ns, sha256) of every file and dir under root."""
    entries = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        entries.append(
            (str(path.relative_to(root)), st.st_size, st.st_mtime_ns, digest)
        )
    return entries


def test_readers_and_doctor_never_write_the_raw_root(
    egmd_data_root, capsys, config_for
):
    from drumtx.audio import audio_info, load_audio
    from drumtx.egmd import read_egmd_csv
    from drumtx.midi import read_notes
    from drumtx.storage import check_not_raw, resolve_roots

    egmd_dir = egmd_data_root / "e-gmd-v1.0.0"
    paths = [egmd_dir, *egmd_dir.rglob("*")]
    for path in paths:  # chmod -R a-w (root ignores it; the snapshot is the proof)
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(egmd_dir)
    try:
        records = read_egmd_csv(egmd_dir / "e-gmd-v1.0.0.csv")
        for record in records:
            audio_info(egmd_dir / record.audio_filename)
            load_audio(egmd_dir / record.audio_filename, 24000)
            read_notes(egmd_dir / record.midi_filename)
        code, _ = run_json(capsys, egmd_data_root, "--deep")
        assert code == 0
        roots = resolve_roots(config_for(egmd_data_root))
        with pytest.raises(StorageError):
            check_not_raw(egmd_dir / "processed" / "manifest.json", roots)
        assert snapshot(egmd_dir) == before
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_doctor_json_is_the_only_stdout(egmd_data_root, capsys):
    main(["doctor", "--data-root", str(egmd_data_root), "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)
    assert set(report) == {"status", "exit_code", "transcribe_ready", "checks"}
    for row in report["checks"]:
        assert set(row) == {"check", "status", "detail", "hint"}
        assert row["status"] in ("OK", "WARN", "FAIL")


def test_env_data_root_is_used_and_reported(egmd_data_root, capsys, monkeypatch):
    monkeypatch.setenv("DRUMTX_DATA_ROOT", os.fspath(egmd_data_root))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "DRUMTX_DATA_ROOT" in rows(report)["config"]["detail"]
    assert str(egmd_data_root) in rows(report)["data root"]["detail"]


def test_cuda_row_reports_device_and_bf16(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cuda = {r.check: r for r in doctor.check_torch()}["CUDA"]
    assert cuda.status == "OK"
    assert "Fake GPU" in cuda.detail and "2 device(s)" in cuda.detail
    assert "bf16: no (fp16 + GradScaler)" in cuda.detail


def test_the_demo_names_the_config_it_read_and_what_it_set_over_it(tmp_path, capsys):
    """The demo's doctor used to say "no drumtx.toml found: defaults" while running on
    the user's drumtx.toml with its own settings over it."""
    from drumtx.config import default_config_path, load_config
    from drumtx.doctor import run_doctor

    path = default_config_path()
    cfg = load_config(path, [f"storage.data_root='{tmp_path}'"])
    run_doctor(cfg, config_path=path, deep=False, as_json=True,
               overrides="the demo's settings over it")  # fmt: skip
    config = rows(json.loads(capsys.readouterr().out))["config"]
    assert config["detail"].startswith(str(path))
    assert config["detail"].endswith("; the demo's settings over it")
