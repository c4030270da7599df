"""The real-music pool: written and read back, split by file the same way every build,
and mixed under training crops at the asked level with the targets untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from drumtx.augment import AugmentConfig, Augmenter
from drumtx.config import DataConfig, load_config
from drumtx.data import augment_config
from drumtx.errors import ConfigError, DataError
from drumtx.levels import rms_db
from drumtx.music import (
    SPLITS,
    PoolWriter,
    assign_splits,
    fixed_excerpt,
    hash_unit,
    load_music_pool,
    mix_held_out,
    open_music_pool,
    random_excerpt,
    split_of,
)
from drumtx.screen import SCREEN_VERSION

SR = 24000
HOP = 240
OFF = dict(
    eq_prob=0.0, noise_prob=0.0, reverb_prob=0.0, gain_db_min=0.0, gain_db_max=0.0,
    compress_prob=0.0, saturate_prob=0.0, codec_prob=0.0,
)  # fmt: skip


def tone(seconds: float, freq_hz: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def write_pool(split_dir: Path, pieces: list[tuple[str, np.ndarray]]) -> Path:
    writer = PoolWriter(split_dir, SR)
    for name, audio in pieces:
        writer.add(audio, {"file": name, "source": "tones", "licence": "CC0-1.0"})
    return writer.close()


def test_pool_round_trip(tmp_path: Path) -> None:
    a, b = tone(2.0, 220.0), tone(3.0, 330.0, 0.25)
    index_path = write_pool(tmp_path / "train", [("a.ogg", a), ("b.ogg", b)])
    pool = load_music_pool(tmp_path / "train", SR)
    assert index_path == tmp_path / "train" / "index.json"
    assert [s["file"] for s in pool.segments] == ["a.ogg", "b.ogg"]
    assert [(s["start"], s["length"]) for s in pool.segments] == [
        (0, len(a)),
        (len(a), len(b)),
    ]
    assert pool.segments[1]["licence"] == "CC0-1.0"
    back = np.asarray(pool.audio[len(a) :], np.float32) / 32768
    assert np.abs(back - b).max() < 1e-4  # int16 resolution
    assert pool.hours == pytest.approx(5.0 / 3600)


def test_pool_reader_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a music pool split"):
        load_music_pool(tmp_path / "missing", SR)
    write_pool(tmp_path / "train", [("a.ogg", tone(1.0, 220.0))])
    with pytest.raises(DataError, match="16000 Hz"):
        load_music_pool(tmp_path / "train", 16000)
    index = tmp_path / "train" / "index.json"
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "n_samples": 5}))
    with pytest.raises(DataError, match="its index says"):
        load_music_pool(tmp_path / "train", SR)


def test_split_is_deterministic_and_holds_out_some_of_every_source() -> None:
    sources = {
        "guitar": [f"fof/song{i}/guitar.ogg" for i in range(4)],
        "speech": [f"festvox/wav/{i:03d}.wav" for i in range(50)],
        "pair": ["a.ogg", "b.ogg"],
    }
    splits = assign_splits(sources, test_share=0.2)
    assert splits == assign_splits(sources, test_share=0.2)
    for keys in sources.values():
        chosen = {splits[k] for k in keys}
        assert chosen == {"train", "test"}
    speech_test = sum(splits[k] == "test" for k in sources["speech"])
    assert 3 <= speech_test <= 20  # about a fifth, by hash
    # A file's split does not depend on what else is in the build.
    assert split_of("festvox/wav/007.wav", 0.2) == split_of("festvox/wav/007.wav", 0.2)


def test_excerpts_are_the_asked_length_and_fixed_ones_repeat(tmp_path: Path) -> None:
    write_pool(tmp_path / "test", [("a.ogg", tone(1.0, 220.0))])
    pool = load_music_pool(tmp_path / "test", SR)
    rng = np.random.default_rng(0)
    assert random_excerpt(pool, 3 * SR, rng).shape == (3 * SR,)  # wraps round
    one = fixed_excerpt(pool, "drummer1/session1/1_rock.wav", SR // 2)
    again = fixed_excerpt(pool, "drummer1/session1/1_rock.wav", SR // 2)
    assert np.array_equal(one, again)
    assert one.dtype == np.float32 and np.abs(one).max() > 0.1


def test_real_music_is_mixed_at_the_asked_level(tmp_path: Path) -> None:
    write_pool(tmp_path / "train", [("a.ogg", tone(4.0, 220.0))])
    pool = load_music_pool(tmp_path / "train", SR)
    level_db = 6.0
    cfg = AugmentConfig(**OFF, backing_prob=1.0, music_prob=1.0,
                        backing_db_min=level_db, backing_db_max=level_db)  # fmt: skip
    augment = Augmenter(cfg, SR, HOP, music_pool=pool)
    drums = np.random.default_rng(1).uniform(-0.2, 0.2, SR).astype(np.float32)
    velocity = np.zeros((SR // HOP + 1, 9), np.float32)
    velocity[30, 0] = 0.8
    for seed in range(5):
        out, vel = augment(drums, None, velocity, np.random.default_rng(seed))
        music = out - drums
        assert rms_db(drums) - rms_db(music) == pytest.approx(level_db, abs=0.5)
        assert np.array_equal(vel, velocity)


def test_music_prob_replaces_only_that_share_of_bands(tmp_path: Path) -> None:
    write_pool(tmp_path / "train", [("a.ogg", tone(4.0, 220.0))])
    pool = load_music_pool(tmp_path / "train", SR)
    cfg = AugmentConfig(**OFF, backing_prob=1.0, music_prob=0.5)
    augment = Augmenter(cfg, SR, HOP, music_pool=pool)
    drums = np.zeros(SR, np.float32)
    drums[::2400] = 0.5
    rendered = tone(1.0, 1000.0, 0.3)  # the store's own backing, at another pitch
    velocity = np.zeros((SR // HOP + 1, 9), np.float32)
    real = 0
    for seed in range(40):
        out, _ = augment(drums, rendered, velocity, np.random.default_rng(seed))
        spectrum = np.abs(np.fft.rfft(out - drums))
        real += spectrum[220] > spectrum[1000]  # 1 Hz bins: which band played
    assert 10 <= real <= 30


def test_no_pool_leaves_the_chain_as_it_was() -> None:
    cfg = AugmentConfig(**OFF, backing_prob=0.5)
    drums = np.random.default_rng(2).uniform(-0.2, 0.2, SR).astype(np.float32)
    music = tone(1.0, 330.0)
    velocity = np.zeros((SR // HOP + 1, 9), np.float32)
    plain = Augmenter(cfg, SR, HOP)
    no_pool = AugmentConfig(**OFF, backing_prob=0.5, music_prob=0.7)
    with_prob = Augmenter(no_pool, SR, HOP)
    for seed in range(6):
        a, _ = plain(drums, music, velocity, np.random.default_rng(seed))
        b, _ = with_prob(drums, music, velocity, np.random.default_rng(seed))
        assert np.array_equal(a, b)


def test_config_keys_are_validated_and_reach_the_augmenter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs data.music_dir"):
        DataConfig(music_prob=0.3)
    with pytest.raises(ConfigError, match="data.music_prob"):
        DataConfig(music_prob=1.5, music_dir="x")
    with pytest.raises(ConfigError, match="must be of type str"):
        load_config(None, ["data.music_dir=3"])
    sets = [f"data.music_dir='{tmp_path}/train'", "data.music_prob=0.25"]
    cfg = load_config(None, sets)
    assert augment_config(cfg.data).music_prob == 0.25
    with pytest.raises(DataError, match="not a music pool split"):
        open_music_pool(cfg.data, SR)
    write_pool(tmp_path / "train", [("a.ogg", tone(1.0, 220.0))])
    assert open_music_pool(cfg.data, SR) is not None
    assert open_music_pool(DataConfig(music_dir=str(tmp_path / "train")), SR) is None


def test_loader_mixes_pool_music_at_the_level_and_keeps_targets(tmp_path: Path) -> None:
    from test_augment import backing_store

    from drumtx.data import CropDataset, CropSpec

    split_dir = backing_store(tmp_path / "store")  # clicks at 1000 + 6000 k samples
    write_pool(tmp_path / "music" / "train", [("a.ogg", tone(5.0, 523.0))])
    level_db = 3.0
    cfg = DataConfig(**OFF, backing_prob=1.0, music_prob=1.0,
                     music_dir=str(tmp_path / "music" / "train"),
                     backing_db_min=level_db, backing_db_max=level_db,
                     crops_per_block=4, block_mb=0.5, shuffle_blocks=2)  # fmt: skip
    drums = np.fromfile(split_dir / "audio.i16", np.int16)[:SR].astype(np.float32)
    drums /= 32768
    stream = iter(CropDataset(CropSpec(split_dir, SR, HOP, 9, SR, seed=3), cfg))
    for _ in range(6):
        audio, onset, velocity, mask = next(stream)
        added = audio - drums
        spectrum = np.abs(np.fft.rfft(added))
        assert np.argmax(spectrum) == 523  # the pool's tone, not the stored chords
        assert rms_db(drums) - rms_db(added) == pytest.approx(level_db, abs=0.5)
        frames = [round(s / HOP) for s in range(1000, SR - 200, 6000)]
        assert np.flatnonzero(onset[:, 0]).tolist() == frames
        assert np.allclose(velocity[frames, 0], 100 / 127) and mask.sum() == len(frames)


def test_held_out_mix_is_repeatable_and_at_the_level(tmp_path: Path) -> None:
    pieces = [("a.ogg", tone(3.0, 220.0)), ("b.ogg", tone(3.0, 440.0))]
    write_pool(tmp_path / "test", pieces)
    pool = load_music_pool(tmp_path / "test", SR)
    drums = np.random.default_rng(4).uniform(-0.3, 0.3, 2 * SR).astype(np.float32)
    one = mix_held_out(drums, pool, "rec/7.wav", 0.0)
    assert np.array_equal(one, mix_held_out(drums, pool, "rec/7.wav", 0.0))
    assert rms_db(drums) - rms_db(one - drums) == pytest.approx(0.0, abs=0.5)
    assert np.array_equal(mix_held_out(np.zeros(SR, np.float32), pool, "x", 0.0),
                          np.zeros(SR, np.float32))  # fmt: skip


def load_tool():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "build_music_pool.py"
    spec = importlib.util.spec_from_file_location("build_music_pool", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


COPYRIGHT = """Format: copyright-format/1.0
Upstream-Name: game

Files: *
Copyright: 2002-2019 the Game Team
License: GPL-2+

Files: data/music/ingame_24.ogg data/music/ingame_25.ogg
Copyright: Stuart Marshall
License: CC-BY-SA-3.0

Files: data/music/loop_nc.ogg
Copyright: Someone
License: CC-BY-NC-3.0
"""


def test_builder_reads_each_files_licence_and_keeps_only_free_ones() -> None:
    tool = load_tool()
    paragraphs = tool.copyright_paragraphs(COPYRIGHT)
    assert tool.file_licence(paragraphs, "data/music/ingame_24.ogg") == (
        "CC-BY-SA-3.0",
        "Stuart Marshall",
    )
    assert tool.file_licence(paragraphs, "data/music/ingame_01.ogg")[0] == "GPL-2+"
    free = tool.FREE_LICENCE
    assert all(free.match(x) for x in ("CC0-1.0", "CC-BY-3.0", "GPL-2+", "Expat",
                                       "BSD-like", "CC-BY-SA-3.0"))  # fmt: skip
    assert not any(free.match(x) for x in ("CC-BY-NC-3.0", "CC-BY-ND-4.0", "",
                                           "proprietary"))  # fmt: skip
    assert tool.file_licence(paragraphs, "data/music/loop_nc.ogg")[0] == "CC-BY-NC-3.0"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_unpack_makes_its_scratch_folders(tmp_path: Path) -> None:
    """A first run into an empty scratch folder unpacks a downloaded package (dpkg-deb
    -x makes no parent folders; it failed there), and a second run reuses it."""
    tool = load_tool()
    pkg = tmp_path / "build"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN").chmod(0o755)  # dpkg-deb refuses pytest's 0700 folders
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fake-music\nVersion: 1.0-1\nArchitecture: all\n"
        "Maintainer: nobody <nobody@example.org>\nDescription: test\n"
    )
    (pkg / "usr/share/fake").mkdir(parents=True)
    (pkg / "usr/share/fake/song.txt").write_text("la")
    scratch = tmp_path / "fresh" / "scratch"
    (scratch / "debs").mkdir(parents=True)
    deb = scratch / "debs" / "fake-music_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True,
                   capture_output=True)  # fmt: skip
    root = tool.unpack("fake-music", scratch)
    assert (root / "usr/share/fake/song.txt").read_text() == "la"
    assert tool.package_version("fake-music", scratch) == "1.0-1"
    (root / "usr/share/fake/song.txt").write_text("kept")  # unpacked once only
    assert tool.unpack("fake-music", scratch) == root
    assert (root / "usr/share/fake/song.txt").read_text() == "kept"


def test_a_bigger_pool_keeps_an_earlier_pools_test_files_held_out() -> None:
    """With more files the lowest hash moves, so a file an earlier build sent to test
    by that rule lands in train: held-out keys stay test (all of them, even when no
    file is left to train on), and otherwise a source still keeps a train file."""
    names = [f"wesnoth/music/{i}.ogg" for i in range(60)]
    small = [k for k in names if hash_unit(k) > 0.3][:3]  # test only by the rule
    before = assign_splits({"m": small}, test_share=0.2)
    old_test = [k for k in small if before[k] == "test"]
    bigger = names
    plain = assign_splits({"m": bigger}, test_share=0.2)
    assert any(plain[k] == "train" for k in old_test)  # the leak this prevents
    kept = assign_splits({"m": bigger}, test_share=0.2, held_out=old_test)
    assert all(kept[k] == "test" for k in old_test)
    assert "train" in kept.values()
    # Only the held-out keys move; without them the split is as before.
    assert {k for k in bigger if kept[k] != plain[k]} <= set(old_test)
    assert assign_splits({"m": bigger}, 0.2, held_out=()) == plain
    assert set(assign_splits({"m": small}, 0.2, held_out=small).values()) == {"test"}
    one_free = assign_splits({"m": small}, 0.2, held_out=small[:2])
    assert [one_free[k] for k in small] == ["test", "test", "train"]


def test_pinned_files_keep_their_split_whatever_else_the_screen_keeps() -> None:
    """Which files a screen keeps decides the "lowest hash to test, highest to train"
    rule, so a pool screened by other weights would move files across; pinned files
    keep their split, and the rule only places what the pinned files lack."""
    names = sorted((f"wesnoth/music/{i}.ogg" for i in range(40)), key=hash_unit)
    first = [k for k in names if hash_unit(k) >= 0.2][:4]  # one screen kept these
    before = assign_splits({"m": first}, test_share=0.2)
    assert before[first[0]] == "test" and before[first[-1]] == "train"
    moved = names[:1] + first  # another screen also kept a lower-hash file
    unpinned = assign_splits({"m": moved}, test_share=0.2)
    assert unpinned[first[0]] == "train"  # the leak pinning prevents
    pinned = assign_splits({"m": moved}, test_share=0.2, pinned=before)
    assert all(pinned[k] == before[k] for k in first)
    # New files follow the hash where the pinned ones already hold both splits ...
    assert pinned[names[0]] == split_of(names[0], 0.2)
    # ... and a split the pinned files lack is filled from the free ones.
    only_train = {k: "train" for k in first}
    filled = assign_splits({"m": first + names[:1]}, 0.2, pinned=only_train)
    assert [filled[k] for k in first] == ["train"] * 4 and filled[names[0]] == "test"
    # Held-out keys win over a pin (the safe side); no pins = the plain rule.
    held = assign_splits({"m": first}, 0.2, held_out=first[:1], pinned=only_train)
    assert held[first[0]] == "test" and held[first[1]] == "train"
    assert assign_splits({"m": moved}, 0.2, pinned={}) == unpinned


def test_pool_split_list_round_trip_and_refusals(tmp_path: Path, capsys) -> None:
    """A built pool writes splits.json (each kept file's split); --splits reads one
    back, and a list that is missing or malformed stops the build before any
    download with an error and a hint."""
    tool = load_tool()
    pool = tmp_path / "pool"
    for split, names in (("train", ["a.ogg", "b.ogg"]), ("test", ["c.ogg"])):
        writer = PoolWriter(pool / split, SR)
        for name in names:
            writer.add(tone(0.5, 220.0), {"file": name, "package": "game",
                                          "source": "m", "licence": "CC0-1.0"})
        writer.close()
    path = tool.write_split_list(pool, {"built": "today", "screen": "spectral"})
    assert tool.read_split_list(path) == {
        "game/a.ogg": "train", "game/b.ogg": "train", "game/c.ogg": "test"}
    doc = json.loads(path.read_text())
    bad = {
        "missing.json": None,
        "text.json": "not json",
        "other.json": json.dumps({"format": 1, "files": {}}),
        "value.json": json.dumps({**doc, "splits": {"game/a.ogg": "validation"}}),
    }
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        out = tmp_path / f"out-{name}"
        assert tool.main(["--out", str(out), "--splits", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and name in err and "hint:" in err, err
        assert not out.exists()


def test_the_committed_split_list_holds_out_some_of_every_source() -> None:
    """tools/music_pool_splits.json, the default --splits, pins the pool the held-out
    numbers were measured on: every package with two or more files in it is both
    trained on and held out, the three files the rule sent to test stay there, and
    AlexFightmare (a lone bass drum keeping time, which screen 2 refuses) is gone."""
    tool = load_tool()
    splits = tool.read_split_list(tool.PINNED_SPLITS)
    assert tool.build_parser().parse_args(["--out", "x"]).splits == str(
        tool.PINNED_SPLITS)
    by_package: dict[str, set[str]] = {}
    for key, split in splits.items():
        by_package.setdefault(key.split("/")[0], set()).add(split)
    packages = {s.package for s in tool.SOURCES}
    n_files = Counter(key.split("/")[0] for key in splits)
    assert set(by_package) <= packages and len(by_package) >= 7
    shared = [found for package, found in by_package.items() if n_files[package] >= 2]
    assert all(found == {"train", "test"} for found in shared)
    for name in ("Feelings/guitar.ogg", "weight_of_revenge.ogg",
                 "beware_the_ships_kobold.ogg"):  # fmt: skip
        assert [v for k, v in splits.items() if k.endswith("/" + name)] == ["test"]
    assert not [k for k in splits if k.endswith("/AlexFightmare.ogg")]
    assert tool.screen_key(json.loads(tool.PINNED_SPLITS.read_text())["screen"])[0] == 2


def test_build_refuses_a_hold_out_that_is_no_pool(tmp_path: Path, capsys) -> None:
    """--hold-out naming something that is not a pool split stops the build before
    any download, with an error and a hint."""
    tool = load_tool()
    out = tmp_path / "pool"
    assert tool.main(["--out", str(out), "--hold-out", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "not a music pool split" in err and "hint:" in err
    assert not out.exists()


def test_build_screens_with_the_named_model_and_says_which(tmp_path: Path, capsys,
                                                           monkeypatch) -> None:
    """--checkpoint picks the screening model (a newer shipped model keeps other
    excerpts, so a pool is rebuilt exactly only with the weights that screened it);
    the manifest names them by sha256; a missing or unreadable file stops the build
    before any download."""
    tool = load_tool()
    weights = tmp_path / "screen.pt"
    weights.write_bytes(b"not really weights")
    for bad, why in ((tmp_path / "no.pt", "does not exist"), (weights, "screen.pt")):
        fresh = tmp_path / "other"
        assert tool.main(["--out", str(fresh), "--checkpoint", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and why in err and "hint:" in err
        assert not fresh.exists()

    loaded_from, screened_with = [], []
    monkeypatch.setattr(tool, "load_screen_model",
                        lambda threads, path: loaded_from.append(path) or "model")
    source = tool.SOURCES[0]
    monkeypatch.setattr(tool, "SOURCES", [source])

    def build_source(src, scratch, loaded, writers, *rest):
        screened_with.append(loaded)
        return {"source": src.name, "package": src.package, "version": "1",
                "licences": [], "hours_kept": {}, "hours_refused_drums": 0.0,
                "files": {}}

    monkeypatch.setattr(tool, "build_source", build_source)
    out = tmp_path / "pool"
    assert tool.main(["--out", str(out), "--checkpoint", str(weights)]) == 0
    assert loaded_from == [weights] and screened_with == ["model"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    manifest = json.loads((out / "manifest.json").read_text())
    screen = f"screen {SCREEN_VERSION}: spectral + model screen.pt (sha256 {digest})"
    assert manifest["screen"] == screen
    assert f"screened by {screen}" in (out / "manifest.md").read_text()
    # The committed list was screened by the shipped weights, not these: said.
    err = capsys.readouterr().err
    assert "warning:" in err and tool.PINNED_SPLITS.name in err and "hint:" in err

    # A list screened by other weights, or by these with older rules: said too.
    for other in ("spectral + model default.pt (sha256 0123456789abcdef)",
                  f"spectral + model screen.pt (sha256 {digest})"):  # fmt: skip
        listed = tmp_path / "listed.json"
        listed.write_text(json.dumps({**json.loads((out / "splits.json").read_text()),
                                      "screen": other}))  # fmt: skip
        again = tmp_path / f"again-{len(other)}"
        assert tool.main(["--out", str(again), "--checkpoint", str(weights),
                          "--splits", str(listed)]) == 0  # fmt: skip
        err = capsys.readouterr().err
        assert "warning:" in err and other in err and "hint:" in err, err
    listed.write_text(json.dumps({**json.loads(listed.read_text()), "screen": screen}))
    assert tool.main(["--out", str(tmp_path / "same"), "--checkpoint", str(weights),
                      "--splits", str(listed)]) == 0  # fmt: skip
    assert "warning:" not in capsys.readouterr().err


def test_resampled_pool_keeps_its_excerpts_and_gains_their_high_band(
    tmp_path: Path, capsys
) -> None:
    """--resample-from POOL --sample-rate R writes POOL's excerpts again at R, decoded
    from their source files (a 15 kHz partial a 24 kHz pool cannot hold is there), the
    same stretches of the same files; a missing source stops it with a hint."""
    import soundfile as sf

    from drumtx.audio import resample

    tool = load_tool()
    source = next(s for s in tool.SOURCES if s.name == "widelands-music")
    scratch = tmp_path / "scratch"
    rel = "data/music/ingame_24.ogg"
    path = scratch / "root" / source.package / (source.strip + rel)
    path.parent.mkdir(parents=True)
    t = np.arange(6 * 44100) / 44100
    tone = 0.4 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 15000 * t)
    sf.write(path.with_suffix(".wav"), tone, 44100)
    path.with_suffix(".wav").rename(path)  # a WAV under the .ogg name decodes the same
    old = tmp_path / "pool"
    meta = {"file": rel, "source": source.name, "package": source.package}
    for split in SPLITS:
        writer = PoolWriter(old / split, 24000)
        x = tool.load_mono(path, 24000)
        writer.add(x[24000:72000], {**meta, "file_offset_sec": 1.0})
        writer.close()
    manifest = {"built": "2026-12-01", "build_minutes": 1.0, "sample_rate": 24000,
                "test_share": 0.2, "screen": "spectral", "sources": [],
                "attribution": [], "left_out": [], "rebuild": [],
                "calibration": {"x": 1}}  # fmt: skip
    (old / "manifest.json").write_text(json.dumps(manifest))
    new = tmp_path / "pool48"
    args = ["--out", str(new), "--scratch", str(scratch), "--resample-from", str(old),
            "--sample-rate", "48000"]  # fmt: skip
    assert tool.main(args) == 0
    for split in SPLITS:
        a, b = load_music_pool(old / split), load_music_pool(new / split, 48000)
        assert b.segments[0]["length"] == 2 * a.segments[0]["length"] == 96000
        assert b.segments[0]["file_offset_sec"] == 1.0
        y = b.audio.astype(np.float32) / 32767
        spectrum = np.abs(np.fft.rfft(y))
        freqs = np.fft.rfftfreq(len(y), 1 / 48000)
        assert spectrum[np.argmin(np.abs(freqs - 15000))] > 0.1 * spectrum.max()
        # The same stretch (peak-normalised with its high band, so scaled apart).
        down = resample(y, 48000, 24000)[100:-100]
        x = a.audio.astype(np.float32)[100:-100] / 32767
        assert np.corrcoef(down, x)[0, 1] > 0.999
    written = json.loads((new / "manifest.json").read_text())
    assert written["sample_rate"] == 48000 and "calibration" not in written
    assert "Resampled from" in (new / "manifest.md").read_text()
    capsys.readouterr()

    path.unlink()
    again = tmp_path / "again"
    args[1] = str(again)
    assert tool.main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "missing" in err
    assert "hint:" in err and "--scratch" in err
