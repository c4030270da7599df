"""The E-GMD and GMD index CSVs as typed records.

Columns are matched by name (order may differ); a malformed row stops the read with the
file and line number, because a silently skipped row would change the splits.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from drumtx.errors import DataError
from drumtx.storage import atomic_write_text

EGMD_CSV_NAME = "e-gmd-v1.0.0.csv"
EGMD_COLUMNS = (
    "drummer",
    "session",
    "id",
    "style",
    "bpm",
    "beat_type",
    "time_signature",
    "duration",
    "split",
    "midi_filename",
    "audio_filename",
    "kit_name",
)
GMD_COLUMNS = (
    "drummer",
    "session",
    "id",
    "style",
    "bpm",
    "beat_type",
    "time_signature",
    "midi_filename",
    "audio_filename",
    "duration",
    "split",
)
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class EgmdRecord:
    """One E-GMD performance rendered through one kit (a row of e-gmd-v1.0.0.csv)."""

    drummer: str  # "drummer1"
    session: str  # "drummer1/eval_session"
    id: str  # "drummer1/eval_session/1"
    style: str  # "funk/groove1"
    bpm: int
    beat_type: str  # "beat" | "fill"
    time_signature: str  # "4-4"
    duration: float  # seconds
    split: str  # one of SPLITS
    midi_filename: str  # relative to the E-GMD root
    audio_filename: str  # relative to the E-GMD root
    kit_name: str  # "Acoustic Kit"


@dataclass(frozen=True)
class GmdRecord:
    """One GMD performance (a row of groove/info.csv); audio_filename may be empty."""

    drummer: str
    session: str
    id: str
    style: str
    bpm: int
    beat_type: str
    time_signature: str
    midi_filename: str  # relative to the GMD root
    audio_filename: str  # relative to the GMD root; "" where GMD has no audio
    duration: float  # seconds
    split: str  # one of SPLITS


def egmd_csv_path(egmd_dir: Path) -> Path:
    """Where the E-GMD index lives inside the dataset folder."""
    return Path(egmd_dir) / EGMD_CSV_NAME


def _check_header(path: Path, header: list[str], columns: Sequence[str]) -> None:
    found = [name.strip() for name in header]
    missing = [c for c in columns if c not in found]
    unexpected = [c for c in found if c not in columns]
    duplicated = sorted({c for c in found if found.count(c) > 1})
    if missing or unexpected or duplicated:
        parts = [f"missing columns: {', '.join(missing) or '-'}"]
        parts.append(f"unexpected columns: {', '.join(unexpected) or '-'}")
        if duplicated:
            parts.append(f"duplicated columns: {', '.join(duplicated)}")
        raise DataError(
            f"{path}: wrong CSV header ({'; '.join(parts)})",
            hint=f"expected columns: {','.join(columns)}; found: {','.join(found)}",
        )


def _rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) for each data row; blank lines are skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty (no CSV header)")
            _check_header(path, header, columns)
            names = [name.strip() for name in header]
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(names):
                    raise DataError(
                        f"{path}, line {reader.line_num}: expected {len(names)} "
                        f"fields, found {len(row)}"
                    )
                yield reader.line_num, dict(zip(names, row))
    except FileNotFoundError:
        raise DataError(f"index CSV {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"index CSV {path} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse_number(path: Path, line: int, column: str, text: str, kind: type) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        raise DataError(
            f"{path}, line {line}: {column} {text!r} is not "
            f"{'an integer' if kind is int else 'a number'}"
        ) from None
    if not math.isfinite(value) or value < 0 or (kind is int and value == 0):
        raise DataError(f"{path}, line {line}: {column} {text!r} is out of range")
    return value


def _typed_fields(path: Path, line: int, row: dict[str, str]) -> dict[str, object]:
    """Convert bpm, duration and split of one row; other fields stay text."""
    fields: dict[str, object] = dict(row)
    fields["bpm"] = int(_parse_number(path, line, "bpm", row["bpm"], int))
    fields["duration"] = float(
        _parse_number(path, line, "duration", row["duration"], float)
    )
    if row["split"] not in SPLITS:
        raise DataError(
            f"{path}, line {line}: unknown split {row['split']!r}",
            hint=f"split must be one of {', '.join(SPLITS)}",
        )
    return fields


def read_egmd_csv(path: Path) -> list[EgmdRecord]:
    """All rows of an E-GMD index CSV, in file order."""
    path = Path(path)
    return [
        EgmdRecord(**_typed_fields(path, line, row))  # type: ignore[arg-type]
        for line, row in _rows(path, EGMD_COLUMNS)
    ]


def read_gmd_info(path: Path) -> list[GmdRecord]:
    """All rows of GMD's groove/info.csv, in file order."""
    path = Path(path)
    return [
        GmdRecord(**_typed_fields(path, line, row))  # type: ignore[arg-type]
        for line, row in _rows(path, GMD_COLUMNS)
    ]


def write_egmd_csv(path: Path, records: Sequence[EgmdRecord]) -> None:
    """Write an E-GMD index CSV (header EGMD_COLUMNS), atomically."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EGMD_COLUMNS)
    for record in records:
        # repr keeps every float digit, so the file reads back to equal records.
        writer.writerow(repr(v) if isinstance(v, float) else v for v in astuple(record))
    try:
        atomic_write_text(path, buffer.getvalue())
    except OSError as exc:
        raise DataError(
            f"cannot write index CSV {path}: {exc.strerror or exc}",
            hint="check that the folder exists and is writable",
        ) from None
