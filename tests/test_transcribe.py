"""transcribe: outputs, bad input, long audio in segments, and accuracy after training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from drumtx.cli import main
from drumtx.errors import ConfigError


def _wav(
    path: Path, seconds: float = 2.0, rate: int = 44100, channels: int = 1
) -> Path:
    rng = np.random.default_rng(1)
    audio = np.zeros((int(seconds * rate), channels), dtype=np.float32)
    for t in np.arange(0.25, seconds, 0.5):
        i = int(t * rate)
        audio[i : i + 400] += rng.uniform(-0.5, 0.5, (400, channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate)
    return path


def _run(*args: str) -> int:
    return main(["transcribe", *args, "--no-progress"])


def test_writes_all_formats(tmp_path, random_model, capsys):
    song = _wav(tmp_path / "song.wav", channels=2, rate=48000)
    assert (
        _run(
            str(song),
            "--checkpoint",
            str(random_model),
            "-f",
            "all",
            "--threshold",
            "0.3",
            "--velocity",
            "fixed:99",
        )
        == 0
    )
    mid = tmp_path / "song.drums.mid"
    rows = (tmp_path / "song.drums.csv").read_text().splitlines()
    data = json.loads((tmp_path / "song.drums.json").read_text())
    assert rows[0] == "time_sec,class,note,velocity"
    assert len(rows) - 1 == len(data["hits"])
    notes = [
        m for m in mido.MidiFile(mid).tracks[-1] if m.type == "note_on" and m.velocity
    ]
    assert len(notes) == len(data["hits"])
    assert all(m.channel == 9 and m.velocity == 99 for m in notes)
    assert {"tempo", "time_signatures", "beats_sec", "downbeats_sec"} <= set(data)
    score = (tmp_path / "song.drums.musicxml").read_bytes()
    assert b"<score-partwise" in score  # -f all: every format but the picture
    assert b"<work-title>song</work-title>" in score  # named after its audio file
    assert not (tmp_path / "song.drums.png").exists()
    err = capsys.readouterr().err
    assert "model:" in err and "device: cpu" in err and "transcribed 1" in err


def test_a_silent_input_says_so(tmp_path, random_model, capsys):
    """An empty MIDI from a silent (or all-NaN) file is the audio's doing, and the
    file's line says so; a file with sound in it gets no such note."""
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100, np.float32), 44100)
    broken = tmp_path / "broken.wav"
    sf.write(broken, np.full(44100, np.nan, np.float32), 44100, subtype="FLOAT")
    faint = tmp_path / "faint.wav"  # at the model's rate: its peak is not resampled
    x = np.zeros(24000, np.float32)
    x[100] = 10 ** (-70 / 20)
    sf.write(faint, x, 24000, subtype="FLOAT")
    song = _wav(tmp_path / "song.wav")
    args = [str(p) for p in (silent, broken, faint, song)]
    assert _run(*args, "--checkpoint", str(random_model), "--json") == 0
    captured = capsys.readouterr()
    assert captured.err.count("input is silent: every sample is 0") == 2
    assert "input is nearly silent: its loudest sample is at -70.0 dBFS" in captured.err
    peaks = {Path(e["input"]).name: e["input_peak_db"]
             for e in json.loads(captured.out)["inputs"]}  # fmt: skip
    assert peaks["silent.wav"] == peaks["broken.wav"] == -200.0
    assert peaks["faint.wav"] == pytest.approx(-70.0, abs=0.01)
    assert -9.0 < peaks["song.wav"] < 0.0  # bursts up to 0.5 (-6 dBFS), resampled
    song_block = captured.err.split("song.drums.mid")[1]
    assert "input is" not in song_block


def test_a_narrow_band_input_says_its_cymbals_may_be_missed(
    tmp_path, random_model, capsys
):
    phone = _wav(tmp_path / "phone.wav", rate=8000)
    full = _wav(tmp_path / "full.wav", rate=22050)
    assert _run(str(phone), str(full), "--checkpoint", str(random_model), "--json") == 0
    captured = capsys.readouterr()
    note = "input's sample rate is 8000 Hz: it holds nothing above 4.0 kHz, where " \
        "hi-hats and cymbals ring, so they may be missed"
    assert captured.err.count(note) == 1
    assert "sample rate is" not in captured.err.split("full.drums.mid")[1]
    rates = {Path(e["input"]).name: e["input_sample_rate"]
             for e in json.loads(captured.out)["inputs"]}  # fmt: skip
    assert rates == {"phone.wav": 8000, "full.wav": 22050}


def test_the_progress_counts_the_seconds_of_audio_heard(tmp_path, random_model):
    """A bar of files stood at 0/1 through a whole song; it counts seconds now."""
    from drumtx.config import load_config
    from drumtx.inference import load_model
    from drumtx.transcribe import (
        Job,
        audio_seconds,
        make_rendering,
        transcribe_job,
    )

    song = _wav(tmp_path / "song.wav", seconds=64.5)
    assert audio_seconds(song) == 65 and audio_seconds(tmp_path / "none.wav") == 1
    cfg = load_config(None)
    loaded = load_model(random_model, cfg, torch.device("cpu"))
    heard: list[int] = []
    job = Job(song, tmp_path / "song")
    transcribe_job(job, loaded, cfg, make_rendering(cfg, loaded, []), heard.append)
    assert job.status == "done"
    assert heard == [30, 60, 64]  # as the audio streams in, 30 s at a time


def test_a_cut_short_input_says_so(tmp_path, random_model, capsys):
    """A WAV whose copy was interrupted was read as far as it went without a word."""
    from drumtx.audio import audio_info

    whole = _wav(tmp_path / "whole.wav", seconds=4.0, rate=8000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 2 * 8000])  # the header and 1 s
    assert audio_info(whole).promised_sec is None
    assert audio_info(cut).promised_sec == pytest.approx(4.0, abs=0.01)
    assert _run(str(cut), str(whole), "--checkpoint", str(random_model)) == 0
    err = capsys.readouterr().err
    note = "input is cut short: its header promises 4.0 s, the file holds 1.0 s"
    assert err.count(note) == 1 and note in err.split("whole.drums.mid")[0]


def test_an_output_another_run_wrote_meanwhile_is_kept(
    tmp_path, random_model, capsys, monkeypatch
):
    """Two transcribes of one take into one folder at once both said `wrote` and the
    later one replaced the earlier's files, without --overwrite."""
    import drumtx.transcribe

    song = _wav(tmp_path / "song.wav")
    theirs = tmp_path / "song.drums.mid"
    real_decode = drumtx.transcribe.decode_hits

    def decode_while_another_run_writes(*args, **kwargs):
        theirs.write_bytes(b"the other run's")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(drumtx.transcribe, "decode_hits",
                        decode_while_another_run_writes)  # fmt: skip
    args = ("--checkpoint", str(random_model), "-f", "mid,csv")
    assert _run(str(song), *args) == 1
    err = capsys.readouterr().err
    assert f"{theirs} appeared while this input was transcribed" in err
    assert "hint: --overwrite replaces it" in err
    assert theirs.read_bytes() == b"the other run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.drums.mid", "song.wav"]
    assert _run(str(song), *args, "--overwrite") == 0  # asked: replaced
    assert theirs.read_bytes().startswith(b"MThd")


def test_existing_outputs_are_never_overwritten_unless_asked(tmp_path, random_model):
    song = _wav(tmp_path / "song.wav")
    out = tmp_path / "song.drums.mid"
    out.write_bytes(b"mine")
    assert _run(str(song), "--checkpoint", str(random_model)) == 1
    assert out.read_bytes() == b"mine"
    assert _run(str(song), "--checkpoint", str(random_model), "--skip-existing") == 0
    assert out.read_bytes() == b"mine"
    assert _run(str(song), "--checkpoint", str(random_model), "--overwrite") == 0
    assert out.read_bytes().startswith(b"MThd")


def test_skip_existing_writes_the_formats_still_missing(tmp_path, random_model, capsys):
    """-f all --skip-existing beside an earlier .mid: it was skipped whole, so the
    CSV, JSON and MusicXML asked for never came."""
    song = _wav(tmp_path / "song.wav")
    mine = tmp_path / "song.drums.mid"
    mine.write_bytes(b"mine")
    args = ("--checkpoint", str(random_model), "-f", "all", "--skip-existing")
    assert _run(str(song), *args, "--json") == 0
    captured = capsys.readouterr()
    assert mine.read_bytes() == b"mine"
    for fmt in ("csv", "json", "musicxml"):
        assert (tmp_path / f"song.drums.{fmt}").is_file(), fmt
    assert f"kept {mine} (already there: --skip-existing)" in captured.err
    (entry,) = json.loads(captured.out)["inputs"]
    assert entry["status"] == "done" and entry["kept"] == [str(mine)]
    assert len(entry["outputs"]) == 3
    # all there now: skipped, and the line says which outputs it found
    assert _run(str(song), *args) == 0
    names = ", ".join(f"song.drums.{f}" for f in ("mid", "csv", "json", "musicxml"))
    assert f"skipped: {song}: its outputs exist ({names})" in capsys.readouterr().err
    assert mine.read_bytes() == b"mine"


def test_recursive_tree_is_mirrored_and_clashes_fail_first(
    tmp_path, random_model, capsys
):
    _wav(tmp_path / "in" / "a" / "x.wav")
    _wav(tmp_path / "in" / "b" / "x.flac")
    out = tmp_path / "out"
    assert (
        _run(
            str(tmp_path / "in"),
            "-r",
            "-o",
            str(out),
            "--checkpoint",
            str(random_model),
        )
        == 0
    )
    assert (out / "a" / "x.drums.mid").exists() and (out / "b" / "x.drums.mid").exists()
    # Flattened into one folder, the two x's would collide: refused before any work.
    flat = tmp_path / "flat"
    code = _run(
        str(tmp_path / "in" / "a" / "x.wav"),
        str(tmp_path / "in" / "b" / "x.flac"),
        "-o",
        str(flat),
        "--checkpoint",
        str(random_model),
    )
    assert code == 2 and not flat.exists()
    assert "hint: rename one, or transcribe them in two runs" in capsys.readouterr().err
    # two takes of one name in one folder: the hint says why they meet
    _wav(tmp_path / "in" / "a" / "x.flac")
    assert _run(str(tmp_path / "in" / "a"), "--checkpoint", str(random_model)) == 2
    assert "hint: they differ only in extension: rename one" in capsys.readouterr().err


def test_bad_inputs_fail_alone_and_touch_nothing(tmp_path, random_model, capsys):
    good = _wav(tmp_path / "good.wav")
    corrupt = tmp_path / "corrupt.wav"
    data = bytearray(good.read_bytes())
    data[12:36] = b"\xff" * 24  # the fmt chunk: a RIFF/WAVE file nothing can decode
    corrupt.write_bytes(bytes(data))
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "zero.wav"
    sf.write(silent, np.zeros((0, 1), dtype=np.float32), 44100)
    unknown = tmp_path / "song.xyz"
    unknown.write_bytes(b"\x00" * 100)
    existing = tmp_path / "corrupt.drums.csv"
    existing.write_text("keep me")
    bad = [corrupt, text, empty, silent, unknown, tmp_path / "missing.wav"]
    code = _run(*map(str, [*bad, good]), "--checkpoint", str(random_model), "-f", "mid")
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "good.drums.mid").exists()
    assert "transcribed 1, skipped 0, failed 6" in err
    lines = err.splitlines()
    for path in bad:  # one whole summary line per failed input, never wrapped
        assert any(line.startswith(f"  failed: {path}: ") for line in lines), path
        assert not path.with_name(path.stem + ".drums.mid").exists()
    assert "unsupported extension" in err and "no such file" in err
    assert existing.read_text() == "keep me"
    # the run ends as every drumtx error does: error: then each distinct next step
    assert "error: 6 of 7 inputs failed" in lines
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(hints) == len(set(hints)) >= 2
    assert any("ffmpeg" in h for h in hints) and any("spelling" in h for h in hints)


def test_a_folder_without_audio_is_an_error_not_a_silent_success(
    tmp_path, random_model, capsys
):
    folder = tmp_path / "takes"
    (folder / "day1").mkdir(parents=True)
    (folder / "notes.txt").write_text("not audio")
    args = ("--checkpoint", str(random_model), "--json")
    assert _run(str(folder), *args) == 1
    captured = capsys.readouterr()
    assert "error: 1 of 1 input failed" in captured.err.splitlines()
    assert "hint: -r also reads its subfolders" in captured.err.splitlines()
    assert "model:" not in captured.err  # nothing to transcribe: no model loaded
    (entry,) = json.loads(captured.out)["inputs"]
    assert entry["status"] == "failed" and "no audio file" in entry["reason"]
    assert entry["hint"] == "-r also reads its subfolders"
    # -r finds the take in the subfolder
    _wav(folder / "day1" / "take.wav")
    assert _run(str(folder), "-r", *args) == 0
    assert (folder / "day1" / "take.drums.mid").exists()
    # an empty tree, -r given: the hint says it is empty
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(str(empty), "-r", *args) == 1
    assert "hint: the folder is empty" in capsys.readouterr().err
    # files of formats drumtx does not read: the hint names them and ffmpeg
    (empty / "sub").mkdir()
    (empty / "sub" / "take.m4a").write_bytes(b"\0" * 100)
    assert _run(str(empty), "-r", *args) == 1
    err = capsys.readouterr().err
    assert "take.m4a: drumtx does not read M4A: convert it, e.g. ffmpeg" in err
    assert "hint: drumtx reads WAV" in err


def test_a_folder_is_read_as_a_drummer_fills_it(tmp_path, random_model, capsys):
    """AIFF and Opus are read; M4A and WMA fail, each with its ffmpeg line (they
    were passed over without a word, and exit 0); macOS's ._ files are not audio; a file
    named twice is transcribed once; a WAV with no extension is read by content."""
    folder = tmp_path / "session"
    _wav(folder / "take1.wav")
    sf.write(folder / "take2.aiff", np.zeros((4410, 1), np.float32), 44100)
    sf.write(folder / "take3.opus", np.zeros((4800, 1), np.float32), 48000,
             format="OGG", subtype="OPUS")  # fmt: skip
    sf.write(folder / "take4.caf", np.zeros((4410, 1), np.float32), 44100)
    (folder / "phone.m4a").write_bytes(b"\0" * 100)
    (folder / "old.wma").write_bytes(b"\0" * 100)
    (folder / "._take1.wav").write_bytes(b"\0\5\x16\7 Mac OS X metadata")
    (folder / "notes.txt").write_text("tempo 97")
    bare = tmp_path / "bounce"
    _wav(bare.with_suffix(".wav")).rename(bare)
    out = tmp_path / "out"
    args = ("-o", str(out), "--checkpoint", str(random_model), "--json")
    assert _run(str(folder), str(folder / "take1.wav"), str(bare), *args) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    status = {Path(e["input"]).name: e["status"] for e in summary["inputs"]}
    assert status == {"take1.wav": "done", "take2.aiff": "done", "take3.opus": "done",
                      "take4.caf": "done", "old.wma": "failed", "phone.m4a": "failed",
                      "bounce": "done"}  # fmt: skip
    m4a = folder / "phone.m4a"
    assert f"failed: {m4a}: drumtx does not read M4A: convert it, e.g. ffmpeg -i " \
        f"{m4a} {m4a.with_suffix('.wav')}" in captured.err
    assert "error: 2 of 7 inputs failed" in captured.err
    assert _run(str(m4a), *args) == 1  # named directly: the same line
    (entry,) = json.loads(capsys.readouterr().out)["inputs"]
    assert entry["reason"].startswith("drumtx does not read M4A: convert it")
    assert captured.err.count("hint: drumtx reads WAV") == 1
    # a folder of M4A alone: its files' lines say it all (no "no audio file" entry)
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "a.m4a").write_bytes(b"\0" * 100)
    assert _run(str(phone), *args) == 1
    (entry,) = json.loads(capsys.readouterr().out)["inputs"]
    assert entry["input"] == str(phone / "a.m4a")
    assert sorted(p.name for p in out.iterdir()) == [
        "bounce.drums.mid", "take1.drums.mid", "take2.drums.mid", "take3.drums.mid",
        "take4.drums.mid"]
    # a link to a take writes under its own name, so it runs; a FIFO is no audio
    # (reading it to look blocked forever)
    import os

    alias = tmp_path / "alias.wav"
    alias.symlink_to(folder / "take1.wav")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert _run(str(folder / "take1.wav"), str(alias), str(fifo), *args,
                "--overwrite") == 1  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    status = {Path(e["input"]).name: e["status"] for e in summary["inputs"]}
    assert status == {"take1.wav": "done", "alias.wav": "done", "pipe": "failed"}


def test_a_folder_read_without_r_says_its_subfolders_were_not(
    tmp_path, random_model, capsys
):
    folder = tmp_path / "takes"
    _wav(folder / "top.wav")
    _wav(folder / "day1" / "deep" / "take.wav")
    (folder / "notes").mkdir()  # no audio: not named
    assert _run(str(folder), "--checkpoint", str(random_model)) == 0
    err = capsys.readouterr().err
    assert f"note: {folder} has subfolders with audio in them (day1); without -r" in err
    assert (folder / "top.drums.mid").exists()
    assert not (folder / "day1" / "deep" / "take.drums.mid").exists()
    assert _run(str(folder), "-r", "--skip-existing",
                "--checkpoint", str(random_model)) == 0  # fmt: skip
    assert "note:" not in capsys.readouterr().err
    assert (folder / "day1" / "deep" / "take.drums.mid").exists()
    # a folder with no audio of its own fails with the -r hint; no note repeats it
    assert _run(str(folder / "day1"), "--checkpoint", str(random_model)) == 1
    err = capsys.readouterr().err
    assert "hint: -r also reads its subfolders" in err and "note:" not in err


def test_one_undecodable_input_is_told_once_with_its_own_hint(
    tmp_path, random_model, capsys
):
    text = tmp_path / "my take.wav"
    text.write_text("this is not audio\n")
    assert _run(str(text), "--checkpoint", str(random_model)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert sum("cannot decode" in line for line in lines) == 1  # not again below
    assert "hint: the file is damaged, or is not really WAV" in "\n".join(lines)
    assert "ffmpeg -i 'my take.wav' 'my take.fixed.wav'" in "\n".join(lines)


def test_cuda_without_cuda_is_an_error(tmp_path, random_model, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    song = _wav(tmp_path / "song.wav")
    assert _run(str(song), "--checkpoint", str(random_model), "-d", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_options_without_argparse(tmp_path, random_model, capsys):
    """demo and other callers build TranscribeOptions directly, no Namespace."""
    from drumtx.config import load_config
    from drumtx.transcribe import TranscribeOptions, run_transcribe

    song = _wav(tmp_path / "song.wav")
    opts = TranscribeOptions(
        inputs=(song,),
        out_dir=tmp_path / "out",
        checkpoint=random_model,
        formats="csv",
        thresholds=("0.3",),
        progress=False,
    )
    assert run_transcribe(load_config(None, []), opts) == 0
    assert (tmp_path / "out" / "song.drums.csv").is_file()
    assert not (tmp_path / "out" / "song.drums.mid").exists()
    assert "transcribed 1, skipped 0, failed 0" in capsys.readouterr().err


def test_zero_overlap_is_refused_before_any_work(tmp_path, random_model, capsys):
    song = _wav(tmp_path / "song.wav")
    assert _run(str(song), "--checkpoint", str(random_model), "--overlap", "0") == 2
    err = capsys.readouterr().err
    assert "transcribe.overlap_sec" in err and "hint:" in err
    assert not (tmp_path / "song.drums.mid").exists()


def test_no_model_hint_names_the_training_command(tmp_path, capsys, monkeypatch):
    import drumtx.checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "SHIPPED_MODELS_DIR", tmp_path / "none")
    song = _wav(tmp_path / "song.wav")
    assert _run(str(song), "--data-root", str(tmp_path / "root")) == 2
    err = capsys.readouterr().err
    assert "no model found" in err and "python -m drumtx demo" in err


def test_drum_map_file_changes_notes(tmp_path, random_model):
    song = _wav(tmp_path / "song.wav")
    drum_map = tmp_path / "map.toml"
    drum_map.write_text(
        "KD = 35\nSD = 40\nHH = 42\nOH = 46\nLT = 41\nMT = 45\n"
        "HT = 48\nCR = 57\nRD = 59\n"
    )
    assert (
        _run(
            str(song),
            "--checkpoint",
            str(random_model),
            "-f",
            "csv",
            "--threshold",
            "0.0",
            "--drum-map",
            str(drum_map),
        )
        == 0
    )
    rows = (tmp_path / "song.drums.csv").read_text().splitlines()[1:]
    assert rows, "at threshold 0 every local maximum is a hit"
    mapping = {
        "KD": 35,
        "SD": 40,
        "HH": 42,
        "OH": 46,
        "LT": 41,
        "MT": 45,
        "HT": 48,
        "CR": 57,
        "RD": 59,
    }
    for row in rows:
        _, code, note, _ = row.split(",")
        assert mapping[code] == int(note)


def test_a_drum_map_takes_codes_in_either_case_and_says_how_to_mend_it(tmp_path):
    from drumtx.drums import ROLAND9, output_notes

    drum_map = tmp_path / "map.toml"
    drum_map.write_text("kd = 35\nSd = 40\n")  # as --threshold kd=0.6 takes them
    notes = output_notes(ROLAND9, drum_map)
    assert notes[ROLAND9.index("KD")] == 35 and notes[ROLAND9.index("SD")] == 40
    for text, hint in [
        ("KD = 200\n", "write KD = N with N from 0 to 127 (General MIDI's for KD: 36)"),
        ("KD = \n", "a drum map holds one line per class to change, e.g. KD = 35"),
        ("XX = 36\n", "classes of roland9: KD, SD"),
        ("kd = 35\nKD = 40\n", "keep one line per class"),
    ]:
        drum_map.write_text(text)
        with pytest.raises(ConfigError) as info:
            output_notes(ROLAND9, drum_map)
        assert info.value.hint.startswith(hint), (text, info.value.hint)


def test_trained_model_transcribes_held_out_clips(tmp_path, trained_tiny, capsys):
    """Performances and kit seeds never seen in training, same kit family: pooled
    micro F1 > 0.85 over three clips (one clip alone swings 0.84-0.94 by groove)."""
    from drumtx.drums import ROLAND9
    from drumtx.make_dataset import generate_performances
    from drumtx.metrics import match_onsets, summarize
    from drumtx.midi import notes_to_hits, read_hits
    from drumtx.synth import SynthKit

    ref, est = [], []
    for i, perf in enumerate(generate_performances(3, seed=12345)):
        kit = SynthKit(77 + i)
        notes = kit.playable(perf.notes)
        audio = kit.render(notes, min(perf.duration_sec, 20.0), 44100, seed=5)
        clip = tmp_path / f"held_out_{i}.wav"
        sf.write(clip, audio, 44100, subtype="PCM_16")
        assert _run(str(clip), "--checkpoint", str(trained_tiny)) == 0
        offset = 100.0 * i  # pool the clips as one long timeline
        clip_est = read_hits(tmp_path / f"held_out_{i}.drums.mid", ROLAND9)
        est += [dataclasses.replace(h, time_sec=h.time_sec + offset) for h in clip_est]
        ref += [
            dataclasses.replace(h, time_sec=h.time_sec + offset)
            for h in notes_to_hits(notes, ROLAND9)
            if h.time_sec < len(audio) / 44100
        ]
    summary = summarize(match_onsets(ref, est, ROLAND9.n_classes), ROLAND9.codes)
    print(summary["micro_f1"], {c: r["f1"] for c, r in summary["classes"].items()})
    assert summary["micro_f1"] > 0.85


def test_shipped_model_needs_no_dataset_and_no_training(tmp_path, capsys):
    """A fresh install transcribes with the model inside the package."""
    from drumtx.checkpoint import SHIPPED_MODELS_DIR

    assert (SHIPPED_MODELS_DIR / "default.pt").is_file()
    song = _wav(tmp_path / "song.wav", seconds=4.0, channels=2)
    empty_root = tmp_path / "no-data-here"
    assert _run(str(song), "--data-root", str(empty_root)) == 0
    assert (tmp_path / "song.drums.mid").read_bytes().startswith(b"MThd")
    assert f"model: {SHIPPED_MODELS_DIR / 'default.pt'}" in capsys.readouterr().err
    assert main(["transcribe", "--list-models", "--data-root", str(empty_root)]) == 0
    assert "default.pt" in capsys.readouterr().out


def test_plot_goes_through_the_overwrite_policy(tmp_path, random_model, capsys):
    pytest.importorskip("matplotlib")
    song = _wav(tmp_path / "song.wav")
    picture = tmp_path / "song.drums.png"
    args = (str(song), "--checkpoint", str(random_model), "--plot")
    assert _run(*args) == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert f"wrote {picture}" in capsys.readouterr().err
    picture.write_bytes(b"mine")
    (tmp_path / "song.drums.mid").unlink()
    assert _run(*args) == 1  # the picture exists: nothing is written
    assert picture.read_bytes() == b"mine"
    assert not (tmp_path / "song.drums.mid").exists()
    assert _run(*args, "--overwrite") == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "song.drums.mid", "song.drums.png", "song.wav"
    ]  # no temporary file left  # fmt: skip


def test_png_without_matplotlib_is_refused_first(
    tmp_path, random_model, capsys, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    song = _wav(tmp_path / "song.wav")
    assert _run(str(song), "--checkpoint", str(random_model), "-f", "mid,png") == 2
    assert "pip install -e '.[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "song.drums.mid").exists()


def test_quantize_and_tempo_shape_every_output(tmp_path, random_model):
    from drumtx.midi import read_notes
    from drumtx.tempo import read_tempo_map

    song = _wav(tmp_path / "song.wav", seconds=6.0)
    args = [str(song), "--checkpoint", str(random_model), "--threshold", "0.01"]
    assert _run(*args, "-f", "mid,json", "--quantize", "1/16", "--tempo", "97") == 0
    midi = tmp_path / "song.drums.mid"
    tm = read_tempo_map(midi)
    # constant (in whole microseconds), the pickup bar included
    assert tm.sec_per_beat == pytest.approx([60 / 97] * len(tm.sec_per_beat), abs=1e-6)
    assert tm.meters[-1][1:] == (4, 4)
    times = np.array([n.time_sec for n in read_notes(midi)])
    assert len(times) > 5
    assert np.abs(tm.snap(times, 0.25) - times).max() < 0.002  # on 16ths (ticks)
    data = json.loads((tmp_path / "song.drums.json").read_text())
    json_times = np.array([h["time_sec"] for h in data["hits"]])
    assert np.abs(tm.snap(json_times, 0.25) - json_times).max() < 1e-5
    bpms = [t["bpm"] for t in data["tempo"]]  # a pickup at the tempo: no change
    assert bpms and bpms == pytest.approx([97.0] * len(bpms))


def test_hits_quantize_merges_are_counted_and_said(tmp_path, random_model, capsys):
    """Hits of one class meeting on one grid point became one without a word."""
    song = _wav(tmp_path / "song.wav", seconds=6.0)
    args = [str(song), "--checkpoint", str(random_model), "--threshold", "0.01",
            "-f", "csv", "--json"]  # fmt: skip
    assert _run(*args) == 0
    (plain,) = json.loads(capsys.readouterr().out)["inputs"]
    assert plain["merged_by_quantize"] == 0
    assert _run(*args, "--quantize", "1/8", "--tempo", "60", "--overwrite") == 0
    captured = capsys.readouterr()
    (coarse,) = json.loads(captured.out)["inputs"]
    merged = coarse["merged_by_quantize"]
    assert merged > 0 and coarse["hits"] + merged == plain["hits"]
    assert f"--quantize merged {merged} of {plain['hits']} hits" in captured.err
    rows = (tmp_path / "song.drums.csv").read_text().splitlines()[1:]
    assert len(rows) == coarse["hits"]


def test_the_tempo_found_is_said_with_an_octave_to_try(tmp_path, random_model, capsys):
    """Each file's line says the tempo map written; --json carries it too."""
    from drumtx.beats import grid_of
    from drumtx.tempo import TempoMap
    from drumtx.transcribe import tempo_line

    song = _wav(tmp_path / "song.wav", seconds=6.0)
    args = [str(song), "--checkpoint", str(random_model), "--threshold", "0.01"]
    assert _run(*args, "--tempo", "97", "--json") == 0
    out = capsys.readouterr()
    assert "tempo 97.0 BPM, 4/4, first bar line at" in out.err
    [entry] = json.loads(out.out)["inputs"]
    assert entry["tempo"] == {"bpm": 97.0, "meter": "4/4", "found": True,
                              "rival_bpm": None, "bpm_spread": None}  # fmt: skip
    fallback = grid_of(TempoMap.constant(120.0), 5.0, False)
    assert tempo_line(fallback).startswith("tempo: too few hits to find one; 120 BPM")
    # a clip shorter than two beats says (and --json gives) the tempo written, not 0
    blip = grid_of(TempoMap.constant(97.0), 0.3, False)
    assert blip.bpm == pytest.approx(97.0)
    assert tempo_line(blip).startswith("tempo: too few hits to find one; 97 BPM")
    hinted = grid_of(TempoMap.constant(184.8, 6, 8), 30.0, True, rival=0.5)
    assert tempo_line(hinted) == (
        "tempo 184.8 BPM, 6/8, first bar line at 0.00 s (or 92.4 BPM? --tempo 92.4)"
    )
    # a song that speeds up says so (it said the median alone: a tempo in neither
    # half); a one-bar dip does not count
    change = TempoMap(start_beats=(0.0, 48.0), sec_per_beat=(60 / 105, 60 / 138))
    sped = grid_of(change, 50.0, True)
    assert sped.bpm_spread == pytest.approx((105.0, 138.0))
    assert tempo_line(sped).startswith("tempo 105.0 to 138.0 BPM (median ")
    dip = TempoMap(start_beats=(0.0, 200.0, 204.0), sec_per_beat=(0.6, 0.66, 0.6))
    assert grid_of(dip, 240.0, True).bpm_spread is None
    assert tempo_line(grid_of(dip, 240.0, True)).startswith("tempo 100.0 BPM, 4/4")


def test_bad_grid_or_tempo_is_a_usage_error(tmp_path, random_model, capsys):
    song = _wav(tmp_path / "song.wav")
    assert _run(str(song), "--checkpoint", str(random_model), "--quantize", "1/7") == 2
    assert "transcribe.quantize" in capsys.readouterr().err
    assert _run(str(song), "--checkpoint", str(random_model), "--tempo", "5") == 2
    err = capsys.readouterr().err
    assert "transcribe.tempo = 5.0 is out of range; expected 20.0 to 400.0" in err
    assert "hint: it is --tempo 5.0: change that value" in err  # not the config's
    # 0, the config's "found from the drums", was taken silently from --tempo
    assert _run(str(song), "--checkpoint", str(random_model), "--tempo", "0") == 2
    err = capsys.readouterr().err
    assert "error: --tempo 0 is no tempo" in err and "leave --tempo out" in err
    # a segment no overlap leaves anything of is out of range, not a later error
    assert _run(str(song), "--checkpoint", str(random_model), "--segment", "1") == 2
    err = capsys.readouterr().err
    assert "expected 2.0 to 3600.0" in err and "hint: it is --segment 1.0" in err
    assert not (tmp_path / "song.drums.mid").exists()


def test_a_bug_shows_its_traceback_instead_of_a_failed_line(
    tmp_path, random_model, monkeypatch, capsys
):
    """A shape mismatch or a CUDA error is drumtx's bug or a broken device, not a bad
    input: it propagates (cli.main prints its traceback), naming the input."""
    import drumtx.transcribe as transcribe_module

    def shape_bug(*args, **kwargs):
        raise RuntimeError(
            "mat1 and mat2 shapes cannot be multiplied (4x96 and 128x64)"
        )

    monkeypatch.setattr(transcribe_module, "predict_activations", shape_bug)
    song = _wav(tmp_path / "song.wav")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as info:
        _run(str(song), "--checkpoint", str(random_model))
    if hasattr(info.value, "add_note"):  # Python 3.11+
        assert f"while transcribing {song}" in info.value.__notes__[0]
    assert "failed" not in capsys.readouterr().err
    assert not (tmp_path / "song.drums.mid").exists()


# What torch raises for a failed allocation: CUDA's own error, and on the CPU a plain
# RuntimeError from its allocator (torch.empty(10**14) on torch 2.13's CPU build).
OUT_OF_MEMORY = {
    "cuda": (torch.cuda.OutOfMemoryError, "CUDA out of memory. Tried to allocate"),
    "cpu": (RuntimeError, "[enforce fail at alloc_cpu.cpp:121] data. "
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"),
}  # fmt: skip


@pytest.mark.parametrize("where", ["cuda", "cpu"])
def test_out_of_memory_fails_that_input_alone(
    where, tmp_path, random_model, monkeypatch, capsys
):
    import drumtx.transcribe as transcribe_module

    real = transcribe_module.predict_activations
    calls = []
    error, message = OUT_OF_MEMORY[where]

    def first_is_too_big(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(transcribe_module, "predict_activations", first_is_too_big)
    huge = _wav(tmp_path / "huge.wav", seconds=4.0)
    small = _wav(tmp_path / "small.wav", seconds=2.0)
    assert _run(str(huge), str(small), "--checkpoint", str(random_model)) == 1
    err = capsys.readouterr().err
    assert f"failed: {huge}: out of memory ({error.__name__})" in err
    assert "--batch-size" in err and "transcribed 1, skipped 0, failed 1" in err
    assert (tmp_path / "small.drums.mid").exists()


def test_a_trained_run_is_used_only_when_named(tmp_path, random_model, capsys):
    """A 300-step quick run beside the shipped model: the shipped model stays the
    default, the start line says why and how to use the run, and naming it uses it."""
    import shutil

    from drumtx.checkpoint import SHIPPED_MODELS_DIR

    root = tmp_path / "root"
    run_best = root / "checkpoints" / "quick" / "best.pt"
    run_best.parent.mkdir(parents=True)
    shutil.copyfile(random_model, run_best)
    song = _wav(tmp_path / "song.wav")
    args = [str(song), "--data-root", str(root), "-f", "csv", "--overwrite"]
    assert _run(*args) == 0
    err = capsys.readouterr().err
    assert f"model: {SHIPPED_MODELS_DIR / 'default.pt'}" in err
    assert 'chosen: the shipped model, the default (transcribe.checkpoint' in err
    assert "a trained run is used when named: --checkpoint quick" in err

    assert _run(*args, "--checkpoint", "quick") == 0
    err = capsys.readouterr().err
    assert f"model: {run_best}" in err
    assert "chosen: best.pt of run quick (--checkpoint quick)" in err

    assert _run(*args, "--set", "transcribe.checkpoint='newest'") == 0
    err = capsys.readouterr().err
    assert f"model: {run_best}" in err
    assert 'the newest run, quick (transcribe.checkpoint = "newest")' in err

    assert _run(*args, "--checkpoint", "qiuck") == 2
    assert "did you mean 'quick'" in capsys.readouterr().err

    assert main(["transcribe", "--list-models", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"  quick  {run_best}" in out
    assert f"transcribe uses: {SHIPPED_MODELS_DIR / 'default.pt'}" in out
    listed = ["transcribe", "--list-models", "--data-root", str(root)]
    assert main([*listed, "--checkpoint", "newest"]) == 0
    assert f"transcribe uses: {run_best}" in capsys.readouterr().out
    # --json: the same listing as one object on stdout, and for a wrong name only the
    # error (no half a listing)
    assert main([*listed, "--json", "--checkpoint", "quick"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["runs"] == [{"name": "quick", "path": str(run_best)}]
    assert [m["path"] for m in listing["shipped"]] == [
        str(SHIPPED_MODELS_DIR / "default.pt")
    ]
    assert listing["uses"]["path"] == str(run_best)
    assert "--checkpoint quick" in listing["uses"]["chosen"]
    assert main([*listed, "--json", "--checkpoint", "qiuck"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and "did you mean 'quick'" in said.err


def test_a_quiet_recording_is_transcribed_as_it_would_be_at_the_window(
    tmp_path, trained_tiny, capsys
):
    """A file 20 dB below transcribe.min_input_db is turned up to it: the same hits
    and velocities as the same recording at that level, and its line says so."""
    from drumtx.audio import resample
    from drumtx.levels import active_level_db

    audio = sf.read(_wav(tmp_path / "src.wav", seconds=6.0), dtype="float32")[0]
    level = active_level_db([resample(audio, 44100, 24000)], 24000)  # as the model's
    for name, db in (("edge", -36.0), ("quiet", -56.0)):
        scaled = audio * np.float32(10 ** ((db - level) / 20))
        sf.write(tmp_path / f"{name}.wav", scaled, 44100, subtype="FLOAT")
    args = ["--checkpoint", str(trained_tiny), "--threshold", "0.2", "-f", "csv"]
    assert _run(str(tmp_path / "edge.wav"), *args, "--json") == 0
    edge = capsys.readouterr()
    assert _run(str(tmp_path / "quiet.wav"), *args, "--json") == 0
    quiet = capsys.readouterr()
    assert "input turned up 20.0 dB" in quiet.err and "input turned" not in edge.err
    [entry] = json.loads(quiet.out)["inputs"]
    assert entry["input_gain_db"] == pytest.approx(20.0, abs=0.01)
    rows = {n: [r.split(",") for r in (tmp_path / f"{n}.drums.csv").read_text()
                .splitlines()[1:]] for n in ("edge", "quiet")}  # fmt: skip
    assert len(rows["edge"]) > 5 and len(rows["quiet"]) == len(rows["edge"])
    moved = []
    # Each class's hits in time order: two classes' hits on one frame may swap places
    # in the file when rounding moves one of them by a sub-frame refinement.
    by_class = {n: sorted(r, key=lambda row: (row[1], float(row[0])))
                for n, r in rows.items()}  # fmt: skip
    for quiet, edge in zip(by_class["quiet"], by_class["edge"]):
        assert quiet[1:] == edge[1:]  # the same hits, classes and velocities
        moved.append(abs(float(quiet[0]) - float(edge[0])))
    # Float rounding of the gain may move a peak by a sub-frame refinement or, where
    # two frames tie, by a frame (10 ms); none further. (A random network's flat
    # plateaus at a 0.01 threshold moved hits by 45 ms on an AMD EPYC: a trained one.)
    assert max(moved) <= 0.0101 and np.mean(np.array(moved) < 0.001) >= 0.9


def test_a_missing_model_is_reported_even_when_no_input_is_left(tmp_path, capsys):
    code = _run(str(tmp_path / "missing.wav"), "--checkpoint", str(tmp_path / "no.pt"))
    err = capsys.readouterr().err
    # a usage error, as a run name that names nothing is (exit 2, not 1)
    assert code == 2 and f"checkpoint {tmp_path / 'no.pt'} does not exist" in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    assert _run(str(tmp_path / "missing.wav"), "--checkpoint", str(run)) == 2
    err = capsys.readouterr().err
    assert f"{run} holds no best.pt" in err
    assert f"hint: its latest weights: --checkpoint {run / 'last.pt'}" in err


def test_an_unreadable_folder_fails_with_its_reason(tmp_path, monkeypatch):
    from drumtx.transcribe import plan_jobs

    folder = tmp_path / "locked"
    folder.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    (job,) = plan_jobs([folder], None, recursive=False)
    assert job.status == "failed" and "cannot read (Permission denied)" in job.reason
    assert job.hint == "check its permissions"


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(
    tmp_path, random_model, capsys
):
    song = _wav(tmp_path / "song.wav")
    taken = tmp_path / "out"
    taken.write_text("keep me")
    assert _run(str(song), "-o", str(taken), "--checkpoint", str(random_model)) == 2
    err = capsys.readouterr().err
    assert f"error: -o {taken} is a file, not a folder" in err and "hint:" in err
    assert taken.read_text() == "keep me"
    # a MIDI file's name given to -o made a folder of that name, silently
    named = tmp_path / "mysong.mid"
    assert _run(str(song), "-o", str(named), "--checkpoint", str(random_model)) == 2
    err = capsys.readouterr().err
    assert f"error: -o {named} names a file; -o takes the folder" in err
    assert f"hint: -o {tmp_path} writes {tmp_path / '<input name>.drums.mid'}" in err
    assert not named.exists()
    assert _run(str(song), "-o", str(tmp_path / "out.wav"), "--checkpoint",
                str(random_model)) == 2  # fmt: skip
    assert not (tmp_path / "out.wav").exists()


def test_an_unwritable_output_folder_fails_before_any_work(
    tmp_path, random_model, capsys, monkeypatch
):
    """A read-only mount failed each input only after transcribing it."""
    import os

    import drumtx.transcribe

    song = _wav(tmp_path / "in" / "song.wav")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    asked = []

    def access(path, mode):
        asked.append(Path(path))
        return Path(path) != locked and real_access(path, mode)

    monkeypatch.setattr(drumtx.transcribe.os, "access", access)
    out = locked / "midi" / "day1"  # not there yet: judged by the folder it goes in
    args = ("--checkpoint", str(random_model), "--json")
    assert _run(str(song), "-o", str(out), *args) == 1
    captured = capsys.readouterr()
    assert "model:" not in captured.err  # refused before the model loaded
    (entry,) = json.loads(captured.out)["inputs"]
    assert entry["reason"] == f"cannot write into {locked} (read-only, or no " \
        "permission)"
    assert "hint: -o DIR writes the outputs into another folder" in captured.err
    assert not (locked / "midi").exists() and locked in asked
    # beside an earlier output the folder's fault is said, not "--overwrite replaces"
    (locked / "song.drums.mid").write_bytes(b"mine")
    assert _run(str(song), "-o", str(locked), *args) == 1
    (entry,) = json.loads(capsys.readouterr().out)["inputs"]
    assert entry["reason"].startswith(f"cannot write into {locked}")
    # --skip-existing with every output there writes nothing: skipped, not failed
    assert _run(str(song), "-o", str(locked), *args, "--skip-existing") == 0
    (entry,) = json.loads(capsys.readouterr().out)["inputs"]
    assert entry["status"] == "skipped"
    # a file where a folder must be made is named as such
    assert _run(str(song), "-o", str(song / "out"), *args) == 1
    (entry,) = json.loads(capsys.readouterr().out)["inputs"]
    assert entry["reason"] == f"{song} is a file, so no folder can be made in it"
    assert _run(str(song), "-o", str(tmp_path / "free"), *args) == 0


def test_the_thresholds_in_use_and_their_source_are_said(
    tmp_path, random_model, capsys
):
    """A model tuned by evaluate decodes at its own thresholds: the start line and
    --json say which, and where each comes from."""
    song = _wav(tmp_path / "song.wav")
    args = (str(song), "--checkpoint", str(random_model), "-o", str(tmp_path / "a"))
    assert _run(*args, "--json") == 0
    captured = capsys.readouterr()
    model = json.loads(captured.out)["model"]
    assert model["path"] == str(random_model)
    assert set(model["thresholds"]) == {"KD", "SD", "HH", "OH", "LT", "MT", "HT",
                                        "CR", "RD"}  # fmt: skip
    line = next(ln for ln in captured.err.splitlines() if "thresholds:" in ln)
    assert "(decode.threshold and decode.class_thresholds; --threshold changes" in line
    assert _run(*args, "--json", "--overwrite", "--threshold", "HH=0.65") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"]["thresholds"]["HH"] == 0.65
    assert "HH 0.65" in captured.err
    assert "(--threshold HH=0.65, the rest" in captured.err
