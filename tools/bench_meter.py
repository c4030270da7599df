"""Meter and downbeats on generated grooves of chosen meters, rendered through kits.

    python tools/bench_meter.py --seed 2000 --per-meter 40 --work /tmp/meter
    python tools/bench_meter.py --seed 1000 --per-meter 40 --work /tmp/meter --features

Grooves (beat type, not fills) come from drumtx.synth.grooves, drawn with
``default_rng([seed, i])`` for i = 0, 1, ... until each meter of --meters has
--per-meter of them; make-dataset's own tempo map (the quarter-note tempo, the
meter and the count-in pickup) is the reference. Each is rendered through one of
--kits in turn, run through the model (--checkpoint) and tracked as ``transcribe``
does (its decoded hits, meter auto). Activations are cached under --work.

Prints, per true meter: grooves, the share given the right meter, the meters given,
and beat and downbeat F (mir_eval, +-70 ms, first 5 s trimmed; median / mean).
Seeds 1000.. tuned drumtx.beats' meter constants; seeds 2000.. are held out.
--features also prints choose_meter's features of each groove.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--per-meter", type=int, default=40)
    p.add_argument("--meters", default="3-4,6-8,4-4")
    p.add_argument("--kits", default="synth:13,synth:14,synth:15,synth:16")
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--features", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def grooves(seed: int, meters: list[str], per_meter: int) -> list:
    """(index, groove) of the first ``per_meter`` beat grooves of each meter."""
    from drumtx.synth.grooves import generate_groove

    counts: collections.Counter = collections.Counter()
    chosen, i = [], 0
    while any(counts[m] < per_meter for m in meters):
        g = generate_groove(np.random.default_rng([seed, i]))
        if g.beat_type == "beat" and counts[g.meter] < per_meter and g.meter in meters:
            counts[g.meter] += 1
            chosen.append((i, g))
        i += 1
    return chosen


def activations(args, loaded, kits, index: int, n: int, groove):
    """(onset, velocity) of one groove, rendered and predicted once, cached."""
    from drumtx.inference import array_activations
    from drumtx.make_dataset import quantize

    t = loaded.cfg.transcribe  # the input levels the model hears
    path = args.work / f"{args.seed}-{index}-{t.min_input_db:g}_{t.max_input_db:g}.npz"
    if path.exists():
        data = np.load(path)
        return data["onset"], data["velocity"]
    notes = list(quantize(groove.notes, groove.bpm))
    rate = loaded.cfg.audio.sample_rate
    audio = kits[n % len(kits)].render(notes, notes[-1].time_sec + 1.5, rate)
    onset, velocity = array_activations(loaded, audio.astype(np.float32))
    np.savez_compressed(path, onset=onset, velocity=velocity)
    return onset, velocity


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from drumtx import beats
    from drumtx.config import load_config
    from drumtx.inference import class_thresholds, decode_hits, load_model
    from drumtx.scoring import beat_scores
    from drumtx.synth import load_kit
    from drumtx.tempo import TempoMap

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    loaded = load_model(args.checkpoint, load_config(None, []), torch.device("cpu"))
    kits = [load_kit(k) for k in args.kits.split(",")]
    fps, codes = loaded.cfg.frontend.fps, loaded.vocab.codes
    thresholds = class_thresholds(loaded)
    meters = args.meters.split(",")
    rows = collections.defaultdict(list)
    for n, (index, g) in enumerate(grooves(args.seed, meters, args.per_meter)):
        onset, velocity = activations(args, loaded, kits, index, n, g)
        hits = decode_hits(loaded, onset, velocity, thresholds)
        grid = beats.beat_grid(onset, velocity, codes, fps, hits=hits)
        num, den = (int(x) for x in g.meter.split("-"))
        ref = TempoMap.constant(g.bpm, num, den, pickup_beats=g.count_in_beats)
        scores = beat_scores(ref, grid, len(onset) / fps)
        true = g.meter.replace("-", "/")
        rows[true].append({**scores, "meter": grid.meter})
        if args.features:
            tracked = beats.hits_of(hits, codes, fps)
            hyp = beats.best_hypothesis(
                onset, tracked, codes, fps, meter=(4, 4), template=False
            )
            f = beats.meter_features(tracked, hyp.beats, fps) if hyp else {}
            text = " ".join(f"{k}={v:.2f}" for k, v in f.items())
            print(f"{true:5s} -> {grid.meter:5s} {g.style:18s} {g.bpm:4d}  {text}")
    print_table(rows)
    return 0


def print_table(rows: dict) -> None:
    print(f"{'meter':6s} {'n':>3s} {'right':>6s}  {'beat F':>11s}  "
          f"{'downbeat F':>11s}  given")  # fmt: skip
    for true, group in sorted(rows.items()):
        given = collections.Counter(r["meter"] for r in group)
        right = given[true] / len(group)
        cells = []
        for key in ("beat_f", "downbeat_f"):
            v = [r[key] for r in group if r[key] is not None]
            cells.append(f"{np.median(v):.3f}/{np.mean(v):.3f}" if v else "-")
        print(f"{true:6s} {len(group):3d} {right:6.3f}  {cells[0]:>11s}  "
              f"{cells[1]:>11s}  {dict(given.most_common())}")  # fmt: skip
    print("(beat and downbeat F: median/mean)")


if __name__ == "__main__":
    raise SystemExit(main())
