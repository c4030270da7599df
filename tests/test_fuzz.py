"""Hostile input: the readers raise only DrumtxError subclasses, or succeed.

Random bytes, random structures and mutated valid files (bytes flipped, cut short) go
into the MIDI reader, the CSV readers, the config loader (TOML text and --set
overrides), drum-map files and the audio loader. Anything but a DrumtxError is a bug.

Settings stay small for CI; ``DRUMTX_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``
runs more examples per test.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drumtx.audio import audio_info, load_audio, read_samples
from drumtx.config import load_config
from drumtx.drums import ROLAND9, output_notes
from drumtx.egmd import read_egmd_csv, read_gmd_info
from drumtx.errors import DataError, DrumtxError
from drumtx.midi import read_notes

N_EXAMPLES = int(os.environ.get("DRUMTX_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="DRUMTX_FUZZ_EXAMPLES" not in os.environ,  # CI is reproducible
)

# A per-module scratch dir: hypothesis runs many examples inside one test call, so
# pytest's tmp_path (one per call) would be shared anyway.
_SCRATCH = Path(tempfile.mkdtemp(prefix="drumtx-fuzz-"))


def _file(name: str, data: bytes) -> Path:
    path = _SCRATCH / name
    path.write_bytes(data)
    return path


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """XOR bytes at (position, mask) pairs, then optionally keep only ``cut`` bytes."""
    buf = bytearray(data)
    for position, mask in flips:
        if buf:
            buf[position % len(buf)] ^= mask
    return bytes(buf if cut is None else buf[: cut % (len(buf) + 1)])


MUTATIONS = st.tuples(
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), max_size=8),
    st.none() | st.integers(0, 1 << 20),
)


# --- valid seeds ----------------------------------------------------------------------


def _valid_midi() -> bytes:
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=400_000, time=0)])
    for k, pitch in enumerate((36, 38, 42, 46, 49)):
        track.append(
            mido.Message("note_on", channel=9, note=pitch, velocity=90, time=k * 60)
        )
        track.append(mido.Message("note_off", channel=9, note=pitch, time=30))
    track.append(mido.MetaMessage("key_signature", key="C", time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _valid_wav(subtype: str = "PCM_16", channels: int = 1) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    audio = rng.uniform(-0.5, 0.5, (800, channels)).astype(np.float32)
    sf.write(buffer, audio, 8000, format="WAV", subtype=subtype)
    return buffer.getvalue()


VALID_MIDI = _valid_midi()
VALID_WAVS = [_valid_wav(), _valid_wav("FLOAT", 2), _valid_wav("PCM_24")]
EGMD_CSV = (
    b"drummer,session,id,style,bpm,beat_type,time_signature,duration,split,"
    b"midi_filename,audio_filename,kit_name\n"
    b"drummer1,drummer1/s1,drummer1/s1/1,funk/groove1,138,beat,4-4,2.5,train,"
    b"a.midi,a.wav,Acoustic Kit\n"
    b"drummer1,drummer1/s1,drummer1/s1/2,rock,90,fill,4-4,1.0,test,b.midi,b.wav,Kit 2\n"
)
GMD_CSV = (
    b"drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,"
    b"audio_filename,duration,split\n"
    b"drummer1,drummer1/s1,drummer1/s1/1,funk,138,beat,4-4,a.mid,,2.5,validation\n"
)


# --- MIDI -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=600))
@example(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x80\x00")  # SMPTE, 0 ticks per frame
def test_midi_random_bytes(data: bytes) -> None:
    _read_midi_or_data_error(_file("random.mid", data))


@FUZZ
@given(st.binary(max_size=200))
def test_midi_valid_header_random_body(body: bytes) -> None:
    header = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
    chunk = b"MTrk" + len(body).to_bytes(4, "big") + body
    _read_midi_or_data_error(_file("body.mid", header + chunk))


@FUZZ
@given(MUTATIONS)
def test_midi_mutated(mutation: tuple) -> None:
    _read_midi_or_data_error(_file("mutated.mid", _mutate(VALID_MIDI, *mutation)))


@FUZZ
@given(st.integers(0, 0xFFFF), st.integers(0, 2))
def test_midi_any_division_and_type(division: int, midi_type: int) -> None:
    data = bytearray(VALID_MIDI)
    data[8:10] = midi_type.to_bytes(2, "big")
    data[12:14] = division.to_bytes(2, "big")
    _read_midi_or_data_error(_file("division.mid", bytes(data)))


def _read_midi_or_data_error(path: Path) -> None:
    try:
        notes = read_notes(path)
    except DataError as exc:
        assert str(path) in exc.message
        return
    for note in notes:
        assert np.isfinite(note.time_sec) and note.time_sec >= 0
        assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127


def test_smpte_division_with_zero_ticks_per_frame_is_a_data_error(tmp_path) -> None:
    """Regression: 0 ticks per SMPTE frame was a ZeroDivisionError."""
    data = bytearray(VALID_MIDI)
    data[12:14] = b"\xe7\x00"  # -25 fps, 0 ticks per frame
    path = tmp_path / "smpte.mid"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="ticks per SMPTE frame"):
        read_notes(path)


# --- CSV ------------------------------------------------------------------------------


_CSV_CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@FUZZ
@given(st.binary(max_size=400))
def test_csv_random_bytes(data: bytes) -> None:
    _read_csvs(_file("random.csv", data))


@FUZZ
@given(MUTATIONS, st.booleans())
def test_csv_mutated(mutation: tuple, gmd: bool) -> None:
    _read_csvs(_file("mutated.csv", _mutate(GMD_CSV if gmd else EGMD_CSV, *mutation)))


@FUZZ
@given(
    st.lists(st.lists(_CSV_CELL, min_size=0, max_size=13), max_size=4), st.booleans()
)
def test_csv_valid_header_random_rows(rows: list[list[str]], gmd: bool) -> None:
    header = (GMD_CSV if gmd else EGMD_CSV).split(b"\n")[0].decode()
    lines = [header] + [",".join(_quote(c) for c in row) for row in rows]
    _read_csvs(_file("rows.csv", ("\n".join(lines) + "\n").encode("utf-8", "replace")))


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def _read_csvs(path: Path) -> None:
    for reader in (read_egmd_csv, read_gmd_info):
        try:
            records = reader(path)
        except DataError as exc:
            assert str(path) in exc.message
            continue
        for record in records:
            assert record.bpm > 0 and np.isfinite(record.duration)


# --- config ---------------------------------------------------------------------------


_TOML_KEYS = st.sampled_from(
    [
        "storage",
        "audio",
        "frontend",
        "model",
        "data",
        "train",
        "decode",
        "transcribe",
        "profiles",
        "sample_rate",
        "fps",
        "lr",
        "preset",
        "x",
        "class_thresholds",
        "data_root",
        "segment_sec",
        "KD",
    ]
)
_TOML_SCALARS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_TOML_KEYS, inner, max_size=3)
    ),
    max_leaves=8,
)


def _toml_value(value: object) -> str:
    """Render a value as TOML (enough of it for fuzzing)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(
            repr(value), repr(value)
        )
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    items = ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items())  # type: ignore[union-attr]
    return "{" + items + "}"


@FUZZ
@given(
    st.dictionaries(
        _TOML_KEYS, st.dictionaries(_TOML_KEYS, _TOML_VALUES, max_size=4), max_size=4
    )
)
def test_config_random_tables(tables: dict) -> None:
    text = "".join(
        f"[{name}]\n" + "".join(f'"{k}" = {_toml_value(v)}\n' for k, v in body.items())
        for name, body in tables.items()
    )
    _load_config_or_error(_file("random.toml", text.encode()), [])


@FUZZ
@given(st.binary(max_size=300))
def test_config_random_bytes(data: bytes) -> None:
    _load_config_or_error(_file("bytes.toml", data), [])


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=4))
@example(
    ["train.lr=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]
)
def test_config_random_overrides(overrides: list[str]) -> None:
    _load_config_or_error(None, overrides)


@FUZZ
@given(
    st.sampled_from(
        [
            "audio.sample_rate",
            "frontend.fps",
            "train.lr",
            "train.device",
            "model.preset",
            "decode.class_thresholds",
            "transcribe.segment_sec",
            "storage.data_root",
            "data.vocab",
            "train.max_steps",
        ]
    ),
    _TOML_VALUES,
)
def test_config_typed_overrides(key: str, value: object) -> None:
    _load_config_or_error(None, [f"{key}={_toml_value(value)}"])


@FUZZ
@given(
    st.lists(
        st.sampled_from(["(", "[", "{", "a", "=", "1", ",", '"', "'", "\n"]),
        max_size=2000,
    )
)
def test_config_deeply_nested_text(pieces: list[str]) -> None:
    text = "v = " + "".join(pieces)
    _load_config_or_error(
        _file("nested.toml", text.encode()), ["train.lr=" + "".join(pieces)]
    )


def _load_config_or_error(path: Path | None, overrides: list[str]) -> None:
    try:
        load_config(path, overrides)
    except DrumtxError as exc:
        assert exc.message


def test_deeply_nested_toml_is_a_config_error(tmp_path) -> None:
    """Regression: deep arrays in --set, TOML files and drum maps hit RecursionError."""
    from drumtx.errors import ConfigError

    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(None, ["train.lr=" + deep])
    path = tmp_path / "deep.toml"
    path.write_text(f"[train]\nlr = {deep}\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path, [])
    path.write_text(f"KD = {deep}\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        output_notes(ROLAND9, path)


# --- drum map -------------------------------------------------------------------------


@FUZZ
@given(
    st.dictionaries(
        st.text(max_size=4) | st.sampled_from(ROLAND9.codes), _TOML_VALUES, max_size=5
    )
)
def test_drum_map_random_tables(table: dict) -> None:
    text = "".join(f"{_toml_value(k)} = {_toml_value(v)}\n" for k, v in table.items())
    _drum_map_or_error(_file("map.toml", text.encode()))


@FUZZ
@given(st.binary(max_size=200))
def test_drum_map_random_bytes(data: bytes) -> None:
    _drum_map_or_error(_file("map-bytes.toml", data))


def _drum_map_or_error(path: Path) -> None:
    try:
        notes = output_notes(ROLAND9, path)
    except DrumtxError as exc:
        assert exc.message and exc.hint  # every refusal says what to write instead
        return
    assert len(notes) == ROLAND9.n_classes and all(0 <= n <= 127 for n in notes)


# --- audio ----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=600))
def test_audio_random_bytes(data: bytes) -> None:
    _decode_or_audio_error(_file("random.wav", data))


@FUZZ
@given(MUTATIONS, st.integers(0, len(VALID_WAVS) - 1))
def test_audio_mutated(mutation: tuple, which: int) -> None:
    _decode_or_audio_error(_file("mutated.wav", _mutate(VALID_WAVS[which], *mutation)))


@FUZZ
@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=2, max_size=2),
    st.binary(min_size=2, max_size=2),
    st.binary(max_size=64),
)
def test_audio_header_fields(
    rate: bytes, channels: bytes, bits: bytes, body: bytes
) -> None:
    """A WAV header with random rate, channel count and sample width."""
    data = bytearray(VALID_WAVS[0])
    data[24:28], data[22:24], data[34:36] = rate, channels, bits
    _decode_or_audio_error(_file("header.wav", bytes(data) + body))


@pytest.mark.parametrize("rate", [398_461_381, 999, 0x7FFFFFFF])
def test_absurd_sample_rate_is_an_audio_error(tmp_path, rate: int) -> None:
    """Regression: a header claiming ~398 MHz made load_audio(path, 16000) build a
    resampling filter of 400 M taps and exhaust memory (found by test_audio_mutated)."""
    from drumtx.errors import AudioError

    data = bytearray(VALID_WAVS[0])
    data[24:28] = rate.to_bytes(4, "little")
    path = tmp_path / "rate.wav"
    path.write_bytes(bytes(data))
    for decode in (audio_info, load_audio, lambda p: load_audio(p, 16000)):
        with pytest.raises(AudioError, match="sample rate"):
            decode(path)


def _decode_or_audio_error(path: Path) -> None:
    for decode in (
        lambda: audio_info(path),
        lambda: load_audio(path),
        lambda: load_audio(path, 16000),
        lambda: read_samples(path, 100, 300),
    ):
        try:
            out = decode()
        except DrumtxError as exc:
            assert str(path) in exc.message
            continue
        if isinstance(out, np.ndarray):
            assert out.dtype == np.float32 and out.ndim == 1
            assert np.isfinite(out).all()
