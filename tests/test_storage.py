"""storage.py: root resolution, pre-flight validation, device kind, atomic writes."""

from __future__ import annotations

import errno
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from drumtx import storage
from drumtx.errors import StorageError
from drumtx.storage import (
    Roots,
    atomic_write_bytes,
    atomic_write_files,
    atomic_write_text,
    check_not_raw,
    device_kind,
    free_bytes,
    layout_warnings,
    require_roots,
    resolve_roots,
)

KINDS = {"hdd", "ssd", "unknown"}


# --- resolve_roots --------------------------------------------------------------------


def test_resolve_roots_joins_relative_subdirs_to_data_root(tmp_path, config_for):
    roots = resolve_roots(config_for(tmp_path))
    assert roots == Roots(
        data_root=tmp_path,
        egmd_dir=tmp_path / "e-gmd-v1.0.0",
        processed_dir=tmp_path / "processed_data",
        checkpoint_dir=tmp_path / "checkpoints",
        log_dir=tmp_path / "logs",
    )


def test_resolve_roots_keeps_absolute_subdirs(tmp_path, config_for):
    elsewhere = tmp_path / "ssd" / "ckpt"
    cfg = config_for(tmp_path / "hdd", f"storage.checkpoint_dir='{elsewhere}'")
    roots = resolve_roots(cfg)
    assert roots.checkpoint_dir == elsewhere
    assert roots.log_dir == tmp_path / "hdd" / "logs"


def test_resolve_roots_expands_home(tmp_path, monkeypatch, config_for):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config_for(Path("~/hdd"), "storage.egmd_dir='~/datasets/egmd'")
    roots = resolve_roots(cfg)
    assert roots.data_root == tmp_path / "hdd"
    assert roots.egmd_dir == tmp_path / "datasets" / "egmd"
    assert roots.processed_dir == tmp_path / "hdd" / "processed_data"


def test_resolve_roots_makes_relative_data_root_absolute(
    tmp_path, monkeypatch, config_for
):
    monkeypatch.chdir(tmp_path)
    assert (
        resolve_roots(config_for(Path("demo-data"))).data_root == tmp_path / "demo-data"
    )


# --- require_roots: every failure names the root, the key and the fix -----------------


def _raises_storage(cfg, **kwargs) -> StorageError:
    with pytest.raises(StorageError) as info:
        require_roots(cfg, **kwargs)
    assert info.value.exit_code == 3
    return info.value


def test_missing_data_root_names_root_key_and_fix(tmp_path, config_for):
    missing = tmp_path / "not-mounted"
    err = _raises_storage(config_for(missing), read=["egmd_dir"])
    assert str(missing) in err.message
    assert "does not exist" in err.message
    assert "storage.data_root" in err.message
    assert "DRUMTX_DATA_ROOT" in err.message and "--data-root" in err.message
    assert f"mkdir -p {missing}" in err.hint
    assert "--data-root" in err.hint


def test_a_root_made_by_another_process_meanwhile_is_not_a_file(
    tmp_path, config_for, monkeypatch
):
    """torchrun's other rank makes logs/ while this one looks: whichever moment the
    directory appears, it is a directory (CI saw 'log dir ... is not a directory')."""
    logs = tmp_path / "logs"
    real_is_dir, real_stat = Path.is_dir, Path.stat

    def is_dir(self):  # the other rank makes it right after this process looked
        seen = real_is_dir(self)
        if self == logs and not seen:
            logs.mkdir(exist_ok=True)
        return seen

    monkeypatch.setattr(Path, "is_dir", is_dir)
    roots = require_roots(config_for(tmp_path), create=["data_root", "log_dir"])
    assert roots.log_dir == logs and logs.is_dir()

    logs.rmdir()

    def stat(self, **kwargs):  # made between two looks that use stat
        if self == logs and not os.path.isdir(logs):
            logs.mkdir()
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert require_roots(config_for(tmp_path), create=["log_dir"]).log_dir.is_dir()


def test_missing_egmd_dir_names_its_key(tmp_path, config_for):
    err = _raises_storage(config_for(tmp_path), read=["egmd_dir"])
    assert str(tmp_path / "e-gmd-v1.0.0") in err.message
    assert "storage.egmd_dir" in err.message
    assert "E-GMD" in err.hint and "--set storage.egmd_dir=" in err.hint


def test_root_that_is_a_file_is_refused(tmp_path, config_for):
    a_file = tmp_path / "data"
    a_file.write_text("not a dir")
    err = _raises_storage(config_for(a_file), read=["data_root"])
    assert f"{a_file} is not a directory" in err.message
    assert "storage.data_root" in err.message
    assert "--data-root DIR" in err.hint


def test_unreadable_root_is_refused(tmp_path, monkeypatch, config_for):
    # Tests run as root, where permission bits do not bind: simulate with os.access.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode & os.R_OK else real_access(p, mode)
    )
    err = _raises_storage(config_for(tmp_path), read=["data_root"])
    assert f"{tmp_path} is not readable" in err.message
    assert "storage.data_root" in err.message
    assert f"chmod u+rx {tmp_path}" in err.hint


def test_unwritable_root_by_mode_bits(tmp_path, monkeypatch, config_for):
    (tmp_path / "checkpoints").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode)
    )
    cfg = config_for(tmp_path)
    require_roots(cfg, read=["checkpoint_dir"])  # reading is still fine
    err = _raises_storage(cfg, write=["checkpoint_dir"])
    assert "is not writable" in err.message
    assert "storage.checkpoint_dir" in err.message
    assert "chmod u+w" in err.hint and "--set storage.checkpoint_dir=DIR" in err.hint


def test_unwritable_root_found_by_the_probe_write(tmp_path, monkeypatch, config_for):
    def read_only_fs(dir_path):
        raise OSError(errno.EROFS, "Read-only file system", str(dir_path))

    monkeypatch.setattr(storage, "_probe_write", read_only_fs)
    err = _raises_storage(config_for(tmp_path), write=["data_root"])
    assert "Read-only file system" in err.message
    assert str(tmp_path) in err.message and "storage.data_root" in err.message
    assert "remount" in err.hint


def test_probe_write_leaves_nothing_behind(tmp_path, config_for):
    require_roots(config_for(tmp_path), write=["data_root"])
    assert list(tmp_path.iterdir()) == []


def test_create_makes_subdirs_under_an_existing_data_root(tmp_path, config_for):
    roots = require_roots(
        config_for(tmp_path), create=["processed_dir", "checkpoint_dir"]
    )
    assert roots.processed_dir.is_dir() and roots.checkpoint_dir.is_dir()
    assert not roots.log_dir.exists()


def test_create_never_makes_a_missing_data_root_silently(tmp_path, config_for):
    missing = tmp_path / "hdd"
    err = _raises_storage(config_for(missing), create=["processed_dir"])
    assert "storage.data_root" in err.message
    assert not missing.exists()


def test_create_makes_the_data_root_when_listed(tmp_path, config_for):
    roots = require_roots(
        config_for(tmp_path / "demo"), create=["data_root", "log_dir"]
    )
    assert roots.log_dir.is_dir()


def test_create_failure_names_the_key(tmp_path, monkeypatch, config_for):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    err = _raises_storage(config_for(tmp_path), create=["log_dir"])
    assert "cannot create" in err.message and "storage.log_dir" in err.message
    assert f"mkdir -p {tmp_path / 'logs'}" in err.hint


def test_validation_comes_before_any_other_io(tmp_path, config_for):
    # egmd_dir is missing: processed_dir must not have been created by then.
    cfg = config_for(tmp_path)
    _raises_storage(cfg, read=["egmd_dir"], create=["processed_dir"])
    assert not (tmp_path / "processed_data").exists()


def test_nothing_is_created_when_space_is_short(tmp_path, monkeypatch, config_for):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 10**9))
    cfg = config_for(tmp_path)
    err = _raises_storage(
        cfg, create=["processed_dir"], need_bytes={"processed_dir": 77 * 10**9}
    )
    assert "storage.processed_dir" in err.message
    assert not (tmp_path / "processed_data").exists()


def test_short_free_space_names_root_and_amount(tmp_path, monkeypatch, config_for):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 2 * 10**9))
    cfg = config_for(tmp_path)
    require_roots(cfg, need_bytes={"data_root": 10**9})
    err = _raises_storage(cfg, need_bytes={"data_root": 5 * 10**9})
    assert "2.0 GB free" in err.message and "5.0 GB" in err.message
    assert "storage.data_root" in err.message
    assert "--data-root DIR" in err.hint


def test_unknown_root_name_is_a_programming_error(tmp_path, config_for):
    with pytest.raises(ValueError, match="unknown storage roots"):
        require_roots(config_for(tmp_path), read=["datadir"])


def test_free_bytes_of_a_missing_path_uses_its_parent(tmp_path):
    assert free_bytes(tmp_path / "a" / "b") == shutil.disk_usage(tmp_path).free


# --- device_kind ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/proc",
        "/proc/self/status",
        "/dev/shm",
        "/sys",
        "/definitely/not/here",
        "",
        "relative/missing",
        "/tmp/\0bad",
    ],
)
def test_device_kind_never_raises(path):
    assert device_kind(Path(path) if "\0" not in path else path) in KINDS


def test_device_kind_of_pseudo_filesystems_is_unknown():
    assert device_kind(Path("/proc")) == "unknown"


def test_device_kind_of_real_dirs_is_a_kind(tmp_path):
    assert device_kind(tmp_path) in KINDS
    assert device_kind(tmp_path / "missing" / "deeper") == device_kind(tmp_path)


def _fake_block(sys_root: Path, name: str, rotational: str | None, parent=None) -> Path:
    base = (
        sys_root / "devices" / ("virtual" if name.startswith(("dm", "zram")) else "pci")
    )
    block = (parent if parent is not None else base / "block") / name
    block.mkdir(parents=True)
    if parent is not None:
        (block / "partition").write_text("1\n")
    if rotational is not None:
        (block / "queue").mkdir()
        (block / "queue" / "rotational").write_text(rotational + "\n")
    return block


def _link(sys_root: Path, dev: str, target: Path) -> None:
    dev_block = sys_root / "dev" / "block"
    dev_block.mkdir(parents=True, exist_ok=True)
    (dev_block / dev).symlink_to(target)


@pytest.fixture
def fake_sysfs(tmp_path, monkeypatch) -> Path:
    """sda (rotational) with partition sda1, nvme0n1 (not), dm-0 over both, zram0."""
    sys_root = tmp_path / "sys"
    sda = _fake_block(sys_root, "sda", "1")
    sda1 = _fake_block(sys_root, "sda1", None, parent=sda)
    nvme = _fake_block(sys_root, "nvme0n1", "0")
    for dev, target in (("8:0", sda), ("8:1", sda1), ("259:0", nvme)):
        _link(sys_root, dev, target)
    for name, dev, slaves in (
        ("dm-0", "253:0", [sda1]),
        ("dm-1", "253:1", [sda1, nvme]),
    ):
        dm = _fake_block(sys_root, name, "1")
        (dm / "slaves").mkdir()
        for slave in slaves:
            (dm / "slaves" / slave.name).symlink_to(slave)
        _link(sys_root, dev, dm)
    _link(sys_root, "252:0", _fake_block(sys_root, "zram0", "0"))
    _link(sys_root, "8:16", _fake_block(sys_root, "sdb", None))  # no queue dir
    monkeypatch.setattr(storage, "SYS_DEV_BLOCK", sys_root / "dev" / "block")
    return sys_root


@pytest.mark.parametrize(
    ("major", "minor", "kind"),
    [
        (8, 0, "hdd"),  # a whole disk
        (8, 1, "hdd"),  # a partition: the parent disk's queue
        (259, 0, "ssd"),
        (253, 0, "hdd"),  # device-mapper over one rotational partition
        (253, 1, "unknown"),  # device-mapper over an HDD and an SSD
        (252, 0, "unknown"),  # zram: virtual, no disk
        (8, 16, "unknown"),  # unreadable queue
        (8, 99, "unknown"),  # not in sysfs
        (0, 42, "unknown"),  # anonymous: tmpfs, overlay, NFS
    ],
)
def test_kind_of_device_from_sysfs(fake_sysfs, major, minor, kind):
    assert storage.kind_of_device(major, minor) == kind


# --- layout ---------------------------------------------------------------------------


def test_layout_warns_for_code_on_hdd_and_notes_data_on_ssd(
    tmp_path, monkeypatch, config_for
):
    code = storage.code_root()
    kinds = {code: "hdd", tmp_path: "ssd"}
    monkeypatch.setattr(storage, "device_kind", lambda p: kinds.get(Path(p), "unknown"))
    messages = layout_warnings(config_for(tmp_path))
    assert len(messages) == 2
    assert str(code) in messages[0] and "hdd" in messages[0]
    assert str(tmp_path) in messages[1] and "SSD" in messages[1]


def test_layout_is_quiet_for_the_intended_layout(tmp_path, monkeypatch, config_for):
    kinds = {storage.code_root(): "ssd", tmp_path: "hdd"}
    monkeypatch.setattr(storage, "device_kind", lambda p: kinds.get(Path(p), "unknown"))
    assert layout_warnings(config_for(tmp_path)) == []


def test_code_root_holds_the_package():
    assert (storage.code_root() / "drumtx" / "storage.py").is_file()


# --- check_not_raw --------------------------------------------------------------------


def test_check_not_raw_refuses_paths_inside_the_raw_root(tmp_path, config_for):
    roots = resolve_roots(config_for(tmp_path))
    roots.egmd_dir.mkdir()
    for path in (roots.egmd_dir, roots.egmd_dir / "drummer1" / "x.wav"):
        with pytest.raises(StorageError) as info:
            check_not_raw(path, roots)
        assert "storage.egmd_dir" in info.value.message
        assert str(roots.egmd_dir) in info.value.message


def test_check_not_raw_follows_symlinks(tmp_path, config_for):
    roots = resolve_roots(config_for(tmp_path))
    roots.egmd_dir.mkdir()
    sneaky = tmp_path / "out"
    sneaky.symlink_to(roots.egmd_dir)
    with pytest.raises(StorageError):
        check_not_raw(sneaky / "manifest.json", roots)


def test_check_not_raw_allows_siblings_with_a_common_prefix(tmp_path, config_for):
    roots = resolve_roots(config_for(tmp_path))
    check_not_raw(tmp_path / "e-gmd-v1.0.0-processed" / "a.npy", roots)
    check_not_raw(roots.processed_dir / "train" / "audio.i16", roots)


# --- atomic writes --------------------------------------------------------------------


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "manifest.json"
    atomic_write_text(target, "old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_atomic_write_honours_the_umask(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_atomic_write_failure_keeps_old_file_and_leaves_no_tmp(
    tmp_path, monkeypatch, failing
):
    target = tmp_path / "hits.npy"
    target.write_bytes(b"old contents")
    monkeypatch.setattr(os, failing, _enospc)
    with pytest.raises(StorageError, match="no space left") as info:
        atomic_write_bytes(target, b"x" * 100_000)
    assert "free space" in info.value.hint
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["hits.npy"]


def test_atomic_write_of_a_new_file_under_enospc_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", _enospc)
    with pytest.raises(StorageError):
        atomic_write_text(tmp_path / "new.json", "{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_handles_short_writes(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    atomic_write_bytes(tmp_path / "a.bin", bytes(range(256)) * 4)
    monkeypatch.undo()
    assert (tmp_path / "a.bin").read_bytes() == bytes(range(256)) * 4


def test_files_written_as_one_change_nothing_when_one_cannot_be(tmp_path, monkeypatch):
    """A folder in the way is found before anything is written; a rename that fails
    leaves no hidden tmp file behind."""
    import os

    old = {tmp_path / f"a.{x}": f"old {x}".encode() for x in ("mid", "csv", "json")}
    for path, data in old.items():
        path.write_bytes(data)
    blocked = tmp_path / "a.musicxml"
    blocked.mkdir()
    new = {path: b"new" for path in [*old, blocked]}
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_files(new)
    assert info.value.filename == str(blocked)
    assert {p: p.read_bytes() for p in old} == old
    blocked.rmdir()
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise PermissionError(1, "Operation not permitted", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        atomic_write_files(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json", "a.mid"]
    atomic_write_files({})  # nothing to write is no error


def test_ctrl_c_while_a_set_is_written_waits_for_the_set(tmp_path, monkeypatch):
    """Ctrl-C pressed several times while the files are written (here: inside the
    second file's write and inside the last rename) interrupts only once the set is
    whole: every file new, no tmp file left; then KeyboardInterrupt, as Ctrl-C gives."""
    import signal

    old = {tmp_path / f"a.{x}": f"old {x}".encode() for x in ("mid", "csv", "json")}
    for path, data in old.items():
        path.write_bytes(data)
    real_write, real_replace, writes = storage.write_all, os.replace, []

    def write_all(fd, data):
        writes.append(fd)
        if len(writes) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real_write(fd, data)

    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".json"):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(storage, "write_all", write_all)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_files({path: b"new" for path in old})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "a.mid": b"new", "a.csv": b"new", "a.json": b"new",
    }  # fmt: skip
    # and the handler is Python's own again: the next Ctrl-C interrupts at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_files_written_without_replace_keep_a_file_that_appeared(tmp_path):
    """Two runs writing the same outputs: the second must not replace the first's."""
    new = {tmp_path / f"a.{x}": b"second" for x in ("mid", "csv")}
    atomic_write_files(new, replace=False)  # nothing there yet: written
    assert all(p.read_bytes() == b"second" for p in new)
    (tmp_path / "a.csv").write_bytes(b"first")
    (tmp_path / "a.mid").unlink()
    with pytest.raises(FileExistsError) as info:
        atomic_write_files({p: b"third" for p in new}, replace=False)
    assert info.value.filename == str(tmp_path / "a.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # nothing else
    assert (tmp_path / "a.csv").read_bytes() == b"first"
