"""Bars in long songs: whole-song renders with intros, fills, breaks and tempo changes.

    python tools/bench_songs.py --songs ../shared/data/songs --work /tmp/songs
    python tools/bench_songs.py --songs ../shared/data/songs --work /tmp/songs \
        --mixes 6,0 --max-sec 150 --json songs.json

GMD's held-out performances are short and steady; real songs are not. Each full-band
MIDI song of --songs (drums on channel 10 and at least one other part; by default the
third of them, by a hash of the name, that tools/fit_bar_template.py never learns
from) is rendered from its start for up to --max-sec seconds, intro and all: the drum
channel through a
kit nobody trains on (--kits, one per song in turn), every other part through a
General MIDI bank nobody trains on (--soundfont). The song's own MIDI tempo map and
time signatures are the reference. The drums alone and the full mix at each --mixes
drums-to-music level (RMS over the song) go through the model and the tempo map
``transcribe`` writes, and get scored as tools/bench_beats.py scores GMD: tempo within
4 %, the meter of the first full bar, beat F and downbeat F (mir_eval, +-70 ms, first
5 s trimmed), median and mean over songs. ``--per-song`` prints every song's row.

Renders and activations are cached under --work, by song, kit, bank, length, level
and the checkpoint's bytes (delete it after changing the renderer). The songs'
pitched parts back GMD performances in training (data/songs is a backing pool), but
never with their own drums, and never through these kits or this bank.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HELD_OUT_KITS = "ColomboAcousticDrumkit,The Black Pearl 1.0"
HELD_OUT_BANK = Path("/usr/share/sounds/sf2/sf_GMbank.sf2")


def add_tracker_options(p: argparse.ArgumentParser) -> None:
    """The tracker's settings a benchmark may vary (bench_songs and bench_beats)."""
    p.add_argument(
        "--harmony-weight",
        type=float,
        help="weight of the harmony's bar-line evidence (default: beats')",
    )
    p.add_argument(
        "--harmony-tempo-weight",
        type=float,
        help="weight of the same evidence in the tempo's choice (default: beats')",
    )
    p.add_argument(
        "--bar-template",
        metavar="PATH|none",
        help="score the tracker with this bar template (e.g. a new fit's, "
        "tools/fit_bar_template.py) instead of drumtx/models/bar_template.json; "
        "none: the linear score alone",
    )


def apply_tracker_options(args: argparse.Namespace) -> bool:
    """Set the tracker as the options ask; False (after an error and a hint on
    stderr) where --bar-template names no file."""
    import drumtx.beats

    if args.harmony_weight is not None:
        drumtx.beats.HARMONY_WEIGHT = args.harmony_weight
    if args.harmony_tempo_weight is not None:
        drumtx.beats.HARMONY_TEMPO_WEIGHT = args.harmony_tempo_weight
    if args.bar_template:
        bar_file = None if args.bar_template == "none" else Path(args.bar_template)
        try:
            drumtx.beats.use_bar_template(bar_file)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print("hint: --bar-template takes a JSON that tools/fit_bar_template.py "
                  "wrote, or none", file=sys.stderr)  # fmt: skip
            return False
    return True


def add_set_option(p: argparse.ArgumentParser) -> None:
    """--set TABLE.KEY=VALUE: score a decoding option both ways from one cache."""
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="a config override (repeatable), e.g. decode.repeat_floor=0 "
                   "to decode without the repeat rule")  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=Path, required=True, help="folder of .mid songs")
    p.add_argument("--work", type=Path, required=True, help="render/activation cache")
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "drumtx" / "models" / "default.pt")  # fmt: skip
    p.add_argument("--kits", default=HELD_OUT_KITS, help="drum kits, comma-separated")
    p.add_argument(
        "--soundfont",
        default=str(HELD_OUT_BANK),
        help="General MIDI bank for the band, or none (own voices)",
    )
    p.add_argument("--max-sec", type=float, default=120.0)
    p.add_argument("--limit", type=int, default=0, help="songs (0 = all)")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "fit", "all"],
        help="test: the third fit_bar_template never learns from",
    )
    p.add_argument(
        "--mixes", default="0", help="drums-to-music levels in dB ('' = none)"
    )
    add_tracker_options(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--per-song", action="store_true")
    add_set_option(p)
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def song_split(path: Path) -> str:
    """ "fit" for two songs in three (tools/fit_bar_template.py may learn from them),
    "test" for the rest, by a hash of the file name: stable as songs come and go."""
    return "test" if zlib.crc32(path.name.encode()) % 3 == 0 else "fit"


def full_band_songs(folder: Path, split: str = "test") -> list[Path]:
    """Songs of ``split`` ("fit", "test" or "all") with drum notes on channel 10 and
    notes on another channel, by name."""
    import mido

    from drumtx.midi import DRUM_CHANNEL

    found = []
    for path in sorted(folder.rglob("*.mid")):
        try:
            midi = mido.MidiFile(path)
        except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError):
            continue
        channels = {m.channel for t in midi.tracks for m in t
                    if m.type == "note_on" and m.velocity > 0}  # fmt: skip
        mine = split == "all" or song_split(path) == split
        if mine and DRUM_CHANNEL in channels and channels - {DRUM_CHANNEL}:
            found.append(path)
    return found


def drum_notes(path: Path) -> list:
    """The notes of the drum channel, in seconds (drumtx.midi.Note)."""
    import mido

    from drumtx.midi import DRUM_CHANNEL, Note
    from drumtx.tempo import read_tempo_map

    midi = mido.MidiFile(path)
    tempo_map = read_tempo_map(path)
    ticks, pitches, velocities = [], [], []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if (
                msg.type == "note_on"
                and msg.velocity > 0
                and msg.channel == DRUM_CHANNEL
            ):
                (
                    ticks.append(tick),
                    pitches.append(msg.note),
                    velocities.append(msg.velocity),
                )
    seconds = tempo_map.seconds(
        np.asarray(ticks, dtype=np.float64) / midi.ticks_per_beat
    )
    notes = [Note(float(t), p, v) for t, p, v in zip(seconds, pitches, velocities)]
    return sorted(notes, key=lambda n: (n.time_sec, n.pitch))


def cache_key(*parts: object) -> str:
    """A short hash of everything a cached file depends on."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def model_id(checkpoint: Path) -> str:
    """A short hash of a checkpoint's bytes and the input levels the model hears
    (transcribe.min_input_db, max_input_db): caches of its activations carry it."""
    from drumtx.config import load_config

    t = load_config(None, []).transcribe  # what these tools load the model with
    heard = f"{t.min_input_db:g}:{t.max_input_db:g}".encode()
    return hashlib.sha1(Path(checkpoint).read_bytes() + heard).hexdigest()[:12]


def render(
    path: Path, kit_name: str, soundfont: str, max_sec: float, work: Path, rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """(drums, band) float32 at ``rate`` Hz, the first ``max_sec`` seconds, cached
    under ``work`` by song, kit, bank, length and rate."""
    from drumtx.synth import load_kit
    from drumtx.synth.backing import Band, backing_rng, mix_parts, read_song_parts
    from drumtx.tempo import read_tempo_map

    key = cache_key(path.resolve(), kit_name, soundfont, max_sec, rate)
    cache = work / "renders" / f"{path.stem}-{key}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["drums"], data["band"]
    notes = drum_notes(path)
    tempo_map = read_tempo_map(path)
    parts, song_beats = read_song_parts(path)
    seconds = min(max_sec, float(tempo_map.seconds(song_beats)) + 1.0)
    notes = [n for n in notes if n.time_sec < seconds]
    drums = load_kit(kit_name).render(notes, seconds, rate)
    n = len(drums)
    fonts = () if str(soundfont) == "none" else (Path(soundfont),)
    band = Band(tempo_map, n, rate, fonts, own_prob=0.0 if fonts else 1.0)
    music = mix_parts(parts, band, backing_rng(path.name, 0))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, drums=drums.astype(np.float32), band=music)
    return drums.astype(np.float32), music


def condition_audio(drums, band, level):
    from drumtx.levels import mix_backing

    if level is None:
        return drums
    mixed = mix_backing(drums, band, level)
    return drums if mixed is None else np.clip(mixed, -1.0, 1.0)


def cached_activations(loaded, audio: np.ndarray, path: Path):
    """(onset, velocity) of ``audio`` through the model, kept in the .npz ``path``."""
    from drumtx.inference import array_activations

    if path.exists():
        data = np.load(path)
        return data["onset"], data["velocity"]
    onset, velocity = array_activations(loaded, audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, onset=onset, velocity=velocity)
    return onset, velocity


def condition_name(level: float | None) -> str:
    return "drums only" if level is None else f"{level:+g} dB" if level else "0 dB"


def score_songs(loaded, songs: list[Path], args) -> dict[str, list[dict]]:
    """Beat scores of every song in every condition: {condition: rows}."""
    from drumtx.beats import beat_grid
    from drumtx.harmony import chroma_of
    from drumtx.inference import class_thresholds, decode_hits
    from drumtx.scoring import beat_scores
    from drumtx.tempo import read_tempo_map

    fps, codes = loaded.cfg.frontend.fps, loaded.vocab.codes
    thresholds = class_thresholds(loaded)
    kits = args.kits.split(",")
    levels = [None] + [float(x) for x in args.mixes.split(",") if x.strip()]
    rows: dict[str, list[dict]] = {}
    rate, model = loaded.cfg.audio.sample_rate, model_id(args.checkpoint)
    for s, path in enumerate(songs):
        kit = kits[s % len(kits)]
        drums, band = render(path, kit, args.soundfont, args.max_sec, args.work, rate)
        for level in levels:
            name = condition_name(level)
            key = cache_key(
                path.resolve(), kit, args.soundfont, args.max_sec, level, model
            )
            audio = condition_audio(drums, band, level)
            acts = args.work / "acts" / f"{path.stem}-{key}.npz"
            onset, velocity = cached_activations(loaded, audio, acts)
            decoded = decode_hits(loaded, onset, velocity, thresholds)
            chroma = chroma_of(audio, rate)
            grid = beat_grid(onset, velocity, codes, fps, hits=decoded, chroma=chroma)
            row = beat_scores(read_tempo_map(path), grid, len(onset) / fps)
            row.update(song=f"{path.parent.name}/{path.name}", beat_type="song")
            rows.setdefault(name, []).append(row)
            if args.per_song:
                down = row["downbeat_f"]
                print(f"{name:10s} {row['song']:40s} tempo {row['ref_bpm']:6.1f} -> "
                      f"{row['est_bpm']:6.1f} meter {row['ref_meter']} -> "
                      f"{row['est_meter']} beat F {row['beat_f'] or 0:.3f} downbeat F "
                      f"{'-' if down is None else f'{down:.3f}'}"
                      + (f" (hint {row['rival_bpm']:.1f})" if row["rival_bpm"] else ""),
                      flush=True)  # fmt: skip
    return rows


def summarize(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """Print the table; {condition: {"summary", "songs"}}."""
    from drumtx.scoring import hint_text, summarize_beats

    out = {}
    print(f"{'audio':12s} {'songs':>5s} {'tempo':>6s} {'meter':>6s} "
          f"{'beat F':>13s} {'downbeat F':>13s}   octave hint")  # fmt: skip
    for name, cond_rows in rows.items():
        summary = summarize_beats(cond_rows)["song"]
        out[name] = {"summary": summary, "songs": cond_rows}
        f = {k: "-" if summary[f"{k}_median"] is None else
             f"{summary[f'{k}_median']:.3f}/{summary[f'{k}_mean']:.3f}"
             for k in ("beat_f", "downbeat_f")}  # fmt: skip
        print(f"{name:12s} {summary['n_recordings']:5d} "
              f"{summary['tempo_accuracy']:6.3f} {summary['meter_accuracy']:6.3f} "
              f"{f['beat_f']:>13s} {f['downbeat_f']:>13s}   "
              f"{hint_text(summary)}")  # fmt: skip
    print("(beat and downbeat F: median/mean; octave hint: wrong tempi whose hint "
          "is right / wrong tempi, share of right tempi given a hint)")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    import drumtx.beats
    from drumtx.config import load_config
    from drumtx.inference import load_model

    torch.set_num_threads(args.threads)
    if not apply_tracker_options(args):
        return 2
    cfg = load_config(None, args.set)
    loaded = load_model(args.checkpoint, cfg, torch.device("cpu"))
    songs = full_band_songs(args.songs, args.split)
    if not songs:
        print(f"error: no full-band songs in {args.songs} ({args.split} share)",
              file=sys.stderr)  # fmt: skip
        print("hint: --songs takes a folder of .mid files with drums on channel 10 "
              "and another part; --split all takes every song",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.limit:
        songs = [
            songs[i] for i in np.linspace(0, len(songs) - 1, args.limit).astype(int)
        ]
    conditions = summarize(score_songs(loaded, songs, args))
    if args.json:
        results = {"songs": len(songs), "split": args.split, "max_sec": args.max_sec,
                   "kits": args.kits.split(","), "soundfont": str(args.soundfont),
                   "checkpoint": str(args.checkpoint),
                   "harmony_weight": drumtx.beats.HARMONY_WEIGHT,
                   "harmony_tempo_weight": drumtx.beats.HARMONY_TEMPO_WEIGHT,
                   "conditions": conditions}  # fmt: skip
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
