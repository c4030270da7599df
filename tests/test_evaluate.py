"""evaluate: report fields, numbers against mir_eval, tuned thresholds, errors.

Two reserved models score the session's made store: random tiny weights (plumbing) and
the same network with its onset head fitted for a few seconds to the train split
(numbers worth checking: it finds most kicks, snares and hi-hats). A full ``run_train``
is too slow for this file's budget on a 2-core CPU; test_train.py covers it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf
import torch

from drumtx.checkpoint import find_model, load_checkpoint, save_checkpoint
from drumtx.cli import main
from drumtx.config import Config, load_config
from drumtx.drums import ROLAND9_TO_ADTOF5, Hit, get_vocab
from drumtx.evaluate import THRESHOLD_GRID
from drumtx.frontend import LogMel
from drumtx.inference import class_thresholds, load_model, transcribe_array
from drumtx.model import build_model
from drumtx.processed import load_store, recording_audio, reference_hits, spread_indices

ROLAND9 = get_vocab("roland9")
ADTOF5 = get_vocab("adtof5")


def _tiny_config() -> Config:
    return load_config(None, ["model.preset='tiny'"])


def _save(path: Path, cfg: Config, model: torch.nn.Module, **extra: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": cfg.to_dict(), "vocab": "roland9", "model": model.state_dict()}
    save_checkpoint(path, {**state, **extra})
    return path


@pytest.fixture(scope="module")
def root(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private data root sharing the session's (read-only) processed store."""
    data_root = tmp_path_factory.mktemp("eval-root")
    (data_root / "processed_data").symlink_to(made_store / "processed_data")
    return data_root


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = _tiny_config()
    return _save(
        tmp_path_factory.mktemp("random") / "random.pt", cfg, build_model(cfg, 9)
    )


def _onset_targets(store, index: int, n_frames: int, fps: int) -> torch.Tensor:
    """(T, C) 1 within a frame of each reference onset."""
    target = torch.zeros(n_frames, ROLAND9.n_classes)
    for hit in reference_hits(store, index):
        frame = round(hit.time_sec * fps)
        target[max(frame - 1, 0) : frame + 2, hit.cls] = 1.0
    return target


@pytest.fixture(scope="module")
def fitted_checkpoint(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random tiny CRNN whose onset head is fitted (logistic regression) to 6 train
    recordings; the rest of the network stays random. Seconds, not minutes."""
    torch.manual_seed(0)
    cfg = _tiny_config()
    model, frontend = build_model(cfg, 9).eval(), LogMel.from_config(cfg)
    store = load_store(root / "processed_data" / "train", cfg)
    seen: list[torch.Tensor] = []
    hook = model.onset_head.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    targets = []
    for index in range(6):
        audio = torch.from_numpy(
            recording_audio(store, index).astype(np.float32) / 32768
        )
        with torch.no_grad():
            model(frontend(audio[None]))  # (1, N) -> head input (1, T, 2 * hidden)
        targets.append(
            _onset_targets(store, index, seen[-1].shape[1], cfg.frontend.fps)
        )
    hook.remove()
    features = torch.cat([s[0] for s in seen])  # (sum T, 2 * hidden)
    target = torch.cat(targets)  # (sum T, C)
    rate = target.mean(0).clamp(min=1e-3)
    head = model.onset_head
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(120):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(features), target, pos_weight=((1 - rate) / rate).sqrt()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("fitted") / "best.pt"
    return _save(path, cfg, model, step=120, best_f1=0.5, note="kept as is")


def _evaluate(capsys, root: Path, checkpoint: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--data-root",
            str(root),
            "--checkpoint",
            str(checkpoint),
            "-d",
            "cpu",
            *args,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def _check_scores(block: dict, codes: Sequence[str]) -> None:
    assert list(block["classes"]) == list(codes)
    for row in block["classes"].values():
        assert {"precision", "recall", "f1", "tp", "n_ref", "n_est"} <= set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert 0.0 <= block["micro_f1"] <= 1.0 and 0.0 <= block["macro_f1"] <= 1.0


def _check_confusion(block: dict, codes: Sequence[str]) -> None:
    """Both tables name every class and "none"; each error sits in exactly one cell:
    a row sums to that class's false positives (n_est - tp) or misses (n_ref - tp)."""
    for name, key in (("false_positives", "n_est"), ("misses", "n_ref")):
        table = block["confusion"][name]
        assert list(table) == list(codes)
        for code, row in table.items():
            assert list(row) == [*codes, "none"]
            assert all(isinstance(n, int) and n >= 0 for n in row.values())
            scores = block["classes"][code]
            assert sum(row.values()) == scores[key] - scores["tp"], (name, code)


@pytest.mark.parametrize("which", ["random", "fitted"])
def test_json_report_has_every_score(
    which, root, random_checkpoint, fitted_checkpoint, capsys
):
    checkpoint = random_checkpoint if which == "random" else fitted_checkpoint
    code, out, _ = _evaluate(capsys, root, checkpoint, "--json", "--limit", "2")
    assert code == 0
    report = json.loads(out)
    _check_scores(report, ROLAND9.codes)
    _check_scores(report["adtof5"], ADTOF5.codes)
    for condition in [report, *report.get("mixes", {}).values()]:
        _check_confusion(condition, ROLAND9.codes)
    assert set(report["velocity_f1"]) == {"precision", "recall", "f1", "f1_mean"}
    for condition in [report, *report.get("mixes", {}).values()]:
        by_velocity = condition["recall_by_velocity"]
        by_standout = condition["recall_by_standout"]
        for code, row in condition["classes"].items():
            assert sum(b["n_ref"] for b in by_velocity[code].values()) == row["n_ref"]
            assert sum(b["n_ref"] for b in by_standout[code].values()) == row["n_ref"]
        audible = condition["audible"]
        n_ref = condition["micro"]["n_ref"]
        assert 0 <= audible["n_masked"] <= n_ref
        if audible["n_masked"] == 0:
            assert audible["micro_f1"] == pytest.approx(condition["micro_f1"])
    assert report["velocity_f1"]["f1"] <= report["micro_f1"] + 1e-9
    store = load_store(root / "processed_data" / "test")
    picked = spread_indices(len(store.recordings), 2)
    kits = {store.recordings[i]["kit"] for i in picked}
    assert set(report["per_kit"]) == kits
    assert report["n_recordings"] == 2 and report["split"] == "test"
    assert report["checkpoint"] == str(checkpoint)
    assert report["precision"] == "fp32"
    assert report["thresholds"] == {c: 0.5 for c in ROLAND9.codes}
    assert report["thresholds_tuned_on"] is None  # never tuned
    assert report["onset_window_sec"] == 0.05 and report["velocity_tolerance"] == 0.1
    if which == "fitted":
        assert report["micro_f1"] > 0.3  # the fitted head really finds hits


def test_fingerprints_tell_another_render_labels_or_music_apart(root, tmp_path):
    """A report's fingerprints: the same store twice gives the same digits; audio made
    otherwise, a moved label, or other music under the drums gives others."""
    import dataclasses

    from drumtx.evaluate import pool_fingerprint, store_fingerprint
    from drumtx.music import PoolWriter, load_music_pool

    store = load_store(root / "processed_data" / "test")
    same = store_fingerprint(store)
    assert same == store_fingerprint(load_store(root / "processed_data" / "test"))
    assert len(same) == 12
    louder = np.asarray(store.audio, np.int32) * 2  # rendered or mixed otherwise
    other_audio = np.clip(louder, -32768, 32767).astype(np.int16)
    assert store_fingerprint(dataclasses.replace(store, audio=other_audio)) != same
    moved = store.hits.copy()
    moved[0] = moved[1]
    assert store_fingerprint(dataclasses.replace(store, hits=moved)) != same
    pools = []
    for name, hz in (("a", 220.0), ("b", 330.0)):
        writer = PoolWriter(tmp_path / name / "test", 24_000)
        tone = np.sin(2 * np.pi * hz * np.arange(24_000 * 3) / 24_000) * 0.3
        writer.add(tone.astype(np.float32), {"file": "x.ogg", "source": "t"})
        writer.close()
        pools.append(pool_fingerprint(load_music_pool(tmp_path / name / "test")))
    assert pools[0] != pools[1]
    assert pools[0] == pool_fingerprint(load_music_pool(tmp_path / "a" / "test"))


def test_table_report(root, random_checkpoint, capsys):
    code, out, _ = _evaluate(capsys, root, random_checkpoint, "--limit", "1")
    assert code == 0
    assert "onset F1" in out and "micro F1" in out and "adtof5" in out and "KD" in out
    assert "where the errors sit, drums only" in out and "predicted there" in out
    assert "recall by reference velocity, drums only" in out and "96-127" in out
    assert re.search(r"fingerprints: set [0-9a-f]{12} ", out)


def _mir_eval_counts(
    refs: list[list[Hit]], ests: list[list[Hit]], class_of: Sequence[int], n: int
) -> np.ndarray:
    """(n, 3) tp, n_ref, n_est per class, summed over recordings, from
    mir_eval.onset.f_measure (tp = precision * n_est)."""
    counts = np.zeros((n, 3), dtype=np.int64)
    for ref, est in zip(refs, ests):
        for cls in range(n):
            ref_t = np.array(sorted(h.time_sec for h in ref if class_of[h.cls] == cls))
            est_t = np.array(sorted(h.time_sec for h in est if class_of[h.cls] == cls))
            if len(ref_t) and len(est_t):
                _, precision, _ = mir_eval.onset.f_measure(ref_t, est_t, window=0.05)
                counts[cls, 0] += round(precision * len(est_t))
            counts[cls, 1:] += (len(ref_t), len(est_t))
    return counts


def _check_against(block: dict, codes: Sequence[str], counts: np.ndarray) -> None:
    f1s = []
    for code, (tp, n_ref, n_est) in zip(codes, counts):
        row = block["classes"][code]
        assert (row["tp"], row["n_ref"], row["n_est"]) == (tp, n_ref, n_est), code
        precision, recall = tp / max(n_est, 1), tp / max(n_ref, 1)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(f1)
        if n_ref:
            f1s.append(f1)
    tp, n_ref, n_est = counts.sum(axis=0)
    micro = 2 * tp / (n_ref + n_est) if tp else 0.0
    assert block["micro_f1"] == pytest.approx(micro)
    assert block["macro_f1"] == pytest.approx(np.mean(f1s))


def test_scores_match_mir_eval_on_the_same_hits(root, fitted_checkpoint, capsys):
    code, out, _ = _evaluate(capsys, root, fitted_checkpoint, "--json")
    assert code == 0
    report = json.loads(out)
    from drumtx.evaluate import comparable_precision

    # The hits evaluate scored: same weights, same precision (fp32 on every CPU).
    cfg = comparable_precision(_tiny_config())
    loaded = load_model(fitted_checkpoint, cfg, torch.device("cpu"))
    store = load_store(root / "processed_data" / "test", loaded.cfg)
    indices = range(len(store.recordings))
    thresholds = class_thresholds(loaded)
    refs = [reference_hits(store, i) for i in indices]
    ests = [
        transcribe_array(loaded, recording_audio(store, i), thresholds) for i in indices
    ]
    assert sum(map(len, ests)) > 50
    counts = _mir_eval_counts(refs, ests, range(9), ROLAND9.n_classes)
    _check_against(report, ROLAND9.codes, counts)
    to_adtof = [ADTOF5.index(ROLAND9_TO_ADTOF5[c]) for c in ROLAND9.codes]
    adtof_counts = _mir_eval_counts(refs, ests, to_adtof, ADTOF5.n_classes)
    _check_against(report["adtof5"], ADTOF5.codes, adtof_counts)
    _check_confusion(report, ROLAND9.codes)
    misses = sum(sum(row.values()) for row in report["confusion"]["misses"].values())
    assert misses == int(counts[:, 1].sum() - counts[:, 0].sum())


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _transcribe_json(wav: Path, checkpoint: Path) -> list[dict]:
    assert (
        main(
            [
                "transcribe",
                str(wav),
                "--checkpoint",
                str(checkpoint),
                "-f",
                "json",
                "-d",
                "cpu",
                "--no-progress",
                "--overwrite",
            ]
        )
        == 0
    )
    return json.loads(wav.with_name(wav.stem + ".drums.json").read_text())["hits"]


def test_tuned_thresholds_are_stored_and_used_by_transcribe(
    root, fitted_checkpoint, tmp_path, capsys
):
    checkpoint = _copy(fitted_checkpoint, tmp_path / "run" / "best.pt")
    before = load_checkpoint(checkpoint)
    code, out, err = _evaluate(
        capsys, root, checkpoint, "--tune-thresholds", "--json", "--limit", "2"
    )
    assert code == 0 and "tuned thresholds (micro F1) on validation" in err
    after = load_checkpoint(checkpoint)
    tuned = after["thresholds"]
    # Only classes with enough reference hits are tuned; the rest keep the config's.
    assert tuned and set(tuned) <= set(ROLAND9.codes)
    assert all(v in THRESHOLD_GRID for v in tuned.values())
    used = json.loads(out)["thresholds"]
    assert used == {**{c: 0.5 for c in ROLAND9.codes}, **tuned}  # used at once
    # where they were tuned is kept beside them, and evaluate reports it
    tuned_on = after["thresholds_tuned_on"]
    assert tuned_on["split"] == "validation" and tuned_on["recordings"] == 2
    assert tuned_on["processed_dir"] == str((root / "processed_data").resolve())
    assert tuned_on["objective"] == "micro" and tuned_on["music"] is None
    assert json.loads(out)["thresholds_tuned_on"] == tuned_on
    # every other key kept, unchanged
    assert set(after) == set(before) | {"thresholds", "thresholds_tuned_on"}
    for key in ("config", "vocab", "step", "best_f1", "note"):
        assert after[key] == before[key], key
    for name, tensor in before["model"].items():
        assert torch.equal(after["model"][name], tensor), name
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["best.pt"]

    # a later evaluate on the split they were tuned on says so; on another, nothing
    _, _, err = _evaluate(capsys, root, checkpoint, "--split", "validation", "--json")
    assert "thresholds were tuned on the split being reported" in err
    _, _, err = _evaluate(capsys, root, checkpoint, "--json", "--limit", "1")
    assert "tuned on the split" not in err

    loaded = load_model(checkpoint, _tiny_config(), torch.device("cpu"))
    assert class_thresholds(loaded) == [used[c] for c in ROLAND9.codes]
    store = load_store(root / "processed_data" / "test", loaded.cfg)
    audio = recording_audio(store, 0)
    wav = tmp_path / "song.wav"
    sf.write(wav, np.asarray(audio), loaded.cfg.audio.sample_rate, subtype="PCM_16")
    expected = transcribe_array(loaded, audio, class_thresholds(loaded))
    got = _transcribe_json(wav, checkpoint)
    assert [(r["time_sec"], r["class"], r["velocity"]) for r in got] == [
        (round(h.time_sec, 6), ROLAND9.codes[h.cls], h.velocity) for h in expected
    ]


def test_failed_threshold_write_leaves_the_checkpoint_intact(
    root, fitted_checkpoint, tmp_path, capsys, monkeypatch
):
    checkpoint = _copy(fitted_checkpoint, tmp_path / "run" / "best.pt")
    original = checkpoint.read_bytes()

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("drumtx.storage.os.replace", full_disk)
    code, _, err = _evaluate(
        capsys, root, checkpoint, "--tune-thresholds", "--limit", "1"
    )
    assert code == 3 and "no space left" in err  # a StorageError, as in preprocess
    assert checkpoint.read_bytes() == original
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["best.pt"]


def test_tuning_an_older_run_leaves_the_newest_run_the_default(
    root, fitted_checkpoint, tmp_path, capsys
):
    """transcribe and evaluate pick the newest run's best.pt by default; tuning rewrites
    best.pt, and must not make the run it tuned the newest."""
    runs = tmp_path / "checkpoints"
    t_ns = 1_700_000_000 * 10**9
    for age, run in enumerate(("older", "newer")):
        for name in ("best.pt", "last.pt"):  # a trained run has both
            _copy(fitted_checkpoint, runs / run / name)
            os.utime(runs / run / name, ns=(t_ns + age, t_ns + age))
    cfg = load_config(
        None, [f"storage.data_root='{root}'", f"storage.checkpoint_dir='{runs}'"]
    )
    assert find_model(cfg, None).path == runs / "newer" / "best.pt"
    older = runs / "older" / "best.pt"
    code, _, _ = _evaluate(capsys, root, older, "--tune-thresholds", "--limit", "1")
    assert code == 0 and "thresholds" in load_checkpoint(older)
    assert find_model(cfg, None).path == runs / "newer" / "best.pt"


def test_tuning_refuses_the_shipped_model(
    root, fitted_checkpoint, tmp_path, capsys, monkeypatch
):
    shipped_dir = tmp_path / "site-packages" / "drumtx" / "models"
    shipped = _copy(fitted_checkpoint, shipped_dir / "default.pt")
    original = shipped.read_bytes()
    monkeypatch.setattr("drumtx.checkpoint.SHIPPED_MODELS_DIR", shipped_dir)
    code, _, err = _evaluate(capsys, root, shipped, "--tune-thresholds")
    assert code == 2 and "refusing to write tuned thresholds" in err
    # Found without --checkpoint (no trained run under the root): refused as well.
    capsys.readouterr()
    code = main(
        ["evaluate", "--data-root", str(root), "--tune-thresholds", "-d", "cpu"]
    )
    assert code == 2 and "refusing" in capsys.readouterr().err
    assert shipped.read_bytes() == original


def test_missing_store_names_the_preprocess_command(
    root, random_checkpoint, tmp_path, capsys
):
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    code, _, err = _evaluate(capsys, empty_root, random_checkpoint)
    assert code == 3  # a storage root is missing: pre-flight failure
    assert "processed_data" in err and "python -m drumtx preprocess" in err
    partial = tmp_path / "partial"
    (partial / "processed_data" / "validation").mkdir(parents=True)
    code, _, err = _evaluate(
        capsys, partial, random_checkpoint, "--split", "validation"
    )
    assert code == 1 and "manifest.json missing" in err
    assert "python -m drumtx preprocess" in err


def test_only_training_validation_draws_the_picture(root, fitted_checkpoint) -> None:
    """score_store renders the TensorBoard picture only when asked (training's
    validation); evaluate's report, which never shows it, does not pay for it."""
    from drumtx.scoring import score_store

    loaded = load_model(fitted_checkpoint, _tiny_config(), torch.device("cpu"))
    store = load_store(root / "processed_data" / "test", loaded.cfg)
    plain = score_store(loaded, store, [0])
    drawn = score_store(loaded, store, [0], picture=True)
    assert "image" not in plain
    assert drawn["image"].ndim == 3 and drawn["image"].dtype == np.uint8
    assert {k: v for k, v in drawn.items() if k != "image"} == plain


def test_music_dir_scores_the_drums_under_real_music(
    root, fitted_checkpoint, tmp_path, capsys
):
    """--music-dir replaces each backing track with a fixed excerpt of a real-music
    pool split: the mixes change, the drums alone do not, and a rerun repeats them."""
    from drumtx.music import PoolWriter

    t = np.arange(24_000 * 7) / 24_000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8)) * 0.2
    writer = PoolWriter(tmp_path / "music" / "test", 24_000)
    writer.add(
        chord.astype(np.float32), {"file": "c.ogg", "source": "t", "licence": "CC0"}
    )
    writer.close()
    args = ("--json", "--limit", "2", "--backing-db", "0")
    plain = json.loads(_evaluate(capsys, root, fitted_checkpoint, *args)[1])
    music = ("--music-dir", str(tmp_path / "music" / "test"))
    _, out, err = _evaluate(capsys, root, fitted_checkpoint, *args, *music)
    real = json.loads(out)
    # off a terminal, progress is a line every 30 s and one at the end of each stage
    assert "scoring test, alone and in 1 mix: 4/4 recordings" in err
    assert "music alone: 1/1 recordings" in err
    _, out, err = _evaluate(capsys, root, fitted_checkpoint, *args, *music,
                            "--no-progress")  # fmt: skip
    again = json.loads(out)
    assert "recordings" not in err
    assert real["micro_f1"] == plain["micro_f1"]  # the drums alone: untouched
    assert real["mixes"]["0 dB"] != plain["mixes"]["0 dB"]
    assert real["mixes"] == again["mixes"] and "real music pool" in real["music"]
    # the same set under music: the set's digits stay, the music's are added
    assert set(plain["fingerprints"]) == {"set"}
    assert real["fingerprints"]["set"] == plain["fingerprints"]["set"]
    assert real["fingerprints"] == again["fingerprints"]
    # the pool's music heard alone: whatever is found there is false
    alone = real["music_alone"]
    assert alone["minutes"] == pytest.approx(7 / 60) and "music_alone" not in plain
    assert set(alone["hits"]) == set(real["classes"]) and alone == again["music_alone"]
    total = sum(alone["hits"].values())
    assert alone["per_minute"] == pytest.approx(total / alone["minutes"])
    text = _evaluate(capsys, root, fitted_checkpoint, "--limit", "1", *music)[1]
    assert "music alone (0.1 min, no drums)" in text and "false hits a minute" in text
    code, _, err = _evaluate(capsys, root, fitted_checkpoint, "--music-dir", "/nope")
    assert code == 1 and "error:" in err and "hint:" in err  # before any scoring
    slow = PoolWriter(tmp_path / "music16k" / "test", 16_000)  # not the store's rate
    slow.add(chord[:16_000].astype(np.float32), {"file": "c", "source": "t"})
    slow.close()
    code, _, err = _evaluate(capsys, root, fitted_checkpoint, "--music-dir",
                             str(tmp_path / "music16k" / "test"))  # fmt: skip
    assert code == 1 and "16000 Hz" in err


def test_music_alone_counts_what_the_model_finds_in_each_stretch(
    root, fitted_checkpoint, tmp_path
):
    """A stretch of drums fires what the model hears in it; silence fires nothing."""
    from drumtx.evaluate import music_alone
    from drumtx.music import PoolWriter, load_music_pool

    loaded = load_model(fitted_checkpoint, load_config(None), torch.device("cpu"))
    store = load_store(root / "processed_data" / "train", loaded.cfg)
    drums = recording_audio(store, 0).astype(np.float32) / 32768
    silent = PoolWriter(tmp_path / "silent", 24_000)
    silent.add(np.zeros(24_000 * 5, np.float32), {"file": "s.ogg", "source": "s"})
    silent.close()
    quiet = music_alone(loaded, load_music_pool(tmp_path / "silent"))
    assert sum(quiet["hits"].values()) == 0 and quiet["per_minute"] == 0.0
    pool = PoolWriter(tmp_path / "drums", 24_000)
    pool.add(drums, {"file": "d.ogg", "source": "d"})
    pool.add(np.zeros(24_000 * 5, np.float32), {"file": "s.ogg", "source": "s"})
    pool.close()
    heard = music_alone(loaded, load_music_pool(tmp_path / "drums"))
    found = transcribe_array(loaded, drums, class_thresholds(loaded))
    assert sum(heard["hits"].values()) == len(found) > 0
    assert heard["minutes"] == pytest.approx((len(drums) + 24_000 * 5) / 24_000 / 60)


def test_tuning_hears_the_music_dir_too(
    root, fitted_checkpoint, tmp_path, capsys, monkeypatch
):
    """With --music-dir, thresholds are tuned on the validation mixes under that
    real music (the conditions they are reported in), not the rendered backing."""
    import drumtx.evaluate as evaluate_module
    from drumtx.music import PoolWriter, load_music_pool

    t = np.arange(24_000 * 5) / 24_000
    writer = PoolWriter(tmp_path / "music" / "train", 24_000)
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    writer.add(tone, {"file": "a.ogg", "source": "t", "licence": "CC0"})
    writer.close()
    heard = []

    def spy(loaded, store, indices, levels=(None,), objective="micro", tick=None):
        heard.append((store, list(levels)))
        return {"SD": 0.45}

    monkeypatch.setattr(evaluate_module, "tune", spy)
    checkpoint = _copy(fitted_checkpoint, tmp_path / "run" / "best.pt")
    pool_dir = tmp_path / "music" / "train"
    args = ("--tune-thresholds", "--split", "validation", "--limit", "1")
    code, _, _ = _evaluate(
        capsys, root, checkpoint, *args, "--music-dir", str(pool_dir)
    )
    assert code == 0 and load_checkpoint(checkpoint)["thresholds"] == {"SD": 0.45}
    code, _, _ = _evaluate(capsys, root, checkpoint, *args)
    assert code == 0
    (with_music, levels), (rendered, _) = heard
    assert levels == [None, 6.0, 0.0]
    expected = evaluate_module.with_music_from(rendered, load_music_pool(pool_dir))
    assert np.array_equal(np.asarray(with_music.backing), np.asarray(expected.backing))
    assert not np.array_equal(
        np.asarray(with_music.backing), np.asarray(rendered.backing)
    )


def test_a_class_too_rare_to_tune_counts_each_hit_once_however_many_levels(
    root, fitted_checkpoint, monkeypatch
) -> None:
    """Tuning hears every recording at each level (drums alone, +6 dB, 0 dB), but a
    reference hit is one hit: a class with fewer distinct hits than MIN_TUNING_HITS
    keeps its configured threshold however many levels there are."""
    from drumtx import evaluate as evaluate_module

    loaded = load_model(fitted_checkpoint, _tiny_config(), torch.device("cpu"))
    store = load_store(root / "processed_data" / "validation", loaded.cfg)
    indices = list(range(len(store.recordings)))
    counts = np.bincount(
        [h.cls for i in indices for h in reference_hits(store, i)], minlength=9
    )
    rare = int(np.flatnonzero(counts)[np.argmin(counts[counts > 0])])
    # between the class's distinct hits and three times them
    monkeypatch.setattr(evaluate_module, "MIN_TUNING_HITS", int(counts[rare]) + 1)
    picks = evaluate_module.tune(loaded, store, indices, levels=(None, None, None))
    assert ROLAND9.codes[rare] not in picks
    common = [ROLAND9.codes[c] for c in np.flatnonzero(counts > counts[rare])]
    assert common and set(common) <= set(picks)


def test_micro_objective_trades_a_weak_class_for_the_total() -> None:
    """A weak class whose F1 peaks at a low threshold by adding hits that are mostly
    wrong: per-class tuning takes a lower threshold than micro tuning, and the
    micro F1 of micro tuning's picks is the best any single change reaches."""
    from drumtx.evaluate import THRESHOLD_GRID, _micro_ascent, _nearest_best
    from drumtx.metrics import ClassCounts

    n = len(THRESHOLD_GRID)
    strong = [ClassCounts(tp=900, n_ref=1000, n_est=950)] * n  # flat: threshold-free
    # The weak class: as its threshold falls it finds more of its hits, and ever more
    # false ones (its own F1 peaks at 0.6, where the total's is still rising).
    weak = []
    for t in THRESHOLD_GRID:
        tp, fp = round(90 * (1 - t) ** 0.5), round(250 * (1 - t) ** 2)
        weak.append(ClassCounts(tp=tp, n_ref=100, n_est=tp + fp))
    grid = {0: strong, 1: weak}
    by_class = _nearest_best([c.f1 for c in weak], 0.5, 0.005)
    micro = _micro_ascent(grid, [], [0.5, 0.5])

    def total(i):
        return (strong[micro[0]] + weak[i]).f1

    assert THRESHOLD_GRID[by_class] == 0.6 and THRESHOLD_GRID[micro[1]] == 0.75
    assert total(micro[1]) > total(by_class) + 0.003
    assert total(micro[1]) >= max(total(i) for i in range(n)) - 0.0005


def test_evaluate_runs_the_same_precision_on_every_cpu(monkeypatch) -> None:
    """cpu_precision "auto" would differ between CPUs with and without bf16 units:
    evaluate takes fp32 then (an explicit choice stays), and the report names it."""
    from drumtx.config import load_config
    from drumtx.evaluate import comparable_precision

    monkeypatch.setenv("DRUMTX_CPU_BF16", "1")
    auto = comparable_precision(load_config(None))
    assert auto.transcribe.cpu_precision == "fp32"
    asked = load_config(None, ["transcribe.cpu_precision='bf16'"])
    assert comparable_precision(asked).transcribe.cpu_precision == "bf16"


def test_backing_db_takes_negative_levels():
    """--backing-db -6,0 (music louder than the drums) parses as a value, as
    --backing-db=-6,0 does; argparse alone would take "-6,0" for an option."""
    from drumtx.cli import build_parser, join_signed_values, parse_levels

    parser = build_parser()
    for given in (["--backing-db", "-6,0"], ["--backing-db=-6,0"]):
        args = parser.parse_args(join_signed_values(["evaluate", *given]))
        assert parse_levels(args.backing_db) == (-6.0, 0.0)
    args = parser.parse_args(join_signed_values(["evaluate", "--backing-db", "6,0"]))
    assert parse_levels(args.backing_db) == (6.0, 0.0)
    # only that option's value is joined: other arguments pass through unchanged
    argv = ["evaluate", "--limit", "2", "--set", "a.b=-1", "--backing-db", "-.5"]
    assert join_signed_values(argv) == argv[:-2] + ["--backing-db=-.5"]
    last = ["evaluate", "--backing-db"]  # no value: left for argparse to refuse
    assert join_signed_values(last) == last


def test_checkpoint_takes_a_run_name_as_transcribe_does(
    fitted_checkpoint: Path, made_store: Path, tmp_path: Path, capsys
):
    root = tmp_path / "root"
    (root / "checkpoints" / "r1").mkdir(parents=True)
    (root / "processed_data").symlink_to(made_store / "processed_data")
    best = _copy(fitted_checkpoint, root / "checkpoints" / "r1" / "best.pt")
    code, out, err = _evaluate(capsys, root, Path("r1"), "--limit", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["checkpoint"] == str(best)
    assert f"model: {best}\n  chosen: best.pt of run r1 (--checkpoint r1)" in err
    # A run stopped before its first validation has last.pt alone: say so.
    _copy(fitted_checkpoint, root / "checkpoints" / "early" / "last.pt")
    code, _, err = _evaluate(capsys, root, Path("early"), "--limit", "1")
    err = " ".join(err.split())
    assert code == 2 and "run 'early' has no best.pt yet" in err
    assert f"--checkpoint {root / 'checkpoints' / 'early' / 'last.pt'}" in err


def test_a_split_never_built_and_a_store_for_another_model_say_what_to_run(
    fitted_checkpoint: Path, made_store: Path, tmp_path: Path, capsys
):
    root = tmp_path / "root"
    (root / "processed_data").mkdir(parents=True)
    test_split = made_store / "processed_data" / "test"
    (root / "processed_data" / "test").symlink_to(test_split)
    code, _, err = _evaluate(capsys, root, fitted_checkpoint, "--split", "validation")
    err = " ".join(err.split())
    assert code == 1 and "no validation split in" in err
    assert "hint: python -m drumtx preprocess --split validation" in err
    # A model made for 48 kHz audio and a store built at 24 kHz: the model asks.
    state = load_checkpoint(fitted_checkpoint)
    state["config"]["audio"]["sample_rate"] = 48000
    other = tmp_path / "48k.pt"
    save_checkpoint(other, state)
    code, _, err = _evaluate(capsys, root, other, "--limit", "1")
    err = " ".join(err.split())
    assert code == 1 and f"the model ({other}) asks for 48000" in err
    assert "preprocess --set audio.sample_rate=48000" in err


def test_a_class_with_no_hits_either_side_shows_a_dash_not_zero():
    from rich.console import Console

    from drumtx.evaluate import print_mixes

    def row(f1, n_ref, n_est):
        return {"precision": f1, "recall": f1, "f1": f1, "n_ref": n_ref, "n_est": n_est}

    classes = {"KD": row(0.9, 10, 10), "RD": row(0.0, 0, 0), "CR": row(0.0, 3, 0)}
    results = {
        "classes": classes,
        "micro_f1": 0.8,
        "macro_f1": 0.45,
        "mixes": {"0 dB": {"classes": classes, "micro_f1": 0.7, "macro_f1": 0.4}},
    }
    console = Console(record=True, width=100)
    print_mixes(results, console)
    text = console.export_text()
    lines = {line.split()[1]: line for line in text.splitlines()
             if line.startswith("│ ") and len(line.split()) > 2}  # fmt: skip
    assert lines["RD"].split()[3] == "-" and lines["RD"].split()[5] == "-"
    assert lines["CR"].split()[3] == "0.000"  # missed hits: a measured 0
    assert lines["KD"].split()[3] == "0.900"
    legend = "-: a class with no hits in the reference or the output"
    assert legend in " ".join(text.split())
    console = Console(record=True, width=100)
    classes = {"KD": row(0.9, 10, 10), "CR": row(0.0, 3, 0)}
    print_mixes({**results, "classes": classes,
                 "mixes": {"0 dB": {**results["mixes"]["0 dB"], "classes": classes}}},
                console)  # fmt: skip
    assert "-:" not in console.export_text()  # nothing to explain
