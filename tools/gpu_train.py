"""Train a network on a lent GPU machine in one call: what only this machine can make
travels compact, the rest is rendered there.

A lent machine starts bare, reaches no package index and takes at most 64 MiB of working
tree, so the training data cannot travel as a store (one hour of drums and backing is
346 MB). ``pack`` (here, on the CPU) gathers what only this machine can make:

- the renders through real recorded kits and SoundFont kits (their samples are hundreds
  of MB; FluidSynth is not there), resampled to ``--sample-rate`` (48 kHz, the shipped
  model's rate and frontend, by default; 24 kHz the config's) and coded as Ogg Opus
  (``--opus-level``; 0.93 is about 24 kbit/s at either rate: the 24 kHz model shipped
  then heard 1.8 min of MuldjordKit renders coded so with F1 0.958 agreement to its
  hits on the uncoded audio, at 31 kbit/s 0.966, at 43 kbit/s 0.983; at 48 kHz Opus
  keeps the energy above 12 kHz, see README, On a GPU, for the 48 kHz model's
  agreement);
- the music pool's train split, coded the same way (a pool at the pack's rate:
  ``build_music_pool.py --resample-from`` writes one at 48 kHz);
- the GMD train and validation MIDI, the full-band songs and the small Debian Hydrogen
  kits, as they are.

``run`` (there) renders more performances through those Hydrogen kits and drumtx's
synthesised and virtual kits in parallel shards, merges them with the packed renders
into one E-GMD-shaped root, preprocesses it (backing tracks by drumtx's own
instruments and the songs' parts), trains a short probe, sets the cosine schedule to
the steps that fit the time left (``--resume auto`` with
``train.resume_schedule='new'``), and writes to OUT the weights without optimizer state
(``gpu-run.pt``) and the TensorBoard and stage logs (``logs.tar.gz``) before it tunes
thresholds on validation into that file; it starts from the pack's ``init.pt`` (``pack
--weights``: an earlier call's weights) where there is one. ``gpu_train.json`` is
rewritten after every stage (its seconds, the probe's rate, the data's hours). A later
call on the same warm machine finds the data, the run and the probe's record
(``probe.json``) in ``--work`` and trains on from where the first call stopped for its
whole budget. Evaluate the weights here on the held-out roots.

    python tools/build_music_pool.py --out /work/music48 --resample-from /work/music \
        --scratch /work/music-debs --sample-rate 48000   # the pool at the pack's rate
    python tools/gpu_train.py pack --gmd ../shared/data/gmd/groove \
        --songs ../shared/data/songs --renders REAL_RENDERS --music /work/music48 \
        --music-source-hours 0.13 --out .gpupack
    # there: carry .gpupack and .whl, install the wheels (README), then
    PYTHONUNBUFFERED=1 python3 tools/gpu_train.py run --minutes 8.5 | tee $OUT/run.log

(A filter in that pipe, ``grep -v`` say, holds the log back until it exits: a run
killed at the call's limit then returns none of it.) Where the minutes go, measured on
one H200 with 16 cores (2026-12-04, 3 shards, an earlier version that ran ``evaluate``
to tune and so overran a 10-minute call): unpack 14 s, render 57 s, preprocess 187 s
for 12.0 h of audio (the backing tracks dominate), probe 47 s; the base preset then
trained at 0.73-0.89 audio-hours/s, batch 64 x 4 s in bf16, waiting for data 0.1 % of
the time: the GPU, not the 14 loader workers, sets the pace. Two shards leave the
training about a minute more. (That call's shards drew synth:0-7 and virtual:0-9; they
now draw the shipped recipe's seeds, synth:1-8 and virtual:1-10.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_default_model import (  # noqa: E402
    AUGMENTATION,
    REPO,
    TRAIN_SYNTH_KITS,
    TRAIN_VIRTUAL_KITS,
    drumtx,
)

from drumtx.audio import load_audio, to_int16  # noqa: E402
from drumtx.cli import print_error  # noqa: E402
from drumtx.egmd import egmd_csv_path  # noqa: E402
from drumtx.errors import ConfigError, DrumtxError  # noqa: E402
from drumtx.frontend import extended_f_max  # noqa: E402
from drumtx.music import INDEX_NAME, PoolWriter, load_music_pool  # noqa: E402

# The rates a pack is made at (--sample-rate; pack.json keeps it and run trains at
# it): packed audio is coded at it, and weights to start from must be at it. 48 kHz
# with the shipped model's frontend (144 mel bands to 18.5 kHz, the same 43-ms window:
# the hi-hat over the snare, docs/model-history.md, Above 12 kHz) is the default;
# 24 kHz is the config's own (128 bands to 12 kHz), what the first lease trained at.
SAMPLE_RATE = 48_000
FRONTENDS = {
    24_000: (1024, 128, 12000.0),  # (frontend.n_fft, n_mels, f_max_hz)
    48_000: (2048, 144, extended_f_max(30.0, 12000.0, 128, 144)),
}
EGMD = "e-gmd-v1.0.0"
HYDROGEN = Path("/usr/share/hydrogen/data/drumkits")
# How the shards render: a random studio for 60 %, and the snare's wires buzzing after
# toms and kicks in half the renders, as in the shipped model's last fine-tune
# (docs/model-history.md, Snare buzz); the toms tuned as a set in half the rest, so 80 %
# of renders have their toms retuned (*A stronger dose of high toms*); pack's --renders
# should be made with --buzz-prob 0.5 and --tom-tune-prob too.
SHARD_RENDER_OPTIONS = ("--studio-prob", "0.6", "--buzz-prob", "0.5",
                        "--tom-tune-prob", "0.5")  # fmt: skip
# Debian hydrogen-drumkits kits small enough to travel (BJA_Pacific and ForzeeStereo are
# 31 and 156 MB); ColomboAcousticDrumkit and The Black Pearl are held out.
PACK_KITS = (
    "Audiophob", "ElectricEmpireKit", "HardElectro1", "Millo-Drums_v.1",
    "Millo_MultiLayered2", "Millo_MultiLayered3", "VariBreaks", "rumpf_kit_z01_h2",
)  # fmt: skip
SYNTH_KITS = (*TRAIN_SYNTH_KITS, *TRAIN_VIRTUAL_KITS)  # the shipped model's seeds
RUN = "gpu-run"


# --- pack (here) -------------------------------------------------------------------


def write_opus(path: Path, audio: np.ndarray, level: float, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), to_int16(audio), rate, format="OGG", subtype="OPUS",
             compression_level=level)  # fmt: skip


def rate_sets(rate: int) -> list[str]:
    """--set values that make preprocess and train work at ``rate`` (FRONTENDS)."""
    n_fft, n_mels, f_max = FRONTENDS[rate]
    sets = [f"audio.sample_rate={rate}", f"frontend.n_fft={n_fft}",
            f"frontend.n_mels={n_mels}", f"frontend.f_max_hz={f_max!r}"]  # fmt: skip
    return [x for s in sets for x in ("--set", s)]


def pack_rate(pack_dir: Path) -> int:
    """The rate a pack was made at (pack.json; packs from before it: 24 kHz)."""
    info = pack_dir / "pack.json"
    if not info.is_file():
        return 24_000
    return int(json.loads(info.read_text()).get("sample_rate", 24_000))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def pack_renders(
    renders: Path, out: Path, level: float, rate: int = SAMPLE_RATE
) -> dict:
    """A make-dataset root's renders as Opus at ``rate``, beside their MIDI."""
    src = renders / EGMD
    fields, rows = read_csv(egmd_csv_path(src))
    dest = out / "renders" / EGMD
    seconds = 0.0
    for row in rows:
        audio = load_audio(src / row["audio_filename"], rate)
        seconds += len(audio) / rate
        ogg = str(Path(row["audio_filename"]).with_suffix(".ogg"))
        write_opus(dest / ogg, audio, level, rate)
        (dest / row["midi_filename"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / row["midi_filename"], dest / row["midi_filename"])
        row["audio_filename"] = ogg
    write_csv(dest / f"{EGMD}.csv", fields, rows)
    kits: dict[str, int] = {}
    for row in rows:
        kits[row["kit_name"]] = kits.get(row["kit_name"], 0) + 1
    return {"recordings": len(rows), "hours": round(seconds / 3600, 3), "kits": kits}


def pack_music(music: Path, out: Path, level: float, source_hours: float) -> dict:
    """The pool's train split as Opus: of each source, its segments in the pool's order
    up to ``source_hours`` (0: all), re-indexed."""
    src, dest = music / "train", out / "music" / "train"
    pool = load_music_pool(src)
    cap = source_hours * 3600 * pool.sample_rate
    taken: dict[str, int] = {}
    writer = PoolWriter(dest, pool.sample_rate)
    for seg in pool.segments:
        source = seg.get("source", "")
        if source_hours and taken.get(source, 0) + seg["length"] > cap:
            continue
        taken[source] = taken.get(source, 0) + seg["length"]
        start, length = seg["start"], seg["length"]
        meta = {k: v for k, v in seg.items() if k not in ("start", "length")}
        writer.add(pool.audio[start : start + length] / 32768.0, meta)
    writer.close()
    pcm = np.fromfile(dest / "music.i16", dtype=np.int16)
    write_opus(dest / "music.ogg", pcm.astype(np.float32) / 32768.0, level,
               pool.sample_rate)  # fmt: skip
    (dest / "music.i16").unlink()
    hours = {k: round(v / pool.sample_rate / 3600, 3) for k, v in taken.items()}
    return {"hours": round(len(pcm) / pool.sample_rate / 3600, 3), "sources": hours}


def pack_gmd(gmd: Path, out: Path) -> dict:
    """info.csv's train and validation rows and their MIDI (the test split stays)."""
    fields, rows = read_csv(gmd / "info.csv")
    rows = [r for r in rows if r["split"] in ("train", "validation")]
    for row in rows:
        dest = out / "gmd" / row["midi_filename"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(gmd / row["midi_filename"], dest)
    write_csv(out / "gmd" / "info.csv", fields, rows)
    return {"performances": len(rows)}


def tree_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


INIT_NAME = "init.pt"  # weights in a pack: where run starts from


def missing_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(what is missing, how to make it) for every input ``pack`` reads."""
    needs = [
        (args.gmd / "info.csv", "--gmd names a Groove MIDI Dataset groove/ folder"),
        (args.songs, "--songs names the full-band MIDI songs folder"),
        (
            egmd_csv_path(args.renders / EGMD),
            "--renders names a make-dataset root "
            "(README, On a GPU: the make-dataset command)",
        ),
        (
            args.music / "train" / "index.json",
            "python tools/build_music_pool.py --out MUSIC; --music MUSIC",
        ),
    ] + [(HYDROGEN / kit, "apt-get install hydrogen-drumkits") for kit in PACK_KITS]
    if args.weights:
        needs.append((args.weights, "--weights names an earlier call's gpu-run.pt"))
    return [(str(path), hint) for path, hint in needs if not path.exists()]


def rate_refusal(weights: Path, rate: int) -> tuple[str, str] | None:
    """(error, hint) where ``weights`` are a model at another audio.sample_rate than
    ``rate``, the pack's. Training takes the rate of the weights it starts from, so
    its store, preprocessed at the pack's rate, would be refused on the lent machine
    after minutes of rendering and preprocessing; say so here instead."""
    from drumtx.checkpoint import load_checkpoint, model_config
    from drumtx.config import load_config

    try:
        state = load_checkpoint(weights)
    except DrumtxError as exc:  # not a checkpoint: refused here too
        return exc.message, exc.hint or "--weights names an earlier call's gpu-run.pt"
    model_rate = model_config(load_config(None), state).audio.sample_rate
    if model_rate == rate:
        return None
    return (
        f"{weights} is a {model_rate} Hz model; this pack is made, preprocessed and "
        f"trained at {rate} Hz",
        f"pack --sample-rate {model_rate} to continue it, or start from a {rate} Hz "
        "model's weights (an earlier call's gpu-run.pt), or from none",
    )


def pool_rate_refusal(music: Path, rate: int) -> tuple[str, str] | None:
    """(error, hint) where the music pool is at another rate than the pack."""
    index = json.loads((music / "train" / INDEX_NAME).read_text())
    pool_rate = int(index["sample_rate"])
    if pool_rate == rate:
        return None
    return (
        f"the music pool {music} is at {pool_rate} Hz; the pack is made at {rate} Hz",
        f"python tools/build_music_pool.py --resample-from {music} --sample-rate "
        f"{rate} --out MUSIC{rate // 1000} --scratch SCRATCH; then --music that, "
        f"or pack --sample-rate {pool_rate}",
    )


def fail(message: str, hint: str) -> int:
    """``error:`` and ``hint:`` on stderr, as drumtx's commands say them; exit 2."""
    print_error(ConfigError(message, hint=hint))
    return 2


def pack(args: argparse.Namespace) -> int:
    missing = missing_inputs(args)
    if missing:
        path, hint = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return fail(f"{path} not found{more}", hint)
    rate = args.sample_rate
    refused = pool_rate_refusal(args.music, rate)
    if args.weights and not refused:
        refused = rate_refusal(args.weights, rate)
    if refused:
        return fail(*refused)
    out = args.out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            return fail(f"{out} exists and is not empty",
                        "--overwrite replaces it, or --out another folder")  # fmt: skip
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {"sample_rate": rate, "opus_level": args.opus_level}
    if args.weights:
        shutil.copy2(args.weights, out / INIT_NAME)
        info["weights"] = str(args.weights)
    info["gmd"] = pack_gmd(args.gmd, out)
    shutil.copytree(args.songs, out / "songs")
    for kit in PACK_KITS:
        shutil.copytree(HYDROGEN / kit, out / "kits" / kit)
    info["renders"] = pack_renders(args.renders, out, args.opus_level, rate)
    info["music"] = pack_music(
        args.music, out, args.music_opus_level, args.music_source_hours
    )
    info["mb"] = {
        p.name: round(tree_mb(p), 2) for p in sorted(out.iterdir()) if p.is_dir()
    }
    info["mb_total"] = round(tree_mb(out), 2)
    (out / "pack.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    if info["mb_total"] > args.max_mb:
        return fail(
            f"the pack is {info['mb_total']} MiB, over --max-mb {args.max_mb}",
            "a higher --opus-level, less --music-source-hours or fewer renders",
        )
    return 0


# --- run (there) -------------------------------------------------------------------


class Clock:
    def __init__(self, minutes: float) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + minutes * 60
        self.stages: dict[str, float] = {}
        self._mark = self.t0

    def stage(self, name: str) -> None:
        now = time.monotonic()
        self.stages[name] = round(now - self._mark, 1)
        self._mark = now
        print(f"[{now - self.t0:6.1f} s] {name} done", flush=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()


def unpack_music(pack_dir: Path, work: Path) -> Path:
    src, dest = pack_dir / "music" / "train", work / "music" / "train"
    dest.mkdir(parents=True, exist_ok=True)
    n = int(json.loads((src / "index.json").read_text())["n_samples"])
    pcm, _ = sf.read(str(src / "music.ogg"), dtype="int16")
    pcm = np.pad(pcm[:n], (0, max(0, n - len(pcm))))
    pcm.astype("<i2").tofile(dest / "music.i16")
    shutil.copy2(src / "index.json", dest / "index.json")
    return dest


def render_shards(args: argparse.Namespace, work: Path) -> list[Path]:
    """``--shards`` make-dataset processes at once, one kit per performance each (the
    first also renders the validation split)."""
    kits = [str(p) for p in sorted((args.pack / "kits").iterdir())] + list(SYNTH_KITS)
    procs, roots = [], []
    for k in range(args.shards):
        root = work / f"shard{k}"
        root.mkdir(parents=True, exist_ok=True)
        splits = ["train", "validation"] if k == 0 else ["train"]
        cmd = [sys.executable, "-m", "drumtx", "make-dataset", str(root),
               "--midi-dir", str(args.pack / "gmd"), "--kits", *kits,
               "--kits-per-performance", "1", "--splits", *splits,
               "--max-sec", str(args.max_sec), "--seed", str(100 + k),
               *SHARD_RENDER_OPTIONS]  # fmt: skip
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        log = open(work / f"shard{k}.log", "w")
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log))
        roots.append(root)
    failed = [k for k, p in enumerate(procs) if p.wait() != 0]
    if failed:
        for k in failed:
            print((work / f"shard{k}.log").read_text()[-3000:])
        raise SystemExit(f"error: make-dataset shard(s) {failed} failed")
    return roots


def merge(sources: list[tuple[str, Path]], root: Path) -> dict:
    """One E-GMD-shaped root from several: each source's files under its own prefix
    (kit numbers repeat between sources), linked, and one CSV of all rows."""
    dest = root / EGMD
    dest.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    rows: list[dict[str, str]] = []
    for prefix, egmd_dir in sources:
        src_fields, src_rows = read_csv(egmd_csv_path(egmd_dir))
        fields = fields or src_fields
        if src_fields != fields:
            raise SystemExit(f"error: {egmd_dir}: CSV columns differ from the others")
        for row in src_rows:
            for key in ("audio_filename", "midi_filename"):
                target = dest / prefix / row[key]
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.symlink((egmd_dir / row[key]).resolve(), target)
                row[key] = f"{prefix}/{row[key]}"
            row["id"] = f"{prefix}/{row['id']}"
            rows.append(row)
    write_csv(dest / f"{EGMD}.csv", fields, rows)
    splits: dict[str, int] = {}
    for row in rows:
        splits[row["split"]] = splits.get(row["split"], 0) + 1
    return {"recordings": splits}


def train_sets(args: argparse.Namespace, music_dir: Path) -> list[str]:
    sets = [
        f"model.preset='{args.preset}'",
        "model.dropout=0.1",
        "data.crop_sec=4.0",
        f"data.num_workers={args.workers}",
        *AUGMENTATION,
        "data.backing_db_min=-9.0",  # louder music than the recipe's -6 dB floor
        f"data.music_dir='{music_dir}'",
        f"data.music_prob={args.music_prob}",
        "train.device='auto'",
        "train.amp='auto'",
        f"train.batch_size={args.batch_size}",
        f"train.lr={args.lr}",
        "train.warmup_steps=300",
        f"train.log_every={args.log_every}",
        "train.val_max_recordings=64",
        "train.keep_checkpoints=1",
        f"train.seed={args.seed}",
    ]
    return [x for s in sets for x in ("--set", s)]


def scalar_median(log_dir: Path, tag: str, after_step: int = 0) -> float | None:
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return None
    values = [e.value for e in acc.Scalars(tag) if e.step > after_step]
    return float(np.median(values)) if values else None


PROBE_FILE = "probe.json"  # in --work: the first call's measured speed


def continued_step(root: Path, work: Path) -> int | None:
    """The step an earlier call's run reached on this machine (its data made, its
    speed probed), or None: a later call while the machine is still warm skips the
    data and the probe and trains for its whole budget."""
    from drumtx.checkpoint import load_checkpoint

    last = root / "checkpoints" / RUN / "last.pt"
    if not (last.is_file() and (work / PROBE_FILE).is_file()):
        return None
    return int(load_checkpoint(last)["step"])


def probe_speed(args: argparse.Namespace, log_dir: Path, probe_sec: float) -> dict:
    """Steps a second and what a train call costs besides its steps, from the probe."""
    settled = args.log_every  # the first interval holds the workers' start
    speed = scalar_median(log_dir, "train/audio_hours_per_sec", after_step=settled)
    wait = scalar_median(log_dir, "train/data_wait_fraction", after_step=settled)
    hours_per_step = args.batch_size * 4.0 / 3600
    if speed is None:  # too few logged steps: the probe's time, start included
        speed = args.probe_steps * hours_per_step / probe_sec
    steps_per_sec = speed / hours_per_step
    # What a train call costs besides its steps (start, workers, the last
    # validation, saving), as the probe paid it, is paid again by the main run.
    overhead = max(0.0, probe_sec - args.probe_steps / steps_per_sec)
    return {
        "audio_hours_per_sec": speed,
        "data_wait_fraction": wait,
        "steps_per_sec": steps_per_sec,
        "overhead_sec": round(overhead, 1),
    }


def run(args: argparse.Namespace) -> int:
    rate = pack_rate(args.pack)
    init = args.init_from or args.pack / INIT_NAME
    refused = rate_refusal(init, rate) if init.is_file() else None
    if refused:  # before any of the lent machine's minutes go
        return fail(*refused)
    clock = Clock(args.minutes)
    work, out = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    report_path = out / "gpu_train.json"

    def save_report() -> None:
        report["stages_sec"] = clock.stages
        report_path.write_text(json.dumps(report, indent=1) + "\n")

    def stage(name: str) -> None:  # timed, and on record at once
        clock.stage(name)
        save_report()

    try:
        import torch

        report["device"] = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        )
        report["torch"] = torch.__version__
        music_dir = unpack_music(args.pack, work)
        stage("unpack music")
        shards = render_shards(args, work)
        stage("render shards")
        root = work / "root"
        sources = [(f"s{k}", p / EGMD) for k, p in enumerate(shards)]
        sources.append(("real", args.pack / "renders" / EGMD))
        report["data"] = merge(sources, root)
        stage("merge")
        drumtx("preprocess", "--data-root", str(root), "--split", "train",
               "validation", "--workers", str(args.workers), "--allow-skips",
               "--set", "backing.soundfonts='none'",
               "--set", f"backing.songs_dir='{(args.pack / 'songs').resolve()}'",
               *rate_sets(rate), log=work / "preprocess.log")  # fmt: skip
        stage("preprocess")
        for split in ("train", "validation"):
            manifest = json.loads(
                (root / "processed_data" / split / "manifest.json").read_text()
            )
            report["data"][f"{split}_hours"] = round(
                manifest["n_samples"] / rate / 3600, 3
            )
        save_report()

        sets = train_sets(args, music_dir) + rate_sets(rate)
        report["sample_rate"] = rate
        common = ["train", "--data-root", str(root), "--run", RUN, *sets]
        probe = args.probe_steps
        start = []  # a carried earlier run's weights, with its network shape
        init_from = args.init_from
        if init_from is None and (args.pack / INIT_NAME).is_file():
            init_from = args.pack / INIT_NAME
        if init_from is not None:
            report["init_from"] = str(init_from)
            start = ["--set", f"train.init_from='{init_from.resolve()}'"]
        log_dir = root / "logs" / RUN
        settled = args.log_every  # the first interval holds the workers' start
        done = continued_step(root, work)
        if done is None:  # the first call on this machine: a probe measures the speed
            drumtx(*common, *start, "--set", f"train.max_steps={probe}",
                   "--set", f"train.eval_every={probe}")  # fmt: skip
            stage("probe")
            speed = probe_speed(args, log_dir, clock.stages["probe"])
            (work / PROBE_FILE).write_text(json.dumps(speed) + "\n")
            done = probe
        else:  # a later call, the machine still warm: the data and run are there
            speed = json.loads((work / PROBE_FILE).read_text())
            report["continued_from_step"] = done
            stage("continue")
        budget = clock.left() - args.reserve_sec - speed["overhead_sec"]
        # its four validations come out of the margin
        steps = done + int(speed["steps_per_sec"] * budget * args.step_margin)
        report["probe"] = {**speed, "budget_sec": round(budget, 1), "max_steps": steps}
        save_report()
        minutes = max(0.5, budget / 60)
        if steps > done:
            drumtx(*common, "--resume", "auto", "--set", f"train.max_steps={steps}",
                   "--set", f"train.eval_every={max(probe, (steps - done) // 4)}",
                   "--set", "train.resume_schedule='new'",
                   "--set", f"train.time_limit_min={minutes}")  # fmt: skip
        stage("train")
        tags = {"rate_after_probe": "train/audio_hours_per_sec",
                "data_wait_after_probe": "train/data_wait_fraction"}  # fmt: skip
        for key, tag in tags.items():
            report[key] = scalar_median(log_dir, tag, after_step=done + settled)
        # The weights and logs reach OUT first: a run cut short while tuning keeps them.
        dest = out / f"{RUN}.pt"
        report["export"] = export(root / "checkpoints" / RUN / "best.pt", dest)
        write_logs(out, root, work)
        save_report()
        report["thresholds"] = tune_thresholds(dest, root)
        stage("tune thresholds")
    finally:
        write_logs(out, work / "root", work)
        save_report()
    return 0


def write_logs(out: Path, root: Path, work: Path) -> None:
    """The run's TensorBoard logs and every stage's log, in one file."""
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        if (root / "logs").exists():
            tar.add(root / "logs", arcname="logs")
        for log in sorted(work.glob("*.log")):
            tar.add(log, arcname=f"work/{log.name}")


def tune_thresholds(path: Path, root: Path) -> dict[str, float]:
    """Per-class thresholds on 64 validation recordings (drums alone, +6 and 0 dB),
    written into ``path``; without the full evaluation ``evaluate`` would add."""
    from drumtx.config import load_config
    from drumtx.console import make_console
    from drumtx.evaluate import tune_and_store
    from drumtx.inference import load_model, resolve_device

    cfg = load_config(None, [f"storage.data_root='{root}'"])
    loaded = load_model(path, cfg, resolve_device("auto"))
    val_dir = root / "processed_data" / "validation"
    tune_and_store(loaded, path, val_dir, 64, make_console(stderr=True), (6.0, 0.0))
    return loaded.thresholds


def export(best: Path, dest: Path) -> dict:
    """Weights, config, vocabulary and thresholds: what transcribe and evaluate load."""
    from drumtx.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(best)
    keep = ("config", "vocab", "model", "thresholds", "step", "best_score",
            "history", "drumtx_version")  # fmt: skip
    save_checkpoint(dest, {k: state[k] for k in keep if k in state})
    return {
        "step": state.get("step"),
        "best_score": state.get("best_score"),
        "thresholds": state.get("thresholds"),
        "mb": round(dest.stat().st_size / 2**20, 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: gather the compact data set")
    p.add_argument("--gmd", type=Path, required=True)
    p.add_argument("--songs", type=Path, required=True)
    p.add_argument("--renders", type=Path, required=True, help="a make-dataset root")
    p.add_argument("--music", type=Path, required=True, help="build_music_pool --out")
    p.add_argument("--out", type=Path, default=REPO / ".gpupack")
    p.add_argument("--sample-rate", type=int, choices=sorted(FRONTENDS),
                   default=SAMPLE_RATE,
                   help="Hz the pack is coded at and run trains at (default "
                   f"{SAMPLE_RATE}: the shipped model's frontend)")  # fmt: skip
    p.add_argument("--opus-level", type=float, default=0.93)
    p.add_argument("--music-opus-level", type=float, default=0.93)
    p.add_argument("--music-source-hours", type=float, default=0.0,
                   help="hours of each music pool source at most; 0: all")  # fmt: skip
    p.add_argument("--weights", type=Path,
                   help="an earlier call's gpu-run.pt: run starts from it")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace --out")
    p.add_argument("--max-mb", type=float, default=56.0)
    r = sub.add_parser("run", help="there: render, preprocess, train, export")
    r.add_argument("--pack", type=Path, default=REPO / ".gpupack")
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu-train"))
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    r.add_argument("--minutes", type=float, default=9.0, help="whole run, all stages")
    r.add_argument("--reserve-sec", type=float, default=90.0,
                   help="kept for tuning thresholds and writing OUT")  # fmt: skip
    r.add_argument("--step-margin", type=float, default=0.85)
    r.add_argument("--shards", type=int, default=2)
    r.add_argument("--max-sec", type=float, default=30.0)
    r.add_argument("--limit", type=int, default=0, help="performances per shard")
    r.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    r.add_argument("--preset", default="base")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--lr", type=float, default=2e-3)
    r.add_argument("--music-prob", type=float, default=0.4)
    r.add_argument("--probe-steps", type=int, default=80)
    r.add_argument("--log-every", type=int, default=20)
    r.add_argument("--seed", type=int, default=1234)
    r.add_argument(
        "--init-from", type=Path, help="weights to start from (default: pack's init.pt)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
