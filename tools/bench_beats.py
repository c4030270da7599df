"""Tempo, beats and downbeats on held-out renders, and the onset timing error.

    python tools/bench_beats.py --data-root /data/held-out --limit 0
    python tools/bench_beats.py --data-root /data/held-out --mixes 0 --json beats.json

The data root holds a processed split (--split, default test) and the E-GMD tree its
recordings came from (their MIDI files give the reference tempo maps: GMD is played to
a click from time 0). Each recording of the chosen beat types (--types, default beat)
is run through the model once per condition, drums alone and mixed into its backing at
each --mixes drums-to-music level, and gets the tempo map ``transcribe`` would write:

  tempo      share of recordings whose median tempo is within 4 % of the MIDI's
  meter      share of recordings given the MIDI's meter (its first full bar's)
  beat F     mir_eval.beat F-measure (+-70 ms, the first 5 s trimmed), median and mean
             over recordings with reference beats after the trim
  downbeat F the same over bar lines
  baseline   the same for the old output: 120 BPM in 4/4 from time 0

It also matches each condition's hits to the reference within 50 ms (per class) and
prints the mean and median timing error with hits at their frame centre and placed
between frames (decode.refine_peak).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_songs import (  # noqa: E402
    add_set_option,
    add_tracker_options,
    apply_tracker_options,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    p.add_argument("--limit", type=int, default=0, help="recordings (0 = all)")
    p.add_argument("--types", default="beat", help="beat_type values, comma-separated")
    p.add_argument("--mixes", default="0", help="backing levels in dB ('' = none)")
    add_tracker_options(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path,
                   help="cache each run's activations and chroma here (by model, data "
                   "and level), so a second run, e.g. with --bar-template, only "
                   "tracks")  # fmt: skip
    add_set_option(p)
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def timing_errors(ref, est) -> list[float]:
    """|est - ref| from each reference hit to the nearest estimate of its class,
    where within 50 ms."""
    errors = []
    for cls in {h.cls for h in ref}:
        r = np.array([h.time_sec for h in ref if h.cls == cls])
        e = np.array([h.time_sec for h in est if h.cls == cls])
        if len(e) == 0:
            continue
        j = np.clip(np.searchsorted(e, r), 1, max(1, len(e) - 1))
        near = np.minimum(
            np.abs(e[j - 1] - r), np.abs(e[np.minimum(j, len(e) - 1)] - r)
        )
        errors += near[near <= 0.05].tolist()
    return errors


def cached_runs(loaded, store, indices, level, work: Path | None, key: str):
    """store_runs (with the chroma), each run read from or written to ``work``."""
    from drumtx.harmony import Chroma
    from drumtx.scoring import store_runs

    if work is None:
        yield from store_runs(loaded, store, indices, level, harmony=True)
        return
    folder = work / "acts" / key / ("alone" if level is None else f"{level:+g}")
    folder.mkdir(parents=True, exist_ok=True)
    for index in indices:
        path = folder / f"{index:05d}.npz"
        if not path.exists():
            [(_, onset, velocity, chroma)] = store_runs(loaded, store, [index], level,
                                                        harmony=True)  # fmt: skip
            np.savez_compressed(path.with_suffix(".tmp.npz"), onset=onset,
                                velocity=velocity, **{f"chroma_{k}": v for k, v in
                                dataclasses.asdict(chroma).items()})  # fmt: skip
            path.with_suffix(".tmp.npz").replace(path)
        data = np.load(path)
        chroma = Chroma(**{k.removeprefix("chroma_"): data[k]
                           for k in data.files if k.startswith("chroma_")})  # fmt: skip
        yield index, data["onset"], data["velocity"], chroma


def condition(loaded, store, indices, level, egmd_dir, work=None, key="") -> dict:
    """Beat scores (tempo map and baseline) and timing errors for one condition."""
    from drumtx.beats import beat_grid, grid_of
    from drumtx.decode import pick_onsets
    from drumtx.inference import class_thresholds, decode_hits
    from drumtx.processed import reference_hits
    from drumtx.scoring import beat_scores, summarize_beats
    from drumtx.tempo import TempoMap, read_tempo_map

    fps, codes = loaded.cfg.frontend.fps, loaded.vocab.codes
    thresholds, gap = class_thresholds(loaded), loaded.cfg.decode.min_gap_sec
    rows, base, frame_err, fine_err = [], [], [], []
    runs = cached_runs(loaded, store, indices, level, work, key)
    for index, onset, velocity, chroma in runs:
        rec = store.recordings[index]
        reference = read_tempo_map(egmd_dir / rec["midi_path"])
        duration = len(onset) / fps
        decoded = decode_hits(loaded, onset, velocity, thresholds)  # as transcribe
        grid = beat_grid(onset, velocity, codes, fps, hits=decoded, chroma=chroma)
        kind = {"beat_type": rec.get("beat_type", "")}
        rows.append({**beat_scores(reference, grid, duration), **kind})
        old = grid_of(TempoMap.constant(120.0), duration, False)
        base.append({**beat_scores(reference, old, duration), **kind})
        ref = reference_hits(store, index)
        for refine, errors in ((False, frame_err), (True, fine_err)):
            est = pick_onsets(onset, velocity, fps, thresholds, gap, refine=refine)
            errors += timing_errors(ref, est)
    timing = {"frame": milliseconds(frame_err), "refined": milliseconds(fine_err)}
    return {"beats": summarize_beats(rows), "baseline": summarize_beats(base),
            "timing": timing}  # fmt: skip


def milliseconds(errors: list[float]) -> dict:
    return {"mean_ms": 1e3 * float(np.mean(errors)),
            "median_ms": 1e3 * float(np.median(errors)), "n": len(errors)}  # fmt: skip


def f_text(row: dict, key: str) -> str:
    """``median/mean`` of an F-measure, or - when nothing was scorable."""
    if row[f"{key}_median"] is None:
        return "-"
    return f"{row[f'{key}_median']:.3f}/{row[f'{key}_mean']:.3f}"


def print_table(results: dict) -> None:
    from drumtx.scoring import hint_text

    head = (
        f"{'audio':12s} {'type':5s} {'n':>4s} {'tempo':>6s} {'meter':>6s} "
        f"{'beat F':>13s} {'downbeat F':>13s} {'octave hint':>12s}   "
        "baseline (120 BPM from 0): tempo, beat F, down F"
    )
    print(head)
    print("-" * len(head))
    for name, cond in results["conditions"].items():
        for kind, row in cond["beats"].items():
            old = cond["baseline"][kind]
            print(f"{name:12s} {kind:5s} {row['n_recordings']:4d} "
                  f"{row['tempo_accuracy']:6.3f} {row['meter_accuracy']:6.3f} "
                  f"{f_text(row, 'beat_f'):>13s} "
                  f"{f_text(row, 'downbeat_f'):>13s} {hint_text(row):>12s}   "
                  f"{old['tempo_accuracy']:.3f}, "
                  f"{f_text(old, 'beat_f')}, {f_text(old, 'downbeat_f')}")  # fmt: skip
    print("(beat and downbeat F: median/mean; octave hint: wrong tempi whose hint "
          "is right / wrong tempi, share of right tempi given a hint)")
    print("onset timing error, hits matched within 50 ms:")
    for name, cond in results["conditions"].items():
        t = cond["timing"]
        print(f"  {name:12s} frame centre: mean {t['frame']['mean_ms']:.2f} ms, median "
              f"{t['frame']['median_ms']:.2f} ms   between frames: mean "
              f"{t['refined']['mean_ms']:.2f} ms, median "
              f"{t['refined']['median_ms']:.2f}"
              f" ms   ({t['refined']['n']} hits)")  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from drumtx.config import load_config
    from drumtx.inference import load_model
    from drumtx.processed import load_store, spread_indices

    torch.set_num_threads(args.threads)
    if not apply_tracker_options(args):
        return 2
    cfg = load_config(None, args.set)
    loaded = load_model(args.checkpoint, cfg, torch.device("cpu"))
    store = load_store(args.data_root / "processed_data" / args.split, loaded.cfg)
    types = set(args.types.split(","))
    chosen = [i for i, r in enumerate(store.recordings)
              if r.get("beat_type", "") in types or "all" in types]  # fmt: skip
    indices = [chosen[i] for i in spread_indices(len(chosen), args.limit)]
    levels = [None] + [float(x) for x in args.mixes.split(",") if x.strip()]
    if store.backing is None:
        levels = [None]
    egmd_dir = args.data_root / "e-gmd-v1.0.0"
    settings = json.dumps(dataclasses.asdict(loaded.cfg.transcribe), sort_keys=True)
    key = hashlib.sha1(args.checkpoint.read_bytes()
                       + str(args.data_root.resolve() / args.split).encode()
                       + settings.encode()).hexdigest()[:16]  # fmt: skip
    results = {"split": args.split, "checkpoint": str(args.checkpoint),
               "n_recordings": len(indices), "conditions": {}}  # fmt: skip
    for level in levels:
        name = "drums only" if level is None else f"{level:+g} dB" if level else "0 dB"
        results["conditions"][name] = condition(loaded, store, indices, level,
                                                egmd_dir, args.work, key)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
