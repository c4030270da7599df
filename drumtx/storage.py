"""Storage roots: resolve them from the config, validate them before any other I/O.

The layout (docs/storage-architecture.md, DESIGN.md §1) is a contract: code on the SSD,
everything large under ``storage.data_root`` on the HDD, the raw E-GMD tree read-only.
Every failure names the root, the config key that set it, and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shlex
import shutil
import signal
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drumtx.config import Config
from drumtx.errors import StorageError

ROOT_KEYS = {
    "data_root": "storage.data_root",
    "egmd_dir": "storage.egmd_dir",
    "processed_dir": "storage.processed_dir",
    "checkpoint_dir": "storage.checkpoint_dir",
    "log_dir": "storage.log_dir",
}
ROOT_LABELS = {
    "data_root": "data root",
    "egmd_dir": "E-GMD root",
    "processed_dir": "processed store",
    "checkpoint_dir": "checkpoint dir",
    "log_dir": "log dir",
}
SYS_DEV_BLOCK = Path("/sys/dev/block")  # MAJ:MIN -> the block device's sysfs dir
_MAX_STACK_DEPTH = 4  # dm on md on loop on ...: deeper stacks are reported "unknown"
GB = 1_000_000_000


@dataclass(frozen=True)
class Roots:
    data_root: Path
    egmd_dir: Path
    processed_dir: Path
    checkpoint_dir: Path
    log_dir: Path

    def get(self, name: str) -> Path:
        return getattr(self, name)


def resolve_roots(cfg: Config) -> Roots:
    """Absolute roots: ``~`` expanded, sub-directories joined to data_root
    unless absolute.
    """
    data_root = Path(cfg.storage.data_root).expanduser().absolute()
    subdirs = {
        name: data_root / Path(getattr(cfg.storage, name)).expanduser()
        for name in ROOT_KEYS
        if name != "data_root"
    }  # joining an absolute path keeps it as is
    return Roots(data_root=data_root, **subdirs)


def describe_key(name: str) -> str:
    """The config key of a root and where it may come from, for messages."""
    if name == "data_root":
        return "storage.data_root, from drumtx.toml, $DRUMTX_DATA_ROOT or --data-root"
    return f"{ROOT_KEYS[name]}, relative to storage.data_root unless absolute"


def require_roots(
    cfg: Config,
    *,
    read: Sequence[str] = (),
    write: Sequence[str] = (),
    need_bytes: Mapping[str, int] | None = None,
    create: Sequence[str] = (),
) -> Roots:
    """Validate the roots a command needs, before it does any other I/O.

    ``read``: must exist, be a directory, be readable. ``write``: also writable (an
    actual file is created and removed). ``create``: made with ``mkdir -p`` when
    missing, then checked as written; data_root is only made when listed itself.
    ``need_bytes``: root name -> bytes the command will add under it.
    """
    need_bytes = dict(need_bytes or {})
    names = _ordered_names([*read, *write, *create, *need_bytes])
    roots = resolve_roots(cfg)
    for name in names:
        _check_present(roots, name, create)
    # Only `create` roots can still be missing; they are made after every other
    # check passed, so a failing command leaves no new directories behind.
    missing = [name for name in names if not roots.get(name).exists()]
    for name in names:
        if name not in missing:
            _check_access(roots.get(name), name, write=name in write or name in create)
    for name, n_bytes in need_bytes.items():
        _check_space(roots.get(name), name, n_bytes)
    for name in missing:
        _make_root(roots.get(name), name)
        _check_access(roots.get(name), name, write=True)
    return roots


def _ordered_names(names: Sequence[str]) -> list[str]:
    """Known root names, deduplicated, data_root first (the others hang off it)."""
    unknown = sorted(set(names) - set(ROOT_KEYS))
    if unknown:
        raise ValueError(f"unknown storage roots {unknown}; known: {list(ROOT_KEYS)}")
    return [name for name in ROOT_KEYS if name in names]


def _check_present(roots: Roots, name: str, create: Sequence[str]) -> None:
    path = roots.get(name)
    label, key = ROOT_LABELS[name], describe_key(name)
    # One stat, not is_dir() then exists(): another process (a torchrun rank) may
    # create the directory between two calls, and that is not "not a directory".
    try:
        is_dir = stat.S_ISDIR(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = None  # missing
    if is_dir:
        return
    if is_dir is not None:
        raise StorageError(
            f"{label} {path} is not a directory (set by {key})",
            hint=f"point {ROOT_KEYS[name]} at a directory: {_override(name, 'DIR')}",
        )
    below_data_root = roots.data_root in path.parents
    if below_data_root and not roots.data_root.is_dir():
        # The missing data root is the cause, and a root in `create` must not create
        # it: a typo'd or unmounted HDD path must fail, not silently fill the SSD.
        _check_present(roots, "data_root", create)
    if name not in create:
        raise StorageError(
            f"{label} {path} does not exist (set by {key})",
            hint=_missing_hint(name, path),
        )


def _missing_hint(name: str, path: Path) -> str:
    quoted = shlex.quote(str(path))
    if name == "data_root":
        return (
            f"mount the HDD, or create the root: mkdir -p {quoted}; or use another "
            "root with --data-root DIR or DRUMTX_DATA_ROOT=DIR "
            "(python -m drumtx demo builds a small one in ./demo-data)"
        )
    if name == "egmd_dir":
        return (
            f"download and extract E-GMD v1.0.0 into {quoted}, or point "
            f"{_override(name, 'DIR')} at it"
        )
    if name == "processed_dir":
        return "python -m drumtx preprocess builds it"
    return f"mkdir -p {quoted}, or {_override(name, 'DIR')}"


def _override(name: str, value: str) -> str:
    if name == "data_root":
        return f"--data-root {value}"
    return f"--set {ROOT_KEYS[name]}={value}"


def _make_root(path: Path, name: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create {ROOT_LABELS[name]} {path} (set by {describe_key(name)}): "
            f"{exc.strerror or exc}",
            hint=f"create it yourself: mkdir -p {shlex.quote(str(path))}; "
            f"or {_override(name, 'DIR')}",
        ) from None


def _check_access(path: Path, name: str, *, write: bool) -> None:
    label, key = ROOT_LABELS[name], describe_key(name)
    quoted = shlex.quote(str(path))
    if not os.access(path, os.R_OK | os.X_OK):
        raise StorageError(
            f"{label} {path} is not readable (set by {key})",
            hint=f"chmod u+rx {quoted} (or chown it to this user)",
        )
    if not write:
        return
    fix = (
        f"chmod u+w {quoted}, remount the disk read-write, or {_override(name, 'DIR')}"
    )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"{label} {path} is not writable (set by {key})", hint=fix)
    try:
        _probe_write(path)
    except OSError as exc:
        # os.access trusts mode bits; a read-only mount, a full disk or a quota
        # only shows when a file is actually created.
        raise StorageError(
            f"{label} {path} is not writable (set by {key}): {exc.strerror or exc}",
            hint=fix,
        ) from None


def _probe_write(dir_path: Path) -> None:
    """Create and remove a small file in dir_path; raises OSError when that fails."""
    probe = dir_path / f".drumtx-write-test-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"drumtx")
    finally:
        os.close(fd)
        probe.unlink()


def _check_space(path: Path, name: str, n_bytes: int) -> None:
    free = free_bytes(path)
    if free >= n_bytes:
        return
    raise StorageError(
        f"{ROOT_LABELS[name]} {path} has {free / GB:.1f} GB free, needs about "
        f"{n_bytes / GB:.1f} GB (set by {describe_key(name)})",
        hint=f"free {(n_bytes - free) / GB:.1f} GB on that disk, or point it at a "
        f"bigger one: {_override(name, 'DIR')}",
    )


def existing_ancestor(path: Path) -> Path:
    """path itself when it exists, else its nearest existing parent."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def free_bytes(path: Path) -> int:
    """Bytes free to this user on the filesystem that holds (or would hold) path."""
    return shutil.disk_usage(existing_ancestor(path)).free


def device_kind(path: Path) -> str:
    """The kind of disk under path: "hdd", "ssd" or "unknown" (sysfs); never raises.

    A missing path is judged by its nearest existing parent. tmpfs, overlay, NFS,
    btrfs (anonymous device numbers), zram and unreadable sysfs give "unknown".
    """
    try:
        st_dev = os.stat(existing_ancestor(path)).st_dev
        return kind_of_device(os.major(st_dev), os.minor(st_dev))
    except (OSError, ValueError):
        return "unknown"


def kind_of_device(major: int, minor: int) -> str:
    """Kind of the block device MAJ:MIN via SYS_DEV_BLOCK; never raises."""
    if major == 0:  # anonymous device: tmpfs, overlay, NFS, proc, btrfs subvolume
        return "unknown"
    try:
        return _sysfs_kind((SYS_DEV_BLOCK / f"{major}:{minor}").resolve(strict=True), 0)
    except (OSError, ValueError, RuntimeError):
        return "unknown"


def _sysfs_kind(block_dir: Path, depth: int) -> str:
    """Kind of one /sys/devices/.../block/NAME dir; stacked devices ask their disks."""
    if depth > _MAX_STACK_DEPTH:
        return "unknown"
    if (block_dir / "partition").exists():
        block_dir = block_dir.parent  # sda1 -> sda: the queue belongs to the disk
    slaves_dir = block_dir / "slaves"
    slaves = sorted(slaves_dir.iterdir()) if slaves_dir.is_dir() else []
    if slaves:  # device-mapper, md: rotational only if every disk underneath agrees
        kinds = {_sysfs_kind(s.resolve(strict=True), depth + 1) for s in slaves}
        return kinds.pop() if len(kinds) == 1 else "unknown"
    backing = block_dir / "loop" / "backing_file"
    if backing.is_file():  # a loop device is as fast as the file behind it
        return device_kind(Path(backing.read_text().strip()))
    if "virtual" in block_dir.parts:  # zram, nbd, unbacked loop: no disk to ask
        return "unknown"
    flag = (block_dir / "queue" / "rotational").read_text().strip()
    return {"1": "hdd", "0": "ssd"}.get(flag, "unknown")


def code_root() -> Path:
    """The checkout holding drumtx/ and drumtx.toml (the package's parent dir)."""
    return Path(__file__).resolve().parent.parent


def layout_warnings(cfg: Config) -> list[str]:
    """Messages for an inverted layout: code on an HDD warns, data on an SSD is noted.
    """
    messages = []
    code_dir = code_root()
    if device_kind(code_dir) == "hdd":
        messages.append(
            f"code root {code_dir} is on a rotational disk (hdd): git, imports and "
            "tests are faster from an SSD; keep only the data root on the HDD"
        )
    data_root = resolve_roots(cfg).data_root
    if device_kind(data_root) == "ssd":
        messages.append(
            f"data root {data_root} is on an SSD: fine and fast, but E-GMD and the "
            "processed store need ~170 GB there"
        )
    return messages


def check_not_raw(path: Path, roots: Roots) -> None:
    """Refuse to write path when it lies inside the raw E-GMD root (symlinks resolved).
    """
    raw = roots.egmd_dir.resolve()
    target = Path(path).expanduser().resolve()
    if target == raw or raw in target.parents:
        raise StorageError(
            f"refusing to write {path}: it is inside the raw E-GMD root {raw} "
            f"(set by {describe_key('egmd_dir')}), which drumtx never writes",
            hint="point the output (storage.processed_dir, checkpoint_dir, log_dir or "
            "--out-dir) at a directory outside the E-GMD root",
        )


def tmp_beside(path: Path) -> Path:
    """A hidden name beside ``path`` no other writer takes. Open it with mode 0o666:
    the umask then decides the final mode, as for a plain open(path, "w")."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def replacing(
    path: Path, *, durable: bool = True, full_hint: str = ""
) -> Iterator[int]:
    """Yield the fd of a tmp file beside ``path``; on success it replaces ``path``.

    A reader sees the old file or the new one, never half of one. On any error the tmp
    file is removed and the old file (if any) is left intact; a full disk becomes a
    StorageError (``full_hint`` adds the command's own next step). ``durable=False``
    skips the fsyncs, for files whose loss an OS crash may cost but a kill may not.
    """
    path = Path(path)
    tmp = tmp_beside(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with disk_full_error(path, full_hint):
        try:
            try:
                yield fd
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if durable:
        fsync_dir(path.parent)


@contextlib.contextmanager
def disk_full_error(path: Path, hint: str = "") -> Iterator[None]:
    """A full disk (ENOSPC) inside the block becomes :func:`no_space_error`."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise no_space_error(path, hint) from None


def no_space_error(path: Path, hint: str = "") -> StorageError:
    """The error for a full disk while writing ``path``, which was not replaced."""
    return StorageError(
        f"no space left on the device while writing {path}; "
        "nothing was replaced and no partial file was left",
        hint=f"free space on the disk holding {path.parent}"
        + (f"; {hint}" if hint else ""),
    )


def atomic_write_bytes(
    path: Path, data: bytes | memoryview, *, durable: bool = True, full_hint: str = ""
) -> None:
    """Write path all at once (see :func:`replacing`)."""
    with replacing(path, durable=durable, full_hint=full_hint) as fd:
        write_all(fd, data)


def _move(tmp: Path, path: Path, replace: bool) -> None:
    """Rename ``tmp`` to ``path``; without ``replace`` atomically refuse an existing
    ``path`` (a hard link fails if it exists), where the filesystem has hard links."""
    if replace:
        os.replace(tmp, path)
        return
    clash = FileExistsError(errno.EEXIST, "written meanwhile", str(path))
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise clash from None
    except OSError:  # no hard links here (FAT, exFAT): checked just before instead
        if path.exists():
            raise clash from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a write may take only part)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT held off while the block runs (in the main thread; elsewhere Python
    delivers none): one Ctrl-C, or several in a row, arriving while a set of files
    is written lets the set finish or fail whole, cleaned up, and then interrupts as
    it would have. A second Ctrl-C inside the cleanup of the first had left a tmp file
    behind and a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, None)  # Python's own: raises KeyboardInterrupt
        elif caught and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def atomic_write_files(
    files: dict[Path, bytes], *, replace: bool = True, full_hint: str = ""
) -> None:
    """Write several files as one: every file is written beside its target first, and
    only once all are on disk do they replace their targets (renames need no space).
    On any error before that every tmp file is removed and no target has changed, so
    a full disk never leaves a set half old and half new. ``replace=False`` never
    replaces a file that exists (one another process wrote meanwhile): FileExistsError
    names it, and it is kept. Ctrl-C waits for the set (interrupts_deferred)."""
    with interrupts_deferred():
        _write_set(files, replace, full_hint)


def _write_set(files: dict[Path, bytes], replace: bool, full_hint: str) -> None:
    for path in files:
        if path.is_dir():  # found before anything is written, and named as itself
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(path))
    tmps: list[Path] = []
    try:
        for path, data in files.items():
            tmp = tmp_beside(path)
            tmps.append(tmp)
            with disk_full_error(path, full_hint):
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    renamed = 0
    try:
        if not replace:  # all checked first: a clash leaves the whole set unwritten
            for path in files:
                if path.exists():
                    raise FileExistsError(errno.EEXIST, "exists", str(path))
        for tmp, path in zip(tmps, files):
            _move(tmp, path, replace)
            renamed += 1
    finally:  # a rename that failed leaves no tmp file behind
        for tmp in tmps[renamed:]:
            tmp.unlink(missing_ok=True)
    for folder in {path.parent for path in files}:
        fsync_dir(folder)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(dir_path: Path) -> None:
    """Persist the rename; best effort (some filesystems refuse to fsync a dir)."""
    try:
        fd = os.open(dir_path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # the data is already safe in the renamed file; only durability is lost
    finally:
        os.close(fd)
