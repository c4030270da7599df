"""Rebuild, in one command, the roots the model card is measured on and a validation
root for choosing between models, on a fresh machine.

    python tools/fetch_real_kits.py --out /data/kits
    python tools/build_music_pool.py --out /data/music --scratch /data/music-debs \
        --max-hours 0.5
    python tools/build_eval_roots.py --gmd ../shared/data/gmd/groove --kits /data/kits \
        --music /data/music --out /data/eval

- ``OUT/real-test``: the held-out real set (GMD *test* through SamsSonor, a real kit
  never trained on), the same renders as ``tools/finetune_default_model.py`` makes;
  ``evaluate --split test --music-dir MUSIC/test`` mixes in the held-out real music.
- ``OUT/card-test``: the previous card's held-out set (GMD *test* through the held-out
  Hydrogen kits and sf_GMbank, backing by sf_GMbank only), as
  ``tools/train_default_model.py`` makes it.
- ``OUT/real-validation``: GMD *validation* through two real recorded kits the shipped
  model never trained on (Salamander; Gogodze with MuldjordKit's cymbals, which it
  did train on), one kit per performance, drums only: a set for choices between
  models that is neither a training kit nor the held-out kit;
  ``evaluate --split validation --music-dir MUSIC/train`` (the pool's *train* music:
  the held-out music stays for the held-out set). A model trained on either kit
  (``finetune_default_model.py --round 2``) cannot be chosen on it.

``--sample-rate 48000`` preprocesses the same renders (44.1 kHz WAVs) at 48 kHz for a
model grown to hear above 12 kHz (tools/widen_model.py --bands), with ``--music`` a
pool at that rate (build_music_pool.py --resample-from).

The renders are drawn with fixed seeds, but the code that renders them moves: the
studio's tom tuning of 2026-12-07 changed the card set's studio half (its root now
renders with ``make-dataset --studio-toms each``, the studio of before, byte for byte)
and the SFZ reader's mends of that day the validation kits' renders (kept: they are
right). Rerunning reuses what is built
(make-dataset keeps its renders, preprocess says "up to date"). Prints each root's and
the music's fingerprints (what ``evaluate`` reports) beside those of the sets the model
card was measured on (``set_fingerprints`` in drumtx/models/default.json): other digits
mean another set (other renders, a pool screened otherwise), whose numbers are not the
card's. Then the evaluate commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_default_model import HELD_OUT_REAL_KIT, make_real_root  # noqa: E402
from train_default_model import drumtx, make_card_root, rate_sets  # noqa: E402

from drumtx.checkpoint import SHIPPED_MODELS_DIR  # noqa: E402
from drumtx.errors import DataError  # noqa: E402
from drumtx.evaluate import pool_fingerprint, store_fingerprint  # noqa: E402
from drumtx.music import load_music_pool  # noqa: E402
from drumtx.processed import load_store  # noqa: E402

CARD = SHIPPED_MODELS_DIR / "default.json"

VALIDATION_KITS = ("Salamander/Salamander Drumkit Trim.sfz", "Gogodze/mics-cymbals")


def make_validation_root(
    gmd: Path, kits: Path, root: Path, rate: int | None = None
) -> None:
    """GMD validation (45 s) through each VALIDATION_KITS kit in turn, no studio."""
    drumtx("make-dataset", str(root), "--midi-dir", str(gmd), "--kits",
           *(f"sfz:{kits / k}" for k in VALIDATION_KITS), "--kits-per-performance",
           "1", "--splits", "validation", "--max-sec", "45", "--seed", "9",
           "--studio-prob", "0")  # fmt: skip
    drumtx("preprocess", "--data-root", str(root), "--split", "validation",
           "--workers", "2", "--allow-skips", "--set", "backing.enabled=false",
           *rate_sets(rate))  # fmt: skip


def missing(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(what is wrong, how to fix it) for each input the roots need: missing, or a
    music pool at another rate than --sample-rate."""
    out = []
    if not (args.gmd / "info.csv").is_file():
        out.append((f"{args.gmd / 'info.csv'} is missing",
                    "--gmd is the Groove MIDI Dataset's groove/ folder (info.csv "
                    "beside the drummerN/ folders)"))
    for kit in (HELD_OUT_REAL_KIT, *VALIDATION_KITS):
        if not (args.kits / kit).exists():
            out.append((f"{args.kits / kit} is missing",
                        f"run tools/fetch_real_kits.py --out {args.kits} after "
                        "fetching the sfzinstruments snapshots"))
    for split in ("train", "test"):
        if not (args.music / split).is_dir():
            out.append((f"{args.music / split} is missing",
                        "run tools/build_music_pool.py --out "
                        f"{args.music}"))
            continue
        try:
            load_music_pool(args.music / split, args.sample_rate)
        except DataError as exc:
            out.append((str(exc), exc.hint or ""))
    return out


def built_fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """The fingerprint of each root's store and each music split that is there."""
    found = {}
    stores = {"real-test": "test", "card-test": "test", "real-validation": "validation"}
    for name, split in stores.items():
        try:
            found[name] = store_fingerprint(
                load_store(args.out / name / "processed_data" / split))
        except DataError:
            continue
    for split in ("test", "train"):
        try:
            pool = load_music_pool(args.music / split, args.sample_rate)
        except DataError:
            continue
        found[f"music {split}"] = pool_fingerprint(pool)
    return found


def compare_fingerprints(found: dict[str, str], rate: int) -> list[str]:
    """One line per set: its fingerprint, and whether it is the card's."""
    card = json.loads(CARD.read_text()).get("set_fingerprints", {})
    if card.get("sample_rate") != rate:  # a set at another rate is other audio
        card = {}
    lines = []
    for name, digits in found.items():
        known = card.get(name)
        verdict = ("the card's" if digits == known else
                   "another set than the card's " + known if known else
                   "the card names none")  # fmt: skip
        lines.append(f"  {name}: {digits} ({verdict})")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gmd", type=Path, required=True, help="GMD groove/ folder")
    p.add_argument("--kits", type=Path, required=True, help="fetch_real_kits.py --out")
    p.add_argument("--music", type=Path, required=True, help="build_music_pool --out")
    p.add_argument("--out", type=Path, required=True, help="folder for the roots")
    p.add_argument("--sample-rate", type=int, default=24000,
                   help="the rate the roots are preprocessed at: the model's "
                   "audio.sample_rate (48000 for a model grown by widen_model.py "
                   "--bands); --music must be a pool at it. The renders (44.1 kHz) "
                   "are the same at every rate")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gaps = missing(args)
    for what, hint in gaps:
        print(f"error: {what}\nhint: {hint}", file=sys.stderr)
    if gaps:
        return 2
    rate = None if args.sample_rate == 24000 else args.sample_rate
    make_real_root(args.gmd, args.kits, args.out / "real-test", rate)
    make_card_root(args.gmd, args.out / "card-test", rate)
    make_validation_root(args.gmd, args.kits, args.out / "real-validation", rate)
    print("\nfingerprints (evaluate reports them):")
    print("\n".join(compare_fingerprints(built_fingerprints(args), args.sample_rate)))
    ev = "python -m drumtx evaluate --checkpoint MODEL --json --data-root"
    print("\nevaluate with:")
    print(f"  {ev} {args.out / 'real-test'} --split test "
          f"--music-dir {args.music / 'test'}")
    print(f"  {ev} {args.out / 'card-test'} --split test")
    print(f"  {ev} {args.out / 'real-validation'} --split validation "
          f"--music-dir {args.music / 'train'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
