"""Fit drumtx.beats.SCORE_WEIGHTS: which beat hypothesis is the right one.

    python tools/fit_beat_scorer.py --gmd ../shared/data/gmd/groove --work /tmp/beatfit

1. GMD training performances (4/4 beats, the first --max-sec seconds) are rendered
   through synthesised kits the shipped model never trained on (--kits) and run through
   the model (--checkpoint); activations are cached under --work/acts, so a rerun only
   fits (delete the folder after changing the model). Features are cached there too
   (features-<split>.pkl: delete them after changing drumtx.beats).
2. Each performance gives drumtx.beats' hypotheses (candidate beat sequences x four bar
   phases) with their features; a hypothesis is right when its tempo is within 4 % of
   the MIDI's and its beats and downbeats both score an F-measure of 0.8 or more.
3. A linear score is fitted so that the right hypotheses win: softmax over each
   performance's hypotheses, log-likelihood of the right ones, L2 penalty --l2
   (scipy L-BFGS). Performances with no right hypothesis are left out.
4. The weights are printed as Python source to paste into drumtx/beats.py, with how
   often the best-scoring hypothesis was right (tempo, beat F, downbeat F) before
   (current weights) and after; --validation also scores the validation split.

No GMD and no model weights ship with drumtx: the tool is how the table is made again.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drumtx import beats  # noqa: E402
from drumtx.midi import read_notes  # noqa: E402
from drumtx.scoring import reference_beats  # noqa: E402
from drumtx.tempo import read_tempo_map  # noqa: E402


def performances(gmd: Path, split: str) -> list[dict]:
    with open(gmd / "info.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        r
        for r in rows
        if r["split"] == split and r["beat_type"] == "beat"
        and r["time_signature"] == "4-4"
    ]  # fmt: skip


def activations(
    rows: list[dict], args, split: str
) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """(row, onset, velocity) per performance, rendered and predicted once, cached."""
    import torch

    from drumtx.config import load_config
    from drumtx.inference import array_activations, load_model
    from drumtx.synth import load_kit

    torch.set_num_threads(args.threads)
    t = load_config(None, []).transcribe  # the input levels the model hears
    cache = args.work / "acts" / f"{split}-{t.min_input_db:g}_{t.max_input_db:g}"
    cache.mkdir(parents=True, exist_ok=True)
    loaded, kits, out = None, None, []
    for n, row in enumerate(rows):
        path = cache / f"{n:04d}.npz"
        if not path.exists():
            if loaded is None:
                cfg = load_config(None, [])
                loaded = load_model(args.checkpoint, cfg, torch.device("cpu"))
                kits = [load_kit(name) for name in args.kits.split(",")]
            midi = args.gmd / row["midi_filename"]
            seconds = min(float(row["duration"]), args.max_sec)
            notes = [x for x in read_notes(midi) if x.time_sec < seconds]
            rate = loaded.cfg.audio.sample_rate
            audio = kits[n % len(kits)].render(notes, seconds, rate)
            onset, velocity = array_activations(
                loaded, audio, segment_sec=30.0, overlap_sec=2.0, batch_size=4
            )
            np.savez_compressed(path, onset=onset.astype(np.float16),
                                velocity=velocity.astype(np.float16))  # fmt: skip
        data = np.load(path)
        out.append((row, data["onset"].astype(np.float32),
                    data["velocity"].astype(np.float32)))  # fmt: skip
        if n % 50 == 0:
            print(f"  {split}: {n + 1}/{len(rows)} performances", flush=True)
    return out


def labelled(row: dict, onset, velocity, gmd: Path, codes, fps: float):
    """(features (H, F), right (H,), (tempo ok, beat F, downbeat F) (H, 3))."""
    import mir_eval.beat

    reference = read_tempo_map(gmd / row["midi_filename"])
    ref_beats, ref_downbeats = reference_beats(reference, len(onset) / fps)
    ref_bpm = 60.0 / float(np.median(np.diff(ref_beats)))
    hits = beats.find_hits(onset, velocity, codes)
    strength = beats.onset_strength(onset, codes)
    feats, marks = [], []
    trim = mir_eval.beat.trim_beats
    for seq in beats.beat_sequences(strength, fps):
        for phase in range(beats.BEATS_PER_BAR):
            hyp = beats.Hypothesis(seq, phase)
            feats.append(beats.hypothesis_features(hits, hyp, fps))
            tempo_ok = abs(60 * fps * hyp.bpm_frames / ref_bpm - 1) <= 0.04
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                beat_f = mir_eval.beat.f_measure(trim(ref_beats), trim(seq / fps))
                down = seq[phase :: beats.BEATS_PER_BAR] / fps
                down_f = mir_eval.beat.f_measure(trim(ref_downbeats), trim(down))
            marks.append((tempo_ok, beat_f, down_f))
    marks = np.asarray(marks, dtype=np.float64).reshape(-1, 3)
    right = (marks[:, 0] == 1) & (marks[:, 1] >= 0.8) & (marks[:, 2] >= 0.8)
    width = beats.N_ROLES * beats.N_POSITIONS + 2
    return np.asarray(feats).reshape(len(marks), width), right, marks


def loss(w: np.ndarray, sets, l2: float) -> tuple[float, np.ndarray]:
    total, grad = 0.0, np.zeros_like(w)
    for feats, right, _ in sets:
        score = feats @ w
        p = np.exp(score - score.max())
        p /= p.sum()
        p_right = p[right].sum()
        total -= np.log(p_right + 1e-12)
        q = np.where(right, p, 0.0) / (p_right + 1e-12)
        grad += p @ feats - q @ feats
    n = max(1, len(sets))
    return total / n + l2 * (w @ w), grad / n + 2 * l2 * w


def report(name: str, w: np.ndarray, sets) -> None:
    picks = np.array([marks[np.argmax(f @ w)] for f, _, marks in sets if len(f)])
    print(f"  {name}: {len(picks)} performances, tempo within 4 % "
          f"{picks[:, 0].mean():.3f}, median beat F {np.median(picks[:, 1]):.3f}, "
          f"median downbeat F {np.median(picks[:, 2]):.3f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmd", type=Path, required=True, help="GMD folder (info.csv)")
    parser.add_argument("--work", type=Path, required=True, help="cache folder")
    parser.add_argument("--checkpoint", type=Path,
                        default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    parser.add_argument("--kits", default="synth:9,synth:10,synth:11,synth:12")
    parser.add_argument("--max-sec", type=float, default=60.0)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--validation", action="store_true")
    args = parser.parse_args()
    from scipy.optimize import minimize

    from drumtx.drums import ROLAND9

    fps, codes = 100.0, ROLAND9.codes
    splits = ["train"] + (["validation"] if args.validation else [])
    sets = {}
    for split in splits:
        cached = args.work / f"features-{split}.pkl"
        if cached.exists():  # delete it after changing drumtx.beats' features
            sets[split] = pickle.loads(cached.read_bytes())
            continue
        rows = performances(args.gmd, split)
        sets[split] = [labelled(r, on, ve, args.gmd, codes, fps)
                       for r, on, ve in activations(rows, args, split)]  # fmt: skip
        cached.write_bytes(pickle.dumps(sets[split]))
    train = [s for s in sets["train"] if s[1].any()]
    w0 = np.zeros(train[0][0].shape[1])
    fit = minimize(loss, w0, args=(train, args.l2), jac=True, method="L-BFGS-B")
    for name, w in (("current weights", beats.SCORE_WEIGHTS), ("fitted", fit.x)):
        print(name)
        for split in splits:
            report(split, w, sets[split])
    rows = fit.x[:-2].reshape(beats.N_ROLES, beats.N_POSITIONS)
    names = (
        "kick, accented",
        "kick",
        "snare, accented",
        "snare",
        "hat or ride, accented",
        "hat or ride",
        "open hi-hat",
        "crash",
        "toms",
    )
    print("SCORE_WEIGHTS = np.array(\n    [")
    for row, name in zip(rows, names):
        print("        " + ", ".join(f"{v:+.3f}" for v in row) + f",  # {name}")
    tempo = ", ".join(f"{v:+.3f}" for v in fit.x[-2:])
    print(f"        {tempo},  # log2(bpm / 120), squared\n    ]\n)  # fmt: skip")
    (args.work / "weights.json").write_text(json.dumps(fit.x.tolist()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
