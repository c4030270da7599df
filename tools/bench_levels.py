"""Onset F1 of held-out recordings played quieter and louder, with and without the
input-level window (transcribe.min_input_db, max_input_db).

    python tools/bench_levels.py --data-root /data/held-out --music-dir /data/music/test
    python tools/bench_levels.py --data-root /data/held-out --gains=-24,0 --json x.json

Each recording of the processed split (--split, default test) is scored drums alone
and mixed into its backing (or, with --music-dir, a held-out real-music pool's fixed
excerpt, as ``evaluate --music-dir`` mixes it) at each --mixes drums-to-music level,
then turned by each --gains gain in dB before the model hears it: a float gain, never
clipped (a mastered mix is limited, not clipped, and a quiet stem has no floor
added). Two ways of hearing it: ``window`` brings the turned audio into the
configured levels as transcribe does; ``as is`` lets every level through (the model
as it was before the window). Prints micro F1 per gain, condition and way, with the
recordings' active levels (drumtx.levels.active_level_db) before any gain.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_songs import condition_name  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    p.add_argument("--music-dir", type=Path, help="a real-music pool split to mix")
    p.add_argument("--gains", default="-24,-12,0,12,18", help="dB, comma-separated")
    p.add_argument("--mixes", default="0", help="backing levels in dB ('' = none)")
    p.add_argument("--limit", type=int, default=0, help="recordings (0 = all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def score(loaded, store, indices, level, gains) -> dict[str, dict[str, float]]:
    """{way: {gain: micro F1}} of one condition; the model runs once per distinct
    level it hears (inside the window both ways hear the same audio)."""
    from drumtx.inference import (
        array_activations,
        class_thresholds,
        decode_hits,
        input_gain_db,
    )
    from drumtx.levels import active_level_db
    from drumtx.metrics import Tally
    from drumtx.processed import reference_hits
    from drumtx.scoring import recording_mix

    ways = {"window": loaded, "as is": loaded_as_is(loaded)}
    tallies = {(w, g): Tally(loaded.vocab) for w in ways for g in gains}
    thresholds, rate = class_thresholds(loaded), loaded.cfg.audio.sample_rate
    levels = []
    for index in indices:
        mixed = recording_mix(store, index, level)  # int16 where drums alone
        scale = np.float32(1 / 32768 if mixed.dtype == np.int16 else 1)
        audio = np.asarray(mixed, np.float32) * scale
        levels.append(active_level_db([audio], rate))
        ref, heard = reference_hits(store, index), {}
        for gain in gains:
            turned = audio * np.float32(10 ** (gain / 20))
            for way, model in ways.items():  # the level the model hears, as the key:
                key = round(gain + input_gain_db(model.cfg, levels[-1] + gain), 3)
                if key not in heard:
                    onset, velocity = array_activations(model, turned)
                    heard[key] = decode_hits(model, onset, velocity, thresholds)
                tallies[(way, gain)].add(ref, heard[key], "")
    out = {w: {f"{g:+g}": tallies[(w, g)].summary()["micro_f1"] for g in gains}
           for w in ways}  # fmt: skip
    out["levels"] = [  # active levels before any gain, dBFS: p5, p50, p95
        round(float(x), 1) for x in np.percentile(levels, [5, 50, 95])
    ]
    return out


def loaded_as_is(loaded):
    """The same model with every input level let through."""
    every_level = {"min_input_db": -60.0, "max_input_db": 0.0}
    table = dataclasses.replace(loaded.cfg.transcribe, **every_level)
    cfg = dataclasses.replace(loaded.cfg, transcribe=table)
    return dataclasses.replace(loaded, cfg=cfg)


def print_table(results: dict) -> None:
    t = results["window_db"]
    print(f"micro F1 at each gain, {results['n_recordings']} recordings; window "
          f"{t[0]:g}..{t[1]:g} dBFS vs every level as is")  # fmt: skip
    for name, rows in results["conditions"].items():
        print(f"{name} (active level p5/p50/p95 {rows['levels']} dBFS)")
        gains = list(rows["window"])
        print("  gain dB   " + "".join(f"{g:>8}" for g in gains))
        for way in ("window", "as is"):
            print(f"  {way:<9} " + "".join(f"{rows[way][g]:8.4f}" for g in gains))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from drumtx.config import load_config
    from drumtx.evaluate import comparable_precision, with_music_from
    from drumtx.inference import load_model
    from drumtx.music import load_music_pool
    from drumtx.processed import load_store, spread_indices

    torch.set_num_threads(args.threads)
    cfg = comparable_precision(load_config(None, []))
    loaded = load_model(args.checkpoint, cfg, torch.device("cpu"))
    store = load_store(args.data_root / "processed_data" / args.split, loaded.cfg)
    if args.music_dir:
        store = with_music_from(store, load_music_pool(args.music_dir))
    indices = spread_indices(len(store.recordings), args.limit)
    gains = [float(x) for x in args.gains.split(",")]
    levels = [None] + [float(x) for x in args.mixes.split(",") if x.strip()]
    if store.backing is None:
        levels = [None]
    t = loaded.cfg.transcribe
    results = {"split": args.split, "checkpoint": str(args.checkpoint),
               "music": str(args.music_dir or "backing tracks"),
               "window_db": [t.min_input_db, t.max_input_db],
               "n_recordings": len(indices), "conditions": {}}  # fmt: skip
    for level in levels:
        results["conditions"][condition_name(level)] = score(
            loaded, store, indices, level, gains
        )
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
