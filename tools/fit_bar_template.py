"""Fit drumtx.beats' bar template: where in a bar each drum falls, the bar phase.

    python tools/fit_bar_template.py --data-root /data/dm/ft-root --work /tmp/bars \
        --songs ../shared/data/songs --out drumtx/models/bar_template.json

The beat tracker finds the beats well (beat F 1.0 on most held-out GMD recordings)
but put many bar lines half a bar late or early: a rock groove's kick on 1 and 3 and
snare on 2 and 4 look the same from beat 3. The bar template scores each bar phase
by hits per bar of each role (kick, snare, hat or ride, accented or not, open hat,
crash, toms) on each beat of the bar and each sixteenth or triplet after it, the
places where grooves do tell beat 1 from beat 3 (the kick's pickups, the open hat
before the one, the crash on it), and by where the file's first hit and the first
hit of each drum (kick, snare, hat or ride, open hat, crash, toms) fall: a count-in
on the hat or a pickup fill comes before the one, the first kick or crash most
often on it.

1. The data root's processed train and validation splits (GMD 4/4 performances of
   type beat, rendered through the training kits, e.g. by
   tools/finetune_default_model.py) are run through the model (--checkpoint), each
   recording in every condition: drums alone and mixed into its backing track at each
   --mixes drums-to-music level. With --songs, so are the full-band songs of
   tools/bench_songs.py's fit share (never its test share; every fifth is
   validation), drums through --song-kits and the band through --song-soundfont:
   their intros and pickups are what GMD lacks. Activations are cached under --work
   by model and data; the hypotheses' features by everything they depend on
   (drumtx.beats' source included).
2. The tracker (drumtx.beats) finds each recording's beats and meter as transcribe
   does, from the decoded hits, choosing among them by its linear score alone.
   Each hypothesis choose_phase weighs (those beats and the same half a beat later,
   in every bar phase) is right where its beats and its downbeats both score F >= 0.8
   against the MIDI's (so its tempo is right too); recordings with no right one (a
   wrong tempo or meter) cannot teach the phase and are left out.
3. The template is fitted so that the right hypothesis wins: softmax of the
   tracker's linear score plus the template's, log-likelihood of the right one, L2
   penalty --l2 (scipy L-BFGS).
4. It prints how often the right hypothesis wins with the old score alone and with
   the template, on train and validation, and writes the template to --out (default
   --work/bar_template.json; transcribe reads drumtx/models/bar_template.json).

GMD's drummers played to a click from 0 s, so the MIDI's bars are the reference.
No data or weights of the fit are needed at run time but the JSON it writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_songs import (  # noqa: E402
    cache_key,
    cached_activations,
    condition_audio,
    full_band_songs,
    model_id,
    render,
)

from drumtx import beats  # noqa: E402
from drumtx.meter import counted_beats  # noqa: E402
from drumtx.scoring import reference_beats  # noqa: E402
from drumtx.tempo import read_tempo_map  # noqa: E402

METER = (4, 4)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-root",
        type=Path,
        required=True,
        help="processed train and validation splits and their E-GMD tree",
    )
    p.add_argument("--work", type=Path, required=True, help="activation cache folder")
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    p.add_argument(
        "--limit", type=int, default=600, help="recordings per split (0 = all)"
    )
    p.add_argument(
        "--mixes",
        default="none,6,0",
        help="conditions taken in turn: none (drums alone) or dB levels",
    )
    p.add_argument(
        "--songs",
        type=Path,
        help="also learn from full-band MIDI songs (tools/bench_songs.py's "
        "fit share): intros, pickups and fills GMD lacks",
    )
    p.add_argument(
        "--song-kits",
        default="GMRockKit,BJA_Pacific,Audiophob",
        help="training kits for the songs' drums",
    )
    p.add_argument(
        "--song-soundfont",
        default="/usr/share/sounds/sf2/TimGM6mb.sf2",
        help="training General MIDI bank for the songs' bands, or none",
    )
    p.add_argument("--song-max-sec", type=float, default=120.0)
    p.add_argument("--l2", type=float, default=1e-2)
    p.add_argument("--no-first-hit", action="store_true",
                   help="leave out where the first hits fall")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--out",
        type=Path,
        help="where to write the template (default: --work/bar_template.json; "
        "drumtx reads drumtx/models/bar_template.json)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="fit and report, write nothing"
    )
    return p.parse_args(argv)


def activations(args, split: str):
    """(reference tempo map, onset, velocity) of the split's 4/4 beats in every
    condition."""
    from drumtx.processed import load_store, spread_indices
    from drumtx.scoring import store_activations

    loaded = load(args)
    egmd_dir = args.data_root / "e-gmd-v1.0.0"
    store = load_store(args.data_root / "processed_data" / split, loaded.cfg)
    chosen = [i for i, r in enumerate(store.recordings)
              if r.get("beat_type") == "beat"
              and r.get("time_signature") == "4-4"]  # fmt: skip
    indices = [chosen[i] for i in spread_indices(len(chosen), args.limit)]
    levels = [None if x.strip() == "none" else float(x) for x in args.mixes.split(",")]
    if store.backing is None:
        levels = [None]
    data_key = cache_key(model_id(args.checkpoint), args.data_root.resolve())
    cache = args.work / "acts" / data_key / split
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    jobs = [(index, level) for index in indices for level in levels]
    for n, (index, level) in enumerate(jobs):
        path = cache / f"{index:05d}-{'alone' if level is None else f'{level:+g}'}.npz"
        if not path.exists():
            [(_, onset, velocity)] = store_activations(loaded, store, [index], level)
            np.savez_compressed(path, onset=onset, velocity=velocity)
        data = np.load(path)
        reference = read_tempo_map(egmd_dir / store.recordings[index]["midi_path"])
        out.append((reference, data["onset"], data["velocity"]))
        if n % 100 == 0:
            print(f"  {split}: {n + 1}/{len(jobs)} recordings", flush=True)
    return out


def labelled(loaded, reference, onset, velocity):
    """(old scores (H,), template counts (H, F), the right one) over the hypotheses
    choose_phase weighs (the tracker's beats and the same half a beat later, each in
    every bar phase), or None where none is right (beats and downbeats F >= 0.8):
    the tempo or meter is wrong, and the phase is not what failed."""
    import mir_eval.beat

    from drumtx.inference import class_thresholds, decode_hits

    fps, codes = loaded.cfg.frontend.fps, loaded.vocab.codes
    decoded = decode_hits(loaded, onset, velocity, class_thresholds(loaded))
    hits = beats.hits_of(decoded, codes, fps)
    hyp = beats.best_hypothesis(onset, hits, codes, fps, template=False)
    if hyp is None or hyp.meter != METER:
        return None
    ref_beats, ref_downbeats = reference_beats(reference, len(onset) / fps)
    trim = mir_eval.beat.trim_beats
    per_bar = counted_beats(*METER)[0]
    old, rolled, marks = [], [], []
    for seq in beats.phase_sequences(hyp.beats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beat_f = mir_eval.beat.f_measure(trim(ref_beats), trim(seq / fps))
            down_f = [
                mir_eval.beat.f_measure(
                    trim(ref_downbeats), trim(seq[p::per_bar] / fps)
                )
                for p in range(per_bar)
            ]  # fmt: skip
        counts = beats.template_counts(hits, seq, fps, per_bar)
        for p in range(per_bar):
            old.append(beats.score_of(hits, beats.Hypothesis(seq, p, METER), fps))
            rolled.append(np.roll(counts, -p, axis=1).ravel())
            marks.append(min(beat_f, down_f[p]))
    if max(marks) < 0.8:
        return None
    return np.array(old), np.stack(rolled), int(np.argmax(marks))


def song_activations(args, split: str):
    """(reference tempo map, onset, velocity) of the fit songs (bench_songs: two in
    three) of ``split`` (every fifth is validation), the drum channel rendered through
    --song-kits in turn and the band through --song-soundfont, in every condition."""
    loaded = load(args)
    songs = full_band_songs(args.songs, "fit")
    songs = [s for i, s in enumerate(songs) if (i % 5 == 0) == (split == "validation")]
    kits = args.song_kits.split(",")
    levels = [None if x.strip() == "none" else float(x) for x in args.mixes.split(",")]
    cache, model = args.work / "songs", model_id(args.checkpoint)
    rate = loaded.cfg.audio.sample_rate
    out = []
    for n, path in enumerate(songs):
        kit, bank, max_sec = kits[n % len(kits)], args.song_soundfont, args.song_max_sec
        drums, band = render(path, kit, bank, max_sec, cache, rate)
        for level in levels:
            key = cache_key(path.resolve(), kit, bank, max_sec, level, model)
            acts = cache / "acts" / f"{path.stem}-{key}.npz"
            audio = condition_audio(drums, band, level)
            onset, velocity = cached_activations(loaded, audio, acts)
            out.append((read_tempo_map(path), onset, velocity))
    print(f"  {split}: {len(songs)} songs", flush=True)
    return out


def load(args):
    """The model, once."""
    global _LOADED
    if _LOADED is None:
        import torch

        from drumtx.config import load_config
        from drumtx.inference import load_model

        torch.set_num_threads(args.threads)
        _LOADED = load_model(
            args.checkpoint, load_config(None, []), torch.device("cpu")
        )
    return _LOADED


_LOADED = None


def loss(w: np.ndarray, sets, l2: float) -> tuple[float, np.ndarray]:
    total, grad = 0.0, np.zeros_like(w)
    for old, feats, right in sets:
        score = old + feats @ w
        p = np.exp(score - score.max())
        p /= p.sum()
        total -= np.log(p[right] + 1e-12)
        grad += p @ feats - feats[right]
    n = max(1, len(sets))
    return total / n + l2 * (w @ w), grad / n + 2 * l2 * w


def accuracy(w: np.ndarray | None, sets) -> float:
    """Share of recordings whose best phase is the right one."""
    right = [
        np.argmax(old + (0.0 if w is None else feats @ w)) == r
        for old, feats, r in sets
    ]
    return float(np.mean(right)) if right else float("nan")


def features(args, split: str) -> tuple[int, list]:
    """(recordings, labelled hypotheses of those the phase can be learned from) of a
    split, cached by everything they depend on (model, data, songs, drumtx.beats)."""
    key = cache_key(
        model_id(args.checkpoint), args.data_root.resolve(), args.limit, args.mixes,
        args.songs and args.songs.resolve(), args.song_kits, args.song_soundfont,
        args.song_max_sec, hashlib.sha1(Path(beats.__file__).read_bytes()).hexdigest(),
    )  # fmt: skip
    cached = args.work / f"features-{split}-{key}.pkl"
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    acts = activations(args, split)
    if args.songs:
        acts += song_activations(args, split)
    labels = [x for x in (labelled(load(args), *a) for a in acts) if x]
    cached.write_bytes(pickle.dumps((len(acts), labels)))
    return len(acts), labels


def fit(train: list, l2: float, first_hit: bool) -> np.ndarray:
    """The template's weights (L-BFGS); without ``first_hit`` the first hits' rows
    stay 0."""
    from scipy.optimize import minimize

    width = train[0][1].shape[1]
    bounds = [(None, None)] * width
    if not first_hit:  # the rows after the roles' stay 0
        first = width // beats.TEMPLATE_ROWS * beats.N_ROLES
        bounds[first:] = [(0.0, 0.0)] * (width - first)
    result = minimize(loss, np.zeros(width), args=(train, l2), jac=True,
                      method="L-BFGS-B", bounds=bounds)  # fmt: skip
    if not result.success:
        print(f"warning: the fit stopped early: {result.message}", file=sys.stderr)
    return result.x


def write_template(args, weights: np.ndarray, results: dict) -> None:
    per_bar = counted_beats(*METER)[0]
    payload = {
        "about": "drumtx.beats bar template: weight of hits per bar of each role "
        "(beats.ROLES order), then of the file's first hit and of each "
        "beats.FIRST_HIT_GROUPS drum's first hit, on each counted beat of the "
        "bar and each place in the beat (beats.IN_BEAT but the next beat), added to "
        "the linear score of each bar phase; made by tools/fit_bar_template.py",
        "shape": {"4/4": [beats.TEMPLATE_ROWS, per_bar, len(beats.IN_BEAT) - 1]},
        "fitted_on": [args.data_root.name] + ([args.songs.name] if args.songs else []),
        "checkpoint": Path(args.checkpoint).name,
        "l2": args.l2,
        "first_hit": not args.no_first_hit,
        "mixes": args.mixes,
        "phase_right": results,
        "weights": {"4/4": [round(float(x), 4) for x in weights]},
    }
    out = args.out or args.work / beats.BAR_TEMPLATE_FILE
    out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main(argv=None) -> int:
    args = parse_args(argv)
    sets = {}
    for split in ("train", "validation"):
        n_acts, sets[split] = features(args, split)
        print(f"{split}: {n_acts} recordings, {len(sets[split])} with the right "
              "beats, tempo and meter (the rest cannot teach the phase)")  # fmt: skip
    if not sets["train"]:
        print("error: no training recording has the right beats, tempo and meter",
              file=sys.stderr)  # fmt: skip
        print("hint: the data root needs processed train and validation splits of 4/4 "
              "beats whose MIDI files are in its E-GMD tree",
              file=sys.stderr)  # fmt: skip
        return 1
    weights = fit(sets["train"], args.l2, not args.no_first_hit)
    installed = beats.bar_template(METER)  # what transcribe reads now, to compare
    if installed is not None and installed.shape != weights.shape:
        installed = None
    results = {}
    print(f"{'split':12s} {'n':>5s} {'old score':>10s} {'+ installed':>12s} "
          f"{'+ template':>11s}")  # fmt: skip
    for split, data in sets.items():
        before, after = accuracy(None, data), accuracy(weights, data)
        now = float("nan") if installed is None else accuracy(installed, data)
        results[split] = {"n": len(data), "old": before, "template": after}
        print(f"{split:12s} {len(data):5d} {before:10.3f} {now:12.3f} {after:11.3f}")
    print("(share of recordings whose bar phase is right, of those whose beats are; "
          "installed: drumtx/models/bar_template.json on the same recordings)")
    if not args.dry_run:
        write_template(args, weights, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
