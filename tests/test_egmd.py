"""E-GMD / GMD index CSVs: typed round trip and errors that name the line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drumtx.egmd import (
    EGMD_COLUMNS,
    GMD_COLUMNS,
    SPLITS,
    EgmdRecord,
    egmd_csv_path,
    read_egmd_csv,
    read_gmd_info,
    write_egmd_csv,
)
from drumtx.errors import DataError


def gmd_info_path() -> Path:
    env = os.environ.get("DRUMTX_GMD_DIR")
    root = (
        Path(env)
        if env
        else Path(__file__).resolve().parents[1].parent / "shared/data/gmd/groove"
    )
    return root / "info.csv"


def make_record(n: int, split: str = "train") -> EgmdRecord:
    stem = f"drummer1/eval_session/{n}_funk-groove{n}_138_beat_4-4_1"
    return EgmdRecord(
        drummer="drummer1",
        session="drummer1/eval_session",
        id=f"drummer1/eval_session/{n}",
        style=f"funk/groove{n}",
        bpm=138,
        beat_type="beat",
        time_signature="4-4",
        duration=27.872308 + n / 3,
        split=split,
        midi_filename=f"{stem}.midi",
        audio_filename=f"{stem}.wav",
        kit_name='Acoustic Kit, "quoted"',  # commas and quotes must survive
    )


def test_round_trip(tmp_path: Path) -> None:
    records = [make_record(i, SPLITS[i % 3]) for i in range(7)]
    path = egmd_csv_path(tmp_path)
    assert path.name == "e-gmd-v1.0.0.csv"
    write_egmd_csv(path, records)
    assert read_egmd_csv(path) == records
    assert path.read_text().splitlines()[0] == ",".join(EGMD_COLUMNS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no tmp left


def test_column_order_may_differ(tmp_path: Path) -> None:
    record = make_record(1)
    path = tmp_path / "x.csv"
    write_egmd_csv(path, [record])
    lines = path.read_text().splitlines()
    # swap the first two columns in header and row
    swapped = [
        ",".join([r.split(",")[1], r.split(",")[0], *r.split(",")[2:]]) for r in lines
    ]
    path.write_text("\n".join(swapped) + "\n\n")  # trailing blank line is fine
    assert read_egmd_csv(path) == [record]


def _write_rows(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "e.csv"
    path.write_text(",".join(EGMD_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return path


GOOD = "d1,d1/s1,d1/s1/1,rock/groove1,120,beat,4-4,12.5,train,a.midi,a.wav,Kit"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (GOOD.replace(",Kit", ""), "expected 12 fields, found 11"),
        (GOOD.replace(",120,", ",fast,"), "bpm 'fast' is not an integer"),
        (GOOD.replace(",12.5,", ",long,"), "duration 'long' is not a number"),
        (GOOD.replace(",12.5,", ",nan,"), "out of range"),
        (GOOD.replace(",train,", ",holdout,"), "unknown split 'holdout'"),
    ],
)
def test_malformed_row_names_line(tmp_path: Path, bad: str, message: str) -> None:
    path = _write_rows(tmp_path, [GOOD, GOOD, bad, GOOD])
    with pytest.raises(DataError, match=message) as err:
        read_egmd_csv(path)
    assert f"{path}, line 4:" in err.value.message


def test_wrong_header_lists_columns(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    header = [c for c in EGMD_COLUMNS if c != "kit_name"] + ["kit"]
    path.write_text(",".join(header) + "\n")
    with pytest.raises(DataError, match="missing columns: kit_name") as err:
        read_egmd_csv(path)
    assert "unexpected columns: kit" in err.value.message
    assert ",".join(EGMD_COLUMNS) in (err.value.hint or "")
    with pytest.raises(DataError, match="unexpected columns: kit$|kit\\)"):
        read_gmd_info(path)  # GMD has no kit column at all


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.csv is empty"):
        read_egmd_csv(empty)
    with pytest.raises(DataError, match="does not exist"):
        read_egmd_csv(tmp_path / "missing.csv")


def test_gmd_info_parses(tmp_path: Path) -> None:
    path = tmp_path / "info.csv"
    path.write_text(
        ",".join(GMD_COLUMNS) + "\n"
        "drummer1,drummer1/s,drummer1/s/1,funk/groove1,138,beat,4-4,a.mid,,27.5,test\n"
    )
    (record,) = read_gmd_info(path)
    assert (record.bpm, record.duration, record.audio_filename) == (138, 27.5, "")


def test_real_gmd_info() -> None:
    path = gmd_info_path()
    if not path.is_file():
        pytest.skip(f"GMD info.csv not found at {path} (set DRUMTX_GMD_DIR)")
    records = read_gmd_info(path)
    assert len(records) == 1150
    assert {r.split for r in records} == set(SPLITS)
    assert all(r.bpm > 0 and r.duration > 0 for r in records)
