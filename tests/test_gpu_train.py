"""tools/gpu_train.py: what travels to a lent GPU machine comes back out the same.

The whole ``run`` (render, preprocess, train, tune) needs a GPU's minutes; here its
pieces are checked on tiny inputs: Opus-packed renders keep their length and timing,
the packed music pool unpacks to the same samples' length and level, and merging roots
keeps every row, under prefixes that cannot collide.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gpu_train  # noqa: E402

from drumtx.audio import load_audio  # noqa: E402
from drumtx.music import PoolWriter, load_music_pool  # noqa: E402

FIELDS = ["drummer", "session", "id", "style", "bpm", "beat_type",
          "time_signature", "duration", "split", "midi_filename", "audio_filename",
          "kit_name"]  # fmt: skip


def clicks(n: int, rate: int, at: list[int]) -> np.ndarray:
    """Decaying noise bursts starting at the sample indices ``at``."""
    rng = np.random.default_rng(0)
    x = np.zeros(n, np.float32)
    burst = rng.standard_normal(rate // 20).astype(np.float32)
    burst *= np.exp(-np.arange(len(burst)) / (rate / 200)) * 0.5
    for i in at:
        x[i : i + len(burst)] += burst[: n - i]
    return x


def fake_root(root: Path, kit: str, audio: np.ndarray, rate: int) -> Path:
    """A make-dataset-shaped root with one recording."""
    egmd = root / gpu_train.EGMD
    rel = "drummer1/session1/1_rock_120_beat_4-4_1"
    (egmd / rel).parent.mkdir(parents=True)
    sf.write(str(egmd / f"{rel}.wav"), audio, rate, subtype="PCM_16")
    (egmd / f"{rel}.midi").write_bytes(b"MThd")
    row = dict.fromkeys(FIELDS, "")
    row.update(split="train", id="drummer1/session1/1", kit_name=kit,
               midi_filename=f"{rel}.midi", audio_filename=f"{rel}.wav")  # fmt: skip
    gpu_train.write_csv(egmd / f"{gpu_train.EGMD}.csv", FIELDS, [row])
    return egmd


@pytest.mark.parametrize("packed", sorted(gpu_train.FRONTENDS))
def test_packed_renders_keep_length_and_timing(tmp_path: Path, packed: int) -> None:
    rate = 44_100
    hits = [rate // 2, rate, int(1.7 * rate)]
    fake_root(tmp_path / "renders", "sfz:kit", clicks(2 * rate, rate, hits), rate)
    info = gpu_train.pack_renders(tmp_path / "renders", tmp_path / "pack", 0.93, packed)
    assert info["recordings"] == 1 and info["kits"] == {"sfz:kit": 1}
    egmd = tmp_path / "pack" / "renders" / gpu_train.EGMD
    _, rows = gpu_train.read_csv(egmd / f"{gpu_train.EGMD}.csv")
    assert rows[0]["audio_filename"].endswith(".ogg")
    assert (egmd / rows[0]["midi_filename"]).read_bytes() == b"MThd"
    coded, coded_rate = sf.read(str(egmd / rows[0]["audio_filename"]), dtype="float32")
    assert coded_rate == packed
    assert len(coded) == 2 * packed  # no codec padding left in
    # no shift against the labels: the coded audio lines up with the uncoded
    wav = next((tmp_path / "renders").rglob("*.wav"))
    plain = load_audio(wav, packed)
    lags = range(-48, 49)
    xcorr = [float(np.dot(np.roll(coded, lag), plain)) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0
    # a perceptual codec keeps each 10-ms frame's energy, not the noise's waveform
    # (white-noise bursts at about 24 kbit/s: 0.97 at 24 kHz, 0.945 at 48 kHz)
    hop = packed // 100
    frames = np.arange(0, len(plain), hop)
    energy = [np.log(np.add.reduceat(x.astype(np.float64) ** 2, frames) + 1e-6)
              for x in (coded, plain)]  # fmt: skip
    assert np.corrcoef(*energy)[0, 1] > 0.93


def test_music_pool_travels_and_unpacks_to_the_same_length(tmp_path: Path) -> None:
    rate = gpu_train.SAMPLE_RATE
    t = np.arange(3 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    writer = PoolWriter(tmp_path / "music" / "train", rate)
    writer.add(tone, {"file": "a.ogg", "source": "game"})
    writer.add(tone[:rate], {"file": "b.ogg", "source": "speech"})
    writer.add(tone[:rate], {"file": "c.ogg", "source": "speech"})
    writer.close()
    # at most 2 s of each source: the game's 3 s file stays out, one speech file goes
    info = gpu_train.pack_music(tmp_path / "music", tmp_path / "pack", 0.93, 2 / 3600)
    assert info["sources"] == {"speech": round(2 / 3600, 3)}
    out = gpu_train.unpack_music(tmp_path / "pack", tmp_path / "work")
    pool = load_music_pool(out, rate)
    assert [s["file"] for s in pool.segments] == ["b.ogg", "c.ogg"]
    assert len(pool.audio) == 2 * rate
    assert not (tmp_path / "pack" / "music" / "train" / "music.i16").exists()
    gpu_train.pack_music(tmp_path / "music", tmp_path / "pack2", 0.93, 0.0)
    pool = load_music_pool(
        gpu_train.unpack_music(tmp_path / "pack2", tmp_path / "work2"), rate
    )
    original = load_music_pool(tmp_path / "music" / "train", rate)
    assert len(pool.audio) == len(original.audio)
    assert pool.segments == original.segments
    a = pool.audio[rate : 2 * rate].astype(np.float64)
    b = original.audio[rate : 2 * rate].astype(np.float64)
    level_db = 10 * np.log10(np.mean(a**2) / np.mean(b**2))
    assert abs(level_db) < 1.0
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_merge_prefixes_every_source_and_links_its_files(tmp_path: Path) -> None:
    rate = gpu_train.SAMPLE_RATE
    one = fake_root(tmp_path / "a", "synth:1", np.zeros(rate, np.float32), rate)
    two = fake_root(tmp_path / "b", "sfz:kit", np.zeros(rate, np.float32), rate)
    info = gpu_train.merge([("s0", one), ("real", two)], tmp_path / "root")
    assert info == {"recordings": {"train": 2}}
    egmd = tmp_path / "root" / gpu_train.EGMD
    with open(egmd / f"{gpu_train.EGMD}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["kit_name"] for r in rows] == ["synth:1", "sfz:kit"]
    assert len({r["audio_filename"] for r in rows}) == 2  # same names, apart
    assert len({r["id"] for r in rows}) == 2
    for row in rows:
        assert sf.info(str(egmd / row["audio_filename"])).frames == rate


def test_pack_says_what_is_missing_before_it_writes(tmp_path: Path, capsys) -> None:
    nowhere = str(tmp_path / "nowhere")
    argv = ["pack", "--gmd", nowhere, "--songs", nowhere, "--renders", nowhere,
            "--music", nowhere, "--out", str(tmp_path / "pack")]  # fmt: skip
    assert gpu_train.main(argv) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: {nowhere}/info.csv not found (and ")
    assert "\nhint: --gmd names" in said
    assert not (tmp_path / "pack").exists()


def test_weights_at_another_rate_are_refused_before_the_machine_works(
    tmp_path: Path, random_model: Path, random_model_48k: Path, capsys
) -> None:
    """run preprocesses at the pack's rate and training takes the rate of the weights
    it starts from: a 24 kHz init for a 48 kHz pack would have its store refused after
    minutes of the lent machine's time, so run refuses it before unpacking anything."""
    assert gpu_train.rate_refusal(random_model_48k, 48_000) is None
    assert gpu_train.rate_refusal(random_model, 24_000) is None
    message, hint = gpu_train.rate_refusal(random_model, 48_000)
    assert "24000 Hz model" in message and "48000 Hz" in message
    assert "--sample-rate 24000" in hint
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.json").write_text('{"sample_rate": 48000}\n')
    assert gpu_train.pack_rate(pack) == 48_000
    work = tmp_path / "work"
    argv = ["run", "--pack", str(pack), "--work", str(work),
            "--out", str(tmp_path / "out"),
            "--init-from", str(random_model)]  # fmt: skip
    assert gpu_train.main(argv) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: ") and "24000 Hz model" in said and "hint:" in said
    assert not work.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert gpu_train.rate_refusal(tmp_path / "junk.pt", 48_000) is not None


def test_a_pack_from_before_pack_json_said_its_rate_is_24khz(tmp_path: Path) -> None:
    (tmp_path / "pack.json").write_text('{"opus_level": 0.93}\n')
    assert gpu_train.pack_rate(tmp_path) == 24_000
    assert gpu_train.pack_rate(tmp_path / "nowhere") == 24_000


def test_48khz_runs_train_with_the_shipped_models_frontend() -> None:
    """A lent machine's 48 kHz model reads audio as the shipped one does (144 bands
    to 18.5 kHz, the same window), so the two can be compared, averaged or grown."""
    from drumtx.checkpoint import load_checkpoint

    shipped = load_checkpoint(REPO / "drumtx" / "models" / "default.pt")["config"]
    sets = gpu_train.rate_sets(48_000)
    values = dict(zip(sets[1::2], sets[1::2]))
    given = {s.split("=")[0]: s.split("=", 1)[1] for s in values}
    assert int(given["audio.sample_rate"]) == shipped["audio"]["sample_rate"]
    for key in ("n_fft", "n_mels", "f_max_hz"):
        assert float(given[f"frontend.{key}"]) == float(shipped["frontend"][key])
    assert sets[0::2] == ["--set"] * 4


def test_pack_refuses_a_music_pool_at_another_rate_before_it_writes(
    tmp_path: Path, capsys
) -> None:
    gmd, songs, renders = tmp_path / "gmd", tmp_path / "songs", tmp_path / "renders"
    gmd.mkdir(), songs.mkdir()
    (gmd / "info.csv").write_text("split\n")
    fake_root(renders, "kit", np.zeros(100, np.float32), 44_100)
    PoolWriter(tmp_path / "music" / "train", 24_000).close()
    out = tmp_path / "pack"
    argv = ["pack", "--gmd", str(gmd), "--songs", str(songs), "--renders",
            str(renders), "--music", str(tmp_path / "music"), "--out", str(out),
            "--sample-rate", "48000"]  # fmt: skip
    if gpu_train.missing_inputs(gpu_train.parse_args(argv)):
        pytest.skip("Debian's hydrogen-drumkits are not installed")
    assert gpu_train.main(argv) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: the music pool") and "24000 Hz" in said
    assert "--resample-from" in said and not out.exists()


@pytest.mark.skipif(
    not all((gpu_train.HYDROGEN / kit).is_dir() for kit in gpu_train.PACK_KITS),
    reason=f"Debian's hydrogen-drumkits not in {gpu_train.HYDROGEN}",
)
def test_pack_never_replaces_a_folder_unasked(tmp_path: Path, capsys) -> None:
    gmd, songs, renders = tmp_path / "gmd", tmp_path / "songs", tmp_path / "renders"
    gmd.mkdir(), songs.mkdir()
    (gmd / "info.csv").write_text("split\n")
    fake_root(renders, "kit", np.zeros(100, np.float32), gpu_train.SAMPLE_RATE)
    PoolWriter(tmp_path / "music" / "train", gpu_train.SAMPLE_RATE).close()
    out = tmp_path / "pack"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    music = tmp_path / "music"
    argv = ["pack", "--gmd", str(gmd), "--songs", str(songs), "--renders",
            str(renders), "--music", str(music), "--out", str(out)]  # fmt: skip
    assert gpu_train.main(argv) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: {out} exists") and "--overwrite" in said
    assert (out / "mine.txt").read_text() == "keep"


def test_render_shards_render_as_the_shipped_recipe(
    tmp_path: Path, monkeypatch
) -> None:
    """Each shard is one make-dataset over the packed kits and drumtx's own, in a
    random studio and with the snare buzz the shipped model's fine-tune learned."""
    commands = []

    class Done:
        def __init__(self, cmd, **kw) -> None:
            commands.append(cmd)

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(gpu_train.subprocess, "Popen", Done)
    (tmp_path / "pack" / "kits" / "GMRockKit").mkdir(parents=True)
    pack = str(tmp_path / "pack")
    args = gpu_train.parse_args(["run", "--pack", pack, "--shards", "2"])
    roots = gpu_train.render_shards(args, tmp_path / "work")
    assert roots == [tmp_path / "work" / "shard0", tmp_path / "work" / "shard1"]
    for k, cmd in enumerate(commands):
        assert cmd[1:4] == ["-m", "drumtx", "make-dataset"]
        opts = dict(zip(cmd, cmd[1:]))  # each option to its value
        assert opts["--buzz-prob"] == "0.5" and opts["--studio-prob"] == "0.6"
        assert opts["--seed"] == str(100 + k)
        assert str(tmp_path / "pack" / "kits" / "GMRockKit") in cmd
    first = commands[0]  # the first shard also renders the validation split
    assert first[first.index("--splits") + 1 :][:2] == ["train", "validation"]


def test_a_later_call_on_a_warm_machine_goes_on_from_the_run_it_left(
    tmp_path: Path,
) -> None:
    """The first call probes the speed and records it; a later call finding that
    record and the run's last.pt skips the probe and trains on from that step."""
    from drumtx.checkpoint import save_checkpoint

    work = tmp_path / "work"
    root = work / "root"
    assert gpu_train.continued_step(root, work) is None  # nothing there: a first call
    run_dir = root / "checkpoints" / gpu_train.RUN
    run_dir.mkdir(parents=True)
    save_checkpoint(run_dir / "last.pt", {"config": {}, "model": {}, "vocab": "roland9",
                                          "step": 537})  # fmt: skip
    assert gpu_train.continued_step(root, work) is None  # no probe record: not ours
    (work / gpu_train.PROBE_FILE).write_text('{"steps_per_sec": 2.7}\n')
    assert gpu_train.continued_step(root, work) == 537


def test_the_probe_speed_comes_from_its_logged_steps(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step, speed in ((20, 0.1), (40, 0.64), (60, 0.62), (80, 0.66)):
        writer.add_scalar("train/audio_hours_per_sec", speed, step)
        writer.add_scalar("train/data_wait_fraction", 0.01, step)
    writer.close()
    args = gpu_train.parse_args(["run", "--batch-size", "64", "--probe-steps", "80"])
    speed = gpu_train.probe_speed(args, tmp_path, probe_sec=60.0)
    hours_per_step = 64 * 4.0 / 3600
    # the first interval (the workers' start) is left out: the median of the rest
    assert speed["audio_hours_per_sec"] == pytest.approx(0.64)
    assert speed["steps_per_sec"] == pytest.approx(0.64 / hours_per_step)
    # what the call cost beyond its 80 steps at that speed
    expected = 60.0 - 80 / speed["steps_per_sec"]
    assert speed["overhead_sec"] == pytest.approx(expected, abs=0.05)


def test_the_lease_script_parses_and_refuses_a_missing_pack(tmp_path: Path) -> None:
    import shutil
    import subprocess

    script = REPO / "tools" / "gpu_lease.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    (tmp_path / "tools").mkdir()
    shutil.copy(script, tmp_path / "tools" / "gpu_lease.sh")
    done = subprocess.run(["bash", str(tmp_path / "tools" / "gpu_lease.sh"), "1"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: no .gpupack here\nhint: ")
