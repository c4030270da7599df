"""Checkpoints: atomic writes, weights_only loads, clear errors, retention."""

from __future__ import annotations

import dataclasses
import os
import pickle

import pytest
import torch

from drumtx.checkpoint import (
    SHIPPED_MODELS_DIR,
    choose_model,
    load_checkpoint,
    newest_run,
    prune_step_checkpoints,
    save_checkpoint,
    step_path,
)
from drumtx.config import load_config
from drumtx.errors import CheckpointError, ConfigError, StorageError

MINIMAL = {"config": {}, "vocab": "roland9", "model": {"w": torch.ones(2)}}


def test_round_trip(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(
        path, {**MINIMAL, "step": 3, "rng": {"torch": torch.get_rng_state()}}
    )
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


class _Payload:
    """Unpickling this would create a file: the classic checkpoint exploit."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(
        {**MINIMAL, "format": "drumtx", "version": 1, "x": _Payload(str(marker))}, path
    )
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert info.value.hint
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_empty_foreign_and_missing(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, MINIMAL)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    for path, words in [
        (truncated, "truncated"),
        (empty, "empty"),
        (foreign, "not a drumtx checkpoint"),
        (tmp_path / "missing.pt", "does not exist"),
    ]:
        with pytest.raises(CheckpointError, match=words) as info:
            load_checkpoint(path)
        assert info.value.hint


def test_audio_midi_or_text_given_as_a_checkpoint_is_named_for_what_it_is(tmp_path):
    """A WAV passed as --checkpoint crashed inside torch's unpickler (IndexError)."""
    import numpy as np
    import soundfile as sf

    wav, flac = tmp_path / "song.wav", tmp_path / "song.flac"
    for path in (wav, flac):
        sf.write(path, np.zeros(4800, np.float32), 48000)
    mid = tmp_path / "song.drums.mid"
    mid.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0")
    cfg = tmp_path / "drumtx.json"
    cfg.write_text('{"a": 1}')
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(7, 200)))
    mpeg = tmp_path / "untagged.mp3"
    mpeg.write_bytes(b"\xff\xf3\x84\x64" + bytes(100))  # MPEG-2 layer III, no ID3
    for path, words in [
        (wav, "it looks like WAV audio"),
        (flac, "it looks like FLAC audio"),
        (mpeg, "it looks like MP3 audio"),
        (mid, "it looks like a MIDI file"),
        (cfg, "it looks like JSON"),
        (noise, r"not a model checkpoint \(not a PyTorch file\)"),
    ]:
        with pytest.raises(CheckpointError, match=words) as info:
            load_checkpoint(path)
        assert "written by python -m drumtx train" in info.value.hint
        # train --resume and init_from load checkpoints too: only audio gets the
        # transcribe line
        assert ("transcribe song.wav" in info.value.hint) == ("audio" in words)


def test_version_mismatch_has_a_hint(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({**MINIMAL, "format": "drumtx", "version": 99}, path)
    with pytest.raises(CheckpointError, match="version 99") as info:
        load_checkpoint(path)
    assert "retrain" in info.value.hint


def test_enospc_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "last.pt"
    save_checkpoint(path, {**MINIMAL, "step": 1})
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageError, match="no space left") as info:
        save_checkpoint(path, {**MINIMAL, "step": 2})
    assert "free space" in info.value.hint and "keep_checkpoints" in info.value.hint
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_prune_keeps_the_newest(tmp_path):
    for step in (100, 200, 300, 400):
        save_checkpoint(step_path(tmp_path, step), MINIMAL)
    removed = prune_step_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step-000100.pt", "step-000200.pt"]
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == [
        "step-000300.pt",
        "step-000400.pt",
    ]


def test_prune_leaves_an_abandoned_attempts_steps_alone(tmp_path):
    """An attempt saved 200, 400, 600 and 800; a run resumed from 400 (so 600 and 800
    are skipped) saves 700, then 1000, keeping 2: it prunes only its own history, and
    the abandoned files stay, however they rank by step."""
    for step in (200, 400, 600, 800, 700):  # 700: the resumed run's new save
        save_checkpoint(step_path(tmp_path, step), MINIMAL)
    removed = prune_step_checkpoints(tmp_path, keep=2, skip={600, 800})
    assert [p.name for p in removed] == ["step-000200.pt"]
    save_checkpoint(step_path(tmp_path, 1000), MINIMAL)
    removed = prune_step_checkpoints(tmp_path, keep=2, skip={600, 800})
    assert [p.name for p in removed] == ["step-000400.pt"]
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == [
        "step-000600.pt", "step-000700.pt", "step-000800.pt", "step-001000.pt",
    ]  # fmt: skip


def test_newest_run(tmp_path):
    assert newest_run(tmp_path) is None
    for i, run in enumerate(("a", "b")):
        (tmp_path / run).mkdir()
        save_checkpoint(tmp_path / run / "best.pt", MINIMAL)
        os.utime(tmp_path / run / "best.pt", ns=(10**18 + i, 10**18 + i))
    assert newest_run(tmp_path) == tmp_path / "b" / "best.pt"


# --- which model transcribe uses ------------------------------------------------------


def _runs(root, *names):
    """Run folders under root/checkpoints with a best.pt each, oldest first."""
    for i, name in enumerate(names):
        best = root / "checkpoints" / name / "best.pt"
        best.parent.mkdir(parents=True)
        save_checkpoint(best, MINIMAL)
        os.utime(best, ns=(10**18 + i, 10**18 + i))
    return load_config(None, [f"storage.data_root='{root}'"])


def test_the_shipped_model_stays_the_default_beside_trained_runs(tmp_path):
    """A quick smoke run must not replace the shipped model unless it is named."""
    cfg = _runs(tmp_path, "base-1", "quick")
    choice = choose_model(cfg, None)
    assert choice.path == SHIPPED_MODELS_DIR / "default.pt"
    assert 'the default (transcribe.checkpoint = "shipped")' in choice.reason
    assert choice.reason.endswith("--checkpoint quick")  # the newest: where it went


def test_a_run_is_used_when_named(tmp_path):
    cfg = _runs(tmp_path, "base-1", "quick")
    runs = tmp_path / "checkpoints"
    by_name = choose_model(cfg, "base-1")
    assert by_name.path == runs / "base-1" / "best.pt"
    assert by_name.reason == "best.pt of run base-1 (--checkpoint base-1)"
    newest = choose_model(cfg, "newest")
    assert newest.path == runs / "quick" / "best.pt"
    assert newest.reason == "best.pt of the newest run, quick (--checkpoint newest)"
    assert choose_model(cfg, "shipped").path == SHIPPED_MODELS_DIR / "default.pt"
    folder = choose_model(cfg, runs / "base-1")
    assert folder.path == runs / "base-1" / "best.pt"
    file = choose_model(cfg, str(runs / "quick" / "best.pt"), named_by="--checkpoint")
    assert (file.path, file.reason) == (runs / "quick" / "best.pt", "--checkpoint")
    configured = dataclasses.replace(
        cfg, transcribe=dataclasses.replace(cfg.transcribe, checkpoint="newest")
    )
    choice = choose_model(configured, None)
    assert choice.path == runs / "quick" / "best.pt"
    assert choice.reason.endswith('(transcribe.checkpoint = "newest")')
    assert choose_model(configured, "base-1").path == runs / "base-1" / "best.pt"


def test_a_wrong_run_name_is_refused_with_the_runs(tmp_path):
    cfg = _runs(tmp_path, "base-1", "quick")
    with pytest.raises(ConfigError, match="no run 'base1'") as info:
        choose_model(cfg, "base1")
    assert "runs: base-1, quick" in info.value.message
    assert "did you mean 'base-1'" in info.value.hint
    with pytest.raises(ConfigError, match="no trained run"):
        choose_model(_runs(tmp_path / "empty"), "newest")
    with pytest.raises(ConfigError, match="transcribe.checkpoint is empty"):
        load_config(None, ["transcribe.checkpoint=''"])


def test_without_a_shipped_model_the_runs_are_named_not_taken(tmp_path, monkeypatch):
    import drumtx.checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "SHIPPED_MODELS_DIR", tmp_path / "none")
    cfg = _runs(tmp_path, "quick")
    with pytest.raises(ConfigError, match="no model found") as info:
        choose_model(cfg, None)
    assert "--checkpoint quick" in info.value.hint
