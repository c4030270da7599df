"""Checkpoints: atomic writes, weights_only loads, clear errors, retention."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from drumtx.checkpoint import (
    load_checkpoint,
    newest_run,
    prune_step_checkpoints,
    save_checkpoint,
    step_path,
)
from drumtx.errors import CheckpointError, StorageError

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


def test_newest_run(tmp_path):
    assert newest_run(tmp_path) is None
    for i, run in enumerate(("a", "b")):
        (tmp_path / run).mkdir()
        save_checkpoint(tmp_path / run / "best.pt", MINIMAL)
        os.utime(tmp_path / run / "best.pt", ns=(10**18 + i, 10**18 + i))
    assert newest_run(tmp_path) == tmp_path / "b" / "best.pt"
