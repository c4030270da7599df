"""Fine-tune the shipped model on real sounds (issue 19), end to end, and compare.

    python tools/fetch_real_kits.py --out /data/kits
    python tools/build_music_pool.py --out /data/music --scratch /data/music-scratch
    python tools/finetune_default_model.py --gmd ../shared/data/gmd/groove \
        --songs ../shared/data/songs --kits /data/kits --music /data/music \
        --scratch /data/pseudo-scratch --work /data/dm [--minutes 60]

1. Render the GMD train and validation splits, three kits per performance, from a
   list where the 15-microphone MuldjordKit (real recorded, every mic's bleed) stands
   four times beside two small real one-shot kits and 14 of the shipped model's
   training kits (so it does not forget them); 40 % in a simulated studio.
2. Pseudo-label real game soundtracks with drums (tools/pseudo_label.py, the shipped
   model as teacher) into the same root: self-training on real mixes.
3. Preprocess with rendered backing tracks; training crops also hear the real-music
   pool's train split under the drums (data.music_prob).
4. Render the GMD test split through SamsSonor (a real kit never trained on) into a
   held-out root, drums only: evaluate mixes it with the music pool's held-out split.
5. Train from the shipped weights (train.init_from), tune thresholds on validation,
   and evaluate the new model and the shipped one side by side on the held-out real
   root and on the model card's held-out root (``--card-root``, made by
   tools/train_default_model.py --stage data), drums alone, +6 and 0 dB.
6. ``--export`` writes the new weights to drumtx/models/default.pt (only do that when
   the held-out numbers say so: the script prints both).

``--round 2`` continues round 1's model (its best.pt) on round 1's records plus GMD
train rendered through two more real recorded kits (Salamander, stereo overheads;
Gogodze, 7 microphones, with MuldjordKit's cymbals grafted on by fetch_real_kits.py;
336 renders each), hearing the bigger real-music
pool (``--music2``: build_music_pool.py --max-hours 2 --hold-out MUSIC/test, so the
held-out music stays the same) under the drums; same evaluation and export.

``--round 3`` is how the shipped model was made from round 1's model (its best.pt,
thresholds kept): 2000 more steps (lr 3e-4, seed 4242) on new renders of round 1's
performances and kits (``make-dataset --seed 8``), half of them with the snare's wires
buzzing after toms and kicks (``--buzz-prob 0.5``: docs/model-history.md, Snare
buzz); an even 1200 of them preprocessed; the same real music; same evaluation and
export.

``--round 4`` is round 3 with the band heard the way songs play it: drum breaks in 30 %
of banded crops (``data.break_prob``: the drums fade out, the band plays on, those
onsets leave the targets) and, in 45 % of banded crops, the pool ``--parts`` names
instead of the rendered backing: the real-music pool's train split followed by the
shared songs' bass and guitar parts played through recorded CC0 instruments
(tools/recorded_parts.py --base MUSIC/train; docs/model-history.md, Recorded bass and
guitar). Same root, start, steps and seed as round 3.

``--round 5`` is round 4 on round 3's renders made again with each drum family at a
level of its own in half of them (``make-dataset --fader-prob 0.5``, a root of its own:
the renders without faders are the same bytes as round 3's), and with the real-music
pool's own music back in about 30 % of banded crops (``data.music_prob=0.75`` of the
``--parts`` pool, whose first part is that music); docs/model-history.md, Faders.

``--round 6`` is round 3 on round 5's renders (faders, no parts or breaks: the pool's
music in 30 % of banded crops). With ``--bands 144`` it is how the shipped model was
made.

``--bands N`` (rounds 3 to 6) grows round 1's model to hear N mel bands at 48 kHz
(tools/widen_model.py --bands N --sample-rate 48000: 144 bands reach 18.5 kHz, where
hi-hats part from snares; 24 kHz audio ends at 12 kHz) and fine-tunes that: the round's
renders and the held-out real root preprocessed at 48 kHz in roots of their own, 20 %
of crops band-limited (``data.lowpass_prob``), ``--music`` and ``--parts`` pools at
48 kHz (build_music_pool.py --resample-from, recorded_parts.py --sample-rate 48000);
docs/model-history.md, Above 12 kHz.

Every step reuses what an earlier run left (renders, labels, stores, --resume auto).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_default_model import REPO, drumtx, rate_sets, train_settings  # noqa: E402

SHIPPED = REPO / "drumtx" / "models" / "default.pt"
RUN = "finetune-real"
MULDJORD = "MuldjordKit/DrumGizmo/MuldjordKit/Multi"
REAL_ONE_SHOTS = ["sonic-pi-drums/kit.sfz", "exadrums-default/kit.sfz"]
HELD_OUT_REAL_KIT = "SamsSonor/SamsSonor.sfz"
OLD_KITS = [
    "GMRockKit", "BJA_Pacific", "Millo_MultiLayered3", "rumpf_kit_z01_h2",
    "Audiophob", "VariBreaks", "TR808EmulationKit", "synth:2", "synth:6",
    "sf:TimGM6mb:0", "sf:TimGM6mb:16", "sf:OPL-3_FM_128M:0", "virtual:3", "virtual:7",
]  # fmt: skip
ROUND2_RUN = "finetune-real-2"
ROUND2_KITS = (  # kit (inside --kits), render seed, suffix keeping file names unique
    ("Salamander/Salamander Drumkit Trim.sfz", 21, "_33"),
    ("Gogodze/mics-cymbals", 22, "_34"),  # with MuldjordKit's cymbals
)
ROUND2_RENDERS = 336  # GMD train performances per kit
ROUND3_RUN = "finetune-buzz"
ROUND3_RENDER = ("--kits-per-performance", "3", "--splits", "train", "validation",
                 "--max-sec", "45", "--seed", "8", "--studio-prob", "0.4",
                 "--buzz-prob", "0.5")  # fmt: skip
ROUND3_TRAIN = ("train.max_steps=2000", "train.lr=3e-4", "train.min_lr=1e-5",
                "train.warmup_steps=100", "train.eval_every=500", "train.seed=4242",
                "train.time_limit_min=0")  # fmt: skip
ROUND4_RUN = "finetune-parts"
ROUND4_TRAIN = ("data.music_prob=0.45", "data.break_prob=0.3")
ROUND5_RUN = "finetune-faders"
ROUND6_RUN = "finetune-faders-music"
ROUND5_RENDER = (*ROUND3_RENDER, "--fader-prob", "0.5")
ROUND5_TRAIN = ("data.music_prob=0.75", "data.break_prob=0.3")
BANDS_RATE = 48000  # Hz: --bands models' audio (the renders are 44.1 kHz)
BANDS_TRAIN = ("data.lowpass_prob=0.2",)
EGMD_DIR = "e-gmd-v1.0.0"  # the dataset folder in a root (E-GMD's, make-dataset's)
SF2 = Path("/usr/share/sounds/sf2")
TRAIN_SOUNDFONTS = [SF2 / "TimGM6mb.sf2", SF2 / "OPL-3_FM_128M.sf2"]


def train_kits(kits: Path) -> list[str]:
    real = [f"sfz:{kits / MULDJORD}"] * 4 + [f"sfz:{kits / k}" for k in REAL_ONE_SHOTS]
    return real + OLD_KITS


def make_data(args: argparse.Namespace, root: Path, real_root: Path) -> None:
    gmd = ["--midi-dir", str(args.gmd)]
    drumtx("make-dataset", str(root), *gmd, "--kits", *train_kits(args.kits),
           "--kits-per-performance", "3", "--splits", "train", "validation",
           "--max-sec", "45", "--seed", "7", "--studio-prob", "0.4")  # fmt: skip
    pseudo = [sys.executable, str(REPO / "tools" / "pseudo_label.py"), "--root",
              str(root), "--scratch", str(args.scratch), "--views", "1",
              "--music", str(args.music), "--max-minutes",
              str(args.pseudo_minutes)]  # fmt: skip
    if args.pseudo_minutes > 0:
        print("$", " ".join(pseudo), flush=True)
        subprocess.run(pseudo, cwd=REPO, check=True)
    preprocess_with_backing(args, root)
    make_real_root(args.gmd, args.kits, real_root)


def make_real_root(
    gmd: Path, kits: Path, real_root: Path, rate: int | None = None
) -> None:
    """The held-out real root: GMD test (60 s) through SamsSonor, drums only (evaluate
    mixes in the real-music pool's held-out split)."""
    drumtx("make-dataset", str(real_root), "--midi-dir", str(gmd), "--kits",
           f"sfz:{kits / HELD_OUT_REAL_KIT}", "--splits", "test", "--max-sec", "60",
           "--seed", "13", "--studio-prob", "0")  # fmt: skip
    drumtx("preprocess", "--data-root", str(real_root), "--split", "test",
           "--workers", "2", "--allow-skips",
           "--set", "backing.enabled=false", *rate_sets(rate))  # fmt: skip


def preprocess_with_backing(
    args: argparse.Namespace, root: Path, rate: int | None = None
) -> None:
    """The store of a training root, its backing tracks from the training banks and
    songs only (never the held-out sf_GMbank that ``soundfonts = auto`` would add);
    an even spread of ``--preprocess-limit`` renders where that is set."""
    fonts = ",".join(map(str, TRAIN_SOUNDFONTS))
    songs = f"'{args.songs.resolve()}'" if args.songs else "''"
    limit = ["--limit", str(args.preprocess_limit)] if args.preprocess_limit else []
    drumtx("preprocess", "--data-root", str(root), "--split", "train", "validation",
           "--workers", "2", "--allow-skips", *limit, "--set",
           f"backing.soundfonts='{fonts}'", "--set",
           f"backing.songs_dir={songs}", *rate_sets(rate))  # fmt: skip


def round2_data(args: argparse.Namespace, root: Path) -> Path:
    """Round 2's root: the records round 1's store holds (train and validation) and
    GMD train through each ROUND2_KITS kit, hard-linked; preprocessed like round 1."""
    from dataclasses import replace

    from drumtx import egmd

    dst = args.work / "ft2-root"
    linked = dst / "linked"
    if not linked.exists():
        src = root / EGMD_DIR
        stored = {
            rec["audio_path"]
            for split in ("train", "validation")
            for rec in json.loads(
                (root / "processed_data" / split / "recordings.json").read_text()
            )
        }
        rows = [r for r in egmd.read_egmd_csv(egmd.egmd_csv_path(src))
                if r.audio_filename in stored]  # fmt: skip
        links = [(src / r.audio_filename, r.audio_filename) for r in rows]
        links += [(src / r.midi_filename, r.midi_filename) for r in rows]
        for kit, seed, suffix in ROUND2_KITS:
            out = args.work / f"render{suffix}"
            drumtx("make-dataset", str(out), "--midi-dir", str(args.gmd), "--kits",
                   f"sfz:{args.kits / kit}", "--splits", "train", "--limit",
                   str(ROUND2_RENDERS), "--max-sec", "45", "--seed", str(seed),
                   "--studio-prob", "0.4")  # fmt: skip
            made = out / EGMD_DIR
            for r in egmd.read_egmd_csv(egmd.egmd_csv_path(made)):
                new = replace(
                    r,
                    audio_filename=r.audio_filename.replace("_1.wav", f"{suffix}.wav"),
                    midi_filename=r.midi_filename.replace("_1.midi", f"{suffix}.midi"),
                )
                links += [(made / r.audio_filename, new.audio_filename),
                          (made / r.midi_filename, new.midi_filename)]  # fmt: skip
                rows.append(new)
        for file, name in links:
            target = dst / EGMD_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.hardlink_to(file)
        egmd.write_egmd_csv(egmd.egmd_csv_path(dst / EGMD_DIR), rows)
        linked.write_text(f"{len(rows)} records\n")
    preprocess_with_backing(args, dst)
    return dst


def finetune_round2(args: argparse.Namespace, root: Path, first: Path) -> Path:
    """Round 1's best weights trained on round 2's root with the bigger pool."""
    run_dir = root / "checkpoints" / ROUND2_RUN
    done = run_dir / "training-finished"
    if not done.exists():
        sets = train_settings(args) + [
            x for s in (
                f"train.init_from='{first}'", "train.lr=3e-4", "train.min_lr=1e-5",
                "train.warmup_steps=50", "train.eval_every=500", "train.seed=777",
                f"data.music_dir='{args.music2 / 'train'}'", "data.music_prob=0.3",
            ) for x in ("--set", s)
        ]  # fmt: skip
        drumtx("train", "--data-root", str(root), "--run", ROUND2_RUN, "--resume",
               "auto", *sets)  # fmt: skip
        done.write_text("finished\n")
    return run_dir / "best.pt"


def round3_data(args: argparse.Namespace) -> Path:
    """Round 3's root: round 1's performances and kits rendered anew, half of them with
    the snare buzz; preprocessed like round 1's. Round 5's: the same with faders."""
    faders = args.round in (5, 6)
    root = args.work / (("ft5-root" if faders else "ft3-root") + bands_suffix(args))
    render = ROUND5_RENDER if faders else ROUND3_RENDER
    drumtx("make-dataset", str(root), "--midi-dir", str(args.gmd), "--kits",
           *train_kits(args.kits), *render)  # fmt: skip
    preprocess_with_backing(args, root, BANDS_RATE if bands_suffix(args) else None)
    return root


def bands_suffix(args: argparse.Namespace) -> str:
    return f"-{args.bands}bands" if getattr(args, "bands", None) else ""


def grown(args: argparse.Namespace, first: Path) -> Path:
    """Round 1's best grown to --bands mel bands at BANDS_RATE (made once)."""
    import widen_model

    out = args.work / f"round1{bands_suffix(args)}.pt"
    if not out.exists():
        code = widen_model.main(["--checkpoint", str(first), "--out", str(out),
                                 "--bands", str(args.bands), "--sample-rate",
                                 str(BANDS_RATE)])  # fmt: skip
        if code:
            raise SystemExit(code)
    return out


def finetune_round3(args: argparse.Namespace, root: Path, first: Path) -> Path:
    """Round 1's best weights, 2000 steps more on round 3's root; round 1's thresholds
    kept (the shipped model's were). Rounds 4 and 5: the same with breaks and
    ``--parts`` (round 5 on its own root, more of the pool's music)."""
    from drumtx.checkpoint import load_checkpoint
    from drumtx.evaluate import store_thresholds

    run = {4: ROUND4_RUN, 5: ROUND5_RUN, 6: ROUND6_RUN}.get(args.round, ROUND3_RUN)
    run += bands_suffix(args)
    run_dir = root / "checkpoints" / run
    if bands_suffix(args):
        first = grown(args, first)
    done = run_dir / "training-finished"
    if not done.exists():
        band = (f"data.music_dir='{args.music / 'train'}'", "data.music_prob=0.3")
        if args.round in (4, 5):
            more = ROUND5_TRAIN if args.round == 5 else ROUND4_TRAIN
            band = (f"data.music_dir='{args.parts}'", *more)
        if bands_suffix(args):
            band = (*band, *BANDS_TRAIN)
        sets = train_settings(args) + [
            x for s in (f"train.init_from='{first}'", *ROUND3_TRAIN, *band)
            for x in ("--set", s)
        ]  # fmt: skip
        drumtx("train", "--data-root", str(root), "--run", run, "--resume",
               "auto", *sets)  # fmt: skip
        start = load_checkpoint(first)  # its thresholds, and where they were tuned
        store_thresholds(run_dir / "best.pt", start["thresholds"],
                         start.get("thresholds_tuned_on"))  # fmt: skip
        done.write_text("finished\n")
    return run_dir / "best.pt"


def tune_thresholds(root: Path, checkpoint: Path) -> None:
    drumtx("evaluate", "--data-root", str(root), "--checkpoint", str(checkpoint),
           "--split", "validation", "--tune-thresholds", "--limit", "64")  # fmt: skip


def finetune(args: argparse.Namespace, root: Path) -> Path:
    run_dir = root / "checkpoints" / RUN
    done = run_dir / "training-finished"
    if not done.exists():
        sets = train_settings(args) + [
            x for s in (
                f"train.init_from='{args.init or 'shipped'}'", f"train.lr={args.lr}",
                "train.min_lr=1e-5",
                "train.warmup_steps=100", "train.eval_every=500",
                f"data.music_dir='{args.music / 'train'}'", "data.music_prob=0.3",
            ) for x in ("--set", s)
        ]  # fmt: skip
        drumtx("train", "--data-root", str(root), "--run", RUN, "--resume", "auto",
               *sets)  # fmt: skip
        done.write_text("finished\n")
    return run_dir / "best.pt"


def evaluate(checkpoint: Path, data_root: Path, out: Path, *extra: str) -> dict:
    if not out.is_file():
        cmd = [sys.executable, "-m", "drumtx", "evaluate", "--data-root",
               str(data_root), "--checkpoint", str(checkpoint), "--split", "test",
               "--json", *extra]  # fmt: skip
        print("$", " ".join(cmd), flush=True)
        text = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True).stdout
        out.write_bytes(text)
    return json.loads(out.read_text())


def compare(args: argparse.Namespace, best: Path, real_root: Path) -> None:
    """The new model beside the shipped one on every held-out set; a --bands model
    alone (its roots and pools are at another rate than the shipped model's: the
    same round without --bands scored the shipped model on the same recordings)."""
    music = ("--music-dir", str(args.music / "test"))
    sets = [("real kit + real music", real_root, music)]
    if args.card_root:
        sets.append(("model card's held-out", args.card_root, ()))
    evals = args.work / "evals"
    evals.mkdir(exist_ok=True)
    models = [("new", best)] if args.bands else [("shipped", SHIPPED), ("new", best)]
    for name, root, extra in sets:
        slug = "real" if root == real_root else "card"
        rows = []
        for who, ckpt in models:
            suffix = bands_suffix(args) if who == "new" else ""
            out = evals / f"{slug}-{who}{suffix}.json"
            r = evaluate(ckpt, root, out, *extra)
            mixes = r.get("mixes", {})
            rows.append((who, r["micro_f1"], *(mixes[k]["micro_f1"] for k in mixes)))
        print(f"{name}: " + "; ".join(
            f"{w} " + " / ".join(f"{x:.3f}" for x in vals) for w, *vals in rows))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gmd", type=Path, required=True, help="GMD groove/ folder")
    p.add_argument("--songs", type=Path, help="full-band MIDI songs for backing")
    p.add_argument("--kits", type=Path, required=True, help="fetch_real_kits.py --out")
    p.add_argument("--music", type=Path, required=True, help="build_music_pool --out")
    p.add_argument("--scratch", type=Path, required=True, help="pseudo-label scratch")
    p.add_argument("--work", type=Path, required=True, help="working folder")
    p.add_argument("--card-root", type=Path, help="the model card's held-out root "
                   "(preprocessed at the model's rate: 48 kHz with --bands)")
    p.add_argument("--pseudo-minutes", type=float, default=15.0,
                   help="minutes of each soundtrack source the teacher screens")
    p.add_argument("--minutes", type=float, default=60.0, help="training budget")
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--preset", default="small")  # taken from the shipped model
    p.add_argument("--n-mels", type=int, default=128)  # idem
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--cpu-threads", type=int, default=0)
    p.add_argument("--stage", default="all", choices=["data", "train", "all"])
    p.add_argument("--export", action="store_true", help="ship the new weights")
    p.add_argument("--round", type=int, default=1, choices=[1, 2, 3, 4, 5, 6],
                   help="2: continue round 1 with more real kits and --music2; 3: "
                   "continue round 1 with the snare buzz; 4: round 3 with drum "
                   "breaks and --parts; 5: round 4 on renders with faders; 6: round 3 "
                   "on round 5's renders")
    p.add_argument("--init", type=Path,
                   help="weights round 1 starts from (default: the shipped ones; the "
                   "shipped chain started from the base model of commit 44a2414)")
    p.add_argument("--preprocess-limit", type=int, default=1200,
                   help="an even spread of this many renders per root, as the "
                   "shipped runs; 0: all")
    p.add_argument("--music2", type=Path,
                   help="round 2's real-music pool (--max-hours 2 --hold-out)")
    p.add_argument("--parts", type=Path,
                   help="round 4's pool split: recorded_parts.py --base MUSIC/train")
    p.add_argument("--bands", type=int,
                   help="rounds 3-6: grow round 1's model to this many mel bands at "
                   f"{BANDS_RATE} Hz (144: to 18.5 kHz) and fine-tune it there; "
                   "--music and --parts must then be pools at that rate")
    args = p.parse_args()
    if args.round == 2 and args.music2 is None:
        p.error("--round 2 needs --music2 (the bigger real-music pool)")
    if args.round in (4, 5) and args.parts is None:
        p.error(f"--round {args.round} needs --parts (tools/recorded_parts.py's split)")
    if args.bands is not None and args.round < 3:
        p.error("--bands grows round 1's model in rounds 3 to 6: add --round 3 to 6")
    return args


def main() -> int:
    args = parse_args()
    root, real_root = args.work / "ft-root", args.work / "real-test-root"
    t0 = time.monotonic()
    make_data(args, root, real_root)
    if args.stage == "data":
        return 0
    best = finetune(args, root)
    if args.round == 2:
        first, root = best, round2_data(args, root)
        best = finetune_round2(args, root, first)
    if args.round >= 3:
        tune_thresholds(root, best)  # round 1's, which rounds 3 to 5 keep
        first, root = best, round3_data(args)
        best = finetune_round3(args, root, first)
    if args.stage == "train":
        return 0
    if args.round < 3:
        tune_thresholds(root, best)
    if args.bands:  # the held-out real renders again, at the grown model's rate
        real_root = args.work / f"real-test-root-{BANDS_RATE // 1000}k"
        make_real_root(args.gmd, args.kits, real_root, BANDS_RATE)
    compare(args, best, real_root)
    if args.export:
        from train_default_model import export

        card = evaluate(best, args.card_root or real_root,
                        args.work / "evals" / "card-export.json")  # fmt: skip
        export(best, card, args, time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
