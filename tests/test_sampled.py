"""Recorded melodic SFZ instruments (drumtx.synth.sampled) and tools/music_alone.py, the
probe of what a model fires on music without drums. Instruments, songs and the music
pool are written into tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_backing import song_midi  # bass on every beat for 16 beats

from drumtx.errors import ConfigError
from drumtx.music import PoolWriter
from drumtx.synth.instruments import PitchedNote
from drumtx.synth.sampled import RELEASE_SEC, SampledInstrument

REPO = Path(__file__).resolve().parents[1]
SR = 24_000
FILE_SR = 48_000


def sine(path: Path, freq_hz: float, amp: float, seconds: float = 2.0) -> None:
    t = np.arange(int(seconds * FILE_SR)) / FILE_SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32), FILE_SR)


def write_bass(folder: Path) -> Path:
    """A bass sampled at A2 (110 Hz), soft and loud layers, two round robins each."""
    for layer, amp in (("soft", 0.1), ("loud", 0.5)):
        for rr in (1, 2):
            sine(folder / "s" / f"{layer}_{rr}.wav", 110.0, amp)
    body = "<control> default_path=s/\n<group> lokey=33 hikey=57 pitch_keycenter=45\n"
    for layer, lo, hi in (("soft", 1, 63), ("loud", 64, 127)):
        body += f"<region> lovel={lo} hivel={hi} hirand=0.5 sample={layer}_1.wav\n"
        body += f"<region> lovel={lo} hivel={hi} lorand=0.5 sample={layer}_2.wav\n"
    path = folder / "bass.sfz"
    path.write_text(body)
    return path


def peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * SR / len(audio))


def test_notes_play_at_their_pitch_layer_and_length(tmp_path: Path) -> None:
    bass = SampledInstrument(write_bass(tmp_path))
    rng = np.random.default_rng(0)
    n = 2 * SR
    octave_up = bass.render([PitchedNote(0.0, 1.0, 57, 100)], n, SR, rng)
    assert peak_hz(octave_up[: SR // 2]) == pytest.approx(220.0, abs=3)
    soft = bass.render([PitchedNote(0.0, 1.0, 45, 30)], n, SR, rng)
    loud = bass.render([PitchedNote(0.0, 1.0, 45, 120)], n, SR, rng)
    assert peak_hz(loud[: SR // 2]) == pytest.approx(110.0, abs=3)
    # the loud layer's sample is 14 dB louder; the velocity curve adds the rest
    assert np.abs(loud).max() > 4 * np.abs(soft).max()
    # a note sounds from its start to its end plus the release, then stops
    short = bass.render([PitchedNote(0.5, 0.25, 45, 100)], n, SR, rng)
    sounding = np.flatnonzero(np.abs(short) > 1e-4)
    assert sounding[0] == pytest.approx(0.5 * SR, abs=2)
    assert sounding[-1] <= (0.75 + RELEASE_SEC) * SR


def test_notes_outside_the_range_move_by_octaves_and_round_robins_alternate(
    tmp_path: Path,
) -> None:
    bass = SampledInstrument(write_bass(tmp_path))
    assert (bass.in_range(21), bass.in_range(45), bass.in_range(69)) == (33, 45, 57)
    rng = np.random.default_rng(1)
    picks = {tuple(bass.chosen(45, 100, rng)) for _ in range(40)}
    assert picks == {(2,), (3,)}  # both loud round robins, never a soft one
    low = bass.render([PitchedNote(0.0, 1.0, 21, 100)], SR, SR, rng)
    assert peak_hz(low[: SR // 2]) == pytest.approx(55.0, abs=3)


def test_an_instrument_without_samples_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.sfz").write_text("<region> key=40 sample=missing.wav\n")
    with pytest.raises(ConfigError, match="no playable regions"):
        SampledInstrument(tmp_path / "empty.sfz")


def run_tool(*args: str) -> subprocess.CompletedProcess:
    tool = REPO / "tools" / "music_alone.py"
    return subprocess.run([sys.executable, str(tool), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)  # fmt: skip


def test_music_alone_counts_hits_per_source_and_model(tmp_path: Path) -> None:
    from drumtx.checkpoint import load_checkpoint

    shipped = REPO / "drumtx" / "models" / "default.pt"
    rate = load_checkpoint(shipped)["config"]["audio"]["sample_rate"]  # the pool's
    (tmp_path / "songs").mkdir()
    song_midi(tmp_path / "songs" / "a.mid")
    writer = PoolWriter(tmp_path / "pool" / "test", rate)
    t = np.arange(10 * rate) / rate
    drone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    writer.add(drone, {"file": "drone.ogg", "source": "drone", "licence": "CC0-1.0"})
    writer.close()
    out = tmp_path / "alone.json"
    proc = run_tool("--checkpoint", f"a={shipped}", f"b={shipped}",
                    "--pool", str(tmp_path / "pool" / "test"),
                    "--songs", str(tmp_path / "songs"),
                    "--instrument", f"mybass={write_bass(tmp_path / 'inst')}",
                    "--seconds", "8", "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hits per minute on music without drums (a, b)" in proc.stdout
    table = json.loads(out.read_text())
    assert set(table) == {"a", "b"} and table["a"] == table["b"]  # one model, one audio
    assert set(table["a"]) == {"pool:drone", "bass mybass", "bass own:bass"}
    assert table["a"]["pool:drone"]["minutes"] == pytest.approx(10 / 60)
    assert table["a"]["bass mybass"]["minutes"] == pytest.approx(8 / 60)
    # a steady tone is no drum: at most its start
    assert sum(table["a"]["pool:drone"]["hits"].values()) <= 1
    counts = [n for row in table["a"].values() for n in row["hits"].values()]
    assert all(isinstance(n, int) and n > 0 for n in counts)


def test_music_alone_refuses_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    from music_alone import main

    for args, message in ((["--seconds", "5"], "give --pool"),
                          (["--instrument", "b=x.sfz"], "--instrument needs --songs")):
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 2 and message in capsys.readouterr().err
    (tmp_path / "songs").mkdir()
    song_midi(tmp_path / "songs" / "a.mid")
    (tmp_path / "empty.sfz").write_text("<region> key=40 sample=missing.wav\n")
    sfz = tmp_path / "empty.sfz"
    args = ["--songs", str(tmp_path / "songs"), "--instrument", f"b={sfz}"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "no playable regions" in err and "hint:" in err


def test_music_alone_plays_each_model_the_audio_at_its_own_rate(
    tmp_path: Path,
    random_model: Path,
    random_model_48k: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 24 kHz and a 48 kHz model side by side: each hears the parts rendered at its
    rate and the --pool split at its rate; a model whose rate no split has is refused
    with the command that resamples the pool."""
    sys.path.insert(0, str(REPO / "tools"))
    import music_alone

    (tmp_path / "songs").mkdir()
    song_midi(tmp_path / "songs" / "a.mid")
    for rate in (SR, FILE_SR):
        writer = PoolWriter(tmp_path / f"pool{rate}" / "test", rate)
        t = np.arange(10 * rate) / rate
        drone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        writer.add(drone, {"file": "drone.ogg", "source": "drone", "licence": "CC0"})
        writer.close()
    heard: list[tuple[int, int]] = []  # (model's rate, samples it heard)
    real = music_alone.hits_by_class

    def recording(loaded, audio):
        heard.append((loaded.cfg.audio.sample_rate, len(audio)))
        return real(loaded, audio)

    monkeypatch.setattr(music_alone, "hits_by_class", recording)
    out = tmp_path / "alone.json"
    models = ["--checkpoint", f"low={random_model}", f"high={random_model_48k}"]
    pools = [str(tmp_path / f"pool{r}" / "test") for r in (FILE_SR, SR)]
    assert music_alone.main([*models, "--pool", *pools,
                             "--songs", str(tmp_path / "songs"),
                             "--instrument", f"mybass={write_bass(tmp_path / 'i')}",
                             "--seconds", "8", "--json", str(out)]) == 0  # fmt: skip
    table = json.loads(out.read_text())
    for name in ("low", "high"):
        assert set(table[name]) == {"pool:drone", "bass mybass", "bass own:bass"}
        assert table[name]["pool:drone"]["minutes"] == pytest.approx(10 / 60)
        assert table[name]["bass mybass"]["minutes"] == pytest.approx(8 / 60)
    for rate in (SR, FILE_SR):  # the pool's 10 s and two parts' 8 s, at each rate
        lengths = sorted(n for r, n in heard if r == rate)
        assert lengths == [8 * rate, 8 * rate, 10 * rate], rate
    capsys.readouterr()
    only_24k = ["--pool", str(tmp_path / f"pool{SR}" / "test")]
    assert music_alone.main([*models, *only_24k]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "high takes 48000 Hz" in err
    assert "hint:" in err and "tools/build_music_pool.py" in err
    assert "--resample-from" in err and "--sample-rate 48000" in err


def run_parts(*args: str) -> subprocess.CompletedProcess:
    tool = REPO / "tools" / "recorded_parts.py"
    return subprocess.run([sys.executable, str(tool), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)  # fmt: skip


def test_recorded_parts_append_songs_parts_to_a_copy_of_the_base_split(
    tmp_path: Path,
) -> None:
    from drumtx.music import load_music_pool

    songs = tmp_path / "songs"
    songs.mkdir()
    for name in "abcd":  # the probe (one song) takes a.mid
        song_midi(songs / f"{name}.mid")
    writer = PoolWriter(tmp_path / "pool" / "train", SR)
    speech = (0.1 * np.sin(2 * np.pi * 200 * np.arange(3 * SR) / SR)).astype(np.float32)
    writer.add(speech, {"file": "s.ogg", "source": "speech", "licence": "CC0-1.0"})
    writer.close()
    bass = write_bass(tmp_path / "inst")
    common = ["--songs", str(songs), "--instrument", f"mybass={bass}", "--licence",
              "CC0-1.0", "--seconds", "8", "--passes", "3", "--probe-songs", "1"]
    out = tmp_path / "parts" / "train"
    base_split = tmp_path / "pool" / "train"
    proc = run_parts(*common, "--base", str(base_split), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pool = load_music_pool(out, SR)
    base, parts = pool.segments[0], pool.segments[1:]
    assert base["source"] == "speech" and base["length"] == len(speech)
    copied = np.asarray(pool.audio[: len(speech)], np.float32) / 32768
    np.testing.assert_allclose(copied, speech, atol=1e-4)
    assert parts and all(s["source"] == "recorded-parts" for s in parts)
    assert {s["file"].split("#")[0] for s in parts} <= {"b.mid", "c.mid", "d.mid"}
    for seg in parts:  # only a bass part in these songs: bass lineups, through mybass
        assert seg["lineup"] in ("bass", "both") and seg["parts"] == ["bass:mybass"]
        assert seg["licence"] == "CC0-1.0" and seg["length"] == 8 * SR
        audio = np.asarray(pool.audio[seg["start"] : seg["start"] + seg["length"]],
                           np.float32) / 32768  # fmt: skip
        assert 20 * np.log10(np.sqrt(np.mean(audio**2))) == pytest.approx(-20, abs=0.2)
        assert 25 < peak_hz(audio) < 120  # the bass line, in the sample's range
    held = tmp_path / "held" / "test"
    proc = run_parts(*common, "--held-out", "--out", str(held))
    assert proc.returncode == 0, proc.stderr
    files = {s["file"].split("#")[0] for s in load_music_pool(held, SR).segments}
    assert files == {"a.mid"}


def test_recorded_parts_refuse_to_overwrite_or_misuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    from recorded_parts import main

    (tmp_path / "songs").mkdir()
    song_midi(tmp_path / "songs" / "a.mid")
    bass = write_bass(tmp_path / "inst")
    args = ["--songs", str(tmp_path / "songs"), "--instrument", f"b={bass}",
            "--licence", "CC0-1.0", "--seconds", "8", "--probe-songs", "0"]  # fmt: skip
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 0
    before = (out / "music.i16").read_bytes()
    for extra, message in (([], "already holds a pool split"),
                           (["--base", str(out)], "is the --base split itself")):
        assert main([*args, "--out", str(out), *extra]) == 1
        err = capsys.readouterr().err
        assert "error:" in err and message in err and "hint:" in err
    assert (out / "music.i16").read_bytes() == before  # nothing the user had is lost
    (out / "notes.txt").write_text("mine")
    assert main([*args, "--out", str(out), "--overwrite", "--seed", "3"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # only the split is replaced
    assert main([*args, "--out", str(tmp_path / "o1"), "--base", str(tmp_path)]) == 1
    assert "not a music pool split" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists()  # refused before anything was written
    (tmp_path / "empty.sfz").write_text("<region> key=40 sample=missing.wav\n")
    bad = [*args[:2], "--instrument", f"b={tmp_path / 'empty.sfz'}", *args[4:]]
    assert main([*bad, "--out", str(tmp_path / "o2")]) == 1
    assert "no playable regions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([*args, "--held-out", "--out", str(tmp_path / "o3")])
    assert stop.value.code == 2 and "--held-out" in capsys.readouterr().err


def test_recorded_parts_at_another_rate_play_the_same_stretches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sample-rate 48000 plays the same songs, lineups and tempos as the default
    rate (the draws do not depend on it), each stretch twice as many samples; a base
    split at another rate is refused with the hint that resamples it."""
    sys.path.insert(0, str(REPO / "tools"))
    from recorded_parts import main

    from drumtx.music import load_music_pool

    (tmp_path / "songs").mkdir()
    for name in "abcd":
        song_midi(tmp_path / "songs" / f"{name}.mid")
    bass = write_bass(tmp_path / "inst")
    args = ["--songs", str(tmp_path / "songs"), "--instrument", f"mybass={bass}",
            "--licence", "CC0-1.0", "--seconds", "8", "--passes", "3",
            "--probe-songs", "0"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "low")]) == 0
    assert main([*args, "--out", str(tmp_path / "high"), "--sample-rate", "48000"]) == 0
    low = load_music_pool(tmp_path / "low", SR)
    high = load_music_pool(tmp_path / "high")
    assert high.sample_rate == 48000 and len(high.segments) == len(low.segments) > 0
    for a, b in zip(low.segments, high.segments):
        assert b["length"] == 8 * 48000 and a["length"] == 8 * SR
        assert {k: v for k, v in a.items() if k not in ("start", "length")} == {
            k: v for k, v in b.items() if k not in ("start", "length")}
    capsys.readouterr()
    out = tmp_path / "mixed"
    assert main([*args, "--out", str(out), "--base", str(tmp_path / "low"),
                 "--sample-rate", "48000"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "error:" in err and "--resample-from" in err and not out.exists()
